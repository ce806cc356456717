package fanout

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/realtime-gql/lambdaws/internal/facts"
	"github.com/realtime-gql/lambdaws/internal/gqlws"
	"github.com/realtime-gql/lambdaws/store"
)

// frameReserve is room left in a message for the frame around a result: the envelope, the type
// and the longest operation id gqlws accepts.
const frameReserve = 64 + facts.MaxOperationID

// rendered is one distinct operation's result for the event a node delivers.
type rendered struct {
	sub   *store.Subscription // the first subscriber seen with this operation
	ready atomic.Bool
	mu    sync.Mutex
	// payload is the result with extensions.event, or nil when the event does not concern the
	// operation; tooBig when it is the RESULT_TOO_LARGE error result in place of the result.
	payload []byte
	tooBig  bool
	bigOnce sync.Once
	big     []byte
}

// renderFor returns the render entry of the subscriber's operation. Only the node's reader calls
// it, so the map needs no lock; the workers render on first use.
func (n *node) renderFor(s *store.Subscription) *rendered {
	var h maphash.Hash
	h.SetSeed(n.e.seed)
	h.WriteString(s.Query)
	h.WriteByte(0)
	h.WriteString(s.OperationName)
	h.WriteByte(0)
	h.Write(s.Variables)
	h.WriteByte(0)
	h.Write(s.Principal)
	k := h.Sum64()
	r := n.renders[k]
	switch {
	case r == nil:
		r = &rendered{sub: s}
		n.renders[k] = r
		return r
	case sameOperation(r.sub, s):
		return r
	}
	// Two operations with one hash: rare enough for a string key.
	if n.rendersX == nil {
		n.rendersX = map[string]*rendered{}
	}
	sk := s.Query + "\x00" + s.OperationName + "\x00" + string(s.Variables) + "\x00" + string(s.Principal)
	if r = n.rendersX[sk]; r == nil {
		r = &rendered{sub: s}
		n.rendersX[sk] = r
	}
	return r
}

func sameOperation(a, b *store.Subscription) bool {
	return a.Query == b.Query && a.OperationName == b.OperationName &&
		bytes.Equal(a.Variables, b.Variables) && bytes.Equal(a.Principal, b.Principal)
}

// get returns the operation's payload, rendering it the first time.
func (r *rendered) get(n *node, s *store.Subscription) []byte {
	if !r.ready.Load() {
		r.mu.Lock()
		if !r.ready.Load() {
			n.render(r, s)
			r.ready.Store(true)
		}
		r.mu.Unlock()
	}
	return r.payload
}

func (n *node) render(r *rendered, s *store.Subscription) {
	res := n.e.cfg.Renderer.Render(n.inv.work, s, n.ev)
	n.c.renders.Add(1)
	if res == nil {
		return
	}
	out, err := WithEvent(res, n.ev.ID, n.ev.Seq)
	if err != nil {
		n.inv.log.Error().Err(err).Str("event", n.ev.ID).Str("topic", n.ev.Topic).Str("op", s.ID).Msg("render returned no JSON object")
		out = errorResult(n.ev, "the result could not be encoded", "INTERNAL")
	}
	if len(out)+frameReserve > n.e.cfg.MaxMessage {
		n.inv.log.Warn().Str("event", n.ev.ID).Str("topic", n.ev.Topic).Str("op", s.ID).Int("bytes", len(out)).
			Msg("result over the message limit; its subscribers get an error instead")
		r.tooBig = true
		out = n.tooLarge(len(out))
	}
	r.payload = out
}

// tooLargeResult is the error result sent when the service refuses the message as too large.
func (r *rendered) tooLargeResult(n *node, size int) []byte {
	r.bigOnce.Do(func() { r.big = n.tooLarge(size) })
	return r.big
}

func (n *node) tooLarge(size int) []byte {
	return errorResult(n.ev, fmt.Sprintf("the result of this event is %d bytes, over the %d-byte message limit", size, n.e.cfg.MaxMessage), "RESULT_TOO_LARGE")
}

