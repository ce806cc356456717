package app_test

// BenchmarkPeerFanout measures the peers' fan-out of one event to N subscribers (issue 11: "at
// least 4 x faster than the best peer, we will measure the peers ourselves"), on the setup
// BenchmarkFanoutPath uses for lambdaws, and in the same run lambdaws's fan-out from dynalite and
// the SDK post-only loop at the same N and service time:
//
//	go test -run '^$' -bench BenchmarkPeerFanout -benchtime 1x -count 2 -timeout 60m ./internal/app/
//
// The peers are the npm packages aws-lambda-graphql 1.0.0-alpha.19 (ALG, the line its README
// documents; with graphql 14.7.0, its peer range, from the local package
// internal/app/testdata/peer-alg) and graphql-lambda-subscriptions 6.0.0 (GLS, with graphql
// 16.15.0), both on aws-sdk 2.1693.0, their peer. Each runs in a Node child
// (internal/app/testdata/peerchild.js) that builds the peer's handler as its README builds it
// (testdata/peer-alg/handler.js, testdata/peer-gls.js say how) and is fed the Lambda event its
// handler would get:
//
//   - ALG: its event processor (server.createEventHandler(), DynamoDBEventProcessor) fed a stream
//     record of its Events table: an INSERT of the item DynamoDBEventStore.publish writes (id,
//     event, payload as JSON, ttl). It reads the subscribers from its Subscriptions table (event
//     HASH, subscriptionId RANGE; pages of 50), and for each one builds Apollo's server options,
//     parses, validates and runs the stored operation through graphql's subscribe, and posts the
//     result with aws-sdk v2's ApiGatewayManagementApi (one client, for the endpoint stored with
//     the connection); 50 posts in flight, a page at a time.
//   - GLS: its publish() (its README feeds it from the event source's handler; here a DynamoDB
//     stream record of the message, unmarshalled with aws-sdk v2's converter, as lambdaws is
//     fed). It reads every subscription of the topic from its TopicIndex (with the event's
//     fields as a filter expression), then for each one parses and executes the stored query
//     and posts the result with a new ApiGatewayManagementApi client for the stored
//     domainName/stage, all at once (aws-sdk v2's agent opens at most 50 sockets).
//
// Subscriptions: N subscribers of room "bench" plus 2,048 of room "warm" (for the warm-up), in
// each peer's tables with the items its subscribe path writes (ALG: Subscriptions and
// SubscriptionOperations rows, the connection and the operation stored in the subscription, a
// TTL of 2 hours; GLS: subscription rows with topic, filter, the stored subscribe payload and the
// API Gateway requestContext, a TTL of 3 hours), written with BatchWriteItem. The document is
// lambdaws's `subscription { messageAdded(roomId: "bench") { id roomId author text createdAt } }`
// against the same Message type (createdAt a String: neither peer has lambdaws's Time scalar).
// Rooms: lambdaws and ALG read only the room's subscribers (ALG's event name carries the room,
// 'messageAdded:bench', through a resolver that calls its pubSub.subscribe with it; that is the
// cheapest layout its API allows). GLS's topic is fixed per field, and its README filters rooms
// with subscribe()'s filter: its query reads the topic's N + 2,048 rows in dynalite, which
// returns the N that match.
//
// Fairness choices:
//   - One core for the system under test: every contender's process (the Node child, lambdaws's
//     handler child, the SDK loop's child) is pinned to CPU 0 (`taskset -c 0`; the Go children
//     also get GOMAXPROCS=1), and this driver, the endpoint child and dynalite (when this
//     benchmark starts it) to CPU 1, when the machine has two CPUs and taskset is installed.
//   - Keep-alive: aws-sdk v2 opens a new connection per request unless
//     AWS_NODEJS_CONNECTION_REUSE_ENABLED=1 (AWS's documented advice for Lambda); Node 20's Lambda
//     runtime bundles only SDK v3, so a function using these peers bundles v2 and gets v2's
//     default. Both are measured: "-ka" with the variable set, "-noka" without; the best peer is
//     the fastest of the four.
//   - TLS: the same endpoint child (TLS, HTTP/1.1, 200 after the service time), its certificate
//     given to Node by NODE_EXTRA_CA_CERTS. Static fake credentials and us-east-1 from the
//     environment, as Lambda gives them; DynamoDB is dynalite; the management endpoint is the
//     address stored with each subscription, as API Gateway's would be: nothing reaches AWS.
//   - Production settings: NODE_ENV=production (Apollo's), no debug logging; Node with its
//     defaults (no --max-old-space-size: the heap is not what is measured).
//   - Warm: before each measured run, in the same process, one fan-out to the 2,048 subscribers
//     of the warm room at the same service time, as for lambdaws (the issue measured warm).
//   - lambdaws: BenchmarkFanoutPath's fanout-dynalite-64 (the handler as the binary wires it,
//     64 workers, the figure the ratios use) and sdk-loop-64, in children pinned like the Node
//     child; also fanout-dynalite-128, its production default (app.Config's 128 workers), as the
//     peers run with theirs (aws-sdk v2's 50 sockets).
//
// Per run: wall-ms (the invocation, from the driver), deliveries/s, cpu-µs/delivery (the child's
// own CPU: process.cpuUsage for Node, getrusage for Go), first-ms (invoke to the endpoint's first
// post), peak-rss-MB (the child's VmHWM, reset before the run), conns (connections the endpoint
// saw opened during the run); the peer runs also report x-lambdaws-wall and x-lambdaws-cpu (the
// peer's figure over lambdaws's fanout-dynalite-64 at the same size and service time, its last
// run in this invocation: with -count, each case runs count times in a row) and x-sdk-wall,
// x-sdk-cpu (over the SDK loop's). Every run checks that the endpoint got exactly N posts and that
// the first one carries the message.

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/realtime-gql/lambdaws/internal/devproc"
	"github.com/realtime-gql/lambdaws/internal/dynalite"
	"github.com/realtime-gql/lambdaws/internal/testenv"
	dynamostore "github.com/realtime-gql/lambdaws/store/dynamo"
)

