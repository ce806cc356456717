package filter_test

import (
	"bytes"
	"encoding/json"
	"testing"
)

// benchFilters are a simple eq filter and a realistic compound one (six fields, an or group,
// a not, between, in and notIn).
var benchFilters = []struct{ name, filter string }{
	{"eq", `{"name":{"eq":"Grace Hopper"}}`},
	{"compound", compound},
}

// BenchmarkMatch is the fan-out's cost per candidate subscription: one Match on a decoded payload.
func BenchmarkMatch(b *testing.B) {
	s := spec(b, "ItemFilter")
	d := doc(b, item)
	for _, bf := range benchFilters {
		f := compile(b, s, bf.filter)
		if !f.Match(d) {
			b.Fatalf("%s does not match", bf.name)
		}
		b.Run(bf.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !f.Match(d) {
					b.Fatal("no match")
				}
			}
		})
	}
}

// BenchmarkMatchReference is the baseline: the plain evaluator of the property test over the
// filter and the payload as map[string]any (the payload also decoded once).
func BenchmarkMatchReference(b *testing.B) {
	dec := json.NewDecoder(bytes.NewReader([]byte(item)))
	dec.UseNumber()
	var p map[string]any
	if err := dec.Decode(&p); err != nil {
		b.Fatal(err)
	}
	for _, bf := range benchFilters {
		dec := json.NewDecoder(bytes.NewReader([]byte(bf.filter)))
		dec.UseNumber()
		var fv map[string]any
		if err := dec.Decode(&fv); err != nil {
			b.Fatal(err)
		}
		if !refMatch(fv, p) {
			b.Fatalf("%s does not match", bf.name)
		}
		b.Run(bf.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !refMatch(fv, p) {
					b.Fatal("no match")
				}
			}
		})
	}
}

// BenchmarkNewDoc is the cost per event, paid once whatever the number of candidates.
func BenchmarkNewDoc(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		doc(b, item)
	}
}

// BenchmarkCompile is the cost per subscribe.
func BenchmarkCompile(b *testing.B) {
	s := spec(b, "ItemFilter")
	for _, bf := range benchFilters {
		b.Run(bf.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				compile(b, s, bf.filter)
			}
		})
	}
}
