package dynamo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/guregu/dynamo/v2"
	"github.com/realtime-gql/lambdaws/store"
)

// connItem is a connection row of the registry table.
type connItem struct {
	PK          string          `dynamo:"pk,hash"`
	SK          string          `dynamo:"sk,range"`
	TTL         int64           `dynamo:"ttl,omitempty"`
	ID          string          `dynamo:"id"`
	Subprotocol string          `dynamo:"subprotocol,omitempty"`
	State       store.ConnState `dynamo:"state,omitempty"`
	Principal   string          `dynamo:"principal,omitempty"` // JSON text
	Subject     string          `dynamo:"subject,omitempty"`
	Slot        bool            `dynamo:"slot,omitempty"` // holds a place in its subject's slots row
	MaxSubs     int             `dynamo:"maxSubs,omitempty"`
	Subs        int             `dynamo:"subs,omitempty"`
	ConnectedAt time.Time       `dynamo:"connectedAt,omitempty"`
	AckedAt     time.Time       `dynamo:"ackedAt,omitempty"`
	LastSeenAt  sortableTime    `dynamo:"lastSeenAt,omitempty"`
	ExpiresAt   time.Time       `dynamo:"expiresAt,omitempty"`
}

func newConnItem(c store.Connection) connItem {
	pk, sk := connRowKey(c.ID)
	return connItem{PK: pk, SK: sk, TTL: ttlOf(c.ExpiresAt), ID: c.ID,
		Subprotocol: c.Subprotocol, State: c.State, Principal: string(c.Principal), Subject: c.Subject,
		MaxSubs: c.MaxSubscriptions, Subs: c.Subscriptions, ConnectedAt: c.ConnectedAt.UTC(), AckedAt: c.AckedAt.UTC(), LastSeenAt: sortableTime{c.LastSeenAt.UTC()},
		ExpiresAt: c.ExpiresAt.UTC()}
}

func (it connItem) connection() store.Connection {
	return store.Connection{ID: it.ID, Subprotocol: it.Subprotocol, State: it.State,
		Principal: rawJSON(it.Principal), Subject: it.Subject, MaxSubscriptions: it.MaxSubs, Subscriptions: it.Subs,
		ConnectedAt: it.ConnectedAt, AckedAt: it.AckedAt,
		LastSeenAt: it.LastSeenAt.Time, ExpiresAt: it.ExpiresAt}
}

// sortableTime is a time stored like the connection row's other times, an RFC 3339 string in UTC
// (which time.Time's UnmarshalText reads), but always with nine fractional digits, so that string
// order is time order and a condition can compare two of them. (time.Time's own text drops
// trailing zeros: as strings, "12:00:00.55Z" < "12:00:00.5Z" < "12:00:00Z", the reverse of time.)
type sortableTime struct{ time.Time }

const sortableLayout = "2006-01-02T15:04:05.000000000Z07:00"

