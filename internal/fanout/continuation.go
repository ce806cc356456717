package fanout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Bounds of a continuation message.
const (
	// MaxContinuationBytes bounds one encoded continuation: SQS takes 256 KiB per message,
	// attributes included.
	MaxContinuationBytes = 240 << 10
	// MaxKeys bounds the subscriptions listed in one continuation.
	MaxKeys = 500
)

// A Continuation is fan-out work handed to the chunk queue: the event, and either a range of its
// topic (pages after After up to and including Until) or a list of its subscriptions. Part
// names it below the event ("3", or "3/1" for the first part handed on by part 3): its progress
// key is EventKey(&Event) + "/" + Part, so delivering it twice is harmless. It encodes to JSON
// (json.Marshal) within MaxContinuationBytes; ParseContinuation decodes and checks one.
type Continuation struct {
	Event Event
	Part  string
	// After and Until bound the range: after the cursor After ("" = the first subscription) up
	// to and including the cursor Until ("" = the last). Unused when Keys is set.
	After, Until string
	// Keys lists the subscriptions to deliver instead of a range: the ones attempted and not
	// delivered by an earlier invocation.
	Keys []SubKey
	// Created is when the change was made (approximately), for Stats.OldestAge; zero if unknown.
	Created time.Time
}

// Key is the continuation's progress key.
func (c *Continuation) Key() string { return EventKey(&c.Event) + "/" + c.Part }

// wire is a continuation's JSON shape, fixed here whatever Event's own tags become.
type wire struct {
	V     int `json:"v"`
	Event struct {
		ID      string          `json:"id"`
		Seq     string          `json:"seq,omitempty"`
		Field   string          `json:"field"`
		Topic   string          `json:"topic"`
		Payload json.RawMessage `json:"payload"`
	} `json:"event"`
	Part    string      `json:"part"`
	After   string      `json:"after,omitempty"`
	Until   string      `json:"until,omitempty"`
	Keys    [][2]string `json:"keys,omitempty"`
	Created *time.Time  `json:"created,omitempty"`
}

// MarshalJSON encodes the continuation as
//
//	{"v":1,"event":{"id","seq","field","topic","payload"},"part":"3/1","after","until",
//	 "keys":[["connectionId","operationId"],…],"created":"RFC 3339"}
func (c Continuation) MarshalJSON() ([]byte, error) {
	var w wire
	w.V = 1
	w.Event.ID, w.Event.Seq, w.Event.Field, w.Event.Topic = c.Event.ID, c.Event.Seq, c.Event.Field, c.Event.Topic
	w.Event.Payload = c.Event.Payload
	if len(w.Event.Payload) == 0 {
		w.Event.Payload = json.RawMessage("null")
	}
	w.Part, w.After, w.Until = c.Part, c.After, c.Until
	for _, k := range c.Keys {
		w.Keys = append(w.Keys, [2]string{k.ConnectionID, k.ID})
	}
	if !c.Created.IsZero() {
		t := c.Created.UTC()
		w.Created = &t
	}
	return json.Marshal(w)
}

// UnmarshalJSON decodes what MarshalJSON encodes; ParseContinuation also checks it.
func (c *Continuation) UnmarshalJSON(b []byte) error {
	var w wire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*c = Continuation{
		Event: Event{ID: w.Event.ID, Seq: w.Event.Seq, Field: w.Event.Field, Topic: w.Event.Topic, Payload: w.Event.Payload},
		Part:  w.Part, After: w.After, Until: w.Until,
	}
	if w.V != 1 {
		return fmt.Errorf("%w: version %d", ErrInvalidContinuation, w.V)
	}
	if w.Keys != nil {
		c.Keys = make([]SubKey, len(w.Keys))
		for i, k := range w.Keys {
			c.Keys[i] = SubKey{ConnectionID: k[0], ID: k[1]}
		}
	}
	if w.Created != nil {
		c.Created = *w.Created
	}
	return nil
}

// ErrInvalidContinuation reports a message that is not a continuation this engine made; retrying
// it cannot help.
var ErrInvalidContinuation = errors.New("fanout: invalid continuation")

