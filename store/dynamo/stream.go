package dynamo

import (
	"encoding/json"
	"time"

	"github.com/realtime-gql/lambdaws/store"
	"github.com/realtime-gql/lambdaws/store/stream"
)

// A ChangeLog takes stream records in order, numbering them itself: build makes the record for
// the sequence number the log assigns. The local runtime's in-memory log is one.
type ChangeLog interface {
	Append(build func(seq uint64) (json.RawMessage, error)) error
}

// StreamTo returns an OnChange that appends to log, for each write to app data, the stream record
// DynamoDB would emit for it (NEW_AND_OLD_IMAGES, under a local stream ARN of the data table), for
// a DynamoDB endpoint without a stream API. A record that cannot be built (an item the write itself
// would have refused) is dropped.
func StreamTo(log ChangeLog, table string) func(kind stream.ChangeKind, old, new store.Item) {
	arn := "arn:aws:dynamodb:us-east-1:000000000000:table/" + table + "/stream/local"
	return func(kind stream.ChangeKind, old, new store.Item) {
		log.Append(func(seq uint64) (json.RawMessage, error) {
			rec, err := stream.ChangeRecord(kind, old, new, seq, arn, time.Now())
			if err != nil {
				return nil, err
			}
			return json.Marshal(rec)
		})
	}
}