// MarshalText implements encoding.TextMarshaler.
func (t sortableTime) MarshalText() ([]byte, error) {
	if y := t.UTC().Year(); y < 0 || y > 9999 {
		return nil, fmt.Errorf("time %v: year outside [0,9999]", t.Time)
	}
	return t.UTC().AppendFormat(nil, sortableLayout), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (t *sortableTime) UnmarshalText(b []byte) error { return t.Time.UnmarshalText(b) }

// subItem is an operation row or a topic row of the registry table; both hold the whole
// subscription.
type subItem struct {
	PK            string    `dynamo:"pk,hash"`
	SK            string    `dynamo:"sk,range"`
	TTL           int64     `dynamo:"ttl,omitempty"`
	ConnectionID  string    `dynamo:"connectionId"`
	ID            string    `dynamo:"id"`
	Topic         string    `dynamo:"topic,omitempty"`
	Subprotocol   string    `dynamo:"subprotocol,omitempty"`
	Query         string    `dynamo:"query,omitempty"`
	OperationName string    `dynamo:"operationName,omitempty"`
	Variables     string    `dynamo:"variables,omitempty"` // JSON text
	Principal     string    `dynamo:"principal,omitempty"` // JSON text
	Filter        string    `dynamo:"filter,omitempty"`
	CreatedAt     time.Time `dynamo:"createdAt,omitempty"`
	ExpiresAt     time.Time `dynamo:"expiresAt,omitempty"`
}

func newSubItem(pk, sk string, s store.Subscription) subItem {
	return subItem{PK: pk, SK: sk, TTL: ttlOf(s.ExpiresAt), ConnectionID: s.ConnectionID, ID: s.ID,
		Topic: s.Topic, Subprotocol: s.Subprotocol, Query: s.Query, OperationName: s.OperationName,
		Variables: string(s.Variables), Principal: string(s.Principal), Filter: s.Filter,
		CreatedAt: s.CreatedAt.UTC(), ExpiresAt: s.ExpiresAt.UTC()}
}

func opItem(s store.Subscription) subItem {
	return newSubItem(opPK(s.ConnectionID), opSK(s.ID), s)
}

func topicItem(s store.Subscription) subItem {
	return newSubItem(topicPK(s.Topic), topicSK(s.ConnectionID, s.ID), s)
}

func (it subItem) subscription() store.Subscription {
	return store.Subscription{ConnectionID: it.ConnectionID, ID: it.ID, Topic: it.Topic,
		Subprotocol: it.Subprotocol, Query: it.Query, OperationName: it.OperationName,
		Variables: rawJSON(it.Variables), Principal: rawJSON(it.Principal), Filter: it.Filter,
		CreatedAt: it.CreatedAt, ExpiresAt: it.ExpiresAt}
}

// liveSubscription is the subscription of a row that has not expired at now.
func liveSubscription(r subItem, now time.Time) (store.Subscription, bool) {
	if !live(r.TTL, now) {
		return store.Subscription{}, false
	}
	return r.subscription(), true
}

func rawJSON(s string) json.RawMessage {
	if s == "" {
		return nil
	}
	return json.RawMessage(s)
}

// CreateConnection implements store.Registry.
func (s *Store) CreateConnection(ctx context.Context, c store.Connection) error {
	err := s.registry.Put(newConnItem(c)).If(absentOrExpired, attrPK, attrTTL, s.now().Unix()).Run(ctx)
	switch {
	case dynamo.IsCondCheckFailed(err):
		return fmt.Errorf("create connection %s: %w", c.ID, store.ErrConflict)
	case err != nil:
		return fmt.Errorf("create connection %s: %w", c.ID, err)
	}
	return nil
}

// Connection implements store.Registry.
func (s *Store) Connection(ctx context.Context, id string) (store.Connection, error) {
	var it connItem
	pk, sk := connRowKey(id)
	err := s.registry.Get(attrPK, pk).Range(attrSK, dynamo.Equal, sk).Consistent(true).One(ctx, &it)
	switch {
	case errors.Is(err, dynamo.ErrNotFound) || (err == nil && !live(it.TTL, s.now())):
		return store.Connection{}, fmt.Errorf("connection %s: %w", id, store.ErrNotFound)
	case err != nil:
		return store.Connection{}, fmt.Errorf("connection %s: %w", id, err)
	}
	return it.connection(), nil
}

// AcknowledgeConnection implements store.Registry. With a subject it first takes a slot in the
// subject's slots row (when ack.MaxPerSubject bounds it) and writes the subject's index row, then
// acknowledges; if the acknowledgement fails, what it wrote for the subject is taken back. The
// condition cannot tell why it failed (ReturnValuesOnConditionCheckFailure would, but dynalite
// ignores it), so a failure is followed by a consistent read: a row that is absent or expired is
// ErrNotFound, any other ErrConflict.
func (s *Store) AcknowledgeConnection(ctx context.Context, id string, ack store.Ack) error {
	slot := ack.Subject != "" && ack.MaxPerSubject > 0
	if slot {
		if err := s.takeSlot(ctx, ack.Subject, id, ack.MaxPerSubject, ack.ExpiresAt); err != nil {
			return fmt.Errorf("acknowledge connection %s: %w", id, err)
		}
	}
	if ack.Subject != "" {
		row := subjectItem{PK: subjectPK(ack.Subject), SK: subjectSK(id), TTL: ttlOf(ack.ExpiresAt), ConnectionID: id}
		if err := s.registry.Put(row).Run(ctx); err != nil {
			s.releaseSubject(ctx, ack.Subject, id, slot)
			return fmt.Errorf("acknowledge connection %s: index subject: %w", id, err)
		}
	}
	pk, sk := connRowKey(id)
	u := s.registry.Update(attrPK, pk).Range(attrSK, sk).
		Set("state", store.StateReady).
		Set("ackedAt", ack.At.UTC())
	if len(ack.Principal) > 0 {
		u.Set("principal", string(ack.Principal))
	} else {
		u.Remove("principal")
	}
	if ack.Subject != "" {
		u.Set("subject", ack.Subject)
	} else {
		u.Remove("subject")
	}
	if slot {
		u.Set("slot", true)
	}
	u.If("attribute_exists($) AND $ = ? AND (attribute_not_exists($) OR $ > ?)",
		attrPK, "state", store.StatePending, attrTTL, attrTTL, s.now().Unix())
	err := u.Run(ctx)
	if err == nil {
		return nil
	}
	if !dynamo.IsCondCheckFailed(err) {
		s.releaseSubject(ctx, ack.Subject, id, slot)
		return fmt.Errorf("acknowledge connection %s: %w", id, err)
	}
	c, err := s.Connection(ctx, id)
	if err != nil {
		s.releaseSubject(ctx, ack.Subject, id, slot)
		return fmt.Errorf("acknowledge: %w", err)
	}
	if c.Subject != ack.Subject { // acknowledged before, as someone else: leave no index of this one
		s.releaseSubject(ctx, ack.Subject, id, slot)
	}
	return fmt.Errorf("acknowledge connection %s: not pending: %w", id, store.ErrConflict)
}

// subjectItem is a subject's index row: one per connection acknowledged with the subject.
type subjectItem struct {
	PK           string `dynamo:"pk,hash"`
	SK           string `dynamo:"sk,range"`
	TTL          int64  `dynamo:"ttl,omitempty"`
	ConnectionID string `dynamo:"connectionId"`
}

// slotsItem is a subject's slots row: the ids of its connections, when their number is bounded.
type slotsItem struct {
	PK    string   `dynamo:"pk,hash"`
	SK    string   `dynamo:"sk,range"`
	Conns []string `dynamo:"conns,set"`
}

// takeSlot adds a connection to its subject's slots row unless the row holds max others: one
// conditional UpdateItem, so concurrent acknowledgements cannot pass the bound. Ids of
// connections that have ended without releasing their slot (a crash, or TTL) are cleared out and
// the update tried once more before ErrLimit.
func (s *Store) takeSlot(ctx context.Context, subject, id string, max int, expiresAt time.Time) error {
	add := func() error {
		return s.registry.Update(attrPK, subjectPK(subject)).Range(attrSK, slotsSK).
			AddStringsToSet("conns", id).
			Set(attrTTL, ttlOf(expiresAt)).
			If("attribute_not_exists($) OR size($) < ? OR contains($, ?)", "conns", "conns", max, "conns", id).
			Run(ctx)
	}
	err := add()
	if !dynamo.IsCondCheckFailed(err) {
		return err
	}
	var row slotsItem
	if err := s.registry.Get(attrPK, subjectPK(subject)).Range(attrSK, dynamo.Equal, slotsSK).Consistent(true).One(ctx, &row); err != nil {
		return fmt.Errorf("read slots: %w", err)
	}
	var ended []string
	for _, other := range row.Conns {
		switch _, err := s.Connection(ctx, other); {
		case errors.Is(err, store.ErrNotFound):
			ended = append(ended, other)
		case err != nil:
			return err
		}
	}
	if len(ended) == 0 {
		return fmt.Errorf("%d connections of the subject already: %w", len(row.Conns), store.ErrLimit)
	}
	if err := s.registry.Update(attrPK, subjectPK(subject)).Range(attrSK, slotsSK).DeleteStringsFromSet("conns", ended...).Run(ctx); err != nil {
		return fmt.Errorf("clear ended connections from slots: %w", err)
	}
	if err := add(); dynamo.IsCondCheckFailed(err) {
		return fmt.Errorf("the subject has the most connections it may have: %w", store.ErrLimit)
	} else if err != nil {
		return err
	}
	return nil
}

// releaseSubject removes a connection's subject index row and, if it took one, its slot. It is
// cleanup: it runs even if ctx is done, and a failure leaves rows that expire with the
// connection (an index row read later names a connection that is gone; a slot of an ended
// connection is cleared by the next takeSlot that needs it).
func (s *Store) releaseSubject(ctx context.Context, subject, id string, slot bool) {
	if subject == "" {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = s.registry.Delete(attrPK, subjectPK(subject)).Range(attrSK, subjectSK(id)).Run(cctx)
	if slot {
		_ = s.registry.Update(attrPK, subjectPK(subject)).Range(attrSK, slotsSK).
			DeleteStringsFromSet("conns", id).If("attribute_exists($)", attrPK).Run(cctx)
	}
}

// SubjectConnections implements store.Registry: strongly consistent Queries of the subject's
// partition (its index rows), PageSize rows a page.
func (s *Store) SubjectConnections(ctx context.Context, subject string) iter.Seq2[string, error] {
	query := func() *dynamo.Query {
		return s.registry.Get(attrPK, subjectPK(subject)).Range(attrSK, dynamo.BeginsWith, connPrefix).Consistent(true)
	}
	return queryRows(ctx, s, "connections of a subject", query, func(r subjectItem, now time.Time) (string, bool) {
		return r.ConnectionID, live(r.TTL, now)
	})
}

// Operations implements store.Registry: strongly consistent Queries of the connection's
// partition (its operation rows), PageSize rows a page.
func (s *Store) Operations(ctx context.Context, connectionID string) iter.Seq2[store.Subscription, error] {
	query := func() *dynamo.Query {
		return s.registry.Get(attrPK, opPK(connectionID)).Range(attrSK, dynamo.BeginsWith, opPrefix).Consistent(true)
	}
	return queryRows(ctx, s, "operations of "+connectionID, query, liveSubscription)
}

// DeleteConnection implements store.Registry: the connection row first, then the topic rows,
// then the operation rows, so that a subscribe racing the delete cannot leave a subscription
// behind (see below), an interrupted delete leaves no live topic row without its operation row,
// and a repeated one finishes the job.
func (s *Store) DeleteConnection(ctx context.Context, id string) error {
	// The connection row goes first. A subscribe that overlaps this delete stores its rows and
	// then re-reads the connection: either it finds the row gone and takes its subscription back,
	// or its rows were written before the row was deleted, and so before the Query below, which
	// then finds them. (Deleting the row last left a window in which neither saw the other.) A
	// crash after this first delete leaves rows of a connection that no longer exists: the
	// fan-out's GoneException, the next delete, or the TTL removes them.
	pk, sk := connRowKey(id)
	var old connItem
	switch err := s.registry.Delete(attrPK, pk).Range(attrSK, sk).OldValue(ctx, &old); {
	case errors.Is(err, dynamo.ErrNotFound):
	case err != nil:
		return fmt.Errorf("delete connection %s: %w", id, err)
	default:
		s.releaseSubject(ctx, old.Subject, id, old.Slot)
	}
	var rows []subItem
	err := s.registry.Get(attrPK, opPK(id)).Range(attrSK, dynamo.BeginsWith, opPrefix).Consistent(true).All(ctx, &rows)
	if err != nil {
		return fmt.Errorf("delete connection %s: list rows: %w", id, err)
	}
	var topics, ops []dynamo.Keyed
	for _, r := range rows {
		if r.Topic != "" {
			topics = append(topics, dynamo.Keys{topicPK(r.Topic), topicSK(id, r.ID)})
		}
		ops = append(ops, dynamo.Keys{r.PK, r.SK})
	}
	if err := s.deleteRows(ctx, topics); err != nil {
		return fmt.Errorf("delete connection %s: topic rows: %w", id, err)
	}
	if err := s.deleteRows(ctx, ops); err != nil {
		return fmt.Errorf("delete connection %s: operation rows: %w", id, err)
	}
	return nil
}

// TouchConnection implements store.Registry with one conditional UpdateItem: the row must exist,
// be live, and hold no lastSeenAt or an earlier one. As in AcknowledgeConnection, a failed
// condition is followed by a consistent read: a row that is absent or expired is ErrNotFound;
// otherwise the stored time is not earlier than at, and the touch is a no-op.
func (s *Store) TouchConnection(ctx context.Context, id string, at time.Time) error {
	if !at.After(time.Time{}) {
		// Not later than "never seen": nothing to record, only the existence to report.
		_, err := s.Connection(ctx, id)
		return err
	}
	pk, sk := connRowKey(id)
	err := s.registry.Update(attrPK, pk).Range(attrSK, sk).
		Set("lastSeenAt", sortableTime{at}).
		If("attribute_exists($) AND (attribute_not_exists($) OR $ > ?) AND (attribute_not_exists($) OR $ < ?)",
			attrPK, attrTTL, attrTTL, s.now().Unix(), "lastSeenAt", "lastSeenAt", sortableTime{at}).
		Run(ctx)
	if err == nil {
		return nil
	}
	if !dynamo.IsCondCheckFailed(err) {
		return fmt.Errorf("touch connection %s: %w", id, err)
	}
	if _, err := s.Connection(ctx, id); err != nil {
		return fmt.Errorf("touch: %w", err)
	}
	return nil
}

// Connections implements store.Registry: the shard partitions in turn, each read by Queries of
// PageSize rows continued from LastEvaluatedKey, one Query per page. The reads are eventually
// consistent: a connection created or deleted a moment before may be missed or still listed.
func (s *Store) Connections(ctx context.Context) iter.Seq2[store.Connection, error] {
	return func(yield func(store.Connection, error) bool) {
		for shard := range connShards {
			pk := connsPK(shard)
			query := func() *dynamo.Query { return s.registry.Get(attrPK, pk).Range(attrSK, dynamo.BeginsWith, connPrefix) }
			for c, err := range queryRows(ctx, s, "connections in "+pk, query, func(r connItem, _ time.Time) (store.Connection, bool) {
				return r.connection(), true
			}) {
				if !yield(c, err) || err != nil {
					return
				}
			}
		}
	}
}

// queryRows yields what keep makes of the rows query reads, PageSize rows a request, each request
// continued from the previous one's LastEvaluatedKey: the one paging loop of the registry's
// listings. keep leaves a row out by answering false (an expired row), now being the time of its
// page's read; what names the listing in errors.
func queryRows[R, T any](ctx context.Context, s *Store, what string, query func() *dynamo.Query, keep func(row R, now time.Time) (T, bool)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		var start dynamo.PagingKey
		for {
			if err := ctx.Err(); err != nil {
				yield(zero, err)
				return
			}
			q := query().SearchLimit(s.pageSize)
			if start != nil {
				q = q.StartFrom(start)
			}
			var page []R
			next, err := q.AllWithLastEvaluatedKey(ctx, &page)
			if err != nil {
				yield(zero, fmt.Errorf("%s: %w", what, err))
				return
			}
			now := s.now()
			for _, r := range page {
				if v, ok := keep(r, now); ok && !yield(v, nil) {
					return
				}
			}
			if len(next) == 0 {
				return
			}
			start = next
		}
	}
}

// deleteRows deletes registry rows with BatchWriteItem, 25 a request, resubmitting unprocessed
// items with backoff.
func (s *Store) deleteRows(ctx context.Context, keys []dynamo.Keyed) error {
	if len(keys) == 0 {
		return nil
	}
	_, err := s.registry.Batch(attrPK, attrSK).Write().Delete(keys...).Run(ctx)
	return err
}

// PutSubscription implements store.Registry. A subscription first takes its place in its
// connection's count (a conditional UpdateItem on the connection row: it exists, and its count is
// below its maximum); then the operation row is written, as the claim of the id; then the topic
// row. If the claim loses or the topic row cannot be written, what was done is taken back. A
// subscription replacing a live one gives that one's place back.
func (s *Store) PutSubscription(ctx context.Context, sub store.Subscription, replace bool) error {
	wrap := func(err error) error {
		return fmt.Errorf("put subscription %s/%s: %w", sub.ConnectionID, sub.ID, err)
	}
	op := opItem(sub)
	var old, prev subItem // the row read before a replace; the row the put replaced
	if replace {
		err := s.registry.Get(attrPK, op.PK).Range(attrSK, dynamo.Equal, op.SK).Consistent(true).One(ctx, &old)
		if err != nil && !errors.Is(err, dynamo.ErrNotFound) {
			return wrap(err)
		}
	}
	// A subscription replacing a live subscription takes over its place in the count.
	takeover := sub.Topic != "" && old.Topic != "" && live(old.TTL, s.now())
	counted := false // this put took a place in the connection's count
	if sub.Topic != "" && !takeover {
		var err error
		if counted, err = s.countSubscription(ctx, sub.ConnectionID); err != nil {
			if errors.Is(err, store.ErrLimit) && !replace {
				// A duplicate id is the client's protocol error, whatever the count says.
				var cur subItem
				if s.registry.Get(attrPK, op.PK).Range(attrSK, dynamo.Equal, op.SK).Consistent(true).One(ctx, &cur) == nil &&
					live(cur.TTL, s.now()) {
					return wrap(store.ErrConflict)
				}
			}
			return wrap(err)
		}
	}
	uncount := func() {
		if counted {
			s.uncountSubscription(ctx, sub.ConnectionID)
		}
	}
	var err error
	if replace {
		// Remove the running operation's topic row before replacing it, so an interruption
		// cannot leave the old subscription receiving changes.
		if err := s.deleteTopicRow(ctx, old, sub.Topic); err != nil {
			uncount()
			return wrap(err)
		}
		err = s.registry.Put(op).OldValue(ctx, &prev)
	} else {
		err = s.registry.Put(op).If(absentOrExpired, attrPK, attrTTL, s.now().Unix()).OldValue(ctx, &prev)
	}
	replacedSub := err == nil && prev.Topic != "" && live(prev.TTL, s.now())
	switch {
	case dynamo.IsCondCheckFailed(err):
		uncount()
		return wrap(store.ErrConflict)
	case errors.Is(err, dynamo.ErrNotFound): // there was no row to replace
	case err != nil:
		uncount()
		return wrap(err)
	case prev.Topic != old.Topic:
		// The row replaced (expired, or written by a racing replace) had a topic row not yet
		// removed.
		if err := s.deleteTopicRow(ctx, prev, sub.Topic); err != nil {
			return wrap(err)
		}
	}
	switch {
	case replacedSub && !takeover:
		s.uncountSubscription(ctx, sub.ConnectionID) // the replaced subscription's place
	case takeover && !replacedSub:
		// The subscription read before the put ended meanwhile, giving its place back: take one.
		if _, err := s.countSubscription(ctx, sub.ConnectionID); err != nil {
			s.withdraw(ctx, op)
			return wrap(err)
		}
	}
	if sub.Topic == "" {
		return nil
	}
	if err := s.registry.Put(topicItem(sub)).Run(ctx); err != nil {
		// Withdraw the claim, even if ctx is done: the id must not stay taken by a subscription
		// that receives nothing. Unless DynamoDB refused the put (a 4xx), it may have landed
		// after all, and the topic row goes too.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		errs := []error{err}
		if !refused(err) {
			if derr := s.registry.Delete(attrPK, topicPK(sub.Topic)).Range(attrSK, topicSK(sub.ConnectionID, sub.ID)).Run(cctx); derr != nil {
				errs = append(errs, fmt.Errorf("withdraw topic row: %w", derr))
			}
		}
		if derr := s.registry.Delete(attrPK, op.PK).Range(attrSK, op.SK).Run(cctx); derr != nil {
			errs = append(errs, fmt.Errorf("withdraw claim: %w", derr))
		}
		uncount()
		return wrap(errors.Join(errs...))
	}
	return nil
}

// withdraw deletes an operation row this call wrote, even if ctx is done.
func (s *Store) withdraw(ctx context.Context, op subItem) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = s.registry.Delete(attrPK, op.PK).Range(attrSK, op.SK).Run(cctx)
}

