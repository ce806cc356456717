// Package lambda runs the built bootstrap under the AWS Lambda runtime interface emulator, on
// dynalite, posting to a local management API: the binary as Lambda runs it. It has only tests.
package lambda

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/realtime-gql/lambdaws/internal/app/apptest"
	"github.com/realtime-gql/lambdaws/internal/devproc"
	"github.com/realtime-gql/lambdaws/internal/dynalite"
	"github.com/realtime-gql/lambdaws/internal/facts"
	"github.com/realtime-gql/lambdaws/internal/mgmttest"
	dynamostore "github.com/realtime-gql/lambdaws/store/dynamo"
	"github.com/realtime-gql/lambdaws/store/stream"
)

func TestMain(m *testing.M) {
	code := m.Run()
	dynalite.StopShared()
	os.Exit(code)
}

// TestBootstrapUnderTheRuntimeEmulator builds bootstrap for this machine, runs it under the AWS
// Lambda runtime interface emulator with the DynamoDB backend on dynalite and a local management
// endpoint, and invokes it with AWS-shaped events: $connect offering a subprotocol, $default with
// connection_init and a subscribe, an HTTP API v2 mutation, and the stream batch that the
// mutation caused. It asserts the responses, and that the subscriber's next reached the
// management endpoint.
func TestBootstrapUnderTheRuntimeEmulator(t *testing.T) {
	db := dynalite.Shared(t)
	registry, data := dynalite.TableName("rie-registry"), dynalite.TableName("rie-data")
	s := dynamostore.New(db.Client, dynamostore.Options{RegistryTable: registry, DataTable: data})
	if err := s.CreateTables(context.Background()); err != nil {
		t.Fatal(err)
	}
	m := mgmttest.New()
	mgmtSrv := httptest.NewServer(m)
	defer mgmtSrv.Close()

	bootstrap := devproc.BuildLambda(t)
	info, _ := os.Stat(bootstrap)
	t.Logf("bootstrap (%s/%s, host build): %d bytes", "host", "lambda.norpc", info.Size())

	rie := devproc.StartEmulator(t, bootstrap, []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + t.TempDir(),
		"AWS_REGION=" + dynalite.Region,
		"AWS_ACCESS_KEY_ID=local", "AWS_SECRET_ACCESS_KEY=local",
		"AWS_CONFIG_FILE=/nonexistent", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent", "AWS_EC2_METADATA_DISABLED=true",
		"AWS_ENDPOINT_URL_DYNAMODB=" + db.Endpoint,
		"REGISTRY_TABLE=" + registry, "DATA_TABLE=" + data,
		"WEBSOCKET_ENDPOINT=" + mgmtSrv.URL + "/prod",
		"AUTH_MODE=none", // a Lambda deployment refuses to start without it
		"LOG_LEVEL=info",
		"AWS_LAMBDA_FUNCTION_TIMEOUT=29",
	})
	invoke := func(event any) []byte {
		t.Helper()
		payload, _ := json.Marshal(event)
		deadline := time.Now().Add(30 * time.Second)
		for {
			resp, err := http.Post("http://"+rie.Addr+facts.InvokePath, "application/json", bytes.NewReader(payload))
			if err != nil {
				if time.Now().After(deadline) {
					t.Fatalf("emulator not answering: %v\n%s", err, rie.Output())
				}
				time.Sleep(50 * time.Millisecond)
				continue
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("invoke: status %d: %s\n%s", resp.StatusCode, body, rie.Output())
			}
			return body
		}
	}

	const connID = "PT3Q9evWoAMCJ4g="
	now := time.Now()
	wsEvent := func(route, eventType, body string) events.APIGatewayWebsocketProxyRequest {
		return events.APIGatewayWebsocketProxyRequest{
			RequestContext: events.APIGatewayWebsocketProxyRequestContext{
				RouteKey: route, EventType: eventType, ConnectionID: connID, Stage: "prod", APIID: "abcdef1234",
				DomainName: "abcdef1234.execute-api.us-east-1.amazonaws.com", RequestID: "req-" + route,
				ConnectedAt: now.UnixMilli(), RequestTimeEpoch: time.Now().UnixMilli(), MessageDirection: "IN",
			},
			Body: body,
		}
	}

	// $connect offering both subprotocols: graphql-transport-ws is chosen and echoed.
	connect := wsEvent("$connect", "CONNECT", "")
	connect.Headers = map[string]string{"Sec-WebSocket-Protocol": "graphql-ws, graphql-transport-ws"}
	var resp events.APIGatewayProxyResponse
	json.Unmarshal(invoke(connect), &resp)
	if resp.StatusCode != 200 || resp.Headers["Sec-WebSocket-Protocol"] != "graphql-transport-ws" {
		t.Fatalf("$connect = %+v", resp)
	}
	json.Unmarshal(invoke(wsEvent("$default", "MESSAGE", `{"type":"connection_init","payload":{}}`)), &resp)
	if resp.StatusCode != 200 || resp.Body != `{"type":"connection_ack"}` {
		t.Fatalf("connection_init = %+v", resp)
	}
	json.Unmarshal(invoke(wsEvent("$default", "MESSAGE",
		`{"id":"s1","type":"subscribe","payload":{"query":"subscription { messageAdded(roomId: \"r1\") { id text } }"}}`)), &resp)
	if resp.StatusCode != 200 || resp.Body != "" {
		t.Fatalf("subscribe = %+v", resp)
	}

	// An HTTP API v2 mutation.
	mutation := events.APIGatewayV2HTTPRequest{
		Version: "2.0", RouteKey: "POST /graphql", RawPath: "/graphql",
		Headers: map[string]string{"content-type": "application/json", "accept": "application/graphql-response+json"},
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RouteKey: "POST /graphql", Stage: "$default", RequestID: "http-1", DomainName: "h1j2k3l4m5.execute-api.us-east-1.amazonaws.com",
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "POST", Path: "/graphql", Protocol: "HTTP/1.1", SourceIP: "203.0.113.10"},
		},
		Body: `{"query":"mutation { sendMessage(roomId: \"r1\", author: \"ann\", text: \"hello from rie\") { id text } }"}`,
	}
	var httpResp events.APIGatewayV2HTTPResponse
	json.Unmarshal(invoke(mutation), &httpResp)
	var result struct {
		Data struct {
			SendMessage struct{ ID, Text string }
		}
	}
	if err := json.Unmarshal([]byte(httpResp.Body), &result); err != nil || httpResp.StatusCode != 200 || result.Data.SendMessage.ID == "" {
		t.Fatalf("mutation = %+v", httpResp)
	}
	id := result.Data.SendMessage.ID

	// The stream batch the mutation caused: the item as DynamoDB now holds it, as an INSERT
	// record with NEW_AND_OLD_IMAGES, exactly as DynamoDB Streams hands it to Lambda.
	pk, sk, err := apptest.MessageType(t).Key(map[string]any{"roomId": "r1", "id": id})
	if err != nil {
		t.Fatal(err)
	}
	item, err := db.Client.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(data), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{"pk": str(pk), "sk": str(sk)}})
	if err != nil || item.Item == nil {
		t.Fatalf("the mutation's item is not in the data table: %v", err)
	}
	img := stream.ToStreamImage(item.Item)
	batch := events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{{
		AWSRegion: dynalite.Region, EventID: "c4ca4238a0b923820dcc509a6f75849b", EventName: "INSERT", EventVersion: "1.1",
		EventSource: "aws:dynamodb", EventSourceArn: "arn:aws:dynamodb:us-east-1:123456789012:table/" + data + "/stream/2026-11-26T00:00:00.000",
		Change: events.DynamoDBStreamRecord{
			ApproximateCreationDateTime: events.SecondsEpochTime{Time: time.Now().Truncate(time.Second)},
			Keys:                        map[string]events.DynamoDBAttributeValue{"pk": img["pk"], "sk": img["sk"]},
			NewImage:                    img, SequenceNumber: "4421584500000000017450439091", SizeBytes: 200,
			StreamViewType: "NEW_AND_OLD_IMAGES",
		},
	}}}
	var batchResp events.DynamoDBEventResponse
	if err := json.Unmarshal(invoke(batch), &batchResp); err != nil || len(batchResp.BatchItemFailures) != 0 {
		t.Fatalf("stream batch: %+v %v", batchResp, err)
	}
	want := fmt.Sprintf(`{"id":"s1","type":"next","payload":{"data":{"messageAdded":{"id":%q,"text":"hello from rie"}},`+
		`"extensions":{"event":{"id":"c4ca4238a0b923820dcc509a6f75849b","seq":"4421584500000000017450439091"}}}}`, id)
	if got := m.Posts()[connID]; len(got) != 1 || got[0] != want {
		t.Fatalf("management endpoint received %v\nwant [%s]", m.Calls(), want)
	}
	// The same batch again (Lambda retries whole batches after a timeout): every event is marked
	// done, nobody receives it twice.
	if err := json.Unmarshal(invoke(batch), &batchResp); err != nil || len(batchResp.BatchItemFailures) != 0 {
		t.Fatalf("stream batch again: %+v %v", batchResp, err)
	}
	if got := m.Posts()[connID]; len(got) != 1 {
		t.Fatalf("the batch delivered twice reached the subscriber %d times", len(got))
	}

	// A continuation from the chunk queue (as an SQS batch): delivered to the listed
	// subscription; a message that is not a continuation is reported.
	cont := fmt.Sprintf(`{"v":1,"event":{"id":"e-cont","seq":"9","field":"messageAdded","topic":"messageAdded?roomId=r1",`+
		`"payload":{"id":%q,"roomId":"r1","author":"ann","text":"continued","createdAt":"2026-11-26T14:11:00Z"}},"part":"1","keys":[[%q,"s1"]]}`, id, connID)
	marked := map[string]events.SQSMessageAttribute{"lambdaws": {DataType: "String", StringValue: aws.String("continuation")}}
	sqsBatch := events.SQSEvent{Records: []events.SQSMessage{
		{MessageId: "m-cont", Body: cont, MessageAttributes: marked, EventSource: "aws:sqs", EventSourceARN: "arn:aws:sqs:us-east-1:123456789012:lambdaws-prod-chunks"},
		{MessageId: "m-other", Body: `{"specversion":"1.0"}`, EventSource: "aws:sqs", EventSourceARN: "arn:aws:sqs:us-east-1:123456789012:lambdaws-prod-chunks"},
	}}
	var sqsResp events.SQSEventResponse
	if err := json.Unmarshal(invoke(sqsBatch), &sqsResp); err != nil || len(sqsResp.BatchItemFailures) != 1 || sqsResp.BatchItemFailures[0].ItemIdentifier != "m-other" {
		t.Fatalf("SQS batch: %+v %v", sqsResp, err)
	}
	if got := m.Posts()[connID]; len(got) != 2 || !strings.Contains(got[1], `"text":"continued"`) || !strings.Contains(got[1], `"event":{"id":"e-cont","seq":"9"}`) {
		t.Fatalf("after the continuation the subscriber has %v", got)
	}

	// A malformed payload is refused with an error, and the runtime goes on serving.
	invokeRaw := func(payload string) (int, string) {
		resp, err := http.Post("http://"+rie.Addr+facts.InvokePath, "application/json", strings.NewReader(payload))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if _, body := invokeRaw(`{"Records":[{"eventSource":"aws:kinesis"}]}`); !strings.Contains(body, "unrecognised payload") {
		t.Fatalf("unknown payload answered %s", body)
	}
	json.Unmarshal(invoke(wsEvent("$disconnect", "DISCONNECT", "")), &resp)
	if resp.StatusCode != 200 {
		t.Fatalf("$disconnect = %+v", resp)
	}

	if m := regexp.MustCompile(`Init Duration: ([0-9.]+) ms`).FindStringSubmatch(rie.Output()); m != nil {
		ms, _ := strconv.ParseFloat(m[1], 64)
		t.Logf("init duration reported by the emulator: %.2f ms", ms)
	} else {
		t.Errorf("the emulator reported no init duration:\n%s", rie.Output())
	}
	// The function logs JSON lines (one per batch published, at least), and prints an EMF metric
	// line per stream and queue batch among them.
	sc := bufio.NewScanner(strings.NewReader(rie.Output()))
	var jsonLines int
	sources := map[string]int{}
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "{") || !json.Valid([]byte(line)) {
			continue
		}
		jsonLines++
		var emf struct {
			Source string
			AWS    *struct{ CloudWatchMetrics []struct{ Namespace string } } `json:"_aws"`
		}
		if json.Unmarshal([]byte(line), &emf); emf.AWS != nil && len(emf.AWS.CloudWatchMetrics) == 1 && emf.AWS.CloudWatchMetrics[0].Namespace == "lambdaws" {
			sources[emf.Source]++
		}
	}
	if jsonLines == 0 {
		t.Errorf("no JSON log lines from the function:\n%s", rie.Output())
	}
	if sources["stream"] != 2 || sources["chunks"] != 1 {
		t.Errorf("EMF lines per source %v, want 2 for the stream batches and 1 for the queue batch:\n%s", sources, rie.Output())
	}
}

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }
