package dynamo_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/realtime-gql/lambdaws/internal/local"
	"github.com/realtime-gql/lambdaws/store"
	"github.com/realtime-gql/lambdaws/store/dynamo"
	"github.com/realtime-gql/lambdaws/store/storetest"
	"github.com/realtime-gql/lambdaws/store/stream"
)

// TestStreamTo: the records StreamTo appends are the stream records of the writes, numbered by the
// log, under the data table's stream, and they decode back to the same changes.
func TestStreamTo(t *testing.T) {
	log := local.NewMemoryLog()
	onChange := dynamo.StreamTo(log, "lambdaws-dev-data")
	m := storetest.Message{ID: "01J0000000000000000000000A", RoomID: "r1", Author: "ann", Text: "hi", CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	edited := m
	edited.Text = "hi!"
	item := func(m storetest.Message) store.Item {
		it, err := storetest.MessageType.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		return it
	}
	onChange(stream.Insert, nil, item(m))
	onChange(stream.Modify, item(m), item(edited))
	onChange(stream.Remove, item(edited), nil)

	recs, err := log.ReadChanges(context.Background(), 0, 10)
	if err != nil || len(recs) != 3 {
		t.Fatalf("ReadChanges = %d records, %v; want 3", len(recs), err)
	}
	want := []struct {
		kind     stream.ChangeKind
		old, new *storetest.Message
	}{{stream.Insert, nil, &m}, {stream.Modify, &m, &edited}, {stream.Remove, &edited, nil}}
	payload := func(m *storetest.Message) string {
		if m == nil {
			return ""
		}
		p, err := store.ItemPayload(item(*m))
		if err != nil {
			t.Fatal(err)
		}
		return string(p)
	}
	for i, r := range recs {
		var rec events.DynamoDBEventRecord
		if err := json.Unmarshal(r.JSON, &rec); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if rec.Change.SequenceNumber != strconv.FormatUint(r.Seq, 10) || !strings.Contains(rec.EventSourceArn, "table/lambdaws-dev-data/stream/") {
			t.Errorf("record %d: sequence %s (log seq %d), ARN %s", i, rec.Change.SequenceNumber, r.Seq, rec.EventSourceArn)
		}
		ch, ok, err := stream.DecodeItemChange(rec)
		if err != nil || !ok || ch.Kind != want[i].kind || ch.Type != "Message" || string(ch.Old) != payload(want[i].old) || string(ch.New) != payload(want[i].new) {
			t.Errorf("record %d decodes to %+v (old %s new %s), %v, %v; want %s", i, ch, ch.Old, ch.New, ok, err, want[i].kind)
		}
	}
}