// errorResult is an execution result of one error with a code, carrying extensions.event.
func errorResult(ev *Event, msg, code string) []byte {
	type ext struct {
		Code string `json:"code"`
	}
	type gqlErr struct {
		Message    string `json:"message"`
		Extensions ext    `json:"extensions"`
	}
	b, _ := json.Marshal(struct {
		Errors []gqlErr `json:"errors"`
	}{[]gqlErr{{msg, ext{code}}}})
	out, _ := WithEvent(b, ev.ID, ev.Seq)
	return out
}

func appendFrame(b []byte, s *store.Subscription, payload []byte) []byte {
	return gqlws.Append(b, gqlws.ResultType(s.Subprotocol), s.ID, payload)
}

var errNotObject = errors.New("fanout: result is not a JSON object")

// WithEvent returns the execution result with extensions.event = {"id": id, "seq": seq} (seq
// left out when empty). The result's bytes are copied, not re-encoded: the member is spliced into
// an existing extensions object (replacing an "event" member there) or appended as a new one.
func WithEvent(result []byte, id, seq string) ([]byte, error) {
	event := appendEvent(nil, id, seq)
	dec := json.NewDecoder(bytes.NewReader(result))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errNotObject
	}
	for dec.More() {
		t, v, err := nextMember(dec)
		if err != nil {
			return nil, err
		}
		if t != "extensions" || len(v) == 0 || v[0] != '{' {
			continue
		}
		end := int(dec.InputOffset())
		start := end - len(v)
		ext, err := spliceMember(v, "event", event)
		if err != nil {
			return nil, err
		}
		out := make([]byte, 0, len(result)-len(v)+len(ext))
		out = append(out, result[:start]...)
		out = append(out, ext...)
		return append(out, result[end:]...), nil
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("%w: %w", errNotObject, err)
	}
	if _, err := dec.Token(); err == nil {
		return nil, fmt.Errorf("%w: data after the object", errNotObject)
	}
	// No extensions object: add one before the closing brace.
	end := bytes.LastIndexByte(result, '}')
	body := bytes.TrimSpace(result[1:end])
	out := make([]byte, 0, len(result)+len(event)+24)
	out = append(out, result[:end]...)
	if len(body) > 0 {
		out = append(out, ',')
	}
	out = append(out, `"extensions":{"event":`...)
	out = append(out, event...)
	out = append(out, "}}"...)
	return out, nil
}

// nextMember reads an object's next member: its name and its raw value.
func nextMember(dec *json.Decoder) (string, json.RawMessage, error) {
	t, err := dec.Token()
	if err != nil {
		return "", nil, fmt.Errorf("%w: %w", errNotObject, err)
	}
	var v json.RawMessage
	if err := dec.Decode(&v); err != nil {
		return "", nil, fmt.Errorf("%w: %w", errNotObject, err)
	}
	name, _ := t.(string)
	return name, v, nil
}

// spliceMember returns the object obj with member name set to value: first, and any existing
// member of that name dropped; the other members are copied as they are.
func spliceMember(obj []byte, name string, value []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	dec.Token() // '{', checked by the caller
	out := []byte{'{'}
	out = appendJSONString(out, name)
	out = append(out, ':')
	out = append(out, value...)
	for dec.More() {
		k, v, err := nextMember(dec)
		if err != nil {
			return nil, err
		}
		if k == name {
			continue
		}
		out = append(out, ',')
		out = appendJSONString(out, k)
		out = append(out, ':')
		out = append(out, v...)
	}
	return append(out, '}'), nil
}

func appendEvent(b []byte, id, seq string) []byte {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, id)
	if seq != "" {
		b = append(b, `,"seq":`...)
		b = appendJSONString(b, seq)
	}
	return append(b, '}')
}

func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s)
	return append(b, q...)
}