// peerMessage is the message every fan-out of this benchmark delivers (the text of benchFrame).
var peerMessage = map[string]string{"author": "ann", "text": "hello, world"}

// av converts a JSON-like Go value (string, int64, bool, map[string]any) to a DynamoDB attribute,
// as aws-sdk v2's DocumentClient marshals the peers' items.
func av(v any) types.AttributeValue {
	switch v := v.(type) {
	case string:
		return &types.AttributeValueMemberS{Value: v}
	case int64:
		return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
	case bool:
		return &types.AttributeValueMemberBOOL{Value: v}
	case map[string]any:
		m := make(map[string]types.AttributeValue, len(v))
		for k, x := range v {
			m[k] = av(x)
		}
		return &types.AttributeValueMemberM{Value: m}
	}
	panic(fmt.Sprintf("av: %T", v))
}

func item(m map[string]any) map[string]types.AttributeValue {
	return av(m).(*types.AttributeValueMemberM).Value
}

// batchPut writes items to table with BatchWriteItem, 8 batches of 25 at a time.
func batchPut(b *testing.B, db *dynalite.Server, table string, items []map[string]types.AttributeValue) {
	b.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for len(items) > 0 {
		k := min(25, len(items))
		batch := make([]types.WriteRequest, k)
		for i, it := range items[:k] {
			batch[i] = types.WriteRequest{PutRequest: &types.PutRequest{Item: it}}
		}
		items = items[k:]
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			for len(batch) > 0 {
				out, err := db.Client.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{table: batch}})
				if err != nil {
					b.Error(err)
					return
				}
				batch = out.UnprocessedItems[table]
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
}

