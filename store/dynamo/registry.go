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
	ConnectedAt time.Time       `dynamo:"connectedAt,omitempty"`
	AckedAt     time.Time       `dynamo:"ackedAt,omitempty"`
	LastSeenAt  sortableTime    `dynamo:"lastSeenAt,omitempty"`
	ExpiresAt   time.Time       `dynamo:"expiresAt,omitempty"`
}

func newConnItem(c store.Connection) connItem {
	pk, sk := connRowKey(c.ID)
	return connItem{PK: pk, SK: sk, TTL: ttlOf(c.ExpiresAt), ID: c.ID,
		Subprotocol: c.Subprotocol, State: c.State, Principal: string(c.Principal),
		ConnectedAt: c.ConnectedAt.UTC(), AckedAt: c.AckedAt.UTC(), LastSeenAt: sortableTime{c.LastSeenAt.UTC()},
		ExpiresAt: c.ExpiresAt.UTC()}
}

func (it connItem) connection() store.Connection {
	return store.Connection{ID: it.ID, Subprotocol: it.Subprotocol, State: it.State,
		Principal: rawJSON(it.Principal), ConnectedAt: it.ConnectedAt, AckedAt: it.AckedAt,
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

// AcknowledgeConnection implements store.Registry. The condition cannot tell why it failed
// (ReturnValuesOnConditionCheckFailure would, but dynalite ignores it), so a failure is followed
// by a consistent read: a row that is absent or expired is ErrNotFound, any other ErrConflict.
func (s *Store) AcknowledgeConnection(ctx context.Context, id string, principal json.RawMessage, at time.Time) error {
	pk, sk := connRowKey(id)
	u := s.registry.Update(attrPK, pk).Range(attrSK, sk).
		Set("state", store.StateReady).
		Set("ackedAt", at.UTC())
	if len(principal) > 0 {
		u.Set("principal", string(principal))
	} else {
		u.Remove("principal")
	}
	u.If("attribute_exists($) AND $ = ? AND (attribute_not_exists($) OR $ > ?)",
		attrPK, "state", store.StatePending, attrTTL, attrTTL, s.now().Unix())
	err := u.Run(ctx)
	if err == nil {
		return nil
	}
	if !dynamo.IsCondCheckFailed(err) {
		return fmt.Errorf("acknowledge connection %s: %w", id, err)
	}
	if _, err := s.Connection(ctx, id); err != nil {
		return fmt.Errorf("acknowledge: %w", err)
	}
	return fmt.Errorf("acknowledge connection %s: not pending: %w", id, store.ErrConflict)
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
	if err := s.registry.Delete(attrPK, pk).Range(attrSK, sk).Run(ctx); err != nil {
		return fmt.Errorf("delete connection %s: %w", id, err)
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
			var start dynamo.PagingKey
			for {
				if err := ctx.Err(); err != nil {
					yield(store.Connection{}, err)
					return
				}
				q := s.registry.Get(attrPK, pk).Range(attrSK, dynamo.BeginsWith, connPrefix).SearchLimit(s.pageSize)
				if start != nil {
					q = q.StartFrom(start)
				}
				var page []connItem
				next, err := q.AllWithLastEvaluatedKey(ctx, &page)
				if err != nil {
					yield(store.Connection{}, fmt.Errorf("connections in %s: %w", pk, err))
					return
				}
				for _, r := range page {
					if !yield(r.connection(), nil) {
						return
					}
				}
				if len(next) == 0 {
					break
				}
				start = next
			}
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

// PutSubscription implements store.Registry. The operation row is written first, as the claim of
// the id; then the topic row. If the topic row cannot be written, the claim is withdrawn.
func (s *Store) PutSubscription(ctx context.Context, sub store.Subscription, replace bool) error {
	wrap := func(err error) error {
		return fmt.Errorf("put subscription %s/%s: %w", sub.ConnectionID, sub.ID, err)
	}
	op := opItem(sub)
	var old, prev subItem // the row read before a replace; the row the put replaced
	var err error
	if replace {
		// Remove the running operation's topic row before replacing it, so an interruption
		// cannot leave the old subscription receiving changes.
		err = s.registry.Get(attrPK, op.PK).Range(attrSK, dynamo.Equal, op.SK).Consistent(true).One(ctx, &old)
		switch {
		case err == nil:
			if err := s.deleteTopicRow(ctx, old, sub.Topic); err != nil {
				return wrap(err)
			}
		case !errors.Is(err, dynamo.ErrNotFound):
			return wrap(err)
		}
		err = s.registry.Put(op).OldValue(ctx, &prev)
	} else {
		err = s.registry.Put(op).If(absentOrExpired, attrPK, attrTTL, s.now().Unix()).OldValue(ctx, &prev)
	}
	switch {
	case dynamo.IsCondCheckFailed(err):
		return wrap(store.ErrConflict)
	case errors.Is(err, dynamo.ErrNotFound): // there was no row to replace
	case err != nil:
		return wrap(err)
	case prev.Topic != old.Topic:
		// The row replaced (expired, or written by a racing replace) had a topic row not yet
		// removed.
		if err := s.deleteTopicRow(ctx, prev, sub.Topic); err != nil {
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
		return wrap(errors.Join(errs...))
	}
	return nil
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
	return live(removed.TTL, s.now()), nil
}

// Subscriptions implements store.Registry: one strongly consistent Query of the topic's
// partition per page of PageSize rows, continued from its LastEvaluatedKey.
func (s *Store) Subscriptions(ctx context.Context, topic string) iter.Seq2[store.Subscription, error] {
	return func(yield func(store.Subscription, error) bool) {
		var start dynamo.PagingKey
		for {
			if err := ctx.Err(); err != nil {
				yield(store.Subscription{}, err)
				return
			}
			q := s.registry.Get(attrPK, topicPK(topic)).Consistent(true).SearchLimit(s.pageSize)
			if start != nil {
				q = q.StartFrom(start)
			}
			var page []subItem
			next, err := q.AllWithLastEvaluatedKey(ctx, &page)
			if err != nil {
				yield(store.Subscription{}, fmt.Errorf("subscriptions of %s: %w", topic, err))
				return
			}
			now := s.now()
			for _, r := range page {
				if live(r.TTL, now) && !yield(r.subscription(), nil) {
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
