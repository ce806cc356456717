package dynamo

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/guregu/dynamo/v2"
)

// TestTopicRowDecodes: a topic row decodes itself exactly as the library decodes a subItem, for
// every field of a row, and refuses an attribute of the wrong type.
func TestTopicRowDecodes(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC)
	full := subItem{PK: "topic#messageAdded?roomId=r1", SK: "c1#op", TTL: 1900000000, ConnectionID: "c1", ID: "op",
		Topic: "messageAdded?roomId=r1", Subprotocol: "graphql-ws", Query: `subscription { messageAdded(roomId: "r1") { id } }`,
		OperationName: "OnMessage", Variables: `{"a":1}`, Principal: `{"sub":"u1"}`, Filter: `{"author":{"eq":"ann"}}`,
		CreatedAt: at, ExpiresAt: at.Add(2 * time.Hour)}
	for f := range reflect.TypeFor[subItem]().Fields() {
		if reflect.ValueOf(full).FieldByIndex(f.Index).IsZero() {
			t.Fatalf("the test's row leaves %s empty: set it", f.Name)
		}
	}
	sparse := subItem{PK: full.PK, SK: full.SK, ConnectionID: "c2", ID: "1", Query: "subscription { x }"}
	for name, in := range map[string]subItem{"full": full, "sparse": sparse} {
		item, err := dynamo.MarshalItem(in)
		if err != nil {
			t.Fatal(err)
		}
		item["unknown"] = &types.AttributeValueMemberS{Value: "ignored"}
		var lib subItem
		if err := dynamo.UnmarshalItem(item, &lib); err != nil {
			t.Fatal(err)
		}
		var own topicRow
		own.Query = "left over from an earlier row"
		if err := own.UnmarshalDynamoItem(item); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := subItem(own)
		if !got.CreatedAt.Equal(lib.CreatedAt) || !got.ExpiresAt.Equal(lib.ExpiresAt) {
			t.Fatalf("%s: times %v %v, the library's %v %v", name, got.CreatedAt, got.ExpiresAt, lib.CreatedAt, lib.ExpiresAt)
		}
		got.CreatedAt, got.ExpiresAt, lib.CreatedAt, lib.ExpiresAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		if got != lib {
			t.Fatalf("%s: decoded %+v\nthe library %+v", name, got, lib)
		}
	}

	for attr, av := range map[string]types.AttributeValue{
		"query":     &types.AttributeValueMemberN{Value: "1"},
		"ttl":       &types.AttributeValueMemberS{Value: "soon"},
		"expiresAt": &types.AttributeValueMemberS{Value: "yesterday"},
	} {
		item, _ := dynamo.MarshalItem(full)
		item[attr] = av
		var r topicRow
		if err := r.UnmarshalDynamoItem(item); err == nil || !strings.Contains(err.Error(), attr) {
			t.Fatalf("%s of type %T: %v, want an error naming it", attr, av, err)
		}
	}
}