// createTable creates an on-demand table with a string hash key, an optional string range key
// and string-keyed global secondary indexes projecting all attributes.
func createTable(b *testing.B, db *dynalite.Server, name, hash, rng string, indexes map[string]string) {
	b.Helper()
	attrs := map[string]bool{hash: true}
	keys := []types.KeySchemaElement{{AttributeName: aws.String(hash), KeyType: types.KeyTypeHash}}
	if rng != "" {
		attrs[rng] = true
		keys = append(keys, types.KeySchemaElement{AttributeName: aws.String(rng), KeyType: types.KeyTypeRange})
	}
	var gsis []types.GlobalSecondaryIndex
	for idx, key := range indexes {
		attrs[key] = true
		gsis = append(gsis, types.GlobalSecondaryIndex{IndexName: aws.String(idx),
			KeySchema:  []types.KeySchemaElement{{AttributeName: aws.String(key), KeyType: types.KeyTypeHash}},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeAll}})
	}
	var defs []types.AttributeDefinition
	for a := range attrs {
		defs = append(defs, types.AttributeDefinition{AttributeName: aws.String(a), AttributeType: types.ScalarAttributeTypeS})
	}
	if _, err := db.Client.CreateTable(context.Background(), &dynamodb.CreateTableInput{TableName: aws.String(name),
		KeySchema: keys, AttributeDefinitions: defs, GlobalSecondaryIndexes: gsis, BillingMode: types.BillingModePayPerRequest}); err != nil {
		b.Fatalf("create table %s: %v", name, err)
	}
}

// peerTables are one peer's table names, as the Node child's BENCH_PEER_TABLES.
type peerTables struct {
	Subscriptions          string `json:"subscriptions"`
	SubscriptionOperations string `json:"subscriptionOperations,omitempty"`
	Connections            string `json:"connections"`
	Events                 string `json:"events,omitempty"`
}

// peerOpID is the operation id of room's subscriptions (distinct per room, as benchSub's).
func peerOpID(room string) string {
	if room == "warm" {
		return "w"
	}
	return "1"
}

// fillALG creates aws-lambda-graphql's tables and writes n subscriptions of room bench and
// warmSubs of room warm, the items DynamoDBSubscriptionManager.subscribe writes (the connection
// as DynamoDBConnectionManager stored and hydrated it; the operation as parseOperationFromEvent
// made it of subscriptions-transport-ws's start message).
func fillALG(b *testing.B, db *dynalite.Server, endpoint string, n int) peerTables {
	b.Helper()
	t := peerTables{Subscriptions: dynalite.TableName("alg-subscriptions"), SubscriptionOperations: dynalite.TableName("alg-subscription-operations"),
		Connections: dynalite.TableName("alg-connections"), Events: dynalite.TableName("alg-events")}
	createTable(b, db, t.Subscriptions, "event", "subscriptionId", nil)
	createTable(b, db, t.SubscriptionOperations, "subscriptionId", "", nil)
	createTable(b, db, t.Connections, "id", "", nil)
	createTable(b, db, t.Events, "id", "", nil)
	ttl := time.Now().Unix() + 7200 // computeTTL(7200), its default
	var subs, ops []map[string]types.AttributeValue
	add := func(room string, count int) {
		opID := peerOpID(room)
		for i := range count {
			connID := fmt.Sprintf("Ab%07d=", i)
			subID := connID + ":" + opID
			event := "messageAdded:" + room
			subs = append(subs, item(map[string]any{
				"connection": map[string]any{"id": connID, "createdAt": time.Now().UTC().Format("Mon Jan 02 2006 15:04:05 GMT+0000 (Coordinated Universal Time)"),
					"data": map[string]any{"endpoint": endpoint + "/prod", "context": map[string]any{}, "isInitialized": true}, "ttl": ttl},
				"operation":      map[string]any{"query": strings.Replace(benchTopicQuery, `"bench"`, `"`+room+`"`, 1), "variables": map[string]any{}, "operationId": opID},
				"event":          event,
				"subscriptionId": subID,
				"operationId":    opID,
				"ttl":            ttl,
			}))
			ops = append(ops, item(map[string]any{"subscriptionId": subID, "event": event, "ttl": ttl}))
		}
	}
	add("bench", n)
	add("warm", warmSubs)
	batchPut(b, db, t.Subscriptions, subs)
	batchPut(b, db, t.SubscriptionOperations, ops)
	return t
}