// countSubscription takes a place in a connection's subscription count: one conditional
// UpdateItem (the row exists, is live, and counts fewer than its maximum). It reports whether it
// counted: a connection that is absent or expired bounds nothing. ErrLimit when it is full.
func (s *Store) countSubscription(ctx context.Context, connID string) (bool, error) {
	pk, sk := connRowKey(connID)
	err := s.registry.Update(attrPK, pk).Range(attrSK, sk).Add("subs", 1).
		If("attribute_exists($) AND (attribute_not_exists($) OR $ > ?) AND (attribute_not_exists($) OR attribute_not_exists($) OR $ < $)",
			attrPK, attrTTL, attrTTL, s.now().Unix(), "maxSubs", "subs", "subs", "maxSubs").
		Run(ctx)
	if err == nil {
		return true, nil
	}
	if !dynamo.IsCondCheckFailed(err) {
		return false, fmt.Errorf("count subscription: %w", err)
	}
	c, err := s.Connection(ctx, connID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	case err != nil:
		return false, err
	}
	return false, fmt.Errorf("the connection has %d subscriptions, the most it may have: %w", c.Subscriptions, store.ErrLimit)
}

// uncountSubscription gives a place back; a connection that is gone has nothing to give back. A
// failure leaves the count one too high (never too low), and is otherwise harmless: the count
// lives as long as the connection.
func (s *Store) uncountSubscription(ctx context.Context, connID string) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	pk, sk := connRowKey(connID)
	_ = s.registry.Update(attrPK, pk).Range(attrSK, sk).Add("subs", -1).
		If("attribute_exists($) AND $ > ?", attrPK, "subs", 0).Run(cctx)
}

