package dynamo_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/realtime-gql/lambdaws/internal/dynalite"
	"github.com/realtime-gql/lambdaws/store"
	"github.com/realtime-gql/lambdaws/store/dynamo"
	"github.com/realtime-gql/lambdaws/store/storetest"
	"github.com/realtime-gql/lambdaws/store/stream"
)

func TestMain(m *testing.M) {
	code := m.Run()
	dynalite.StopShared()
	os.Exit(code)
}

// runtimeActions are the DynamoDB actions the service's IAM role grants; CreateTables may also use
// DescribeTable, CreateTable and UpdateTimeToLive.
var runtimeActions = []string{"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "BatchGetItem", "BatchWriteItem"}

// env is one store over its own pair of tables, and a spy on every request its client sends.
type env struct {
	s     *dynamo.Store
	spy   *spy
	raw   *dynamodb.Client // unspied, for looking at and planting rows
	names dynamo.Options
}

// newEnv creates uniquely named tables (deleted when t ends) and a store over them. The spy is
// reset after CreateTables, and at the end the test fails if the store used an action outside
// runtimeActions.
func newEnv(t *testing.T, opts dynamo.Options) *env {
	t.Helper()
	srv := dynalite.Shared(t)
	sp := &spy{}
	client := dynamodb.New(dynamodb.Options{
		Region:       dynalite.Region,
		BaseEndpoint: aws.String(srv.Endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("dynalite", "dynalite", ""),
		HTTPClient:   sp,
	})
	opts.RegistryTable = dynalite.TableName("registry")
	opts.DataTable = dynalite.TableName("data")
	s := dynamo.New(client, opts)
	if err := s.CreateTables(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, name := range []string{opts.RegistryTable, opts.DataTable} {
			if _, err := srv.Client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(name)}); err != nil {
				t.Errorf("delete table %s: %v", name, err)
			}
		}
	})
	sp.reset()
	t.Cleanup(func() {
		for _, op := range sp.ops() {
			if !slices.Contains(runtimeActions, op) {
				t.Errorf("the store called %s, which its IAM role does not grant", op)
			}
		}
	})
	return &env{s: s, spy: sp, raw: srv.Client, names: opts}
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, now func() time.Time) storetest.Backend {
		var mu sync.Mutex
		var recs []events.DynamoDBEventRecord
		var seq uint64
		e := newEnv(t, dynamo.Options{Now: now, PageSize: 7, OnChange: func(kind stream.ChangeKind, old, new store.Item) {
			mu.Lock()
			defer mu.Unlock()
			seq++
			rec, err := stream.ChangeRecord(kind, old, new, seq, "arn:aws:dynamodb:us-east-1:123456789012:table/data/stream/x", now())
			if err != nil {
				t.Errorf("OnChange(%s): %v", kind, err)
			}
			recs = append(recs, rec)
		}})
		return storetest.Backend{Store: e.s, Changes: func(*testing.T) []events.DynamoDBEventRecord {
			mu.Lock()
			defer mu.Unlock()
			out := recs
			recs = nil
			return out
		}}
	})
}

// spy is the client's HTTP transport: it records each request's operation and body and can
// answer a request itself instead of dynalite.
type spy struct {
	mu    sync.Mutex
	calls []call
	// intercept, when set and returning a response, answers the request instead of dynalite.
	intercept func(c call) *http.Response
}

type call struct {
	Op   string         // X-Amz-Target without its API prefix, e.g. "PutItem"
	Body map[string]any // the request's JSON
	req  *http.Request  // for an intercept that sends the request on to dynalite itself
}

func (sp *spy) Do(req *http.Request) (*http.Response, error) {
	raw, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, err
	}
	req.Body = io.NopCloser(bytes.NewReader(raw))
	c := call{Op: strings.TrimPrefix(req.Header.Get("X-Amz-Target"), "DynamoDB_20120810."), req: req}
	if err := json.Unmarshal(raw, &c.Body); err != nil {
		return nil, err
	}
	sp.mu.Lock()
	sp.calls = append(sp.calls, c)
	intercept := sp.intercept
	sp.mu.Unlock()
	if intercept != nil {
		if resp := intercept(c); resp != nil {
			return resp, nil
		}
	}
	return http.DefaultClient.Do(req)
}

func (sp *spy) reset() {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.calls = nil
}

func (sp *spy) setIntercept(f func(c call) *http.Response) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.intercept = f
}

// recorded returns the calls so far.
func (sp *spy) recorded() []call {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return slices.Clone(sp.calls)
}

// ops returns the distinct operations called so far.
func (sp *spy) ops() []string {
	var out []string
	for _, c := range sp.recorded() {
		if !slices.Contains(out, c.Op) {
			out = append(out, c.Op)
		}
	}
	return out
}

// apiError is an error response as DynamoDB sends it; a 400 the SDK does not retry.
func apiError(code, msg string) *http.Response {
	return apiErrorStatus(http.StatusBadRequest, code, msg)
}

func apiErrorStatus(status int, code, msg string) *http.Response {
	body := fmt.Sprintf(`{"__type":"com.amazonaws.dynamodb.v20120810#%s","message":%q}`, code, msg)
	return &http.Response{
		StatusCode: status,
		Header:     http.Header{"Content-Type": {"application/x-amz-json-1.0"}},
		Body:       io.NopCloser(strings.NewReader(body)),
	}
}

// okResponse is a 200 with a JSON body.
func okResponse(body string) *http.Response {
	return &http.Response{
		StatusCode: http.StatusOK,
		Header:     http.Header{"Content-Type": {"application/x-amz-json-1.0"}},
		Body:       io.NopCloser(strings.NewReader(body)),
	}
}

// getRow reads a row of a table directly, nil if absent.
func (e *env) getRow(t *testing.T, table, pk, sk string) map[string]types.AttributeValue {
	t.Helper()
	out, err := e.raw.GetItem(t.Context(), &dynamodb.GetItemInput{
		TableName:      aws.String(table),
		Key:            map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: pk}, "sk": &types.AttributeValueMemberS{Value: sk}},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Item
}