// fillGLS creates graphql-lambda-subscriptions' tables (its README's: subscriptions by id, with
// the ConnectionIndex and TopicIndex global indexes) and writes n subscriptions of room bench and
// warmSubs of room warm, the items its subscribe handler (setupSubscription) writes.
func fillGLS(b *testing.B, db *dynalite.Server, endpoint string, n int) peerTables {
	b.Helper()
	t := peerTables{Subscriptions: dynalite.TableName("gls-subscriptions"), Connections: dynalite.TableName("gls-connections")}
	createTable(b, db, t.Subscriptions, "id", "", map[string]string{"ConnectionIndex": "connectionId", "TopicIndex": "topic"})
	createTable(b, db, t.Connections, "id", "", nil)
	now := time.Now()
	ttl := now.Unix() + 3*3600 // the connection's defaultTTL()
	var subs []map[string]types.AttributeValue
	// dynalite keys an index entry by the index key and the first 6 hex digits of a hash of the
	// item's key (db/index.js, hashPrefix): of two items whose digits collide in TopicIndex only
	// one can be read through it (about 5 of 12,048 items). Connection ids whose digits collide
	// with an earlier item's are skipped, so that the index holds every subscription.
	seen := map[string]bool{}
	next := 0
	add := func(room string, count int) {
		opID := peerOpID(room)
		for i := range count {
			var connID string
			for {
				connID = fmt.Sprintf("Ab%07d=", next)
				next++
				sum := md5.Sum([]byte("Outliers" + connID + "|" + opID))
				if p := hex.EncodeToString(sum[:])[:6]; !seen[p] {
					seen[p] = true
					break
				}
			}
			subs = append(subs, item(map[string]any{
				"id":             connID + "|" + opID,
				"topic":          "MESSAGE_ADDED",
				"filter":         map[string]any{"roomId": room},
				"subscriptionId": opID,
				"subscription":   map[string]any{"query": strings.Replace(benchTopicQuery, `"bench"`, `"`+room+`"`, 1)},
				"connectionId":   connID,
				"requestContext": map[string]any{"routeKey": "$default", "messageId": fmt.Sprintf("msg%07d%s=", i, opID), "eventType": "MESSAGE",
					"extendedRequestId": fmt.Sprintf("ext%07d%s=", i, opID), "requestTime": now.UTC().Format("02/Jan/2006:15:04:05 -0700"),
					"messageDirection": "IN", "stage": "prod", "connectedAt": now.UnixMilli(), "requestTimeEpoch": now.UnixMilli(),
					"identity": map[string]any{"sourceIp": "127.0.0.1"}, "requestId": fmt.Sprintf("req%07d%s=", i, opID),
					"domainName": endpoint, "connectionId": connID, "apiId": "bench00001"},
				"ttl":       ttl,
				"createdAt": now.UnixMilli(),
			}))
		}
	}
	add("bench", n)
	add("warm", warmSubs)
	batchPut(b, db, t.Subscriptions, subs)
	return t
}