// refused reports whether DynamoDB answered a request with a client error (4xx), which it does
// only for requests it did not apply; after a 5xx or no answer, the write may have happened.
func refused(err error) bool {
	var resp interface{ HTTPStatusCode() int }
	return errors.As(err, &resp) && resp.HTTPStatusCode() >= 400 && resp.HTTPStatusCode() < 500
}

// deleteTopicRow deletes the topic row of the operation row old, unless old has no topic, or its
// topic is keep (the row about to be overwritten in place).
func (s *Store) deleteTopicRow(ctx context.Context, old subItem, keep string) error {
	if old.Topic == "" || old.Topic == keep {
		return nil
	}
	err := s.registry.Delete(attrPK, topicPK(old.Topic)).Range(attrSK, topicSK(old.ConnectionID, old.ID)).Run(ctx)
	if err != nil {
		return fmt.Errorf("delete topic row of %s: %w", old.Topic, err)
	}
	return nil
}

// DeleteSubscription implements store.Registry. It reports true only to the caller whose delete
// removed a live operation row, so of racing completions of one id exactly one sees it active.
func (s *Store) DeleteSubscription(ctx context.Context, connectionID, id string) (bool, error) {
	wrap := func(err error) error {
		return fmt.Errorf("delete subscription %s/%s: %w", connectionID, id, err)
	}
	pk, sk := opPK(connectionID), opSK(id)
	var old subItem
	err := s.registry.Get(attrPK, pk).Range(attrSK, dynamo.Equal, sk).Consistent(true).One(ctx, &old)
	switch {
	case errors.Is(err, dynamo.ErrNotFound):
		return false, nil
	case err != nil:
		return false, wrap(err)
	}
	if err := s.deleteTopicRow(ctx, old, ""); err != nil {
		return false, wrap(err)
	}
	var removed subItem
	err = s.registry.Delete(attrPK, pk).Range(attrSK, sk).OldValue(ctx, &removed)
	switch {
	case errors.Is(err, dynamo.ErrNotFound): // deleted meanwhile by someone else
		return false, nil
	case err != nil:
		return false, wrap(err)
	}
	if removed.Topic != old.Topic { // replaced meanwhile: its topic row goes too
		if err := s.deleteTopicRow(ctx, removed, ""); err != nil {
			return false, wrap(err)
		}
	}
	active := live(removed.TTL, s.now())
	if active && removed.Topic != "" {
		s.uncountSubscription(ctx, connectionID)
	}
	return active, nil
}

// Subscriptions implements store.Registry: the topic's pages (TopicPages), one strongly
// consistent Query of PageSize rows each.
func (s *Store) Subscriptions(ctx context.Context, topic string) iter.Seq2[store.Subscription, error] {
	return store.PageSubscriptions(s.TopicPages(ctx, topic, "", ""))
}
