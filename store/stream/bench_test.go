package stream_test

import (
	"testing"

	"github.com/realtime-gql/lambdaws/store/stream"
)

// BenchmarkDecodeItemChange decodes a MODIFY record of a message, as the fan-out does once per
// record.
func BenchmarkDecodeItemChange(b *testing.B) {
	rec := readEvent(b, "modify.json").Records[0]
	b.ReportAllocs()
	for b.Loop() {
		if _, ok, err := stream.DecodeItemChange(rec); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}