// peerBatch is the Lambda event of one new message in room for the peer: for ALG a stream record
// of its Events table (the item DynamoDBEventStore.publish writes), for GLS a stream record of
// the message's table.
func peerBatch(peer, room string) []byte {
	seq := benchSeq.Add(1)
	now := time.Now()
	msg := map[string]string{"id": fmt.Sprintf("01J9Z8Q4M2XK7W3V5T6R%06d", seq), "roomId": room, "author": peerMessage["author"],
		"text": peerMessage["text"], "createdAt": now.UTC().Format(time.RFC3339Nano)}
	var keys, image map[string]events.DynamoDBAttributeValue
	table := "Messages"
	switch peer {
	case "alg":
		table = "Events"
		payload, _ := json.Marshal(msg)
		id := fmt.Sprintf("01JA0000000000000000%06d", seq)
		keys = map[string]events.DynamoDBAttributeValue{"id": events.NewStringAttribute(id)}
		image = map[string]events.DynamoDBAttributeValue{"id": events.NewStringAttribute(id), "event": events.NewStringAttribute("messageAdded:" + room),
			"payload": events.NewStringAttribute(string(payload)), "ttl": events.NewNumberAttribute(strconv.FormatInt(now.Unix()+7200, 10))}
	default:
		keys = map[string]events.DynamoDBAttributeValue{"id": events.NewStringAttribute(msg["id"])}
		image = map[string]events.DynamoDBAttributeValue{}
		for k, v := range msg {
			image[k] = events.NewStringAttribute(v)
		}
	}
	rec := events.DynamoDBEventRecord{AWSRegion: benchRegion, EventID: fmt.Sprintf("bench%027d", seq), EventName: "INSERT", EventVersion: "1.1",
		EventSource: "aws:dynamodb", EventSourceArn: "arn:aws:dynamodb:us-east-1:123456789012:table/" + table + "/stream/2026-01-01T00:00:00.000",
		Change: events.DynamoDBStreamRecord{ApproximateCreationDateTime: events.SecondsEpochTime{Time: now}, Keys: keys, NewImage: image,
			SequenceNumber: strconv.FormatInt(1e9+seq, 10), SizeBytes: 300, StreamViewType: "NEW_AND_OLD_IMAGES"}}
	payload, _ := json.Marshal(events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{rec}})
	return payload
}

// reportPeerRun reports the figures every case of BenchmarkPeerFanout shares.
func reportPeerRun(b *testing.B, f runFigures) {
	b.ReportMetric(float64(f.wall.Microseconds())/1000, "wall-ms")
	b.ReportMetric(float64(f.posts)/f.wall.Seconds(), "deliveries/s")
	b.ReportMetric(f.cpuPerDelivery, "cpu-µs/delivery")
	b.ReportMetric(float64(f.first.Microseconds())/1000, "first-ms")
	b.ReportMetric(float64(f.peakRSS)/(1<<20), "peak-rss-MB")
	b.ReportMetric(float64(f.conns), "conns")
}

// checkDelivered fails the run unless the endpoint got n posts and the first carries the message.
func checkDelivered(b *testing.B, ep endpointInfo, f runFigures, n int) {
	b.Helper()
	if f.posts != int64(n) {
		b.Fatalf("%d posts for %d subscribers", f.posts, n)
	}
	var e endpointCounts
	getJSON(b, http.MethodGet, ep.Control, nil, &e)
	for _, want := range []string{`"messageAdded":{`, `"roomId":"bench"`, `"text":"hello, world"`} {
		if !strings.Contains(e.Body, want) {
			b.Fatalf("the first post %q lacks %s", e.Body, want)
		}
	}
}