// liveOps returns a connection's operation rows (pk "conn#<id>", sk "op#...") that are live at
// now, read straight from the table.
func (e *env) liveOps(t *testing.T, connID string, now time.Time) []map[string]types.AttributeValue {
	t.Helper()
	out, err := e.raw.Query(t.Context(), &dynamodb.QueryInput{
		TableName:              aws.String(e.names.RegistryTable),
		KeyConditionExpression: aws.String("pk = :pk AND begins_with(sk, :op)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": &types.AttributeValueMemberS{Value: "conn#" + connID}, ":op": &types.AttributeValueMemberS{Value: "op#"}},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	var live []map[string]types.AttributeValue
	for _, row := range out.Items {
		ttl, ok := row["ttl"].(*types.AttributeValueMemberN)
		if !ok {
			live = append(live, row)
			continue
		}
		if sec, err := strconv.ParseInt(ttl.Value, 10, 64); err == nil && now.Unix() < sec {
			live = append(live, row)
		}
	}
	return live
}

// connRow is the key of a connection's row: its shard partition, "conns#" and two digits of
// fnv-32a(id) % 16, and "conn#" + id. It is computed here independently of the store, as the
// specification of the layout.
func connRow(id string) (pk, sk string) {
	h := fnv.New32a()
	h.Write([]byte(id))
	return fmt.Sprintf("conns#%02d", h.Sum32()%16), "conn#" + id
}

func conn(id string, now time.Time) store.Connection {
	return store.Connection{ID: id, Subprotocol: "graphql-transport-ws", State: store.StatePending,
		ConnectedAt: now, ExpiresAt: now.Add(2 * time.Hour)}
}

func sub(connID, id, topic string, now time.Time) store.Subscription {
	return store.Subscription{ConnectionID: connID, ID: id, Topic: topic, Subprotocol: "graphql-transport-ws",
		Query: "subscription { messageAdded(roomId: \"r1\") { id } }", CreatedAt: now, ExpiresAt: now.Add(2 * time.Hour)}
}

func collect(t *testing.T, s store.Store, topic string) []store.Subscription {
	t.Helper()
	var out []store.Subscription
	for sub, err := range s.Subscriptions(t.Context(), topic) {
		if err != nil {
			t.Fatalf("Subscriptions(%s): %v", topic, err)
		}
		out = append(out, sub)
	}
	return out
}

func attrS(item map[string]types.AttributeValue, name string) string {
	if v, ok := item[name].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

func attrN(item map[string]types.AttributeValue, name string) string {
	if v, ok := item[name].(*types.AttributeValueMemberN); ok {
		return v.Value
	}
	return ""
}

// sameItem compares two items by their JSON as a stream would show them.
func sameItem(a, b map[string]types.AttributeValue) bool {
	ja, _ := json.Marshal(stream.ToStreamImage(a))
	jb, _ := json.Marshal(stream.ToStreamImage(b))
	return bytes.Equal(ja, jb)
}

// TestCreateTables checks the requests that create the tables (keys, on-demand billing, the data
// table's stream, TTL on the ttl attribute of both), that a second call creates nothing, and
// which answers to UpdateTimeToLive are tolerated.
func TestCreateTables(t *testing.T) {
	srv := dynalite.Shared(t)
	sp := &spy{}
	client := dynamodb.New(dynamodb.Options{
		Region:       dynalite.Region,
		BaseEndpoint: aws.String(srv.Endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("dynalite", "dynalite", ""),
		HTTPClient:   sp,
	})
	opts := dynamo.Options{RegistryTable: dynalite.TableName("registry"), DataTable: dynalite.TableName("data")}
	t.Cleanup(func() {
		for _, name := range []string{opts.RegistryTable, opts.DataTable} {
			srv.Client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(name)})
		}
	})
	s := dynamo.New(client, opts)
	if err := s.CreateTables(t.Context()); err != nil {
		t.Fatal(err)
	}
	created := map[string]map[string]any{}
	var ttl []string
	for _, c := range sp.recorded() {
		switch c.Op {
		case "CreateTable":
			created[c.Body["TableName"].(string)] = c.Body
		case "UpdateTimeToLive":
			spec, _ := json.Marshal(c.Body)
			ttl = append(ttl, string(spec))
		case "DescribeTable":
		default:
			t.Errorf("CreateTables called %s", c.Op)
		}
	}
	var wantTTL []string
	for _, table := range []string{opts.RegistryTable, opts.DataTable} {
		wantTTL = append(wantTTL, fmt.Sprintf(`{"TableName":%q,"TimeToLiveSpecification":{"AttributeName":"ttl","Enabled":true}}`, table))
	}
	if !slices.Equal(ttl, wantTTL) {
		t.Errorf("UpdateTimeToLive requests %v, want %v", ttl, wantTTL)
	}
	for name, wantStream := range map[string]bool{opts.RegistryTable: false, opts.DataTable: true} {
		body := created[name]
		if body == nil {
			t.Fatalf("table %s not created", name)
		}
		keys, _ := json.Marshal([]any{body["KeySchema"], body["AttributeDefinitions"], body["BillingMode"]})
		const wantKeys = `[[{"AttributeName":"pk","KeyType":"HASH"},{"AttributeName":"sk","KeyType":"RANGE"}],` +
			`[{"AttributeName":"pk","AttributeType":"S"},{"AttributeName":"sk","AttributeType":"S"}],"PAY_PER_REQUEST"]`
		if string(keys) != wantKeys {
			t.Errorf("table %s: keys and billing %s, want %s", name, keys, wantKeys)
		}
		stream, _ := json.Marshal(body["StreamSpecification"])
		if got := string(stream) == `{"StreamEnabled":true,"StreamViewType":"NEW_AND_OLD_IMAGES"}`; got != wantStream {
			t.Errorf("table %s: stream %s", name, stream)
		}
		if body["GlobalSecondaryIndexes"] != nil || body["LocalSecondaryIndexes"] != nil {
			t.Errorf("table %s has indexes", name)
		}
	}
	for _, name := range []string{opts.RegistryTable, opts.DataTable} {
		desc, err := srv.Client.DescribeTable(t.Context(), &dynamodb.DescribeTableInput{TableName: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		if desc.Table.TableStatus != types.TableStatusActive {
			t.Errorf("table %s is %s after CreateTables", name, desc.Table.TableStatus)
		}
	}

	// Again: nothing to create. AWS answers "already enabled" for TTL, which is fine; any other
	// refusal is an error.
	sp.reset()
	sp.setIntercept(func(c call) *http.Response {
		if c.Op == "UpdateTimeToLive" {
			return apiError("ValidationException", "TimeToLive is already enabled")
		}
		return nil
	})
	if err := s.CreateTables(t.Context()); err != nil {
		t.Fatalf("second CreateTables: %v", err)
	}
	if slices.Contains(sp.ops(), "CreateTable") {
		t.Fatal("second CreateTables created a table")
	}
	sp.setIntercept(func(c call) *http.Response {
		if c.Op == "UpdateTimeToLive" {
			return apiError("AccessDeniedException", "not allowed")
		}
		return nil
	})
	if err := s.CreateTables(t.Context()); err == nil || !strings.Contains(err.Error(), "not allowed") {
		t.Fatalf("CreateTables with TTL refused = %v, want the refusal", err)
	}
}

// TestTableLayout checks that rows are where the deployment template and the IAM policy expect
// them: keys, the ttl attribute (epoch seconds, rounded up), and items exactly as their
// ItemType encodes them.
func TestTableLayout(t *testing.T) {
	ctx := t.Context()
	clk := storetest.NewClock()
	e := newEnv(t, dynamo.Options{Now: clk.Now})
	reg, data := e.names.RegistryTable, e.names.DataTable

	c := conn("c1", clk.Now())
	c.ExpiresAt = clk.Now().Add(90*time.Minute + 250*time.Millisecond)
	if err := e.s.CreateConnection(ctx, c); err != nil {
		t.Fatal(err)
	}
	wantTTL := fmt.Sprint(clk.Now().Add(90*time.Minute + time.Second).Unix())
	if pk, _ := connRow("c1"); pk != "conns#09" { // fnv-32a("c1") = 0x8829dfd9
		t.Fatalf("connRow(c1) = %s; the test's own shard function is wrong", pk)
	}
	row := e.getRow(t, reg, "conns#09", "conn#c1")
	if row == nil || attrN(row, "ttl") != wantTTL || attrS(row, "state") != "pending" ||
		attrS(row, "connectedAt") != "2026-11-26T12:00:00Z" || row["lastSeenAt"] != nil {
		t.Fatalf("connection row = %v, want ttl %s, state pending, connectedAt, no lastSeenAt", row, wantTTL)
	}
	// lastSeenAt is RFC 3339 in UTC like connectedAt, with every fractional digit, so that string
	// order is time order.
	if err := e.s.TouchConnection(ctx, "c1", clk.Now().Add(time.Minute).In(time.FixedZone("X", 3600))); err != nil {
		t.Fatal(err)
	}
	if row := e.getRow(t, reg, "conns#09", "conn#c1"); attrS(row, "lastSeenAt") != "2026-11-26T12:01:00.000000000Z" {
		t.Fatalf("lastSeenAt = %v, want 2026-11-26T12:01:00.000000000Z", row["lastSeenAt"])
	}
	for _, key := range [][2]string{{"conn#c1", "conn"}, {"conn#c1", "conn#c1"}} { // the old layout's row
		if row := e.getRow(t, reg, key[0], key[1]); row != nil {
			t.Fatalf("connection row also at %v", key)
		}
	}

	// Operation ids are the client's and may contain '#'.
	s := sub("c1", "a#1", "messageAdded?roomId=r1", clk.Now())
	s.ExpiresAt = c.ExpiresAt
	if err := e.s.PutSubscription(ctx, s, false); err != nil {
		t.Fatal(err)
	}
	for _, key := range [][2]string{{"conn#c1", "op#a#1"}, {"topic#messageAdded?roomId=r1", "c1#a#1"}} {
		row := e.getRow(t, reg, key[0], key[1])
		if row == nil || attrN(row, "ttl") != wantTTL || attrS(row, "topic") != s.Topic || attrS(row, "query") != s.Query {
			t.Fatalf("row %v = %v", key, row)
		}
	}
	got := collect(t, e.s, s.Topic)
	if len(got) != 1 || got[0].ID != "a#1" || got[0].ConnectionID != "c1" || !got[0].ExpiresAt.Equal(s.ExpiresAt) {
		t.Fatalf("topic lookup = %+v", got)
	}

	m := storetest.Message{ID: store.NewID(clk.Now()), RoomID: "r1", Author: "ann", Text: "hi", CreatedAt: clk.Now()}
	if err := store.NewItems[storetest.Message](e.s, storetest.MessageType).Create(ctx, &m); err != nil {
		t.Fatal(err)
	}
	want, err := storetest.MessageType.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	if row := e.getRow(t, data, "room#r1", "msg#"+m.ID); !sameItem(row, want) {
		t.Fatalf("message item = %v, want %v", stream.ToStreamImage(row), stream.ToStreamImage(want))
	}
	// Nothing of the registry went to the data table, nor the reverse.
	if row := e.getRow(t, data, "conns#09", "conn#c1"); row != nil {
		t.Fatal("connection row in the data table")
	}
	if row := e.getRow(t, reg, "room#r1", "msg#"+m.ID); row != nil {
		t.Fatal("message in the registry table")
	}
}

type change struct {
	kind     stream.ChangeKind
	old, new store.Item
}

// TestOnChange checks that OnChange reports each successful app-data write exactly once, with the
// kind and the items before and after exactly as the table holds them, and never a failed write
// or a registry write.
func TestOnChange(t *testing.T) {
	ctx := t.Context()
	clk := storetest.NewClock()
	var mu sync.Mutex
	var changes []change
	e := newEnv(t, dynamo.Options{Now: clk.Now, OnChange: func(kind stream.ChangeKind, old, new store.Item) {
		mu.Lock()
		defer mu.Unlock()
		changes = append(changes, change{kind, old, new})
	}})
	took := func() []change {
		mu.Lock()
		defer mu.Unlock()
		out := changes
		changes = nil
		return out
	}
	// tableHolds checks that it is exactly the item the data table holds (nil: no item).
	tableHolds := func(it store.Item, pk, sk string) {
		t.Helper()
		row := e.getRow(t, e.names.DataTable, pk, sk)
		if it == nil {
			if row != nil {
				t.Fatalf("table holds %v, want no item", row)
			}
			return
		}
		if !sameItem(row, it) {
			t.Fatalf("table holds %v, reported %v", stream.ToStreamImage(row), stream.ToStreamImage(it))
		}
	}
	item := func(text string) store.Item {
		return store.Item{"pk": &types.AttributeValueMemberS{Value: "p"}, "sk": &types.AttributeValueMemberS{Value: "s"},
			"__typename": &types.AttributeValueMemberS{Value: "Thing"}, "text": &types.AttributeValueMemberS{Value: text},
			"n": &types.AttributeValueMemberN{Value: "1.50e1"}}
	}

	if err := e.s.CreateItem(ctx, item("hi")); err != nil {
		t.Fatal(err)
	}
	ch := took()
	if len(ch) != 1 || ch[0].kind != stream.Insert || ch[0].old != nil || attrN(ch[0].new, "n") != "15" {
		t.Fatalf("after CreateItem: %+v, want one INSERT of the item as DynamoDB stores it", ch)
	}
	tableHolds(ch[0].new, "p", "s")

	// Failed writes report nothing.
	if err := e.s.CreateItem(ctx, item("again")); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("CreateItem twice = %v", err)
	}
	if _, err := e.s.ReplaceItem(ctx, store.Item{"pk": &types.AttributeValueMemberS{Value: "p"}, "sk": &types.AttributeValueMemberS{Value: "nope"}}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ReplaceItem(absent) = %v", err)
	}
	if _, err := e.s.DeleteItem(ctx, "p", "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("DeleteItem(absent) = %v", err)
	}
	e.spy.setIntercept(func(c call) *http.Response {
		if c.Op == "PutItem" || c.Op == "DeleteItem" {
			return apiError("ValidationException", "injected")
		}
		return nil
	})
	other := item("x")
	other["sk"] = &types.AttributeValueMemberS{Value: "s2"}
	if err := e.s.CreateItem(ctx, other); err == nil {
		t.Fatal("CreateItem with the write refused succeeded")
	}
	if _, err := e.s.ReplaceItem(ctx, item("x")); err == nil {
		t.Fatal("ReplaceItem with the write refused succeeded")
	}
	if _, err := e.s.DeleteItem(ctx, "p", "s"); err == nil {
		t.Fatal("DeleteItem with the write refused succeeded")
	}
	e.spy.setIntercept(nil)

	// Registry writes report nothing.
	if err := e.s.CreateConnection(ctx, conn("c1", clk.Now())); err != nil {
		t.Fatal(err)
	}
	if err := e.s.AcknowledgeConnection(ctx, "c1", store.Ack{Principal: json.RawMessage(`{"sub":"ann"}`), At: clk.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := e.s.PutSubscription(ctx, sub("c1", "1", "messageAdded?roomId=r1", clk.Now()), false); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.DeleteSubscription(ctx, "c1", "1"); err != nil {
		t.Fatal(err)
	}
	if err := e.s.DeleteConnection(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if ch := took(); len(ch) != 0 {
		t.Fatalf("failed and registry writes reported %+v", ch)
	}

	before := e.getRow(t, e.names.DataTable, "p", "s")
	old, err := e.s.ReplaceItem(ctx, item("hello"))
	if err != nil || !sameItem(old, before) {
		t.Fatalf("ReplaceItem = %v, %v; want the old item", old, err)
	}
	ch = took()
	if len(ch) != 1 || ch[0].kind != stream.Modify || !sameItem(ch[0].old, before) || attrS(ch[0].new, "text") != "hello" {
		t.Fatalf("after ReplaceItem: %+v, want one MODIFY", ch)
	}
	tableHolds(ch[0].new, "p", "s")

	before = e.getRow(t, e.names.DataTable, "p", "s")
	if _, err := e.s.DeleteItem(ctx, "p", "s"); err != nil {
		t.Fatal(err)
	}
	ch = took()
	if len(ch) != 1 || ch[0].kind != stream.Remove || ch[0].new != nil || !sameItem(ch[0].old, before) {
		t.Fatalf("after DeleteItem: %+v, want one REMOVE of the item", ch)
	}
	tableHolds(nil, "p", "s")
	if _, err := e.s.DeleteItem(ctx, "p", "s"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("DeleteItem twice = %v", err)
	}
	if ch := took(); len(ch) != 0 {
		t.Fatalf("failed delete reported %+v", ch)
	}
}

// TestTopicPages checks that a topic lookup reads exactly its topic, page by page: strongly
// consistent Queries of PageSize rows each, continued from the last key, with expired rows (which
// DynamoDB may hold for hours) left out; and that stopping early stops reading.
func TestTopicPages(t *testing.T) {
	ctx := t.Context()
	clk := storetest.NewClock()
	const pageSize = 5
	e := newEnv(t, dynamo.Options{Now: clk.Now, PageSize: pageSize})
	const topic = "messageAdded?roomId=r1"
	live := map[string]bool{}
	for i := range 17 {
		s := sub(fmt.Sprintf("c%02d", i), "1", topic, clk.Now())
		if i%4 == 1 { // 5 of the 17 expire, spread over the pages
			s.ExpiresAt = clk.Now().Add(time.Minute)
		} else {
			live[s.ConnectionID] = true
		}
		if err := e.s.PutSubscription(ctx, s, false); err != nil {
			t.Fatal(err)
		}
	}
	for _, other := range []string{"messageAdded?roomId=r", "messageAdded?roomId=r10", "messageEdited?roomId=r1"} {
		if err := e.s.PutSubscription(ctx, sub("other", other, other, clk.Now()), false); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(2 * time.Minute)

	e.spy.reset()
	got := collect(t, e.s, topic)
	seen := map[string]bool{}
	for _, g := range got {
		if g.Topic != topic || !live[g.ConnectionID] || seen[g.ConnectionID] {
			t.Fatalf("lookup returned %s/%s of topic %q (live %v, seen %v)", g.ConnectionID, g.ID, g.Topic, live[g.ConnectionID], seen[g.ConnectionID])
		}
		seen[g.ConnectionID] = true
	}
	if len(got) != len(live) {
		t.Fatalf("lookup returned %d subscriptions, want %d", len(got), len(live))
	}
	calls := e.spy.recorded()
	if len(calls) != 4 { // 17 rows in pages of 5: 5, 5, 5, 2
		t.Fatalf("lookup made %d requests, want 4: %v", len(calls), e.spy.ops())
	}
	for i, c := range calls {
		body, _ := json.Marshal(map[string]any{"Op": c.Op, "TableName": c.Body["TableName"], "Limit": c.Body["Limit"],
			"ConsistentRead": c.Body["ConsistentRead"], "KeyConditions": c.Body["KeyConditions"]})
		want := fmt.Sprintf(`{"ConsistentRead":true,"KeyConditions":{"pk":{"AttributeValueList":[{"S":"topic#%s"}],"ComparisonOperator":"EQ"}},"Limit":%d,"Op":"Query","TableName":%q}`,
			topic, pageSize, e.names.RegistryTable)
		if string(body) != want {
			t.Fatalf("request %d = %s\nwant %s", i, body, want)
		}
		if _, cont := c.Body["ExclusiveStartKey"]; cont != (i > 0) {
			t.Fatalf("request %d: ExclusiveStartKey %v", i, c.Body["ExclusiveStartKey"])
		}
	}

	// Stopping within the first page reads one page.
	e.spy.reset()
	for _, err := range e.s.Subscriptions(ctx, topic) {
		if err != nil {
			t.Fatal(err)
		}
		break
	}
	if n := len(e.spy.recorded()); n != 1 {
		t.Fatalf("stopping after one subscription made %d requests, want 1", n)
	}

	// A request that fails ends the lookup with its error.
	e.spy.setIntercept(func(c call) *http.Response { return apiError("ValidationException", "injected") })
	var gotErr error
	for _, err := range e.s.Subscriptions(ctx, topic) {
		gotErr = err
	}
	if gotErr == nil || !strings.Contains(gotErr.Error(), "injected") {
		t.Fatalf("lookup with a failing request = %v", gotErr)
	}
}

// TestExpiry checks that expired rows, which DynamoDB deletes lazily, are absent to every read and
// to every conditional write, at the same instant: expiry is the ttl second (ExpiresAt rounded up).
func TestExpiry(t *testing.T) {
	ctx := t.Context()
	clk := storetest.NewClock() // a whole second
	e := newEnv(t, dynamo.Options{Now: clk.Now})
	reg := e.names.RegistryTable
	const topic = "messageAdded?roomId=r1"
	expires := clk.Now().Add(time.Minute + 250*time.Millisecond) // ttl: clock + 61s

	c := conn("c1", clk.Now())
	c.ExpiresAt = expires
	if err := e.s.CreateConnection(ctx, c); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"1", "2"} {
		s := sub("c1", id, topic, clk.Now())
		s.ExpiresAt = expires
		if err := e.s.PutSubscription(ctx, s, false); err != nil {
			t.Fatal(err)
		}
	}

	// Just before the ttl second: live to reads and to writes.
	clk.Advance(time.Minute + 999*time.Millisecond)
	if _, err := e.s.Connection(ctx, "c1"); err != nil {
		t.Fatalf("Connection before its ttl: %v", err)
	}
	if err := e.s.CreateConnection(ctx, conn("c1", clk.Now())); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("CreateConnection over a live one = %v, want ErrConflict", err)
	}
	if n := len(collect(t, e.s, topic)); n != 2 {
		t.Fatalf("topic lookup before the ttl = %d, want 2", n)
	}

	// At the ttl second: the rows are still in the table, but no read sees them.
	clk.Advance(time.Millisecond)
	connPK, connSK := connRow("c1")
	for _, key := range [][2]string{{connPK, connSK}, {"conn#c1", "op#1"}, {"topic#" + topic, "c1#1"}} {
		if e.getRow(t, reg, key[0], key[1]) == nil {
			t.Fatalf("row %v gone; this test needs the expired rows in place (dynalite has no TTL)", key)
		}
	}
	if _, err := e.s.Connection(ctx, "c1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired Connection = %v, want ErrNotFound", err)
	}
	if err := e.s.AcknowledgeConnection(ctx, "c1", store.Ack{At: clk.Now()}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ack of an expired connection = %v, want ErrNotFound", err)
	}
	if err := e.s.TouchConnection(ctx, "c1", clk.Now()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("touch of an expired connection = %v, want ErrNotFound", err)
	}
	if row := e.getRow(t, reg, connPK, connSK); row["lastSeenAt"] != nil {
		t.Fatalf("a touch of an expired connection wrote %v", row["lastSeenAt"])
	}
	// The listing still shows it: the sweeper removes expired connections.
	listed := 0
	for c, err := range e.s.Connections(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		if c.ID != "c1" || !c.ExpiresAt.Equal(expires) {
			t.Fatalf("listed %+v", c)
		}
		listed++
	}
	if listed != 1 {
		t.Fatalf("listing shows %d connections, want the expired one", listed)
	}
	if got := collect(t, e.s, topic); len(got) != 0 {
		t.Fatalf("topic lookup returned expired %+v", got)
	}
	if ops := e.liveOps(t, "c1", clk.Now()); len(ops) != 0 {
		t.Fatalf("live operation rows %v; want none", ops)
	}
	// Completing an expired operation reports it inactive, and removes its rows.
	if active, err := e.s.DeleteSubscription(ctx, "c1", "1"); err != nil || active {
		t.Fatalf("DeleteSubscription(expired) = %v, %v; want false, nil", active, err)
	}
	if e.getRow(t, reg, "conn#c1", "op#1") != nil || e.getRow(t, reg, "topic#"+topic, "c1#1") != nil {
		t.Fatal("rows of a completed expired operation remain")
	}
	// Writes treat expired rows as absent: the id is claimed again, here for another topic, and
	// the expired topic row it had is removed rather than left for TTL.
	if err := e.s.PutSubscription(ctx, sub("c1", "2", "messageEdited?roomId=r1", clk.Now()), false); err != nil {
		t.Fatalf("claiming an expired id: %v", err)
	}
	if e.getRow(t, reg, "topic#"+topic, "c1#2") != nil {
		t.Fatal("the expired topic row of a reclaimed id remains")
	}
	if got := collect(t, e.s, "messageEdited?roomId=r1"); len(got) != 1 || got[0].ID != "2" {
		t.Fatalf("new topic after reclaim = %+v", got)
	}
	if err := e.s.CreateConnection(ctx, conn("c1", clk.Now())); err != nil {
		t.Fatalf("CreateConnection over an expired one: %v", err)
	}
	if got, err := e.s.Connection(ctx, "c1"); err != nil || got.State != store.StatePending || !got.ExpiresAt.Equal(clk.Now().Add(2*time.Hour)) {
		t.Fatalf("recreated connection = %+v, %v", got, err)
	}
}

// failPuts makes every PutItem of a registry row whose pk starts with prefix fail.
func failPuts(table, prefix string) func(c call) *http.Response {
	return func(c call) *http.Response {
		if c.Op != "PutItem" || c.Body["TableName"] != table {
			return nil
		}
		pk, _ := c.Body["Item"].(map[string]any)["pk"].(map[string]any)["S"].(string)
		if strings.HasPrefix(pk, prefix) {
			return apiError("ValidationException", "injected")
		}
		return nil
	}
}

// TestSubscribeWithdrawsClaim checks that when the topic row cannot be written, the operation id
// claimed a moment before is released, so the client may subscribe again.
func TestSubscribeWithdrawsClaim(t *testing.T) {
	ctx := t.Context()
	clk := storetest.NewClock()
	e := newEnv(t, dynamo.Options{Now: clk.Now})
	const topic = "messageAdded?roomId=r1"
	e.spy.setIntercept(failPuts(e.names.RegistryTable, "topic#"))
	err := e.s.PutSubscription(ctx, sub("c1", "1", topic, clk.Now()), false)
	if err == nil || errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "injected") {
		t.Fatalf("PutSubscription with the topic row refused = %v", err)
	}
	if e.getRow(t, e.names.RegistryTable, "conn#c1", "op#1") != nil {
		t.Fatal("operation row left behind")
	}
	if ops := e.liveOps(t, "c1", clk.Now()); len(ops) != 0 {
		t.Fatalf("operation rows %v; want none", ops)
	}
	e.spy.setIntercept(nil)
	if err := e.s.PutSubscription(ctx, sub("c1", "1", topic, clk.Now()), false); err != nil {
		t.Fatalf("subscribing again: %v", err)
	}
	if got := collect(t, e.s, topic); len(got) != 1 {
		t.Fatalf("topic has %d subscriptions, want 1", len(got))
	}
}

// TestSubscribeWithdrawsLandedTopicRow has DynamoDB apply the topic row's put but answer 500, so
// the store cannot know whether it landed: it must withdraw both rows.
func TestSubscribeWithdrawsLandedTopicRow(t *testing.T) {
	ctx := t.Context()
	clk := storetest.NewClock()
	e := newEnv(t, dynamo.Options{Now: clk.Now})
	const topic = "messageAdded?roomId=r1"
	refuse := failPuts(e.names.RegistryTable, "topic#")
	e.spy.setIntercept(func(c call) *http.Response {
		if refuse(c) == nil {
			return nil
		}
		resp, err := http.DefaultClient.Do(c.req)
		if err != nil {
			t.Error(err)
			return nil
		}
		resp.Body.Close()
		return apiErrorStatus(http.StatusInternalServerError, "InternalServerError", "injected after the write")
	})
	err := e.s.PutSubscription(ctx, sub("c1", "1", topic, clk.Now()), false)
	if err == nil || !strings.Contains(err.Error(), "injected after the write") {
		t.Fatalf("PutSubscription with the topic row's answer lost = %v", err)
	}
	if e.getRow(t, e.names.RegistryTable, "topic#"+topic, "c1#1") != nil {
		t.Fatal("topic row that landed was left behind")
	}
	if e.getRow(t, e.names.RegistryTable, "conn#c1", "op#1") != nil {
		t.Fatal("operation row left behind")
	}
	if got := collect(t, e.s, topic); len(got) != 0 {
		t.Fatalf("topic lookup = %+v, want none", got)
	}
}

// TestReplaceRemovesOldTopicFirst checks legacy start on a running id: the old topic row goes
// before anything is written, so a replace interrupted after that leaves no subscription in the
// old topic, and the new one is found only in the new topic once the replace succeeds.
func TestReplaceRemovesOldTopicFirst(t *testing.T) {
	ctx := t.Context()
	clk := storetest.NewClock()
	e := newEnv(t, dynamo.Options{Now: clk.Now})
	if err := e.s.PutSubscription(ctx, sub("c1", "1", "old", clk.Now()), false); err != nil {
		t.Fatal(err)
	}
	e.spy.setIntercept(failPuts(e.names.RegistryTable, "conn#"))
	if err := e.s.PutSubscription(ctx, sub("c1", "1", "new", clk.Now()), true); err == nil {
		t.Fatal("replace with the operation row refused succeeded")
	}
	if got := collect(t, e.s, "old"); len(got) != 0 {
		t.Fatalf("interrupted replace left %d subscriptions in the old topic", len(got))
	}
	e.spy.setIntercept(nil)
	if err := e.s.PutSubscription(ctx, sub("c1", "1", "new", clk.Now()), true); err != nil {
		t.Fatal(err)
	}
	if len(collect(t, e.s, "old")) != 0 || len(collect(t, e.s, "new")) != 1 {
		t.Fatal("after replace, the subscription is not exactly in the new topic")
	}
	if ops := e.liveOps(t, "c1", clk.Now()); len(ops) != 1 || fmt.Sprint(ops[0]["topic"]) != fmt.Sprint(&types.AttributeValueMemberS{Value: "new"}) {
		t.Fatalf("operation rows %v; want one, in topic new", ops)
	}
	// Replacing with the same topic rewrites its row in place.
	if err := e.s.PutSubscription(ctx, sub("c1", "1", "new", clk.Now()), true); err != nil {
		t.Fatal(err)
	}
	if got := collect(t, e.s, "new"); len(got) != 1 {
		t.Fatalf("same-topic replace: %d rows, want 1", len(got))
	}
}

// TestDeleteSubscriptionOnce races completions of one id: exactly one reports it active.
func TestDeleteSubscriptionOnce(t *testing.T) {
	ctx := t.Context()
	clk := storetest.NewClock()
	e := newEnv(t, dynamo.Options{Now: clk.Now})
	if err := e.s.PutSubscription(ctx, sub("c1", "1", "t", clk.Now()), false); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	active := 0
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			ok, err := e.s.DeleteSubscription(ctx, "c1", "1")
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				active++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if active != 1 {
		t.Fatalf("%d completions saw the operation active, want 1", active)
	}
	if len(collect(t, e.s, "t")) != 0 {
		t.Fatal("topic row remains")
	}
}

// batchKeys returns the pk of each delete in a BatchWriteItem request.
func batchKeys(c call) []string {
	var pks []string
	for _, reqs := range c.Body["RequestItems"].(map[string]any) {
		for _, r := range reqs.([]any) {
			del, _ := r.(map[string]any)["DeleteRequest"].(map[string]any)
			if del == nil {
				pks = append(pks, "(not a delete)")
				continue
			}
			pks = append(pks, del["Key"].(map[string]any)["pk"].(map[string]any)["S"].(string))
		}
	}
	return pks
}

// TestDeleteConnectionOrder checks the order of a cascade (the connection row, then topic rows,
// then operation rows) and that a cascade interrupted after the topic rows leaves the connection
// unreachable by the fan-out and is finished by the next call.
func TestDeleteConnectionOrder(t *testing.T) {
	ctx := t.Context()
	clk := storetest.NewClock()
	e := newEnv(t, dynamo.Options{Now: clk.Now})
	if err := e.s.CreateConnection(ctx, conn("c1", clk.Now())); err != nil {
		t.Fatal(err)
	}
	topics := []string{"messageAdded?roomId=r0", "messageAdded?roomId=r1", "messageAdded?roomId=r2"}
	for i := range 30 {
		if err := e.s.PutSubscription(ctx, sub("c1", fmt.Sprint(i), topics[i%3], clk.Now()), false); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"q1", "q2"} { // operations without a topic
		if err := e.s.PutSubscription(ctx, sub("c1", id, "", clk.Now()), false); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.s.PutSubscription(ctx, sub("c2", "1", topics[0], clk.Now()), false); err != nil {
		t.Fatal(err)
	}

	// Interrupt after the topic rows: the first batch of operation rows fails.
	e.spy.setIntercept(func(c call) *http.Response {
		if c.Op == "BatchWriteItem" && strings.HasPrefix(batchKeys(c)[0], "conn#") {
			return apiError("ValidationException", "injected")
		}
		return nil
	})
	if err := e.s.DeleteConnection(ctx, "c1"); err == nil || !strings.Contains(err.Error(), "injected") {
		t.Fatalf("interrupted DeleteConnection = %v", err)
	}
	for _, topic := range topics {
		for _, g := range collect(t, e.s, topic) {
			if g.ConnectionID == "c1" {
				t.Fatalf("after an interrupted delete, %s still has c1's subscription %s", topic, g.ID)
			}
		}
	}
	if ops := e.liveOps(t, "c1", clk.Now()); len(ops) != 32 {
		t.Fatalf("interrupted delete removed operation rows: %d left", len(ops))
	}
	// The connection row went first, so an overlapping subscribe sees the connection gone.
	if _, err := e.s.Connection(ctx, "c1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after an interrupted delete, Connection = %v, want ErrNotFound", err)
	}

	e.spy.setIntercept(nil)
	e.spy.reset()
	if err := e.s.DeleteConnection(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.Connection(ctx, "c1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Connection after delete = %v", err)
	}
	if ops := e.liveOps(t, "c1", clk.Now()); len(ops) != 0 {
		t.Fatalf("operations after delete: %d", len(ops))
	}
	if got := collect(t, e.s, topics[0]); len(got) != 1 || got[0].ConnectionID != "c2" {
		t.Fatalf("another connection's subscription: %+v", got)
	}
	// The second run deletes the connection row and the topic rows again (deleting an absent row
	// is no error): the operation rows still name them, and it cannot know the first run got that
	// far.
	want := slices.Concat([]string{"conn row"}, slices.Repeat([]string{"topic#"}, 30), slices.Repeat([]string{"conn#"}, 32))
	if order := deleteOrder(e.spy.recorded()); !slices.Equal(order, want) {
		t.Fatalf("second delete wrote %v", order)
	}
}

// deleteOrder lists the rows deletes removed, in order, by the prefix of their pk; the connection
// row (in a shard partition, "conns#") as "conn row".
func deleteOrder(calls []call) []string {
	var order []string
	for _, c := range calls {
		switch c.Op {
		case "BatchWriteItem":
			for _, pk := range batchKeys(c) {
				order = append(order, strings.SplitAfter(pk, "#")[0])
			}
		case "DeleteItem":
			if pk, _ := c.Body["Key"].(map[string]any)["pk"].(map[string]any)["S"].(string); strings.HasPrefix(pk, "conns#") {
				order = append(order, "conn row")
			} else {
				order = append(order, "other row")
			}
		}
	}
	return order
}

// TestDeleteConnectionRetriesUnprocessed answers the first BatchWriteItem with every item
// unprocessed, as DynamoDB does under throttling; the delete must resubmit them.
func TestDeleteConnectionRetriesUnprocessed(t *testing.T) {
	ctx := t.Context()
	clk := storetest.NewClock()
	e := newEnv(t, dynamo.Options{Now: clk.Now})
	if err := e.s.CreateConnection(ctx, conn("c1", clk.Now())); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := e.s.PutSubscription(ctx, sub("c1", fmt.Sprint(i), "t", clk.Now()), false); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	refused := 0
	e.spy.setIntercept(func(c call) *http.Response {
		mu.Lock()
		defer mu.Unlock()
		if c.Op != "BatchWriteItem" || refused > 0 {
			return nil
		}
		refused++
		body, _ := json.Marshal(map[string]any{"UnprocessedItems": c.Body["RequestItems"]})
		return okResponse(string(body))
	})
	if err := e.s.DeleteConnection(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if refused != 1 {
		t.Fatalf("%d batches refused, want 1", refused)
	}
	if got := collect(t, e.s, "t"); len(got) != 0 {
		t.Fatalf("%d topic rows left after unprocessed items", len(got))
	}
	if ops := e.liveOps(t, "c1", clk.Now()); len(ops) != 0 {
		t.Fatalf("%d operation rows left", len(ops))
	}
}

// queryKey describes a Query's key conditions, e.g. `pk EQ conns#03, sk BEGINS_WITH conn#`.
func queryKey(c call) string {
	var parts []string
	for _, attr := range []string{"pk", "sk"} {
		cond, _ := c.Body["KeyConditions"].(map[string]any)[attr].(map[string]any)
		if cond == nil {
			continue
		}
		v, _ := cond["AttributeValueList"].([]any)[0].(map[string]any)["S"].(string)
		parts = append(parts, fmt.Sprintf("%s %s %s", attr, cond["ComparisonOperator"], v))
	}
	return strings.Join(parts, ", ")
}

// TestListConnectionPages checks where connection rows are (spread over the 16 shard
// partitions) and how they are listed: the partitions in order, one Query per page of PageSize
// (eventually consistent, continued from the last key), nothing else; expired connections
// included; and that stopping early stops reading and a failed request ends the listing.
func TestListConnectionPages(t *testing.T) {
	ctx := t.Context()
	clk := storetest.NewClock()
	const pageSize = 3
	e := newEnv(t, dynamo.Options{Now: clk.Now, PageSize: pageSize})
	reg := e.names.RegistryTable

	want := map[string]store.Connection{}
	perShard := map[string]int{}
	for i := range 45 {
		c := conn(fmt.Sprintf("conn-%02d", i), clk.Now())
		if i%5 == 0 {
			c.ExpiresAt = clk.Now().Add(time.Minute)
		}
		if err := e.s.CreateConnection(ctx, c); err != nil {
			t.Fatal(err)
		}
		pk, sk := connRow(c.ID)
		if row := e.getRow(t, reg, pk, sk); attrS(row, "id") != c.ID {
			t.Fatalf("connection %s not at %s/%s: %v", c.ID, pk, sk, row)
		}
		want[c.ID] = c
		perShard[pk]++
	}
	if len(perShard) != 16 {
		t.Fatalf("45 connections in %d shards, want all 16: %v", len(perShard), perShard)
	}
	// Empty one shard: deleting a connection removes its row from its shard.
	for id := range want {
		if pk, _ := connRow(id); pk == "conns#08" {
			if err := e.s.DeleteConnection(ctx, id); err != nil {
				t.Fatal(err)
			}
			delete(want, id)
			perShard[pk]--
		}
	}
	seen := clk.Now().Add(30 * time.Second)
	if err := e.s.AcknowledgeConnection(ctx, "conn-07", store.Ack{Principal: json.RawMessage(`{"sub":"ann"}`), At: clk.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := e.s.TouchConnection(ctx, "conn-07", seen); err != nil {
		t.Fatal(err)
	}
	if err := e.s.PutSubscription(ctx, sub("conn-01", "1", "t", clk.Now()), false); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Minute) // conn-00, conn-05, … expire

	e.spy.reset()
	got := map[string]store.Connection{}
	lastShard := ""
	for c, err := range e.s.Connections(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		if _, dup := got[c.ID]; dup {
			t.Fatalf("%s listed twice", c.ID)
		}
		pk, _ := connRow(c.ID)
		if pk < lastShard {
			t.Fatalf("%s (in %s) listed after a connection of %s", c.ID, pk, lastShard)
		}
		lastShard = pk
		got[c.ID] = c
	}
	if len(got) != len(want) {
		t.Fatalf("listed %d connections, want %d", len(got), len(want))
	}
	for id, w := range want {
		g := got[id]
		if g.ID != id || (g.State != w.State && id != "conn-07") || !g.ConnectedAt.Equal(w.ConnectedAt) || !g.ExpiresAt.Equal(w.ExpiresAt) {
			t.Fatalf("listed %+v, want %+v", g, w)
		}
	}
	if g := got["conn-07"]; g.State != store.StateReady || string(g.Principal) != `{"sub":"ann"}` || !g.LastSeenAt.Equal(seen) {
		t.Fatalf("listed conn-07 as %+v", g)
	}

	// The requests: for each shard in order, pages of pageSize until one comes back short (a
	// shard of exactly k pages takes a k+1st, empty one: DynamoDB returns a last key whenever it
	// stops at Limit). Never a consistent read, never anything but Query.
	var wantReqs []string
	for shard := range 16 {
		pk := fmt.Sprintf("conns#%02d", shard)
		for page := range perShard[pk]/pageSize + 1 {
			wantReqs = append(wantReqs, fmt.Sprintf("Query %s Limit=%d start=%v", pk, pageSize, page > 0))
		}
	}
	calls := e.spy.recorded()
	var gotReqs []string
	for _, c := range calls {
		if c.Op != "Query" || c.Body["TableName"] != reg || c.Body["ConsistentRead"] == true {
			t.Fatalf("listing made %s %v", c.Op, c.Body)
		}
		pk := strings.TrimPrefix(strings.Split(queryKey(c), ", ")[0], "pk EQ ")
		if k := queryKey(c); k != "pk EQ "+pk+", sk BEGINS_WITH conn#" {
			t.Fatalf("listing queried %s", k)
		}
		_, start := c.Body["ExclusiveStartKey"]
		gotReqs = append(gotReqs, fmt.Sprintf("%s %s Limit=%v start=%v", c.Op, pk, c.Body["Limit"], start))
	}
	if !slices.Equal(gotReqs, wantReqs) {
		t.Fatalf("listing requests:\n%s\nwant:\n%s", strings.Join(gotReqs, "\n"), strings.Join(wantReqs, "\n"))
	}

	// Stopping early stops reading: one connection, one request.
	e.spy.reset()
	for _, err := range e.s.Connections(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		break
	}
	if n := len(e.spy.recorded()); n != 1 {
		t.Fatalf("stopping after one connection made %d requests, want 1", n)
	}

	// A failed request ends the listing with its error, after the shards before it.
	e.spy.reset()
	e.spy.setIntercept(func(c call) *http.Response {
		if strings.HasPrefix(queryKey(c), "pk EQ conns#05,") {
			return apiError("ValidationException", "injected")
		}
		return nil
	})
	var listed, errs int
	var gotErr error
	for c, err := range e.s.Connections(ctx) {
		if err != nil {
			gotErr = err
			errs++
			continue
		}
		if errs > 0 {
			t.Fatalf("listed %s after the error", c.ID)
		}
		if pk, _ := connRow(c.ID); pk >= "conns#05" {
			t.Fatalf("listed %s of %s", c.ID, pk)
		}
		listed++
	}
	if errs != 1 || gotErr == nil || !strings.Contains(gotErr.Error(), "injected") {
		t.Fatalf("listing with a failing request: %d errors, last %v", errs, gotErr)
	}
	wantListed := 0
	for shard := range 5 {
		wantListed += perShard[fmt.Sprintf("conns#%02d", shard)]
	}
	if listed != wantListed {
		t.Fatalf("listed %d connections before the failing shard, want %d", listed, wantListed)
	}
	if last := e.spy.recorded(); !strings.HasPrefix(queryKey(last[len(last)-1]), "pk EQ conns#05,") {
		t.Fatalf("requests went on after the failure: %s", queryKey(last[len(last)-1]))
	}
	e.spy.setIntercept(nil)

	// A cancelled context ends it before any request.
	e.spy.reset()
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	gotErr = nil
	for _, err := range e.s.Connections(cctx) {
		gotErr = err
	}
	if !errors.Is(gotErr, context.Canceled) || len(e.spy.recorded()) != 0 {
		t.Fatalf("listing with a cancelled context = %v after %d requests", gotErr, len(e.spy.recorded()))
	}
}

// TestTouchConnection checks that a touch is one conditional UpdateItem of the connection row,
// followed by one consistent read only when the condition fails (absent, expired, or not later);
// that it never creates a row nor changes anything but lastSeenAt; and that "later" is time
// order to the nanosecond, including within one second (where RFC 3339 text with trailing
// zeros dropped does not sort as time), and under racing touches.
func TestTouchConnection(t *testing.T) {
	ctx := t.Context()
	clk := storetest.NewClock()
	e := newEnv(t, dynamo.Options{Now: clk.Now})
	reg := e.names.RegistryTable
	pk, sk := connRow("c1")
	ops := func() []string {
		var out []string
		for _, c := range e.spy.recorded() {
			out = append(out, c.Op)
		}
		e.spy.reset()
		return out
	}

	if err := e.s.TouchConnection(ctx, "c1", clk.Now()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("touch of an absent connection = %v, want ErrNotFound", err)
	}
	if got := ops(); !slices.Equal(got, []string{"UpdateItem", "GetItem"}) {
		t.Fatalf("touch of an absent connection made %v", got)
	}
	if e.getRow(t, reg, pk, sk) != nil {
		t.Fatal("a touch created a row")
	}

	if err := e.s.CreateConnection(ctx, conn("c1", clk.Now())); err != nil {
		t.Fatal(err)
	}
	if err := e.s.AcknowledgeConnection(ctx, "c1", store.Ack{Principal: json.RawMessage(`{"sub":"ann"}`), At: clk.Now()}); err != nil {
		t.Fatal(err)
	}
	before := e.getRow(t, reg, pk, sk)
	e.spy.reset()
	base := clk.Now().Add(time.Minute)
	if err := e.s.TouchConnection(ctx, "c1", base); err != nil {
		t.Fatal(err)
	}
	calls := e.spy.recorded()
	if got := ops(); !slices.Equal(got, []string{"UpdateItem"}) {
		t.Fatalf("a touch made %v, want one UpdateItem", got)
	}
	key, _ := json.Marshal(calls[0].Body["Key"])
	if want := fmt.Sprintf(`{"pk":{"S":%q},"sk":{"S":%q}}`, pk, sk); string(key) != want {
		t.Fatalf("touch updated %s, want %s", key, want)
	}
	if calls[0].Body["ConditionExpression"] == nil {
		t.Fatal("touch without a condition")
	}
	after := e.getRow(t, reg, pk, sk)
	delete(after, "lastSeenAt")
	if !sameItem(before, after) {
		t.Fatalf("touch changed more than lastSeenAt:\n%v\n%v", stream.ToStreamImage(before), stream.ToStreamImage(after))
	}

	// Each step: touch at base+d; then LastSeenAt must be base+want, and the requests as given.
	update, updateRead := []string{"UpdateItem"}, []string{"UpdateItem", "GetItem"}
	for _, step := range []struct {
		d, want time.Duration
		ops     []string
	}{
		{0, 0, updateRead},            // the same time: no-op
		{-time.Second, 0, updateRead}, // older: no-op
		{500 * time.Millisecond, 500 * time.Millisecond, update},
		{550 * time.Millisecond, 550 * time.Millisecond, update},     // ".55Z" < ".5Z" as trimmed text
		{500 * time.Millisecond, 550 * time.Millisecond, updateRead}, // ".5Z" > ".55Z" as trimmed text
		{time.Second, time.Second, update},
		{1900 * time.Millisecond, 1900 * time.Millisecond, update}, // ".9Z" < "Z" as trimmed text
		{time.Second, 1900 * time.Millisecond, updateRead},         // "Z" > ".9Z" as trimmed text
		{1900*time.Millisecond + 1, 1900*time.Millisecond + 1, update},
		{1900 * time.Millisecond, 1900*time.Millisecond + 1, updateRead},
	} {
		if err := e.s.TouchConnection(ctx, "c1", base.Add(step.d)); err != nil {
			t.Fatalf("touch at +%v: %v", step.d, err)
		}
		if got := ops(); !slices.Equal(got, step.ops) {
			t.Fatalf("touch at +%v made %v, want %v", step.d, got, step.ops)
		}
		got, err := e.s.Connection(ctx, "c1")
		if err != nil {
			t.Fatal(err)
		}
		if !got.LastSeenAt.Equal(base.Add(step.want)) || got.State != store.StateReady || string(got.Principal) != `{"sub":"ann"}` {
			t.Fatalf("after a touch at +%v: LastSeenAt %v, want +%v (%+v)", step.d, got.LastSeenAt.Sub(base), step.want, got)
		}
		e.spy.reset()
	}

	// Racing touches leave the latest.
	latest := base.Add(time.Hour)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			if err := e.s.TouchConnection(ctx, "c1", latest.Add(-time.Duration((i*7)%16)*time.Millisecond)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got, err := e.s.Connection(ctx, "c1"); err != nil || !got.LastSeenAt.Equal(latest) {
		t.Fatalf("after racing touches: LastSeenAt %v, %v; want %v", got.LastSeenAt, err, latest)
	}
}
