// Package emf formats CloudWatch Embedded Metric Format lines: one JSON object per line that CloudWatch Logs turns into metrics, and that sits among the function's other JSON log lines.
package emf

import (
	"encoding/json"
	"maps"
	"slices"
	"time"
)

// Namespace is the CloudWatch namespace of every metric lambdaws writes (the fan-out's and the
// sweep's).
const Namespace = "lambdaws"

// A Metric is one value of a line.
type Metric struct {
	// Name is the metric's name; it must not be a dimension's name or "_aws".
	Name string
	// Unit is CloudWatch's unit: "Count", "Milliseconds", "Bytes"...
	Unit  string
	Value float64
}

// Line formats the metrics as one EMF log line (no newline): the metrics under namespace, with
// dims as their one dimension set (keys sorted; at most 30), timestamped at ts (now when zero).
// The document holds the dimensions and metrics as top-level members and the "_aws" metadata
// that declares them.
func Line(namespace string, dims map[string]string, ts time.Time, metrics []Metric) []byte {
	type def struct {
		Name string `json:"Name"`
		Unit string `json:"Unit"`
	}
	type directive struct {
		Namespace  string     `json:"Namespace"`
		Dimensions [][]string `json:"Dimensions"`
		Metrics    []def      `json:"Metrics"`
	}
	keys := slices.Sorted(maps.Keys(dims))
	if keys == nil {
		keys = []string{}
	}
	d := directive{Namespace: namespace, Dimensions: [][]string{keys}, Metrics: make([]def, 0, len(metrics))}
	doc := make(map[string]any, len(metrics)+len(dims)+1)
	for _, m := range metrics {
		d.Metrics = append(d.Metrics, def{m.Name, m.Unit})
		doc[m.Name] = m.Value
	}
	for k, v := range dims {
		doc[k] = v
	}
	if ts.IsZero() {
		ts = time.Now()
	}
	doc["_aws"] = map[string]any{"Timestamp": ts.UnixMilli(), "CloudWatchMetrics": []directive{d}}
	b, _ := json.Marshal(doc)
	return b
}

// Milliseconds is d in milliseconds, with microsecond precision.
func Milliseconds(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