func BenchmarkPeerFanout(b *testing.B) {
	parent := b
	root := devproc.Root(b)
	node, _ := testenv.Node(b, root, "dynalite", "aws-sdk", "graphql-lambda-subscriptions", "lambdaws-peer-alg/node_modules/aws-lambda-graphql")
	// This process and the children it starts from here on (the endpoint, dynalite if it is not
	// running yet) on CPU 1; the contenders are started on CPU 0.
	b.Cleanup(pinDriver(b))
	ep := startChild(b, "endpoint")
	var info endpointInfo
	if err := json.Unmarshal([]byte(ep.line), &info); err != nil {
		b.Fatal(err)
	}
	epJSON, _ := json.Marshal(info)
	host := strings.TrimPrefix(info.URL, "https://")
	db := dynalite.Shared(b)
	dir := b.TempDir()
	caFile := filepath.Join(dir, "endpoint.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: info.Cert}), 0o644); err != nil {
		b.Fatal(err)
	}
	script := filepath.Join(root, "internal", "app", "testdata", "peerchild.js")

	// The children, started on first use: Go handler children by store and size, Node children
	// by peer, size and keep-alive.
	children := map[string]string{}
	ourTables := map[int][2]string{} // size → registry, data
	goHandler := func(b *testing.B, kind string, n, conc int) string {
		key := fmt.Sprint("go", kind, n, conc)
		if h, ok := children[key]; ok {
			return h
		}
		env := []string{benchChildEnv + "=handler", "GOMAXPROCS=1", "BENCH_ENDPOINT=" + string(epJSON), "BENCH_STORE=" + kind, "BENCH_CONCURRENCY=" + strconv.Itoa(conc)}
		if kind == "dynalite" {
			t, ok := ourTables[n]
			if !ok {
				t = [2]string{dynalite.TableName("peer-registry"), dynalite.TableName("peer-data")}
				if err := dynamostore.New(db.Client, dynamostore.Options{RegistryTable: t[0], DataTable: t[1]}).CreateTables(context.Background()); err != nil {
					b.Fatal(err)
				}
				t0 := time.Now()
				fillDynalite(b, db, t[0], n)
				b.Logf("%d subscriptions written for lambdaws in %v", n, time.Since(t0).Round(time.Millisecond))
				ourTables[n] = t
			}
			env = append(env, "BENCH_DYNAMODB="+db.Endpoint, "BENCH_REGISTRY="+t[0], "BENCH_DATA="+t[1])
		}
		c := runChild(parent, []string{os.Args[0], "-test.run=^$", "-test.bench=^$"}, env, true)
		children[key] = c.line
		return c.line
	}
	peerTablesFor := map[string]peerTables{}
	nodeChild := func(b *testing.B, peer string, n int, keepAlive bool) string {
		key := fmt.Sprint("node", peer, n, keepAlive)
		if h, ok := children[key]; ok {
			return h
		}
		tkey := fmt.Sprint(peer, n)
		t, ok := peerTablesFor[tkey]
		if !ok {
			t0 := time.Now()
			if peer == "alg" {
				t = fillALG(b, db, host, n)
			} else {
				t = fillGLS(b, db, host, n)
			}
			b.Logf("%d subscriptions written for %s in %v", n, peer, time.Since(t0).Round(time.Millisecond))
			peerTablesFor[tkey] = t
		}
		tj, _ := json.Marshal(t)
		reuse := "0"
		if keepAlive {
			reuse = "1"
		}
		env := []string{"PEER=" + peer, "BENCH_DYNAMODB=" + db.Endpoint, "BENCH_PEER_TABLES=" + string(tj),
			"AWS_REGION=" + benchRegion, "AWS_DEFAULT_REGION=" + benchRegion, "AWS_ACCESS_KEY_ID=AKIDBENCH", "AWS_SECRET_ACCESS_KEY=SECRETBENCH",
			"AWS_SESSION_TOKEN=", "AWS_PROFILE=", "AWS_EC2_METADATA_DISABLED=true", "AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE=1",
			"AWS_NODEJS_CONNECTION_REUSE_ENABLED=" + reuse, "NODE_EXTRA_CA_CERTS=" + caFile, "NODE_ENV=production", "DEBUG="}
		c := runChild(parent, []string{node, "--expose-gc", script}, env, true)
		children[key] = c.line
		return c.line
	}
	control := func(b *testing.B, d time.Duration) {
		getJSON(b, http.MethodGet, info.Control+"?delay="+d.String(), nil, nil)
	}
	invokePeer := func(b *testing.B, h string, payload []byte) {
		b.Helper()
		getJSON(b, http.MethodPost, h+"/invoke", payload, nil)
	}
	warmPeer := func(b *testing.B, h, peer string) {
		b.Helper()
		var e0, e1 endpointCounts
		getJSON(b, http.MethodGet, info.Control, nil, &e0)
		invokePeer(b, h, peerBatch(peer, "warm"))
		getJSON(b, http.MethodGet, info.Control, nil, &e1)
		if e1.Posts-e0.Posts != warmSubs {
			b.Fatalf("the warm-up posted %d times, want %d", e1.Posts-e0.Posts, warmSubs)
		}
	}

	type baseline struct {
		wall time.Duration
		cpu  float64
	}
	for _, svc := range []time.Duration{0, 10 * time.Millisecond} {
		for _, n := range []int{1000, 10000} {
			prefix := fmt.Sprintf("subs=%d/svc=%v", n, svc)
			var sdk, ours baseline
			b.Run(prefix+"/sdk-loop-64", func(b *testing.B) {
				control(b, svc)
				h := goHandler(b, "none", 0, 64)
				getJSON(b, http.MethodPost, fmt.Sprintf("%s/loop?impl=sdk&n=%d&workers=64", h, 256), nil, nil) // warm
				var f runFigures
				for b.Loop() {
					f = measureRun(b, h, info, func() {
						getJSON(b, http.MethodPost, fmt.Sprintf("%s/loop?impl=sdk&n=%d&workers=64", h, n), nil, nil)
					})
				}
				reportPeerRun(b, f)
				sdk = baseline{f.wall, f.cpuPerDelivery}
			})
			for _, conc := range []int{64, 128} {
				b.Run(fmt.Sprintf("%s/fanout-dynalite-%d", prefix, conc), func(b *testing.B) {
					control(b, svc)
					h := goHandler(b, "dynalite", n, conc)
					warm(b, h, info)
					var f runFigures
					for b.Loop() {
						payload := streamBatch(b, "bench")
						f = measureRun(b, h, info, func() { invokeChild(b, h, payload) })
						checkDelivered(b, info, f, n)
					}
					reportPeerRun(b, f)
					if conc == 64 {
						ours = baseline{f.wall, f.cpuPerDelivery}
					}
					if sdk.wall > 0 {
						b.ReportMetric(float64(f.wall)/float64(sdk.wall), "x-sdk-wall")
						b.ReportMetric(f.cpuPerDelivery/sdk.cpu, "x-sdk-cpu")
					}
				})
			}
			for _, peer := range []string{"alg", "gls"} {
				for _, keepAlive := range []bool{true, false} {
					name := "peer-" + peer + "-ka"
					if !keepAlive {
						name = "peer-" + peer + "-noka"
					}
					b.Run(prefix+"/"+name, func(b *testing.B) {
						control(b, svc)
						h := nodeChild(b, peer, n, keepAlive)
						warmPeer(b, h, peer)
						var f runFigures
						for b.Loop() {
							payload := peerBatch(peer, "bench")
							f = measureRun(b, h, info, func() { invokePeer(b, h, payload) })
							checkDelivered(b, info, f, n)
						}
						reportPeerRun(b, f)
						if ours.wall > 0 {
							b.ReportMetric(float64(f.wall)/float64(ours.wall), "x-lambdaws-wall")
							b.ReportMetric(f.cpuPerDelivery/ours.cpu, "x-lambdaws-cpu")
						}
						if sdk.wall > 0 {
							b.ReportMetric(float64(f.wall)/float64(sdk.wall), "x-sdk-wall")
							b.ReportMetric(f.cpuPerDelivery/sdk.cpu, "x-sdk-cpu")
						}
					})
				}
			}
		}
	}
}
