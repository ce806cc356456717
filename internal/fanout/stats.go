package fanout

import (
	"sync/atomic"
	"time"

	"github.com/realtime-gql/lambdaws/internal/emf"
)

// Stats is what one Deliver or Continue call did.
type Stats struct {
	// Start is when the call began; Duration how long it took.
	Start    time.Time
	Duration time.Duration
	// Records is the number of records (1 for a continuation); Events the events among them.
	Records, Events int
	// Skipped counts events (or continuations) found already done.
	Skipped int
	// Subscribers counts the subscriptions read.
	Subscribers int64
	// Delivered counts results posted.
	Delivered int64
	// Gone counts posts to connections that had gone (each forgotten once).
	Gone int64
	// Failed counts posts refused or failed for another reason than throttling.
	Failed int64
	// Throttled counts posts still throttled when the poster gave up (those it retried until the
	// deadline are carried, and counted here too). Posts cut by the deadline otherwise are
	// carried and counted in neither Failed nor Throttled.
	Throttled int64
	// Filtered counts subscriptions the event did not concern (filter, or no result).
	Filtered int64
	// Expired counts subscriptions skipped for an expired principal.
	Expired int64
	// TooLarge counts subscribers sent the RESULT_TOO_LARGE error instead of the result.
	TooLarge int64
	// Renders counts executions (one per distinct operation and event).
	Renders int64
	// Chunks counts chunk continuations enqueued; Carried continuations enqueued at the
	// deadline.
	Chunks, Carried int64
	// ProgressWrites counts progress rows written.
	ProgressWrites int64
	// OldestAge is the age of the oldest record's change at the end of the call; zero when no
	// record said when it was made.
	OldestAge time.Duration
}

// Add adds o's counts to s (for several Continue calls of one SQS batch). Start becomes the
// earlier, Duration the longer, OldestAge the older.
func (s *Stats) Add(o Stats) {
	if s.Start.IsZero() || (!o.Start.IsZero() && o.Start.Before(s.Start)) {
		s.Start = o.Start
	}
	s.Duration = max(s.Duration, o.Duration)
	s.OldestAge = max(s.OldestAge, o.OldestAge)
	s.Records += o.Records
	s.Events += o.Events
	s.Skipped += o.Skipped
	s.Subscribers += o.Subscribers
	s.Delivered += o.Delivered
	s.Gone += o.Gone
	s.Failed += o.Failed
	s.Throttled += o.Throttled
	s.Filtered += o.Filtered
	s.Expired += o.Expired
	s.TooLarge += o.TooLarge
	s.Renders += o.Renders
	s.Chunks += o.Chunks
	s.Carried += o.Carried
	s.ProgressWrites += o.ProgressWrites
}

// counters are an invocation's running counts.
type counters struct {
	events, skipped                                                    atomic.Int64
	subscribers, delivered, gone, failed, throttled, filtered, expired atomic.Int64
	tooLarge, renders, chunks, carried, progressWrites                 atomic.Int64
}

func (inv *invocation) finishStats(records int, created time.Time) Stats {
	c := &inv.stats
	now := time.Now()
	s := Stats{
		Start: inv.start, Duration: now.Sub(inv.start), Records: records,
		Events: int(c.events.Load()), Skipped: int(c.skipped.Load()),
		Subscribers: c.subscribers.Load(), Delivered: c.delivered.Load(), Gone: c.gone.Load(),
		Failed: c.failed.Load(), Throttled: c.throttled.Load(), Filtered: c.filtered.Load(),
		Expired: c.expired.Load(), TooLarge: c.tooLarge.Load(), Renders: c.renders.Load(),
		Chunks: c.chunks.Load(), Carried: c.carried.Load(), ProgressWrites: c.progressWrites.Load(),
	}
	if !created.IsZero() {
		s.OldestAge = max(0, now.Sub(created))
	}
	return s
}

// oldest is the earliest creation time among the records; zero if none says.
func oldest(recs []Record) time.Time {
	var t time.Time
	for _, r := range recs {
		if !r.Created.IsZero() && (t.IsZero() || r.Created.Before(t)) {
			t = r.Created
		}
	}
	return t
}

// metric is one EMF metric taken from Stats.
type metric struct {
	name, unit string
	value      func(*Stats) float64
}

var metrics = []metric{
	{"Records", "Count", func(s *Stats) float64 { return float64(s.Records) }},
	{"Events", "Count", func(s *Stats) float64 { return float64(s.Events) }},
	{"Skipped", "Count", func(s *Stats) float64 { return float64(s.Skipped) }},
	{"Subscribers", "Count", func(s *Stats) float64 { return float64(s.Subscribers) }},
	{"Deliveries", "Count", func(s *Stats) float64 { return float64(s.Delivered) }},
	{"Gone", "Count", func(s *Stats) float64 { return float64(s.Gone) }},
	{"Failed", "Count", func(s *Stats) float64 { return float64(s.Failed) }},
	{"Throttled", "Count", func(s *Stats) float64 { return float64(s.Throttled) }},
	{"Filtered", "Count", func(s *Stats) float64 { return float64(s.Filtered) }},
	{"Expired", "Count", func(s *Stats) float64 { return float64(s.Expired) }},
	{"TooLarge", "Count", func(s *Stats) float64 { return float64(s.TooLarge) }},
	{"Renders", "Count", func(s *Stats) float64 { return float64(s.Renders) }},
	{"Chunks", "Count", func(s *Stats) float64 { return float64(s.Chunks) }},
	{"Carried", "Count", func(s *Stats) float64 { return float64(s.Carried) }},
	{"Duration", "Milliseconds", func(s *Stats) float64 { return emf.Milliseconds(s.Duration) }},
	{"OldestAge", "Milliseconds", func(s *Stats) float64 { return emf.Milliseconds(s.OldestAge) }},
}

// EMF formats the stats as one CloudWatch Embedded Metric Format log line (no newline, see
// internal/emf): the metrics under namespace with dims as their one dimension set (keys sorted;
// at most 30, which must not be metric names or "_aws"), timestamped at the call's start.
func EMF(namespace string, dims map[string]string, s Stats) []byte {
	ms := make([]emf.Metric, len(metrics))
	for i, m := range metrics {
		ms[i] = emf.Metric{Name: m.name, Unit: m.unit, Value: m.value(&s)}
	}
	return emf.Line(namespace, dims, s.Start, ms)
}