// ParseContinuation decodes one queue message and checks it.
func ParseContinuation(body []byte) (Continuation, error) {
	if len(body) > MaxContinuationBytes {
		return Continuation{}, fmt.Errorf("%w: %d bytes, over %d", ErrInvalidContinuation, len(body), MaxContinuationBytes)
	}
	var c Continuation
	if err := json.Unmarshal(body, &c); err != nil {
		if errors.Is(err, ErrInvalidContinuation) {
			return Continuation{}, err
		}
		return Continuation{}, fmt.Errorf("%w: %w", ErrInvalidContinuation, err)
	}
	return c, c.check()
}

func (c *Continuation) check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidContinuation, fmt.Sprintf(format, args...))
	}
	switch {
	case c.Event.ID == "":
		return bad("no event id")
	case c.Event.Topic == "":
		return bad("no topic")
	case len(c.Keys) > MaxKeys:
		return bad("%d keys, over %d", len(c.Keys), MaxKeys)
	case c.Keys != nil && (c.After != "" || c.Until != ""):
		return bad("both keys and a range")
	}
	segs := strings.Split(c.Part, "/")
	if len(segs) > MaxDepth {
		return bad("part %q nested deeper than %d", c.Part, MaxDepth)
	}
	for _, s := range segs {
		if i, err := strconv.Atoi(s); err != nil || i < 1 || strconv.Itoa(i) != s {
			return bad("part %q", c.Part)
		}
	}
	for _, k := range c.Keys {
		if k.ConnectionID == "" || k.ID == "" {
			return bad("an empty key")
		}
	}
	return nil
}

// validSizes checks that every continuation encodes within the bound.
func validSizes(cs []Continuation) error {
	for i := range cs {
		b, err := json.Marshal(cs[i])
		if err != nil {
			return fmt.Errorf("encode continuation: %w", err)
		}
		if len(b) > MaxContinuationBytes {
			return fmt.Errorf("continuation of %s is %d bytes, over %d (the event's payload is too large to carry)", cs[i].Event.Topic, len(b), MaxContinuationBytes)
		}
	}
	return nil
}

// splitToFit halves key lists until each continuation encodes within the bound, then numbers the
// parts after the node's.
func splitToFit(cs []Continuation, n *node) []Continuation {
	var out []Continuation
	for len(cs) > 0 {
		c := cs[0]
		cs = cs[1:]
		if len(c.Keys) > 1 {
			if b, err := json.Marshal(c); err == nil && len(b) > MaxContinuationBytes {
				half := len(c.Keys) / 2
				a, b := c, c
				a.Keys, b.Keys = c.Keys[:half:half], c.Keys[half:]
				cs = append([]Continuation{a, b}, cs...)
				continue
			}
		}
		out = append(out, c)
	}
	for i := range out {
		out[i].Part = n.partName(n.parts + i + 1)
	}
	return out
}

// Continue delivers one continuation taken from the queue. It is idempotent per continuation: a
// part already done is skipped, and one delivered in part resumes after its saved cursor. It does
// not wait for parts it hands on (the record that started the fan-out waits for all of them).
// Safe to call concurrently, one call per message.
func (e *Engine) Continue(ctx context.Context, c Continuation) (Outcome, Stats) {
	inv := e.begin(ctx)
	defer inv.end()
	stats := func() Stats { return inv.finishStats(1, c.Created) }
	if err := c.check(); err != nil {
		return failed(ReasonInvalid, err), stats()
	}
	key := c.Key()
	rows, err := e.cfg.Registry.FanoutProgress(inv.work, []string{key})
	if err != nil {
		reason := ReasonRegistry
		if inv.work.Err() != nil {
			reason = ReasonDeadline
		}
		return failed(reason, fmt.Errorf("read fan-out progress: %w", err)), stats()
	}
	row, ok := rows[key]
	n := inv.newNode(&c.Event, key, c.Part, row, ok)
	n.after, n.until, n.keys, n.created = c.After, c.Until, c.Keys, c.Created
	inv.stats.events.Add(1)
	var out Outcome
	var mu sync.Mutex
	finished := inv.await(func() {
		o := n.run()
		mu.Lock()
		out = o
		mu.Unlock()
	})
	n.flush()
	mu.Lock()
	defer mu.Unlock()
	if !finished {
		return failed(ReasonDeadline, errStuck), stats()
	}
	return out, stats()
}
