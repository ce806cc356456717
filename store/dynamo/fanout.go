package dynamo

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/guregu/dynamo/v2"
	"github.com/realtime-gql/lambdaws/store"
)

// The fan-out state (store.FanoutState), in the registry table.
//
// A topic cursor is the sort key of a topic row, "<connectionId>#<operationId>": a page of a
// topic is one strongly consistent Query of its partition, continued from the cursor as the
// ExclusiveStartKey and bounded by sk <= until, Limit PageSize; its Next is the LastEvaluatedKey's
// sk. TopicCursors Queries the same range projecting sk only (eventually consistent: a boundary
// needs no fresher view), one request per 1 MB.
//
// Progress rows:
//
//	row          pk                         sk            holds
//	progress     "fanout#<key>"             "progress"    cursor, until, done, parts, expiresAt
//
// with ttl like every registry row. They are read with BatchGetItem (strongly consistent, 100
// keys a request) and written with BatchWriteItem (25 a request); both resubmit unprocessed keys
// and items with backoff (guregu/dynamo does), so a throttled batch is finished, not half done.

const (
	progressPrefix = "fanout#"
	progressSK     = "progress"
)

func progressPK(key string) string { return progressPrefix + key }

// progressItem is a progress row of the registry table.
type progressItem struct {
	PK        string    `dynamo:"pk,hash"`
	SK        string    `dynamo:"sk,range"`
	TTL       int64     `dynamo:"ttl,omitempty"`
	Cursor    string    `dynamo:"cursor,omitempty"`
	Until     string    `dynamo:"until,omitempty"`
	Done      bool      `dynamo:"done,omitempty"`
	Parts     int       `dynamo:"parts,omitempty"`
	ExpiresAt time.Time `dynamo:"expiresAt,omitempty"`
}

// skOf returns the sort key of a paging key; "" when there is none.
func skOf(k dynamo.PagingKey) string {
	if s, ok := k[attrSK].(*types.AttributeValueMemberS); ok {
		return s.Value
	}
	return ""
}

// topicQuery is a Query of a topic's rows in (after, until].
func (s *Store) topicQuery(topic, after, until string) *dynamo.Query {
	q := s.registry.Get(attrPK, topicPK(topic))
	if until != "" {
		q = q.Range(attrSK, dynamo.LessOrEqual, until)
	}
	if after != "" {
		q = q.StartFrom(dynamo.PagingKey{
			attrPK: &types.AttributeValueMemberS{Value: topicPK(topic)},
			attrSK: &types.AttributeValueMemberS{Value: after},
		})
	}
	return q
}

// TopicPages implements store.FanoutState. A page's Query projects topicPageAttrs, and its rows
// are decoded one by one into a reused row, then kept in a slice of the page's exact length.
func (s *Store) TopicPages(ctx context.Context, topic, after, until string) iter.Seq2[store.Page, error] {
	return func(yield func(store.Page, error) bool) {
		var scratch []store.Subscription // reused from page to page
		for {
			if err := ctx.Err(); err != nil {
				yield(store.Page{}, err)
				return
			}
			it := s.topicQuery(topic, after, until).Project(topicPageAttrs...).Consistent(true).SearchLimit(s.pageSize).Iter()
			now := s.now()
			scratch = scratch[:0]
			var row topicRow
			for it.Next(ctx, &row) {
				if live(row.TTL, now) {
					sub := subItem(row).subscription()
					sub.Topic = topic
					scratch = append(scratch, sub)
				}
			}
			next, err := it.LastEvaluatedKey(ctx)
			if err = errors.Join(it.Err(), err); err != nil {
				yield(store.Page{}, fmt.Errorf("pages of %s: %w", topic, err))
				return
			}
			pg := store.Page{Next: skOf(next)}
			if len(scratch) > 0 {
				pg.Subs = slices.Clone(scratch)
			}
			if !yield(pg, nil) || pg.Next == "" {
				return
			}
			after = pg.Next
		}
	}
}

// topicPageAttrs are the attributes of a topic row that TopicPages reads: every field of a
// subscription but the row's keys and its topic, which the reader knows. DynamoDB charges a
// read for the whole item either way; what is left out is neither sent nor decoded (three of
// ten attributes of a typical row).
var topicPageAttrs = attrsOf(reflect.TypeFor[subItem](), attrPK, attrSK, "topic")

// topicRow is a topic row as TopicPages reads it, decoding itself (guregu/dynamo's
// ItemUnmarshaler): the library's reflective decoder allocates a set of the fields it has seen
// for every item, as much again as the row's own values. TestTopicRowDecodes holds it equal to
// the library's decoding of a subItem.
type topicRow subItem

// UnmarshalDynamoItem implements dynamo.ItemUnmarshaler. Attributes it does not know are left
// out, as the library's decoder leaves them.
func (r *topicRow) UnmarshalDynamoItem(item dynamo.Item) error {
	*r = topicRow{}
	for name, av := range item {
		var err error
		switch name {
		case attrPK:
			err = decodeS(av, &r.PK)
		case attrSK:
			err = decodeS(av, &r.SK)
		case attrTTL:
			n, ok := av.(*types.AttributeValueMemberN)
			if !ok {
				err = fmt.Errorf("%T, want N", av)
			} else {
				r.TTL, err = strconv.ParseInt(n.Value, 10, 64)
			}
		case "connectionId":
			err = decodeS(av, &r.ConnectionID)
		case "id":
			err = decodeS(av, &r.ID)
		case "topic":
			err = decodeS(av, &r.Topic)
		case "subprotocol":
			err = decodeS(av, &r.Subprotocol)
		case "query":
			err = decodeS(av, &r.Query)
		case "operationName":
			err = decodeS(av, &r.OperationName)
		case "variables":
			err = decodeS(av, &r.Variables)
		case "principal":
			err = decodeS(av, &r.Principal)
		case "filter":
			err = decodeS(av, &r.Filter)
		case "createdAt":
			err = decodeTime(av, &r.CreatedAt)
		case "expiresAt":
			err = decodeTime(av, &r.ExpiresAt)
		}
		if err != nil {
			return fmt.Errorf("dynamo: topic row attribute %s: %w", name, err)
		}
	}
	return nil
}

func decodeS(av types.AttributeValue, dst *string) error {
	s, ok := av.(*types.AttributeValueMemberS)
	if !ok {
		return fmt.Errorf("%T, want S", av)
	}
	*dst = s.Value
	return nil
}

// decodeTime decodes a time as the library stores one: its MarshalText form (RFC 3339), an S.
func decodeTime(av types.AttributeValue, dst *time.Time) error {
	s, ok := av.(*types.AttributeValueMemberS)
	if !ok {
		return fmt.Errorf("%T, want S", av)
	}
	t, err := time.Parse(time.RFC3339, s.Value)
	*dst = t
	return err
}

// attrsOf lists the attribute names of an item type's fields (their dynamo tags), except those
// named.
func attrsOf(t reflect.Type, except ...string) []string {
	var out []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("dynamo"), ",")
		if name == "" || name == "-" {
			name = f.Name
		}
		if !slices.Contains(except, name) {
			out = append(out, name)
		}
	}
	return out
}

// TopicSubscriptions implements store.FanoutState with BatchGetItem.
func (s *Store) TopicSubscriptions(ctx context.Context, topic string, keys []store.SubKey) ([]store.Subscription, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	seen := make(map[store.SubKey]bool, len(keys))
	batch := make([]dynamo.Keyed, 0, len(keys))
	for _, k := range keys {
		if !seen[k] {
			seen[k] = true
			batch = append(batch, dynamo.Keys{topicPK(topic), topicSK(k.ConnectionID, k.ID)})
		}
	}
	var rows []subItem
	err := s.registry.Batch(attrPK, attrSK).Get(batch...).Consistent(true).All(ctx, &rows)
	if err != nil && !errors.Is(err, dynamo.ErrNotFound) {
		return nil, fmt.Errorf("subscriptions of %s: %w", topic, err)
	}
	now := s.now()
	out := make([]store.Subscription, 0, len(rows))
	for _, r := range rows {
		if sub, ok := liveSubscription(r, now); ok {
			out = append(out, sub)
		}
	}
	return out, nil
}

// TopicCursors implements store.FanoutState: Queries of the range projecting sk only. A boundary
// at the range's last subscription is left out.
func (s *Store) TopicCursors(ctx context.Context, topic, after, until string, every int) ([]string, error) {
	if every < 1 {
		return nil, fmt.Errorf("%w: cursors every %d", store.ErrInvalid, every)
	}
	var out []string
	n, last := 0, ""
	for {
		var rows []struct {
			SK string `dynamo:"sk"`
		}
		next, err := s.topicQuery(topic, after, until).Project(attrSK).AllWithLastEvaluatedKey(ctx, &rows)
		if err != nil {
			return nil, fmt.Errorf("cursors of %s: %w", topic, err)
		}
		for _, r := range rows {
			if n++; n%every == 0 {
				out = append(out, r.SK)
			}
			last = r.SK
		}
		if after = skOf(next); after == "" {
			if len(out) > 0 && out[len(out)-1] == last {
				out = out[:len(out)-1] // nothing after it: no empty range (an empty chunk) follows
			}
			return out, nil
		}
	}
}

// FanoutProgress implements store.FanoutState with BatchGetItem.
func (s *Store) FanoutProgress(ctx context.Context, keys []string) (map[string]store.Progress, error) {
	out := make(map[string]store.Progress, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	seen := make(map[string]bool, len(keys))
	batch := make([]dynamo.Keyed, 0, len(keys))
	for _, k := range keys {
		if !seen[k] {
			seen[k] = true
			batch = append(batch, dynamo.Keys{progressPK(k), progressSK})
		}
	}
	var rows []progressItem
	err := s.registry.Batch(attrPK, attrSK).Get(batch...).Consistent(true).All(ctx, &rows)
	if err != nil && !errors.Is(err, dynamo.ErrNotFound) {
		return nil, fmt.Errorf("fan-out progress: %w", err)
	}
	now := s.now()
	for _, r := range rows {
		if !live(r.TTL, now) {
			continue
		}
		k := r.PK[len(progressPrefix):]
		out[k] = store.Progress{Key: k, Cursor: r.Cursor, Until: r.Until, Done: r.Done, Parts: r.Parts, ExpiresAt: r.ExpiresAt}
	}
	return out, nil
}

// SaveFanoutProgress implements store.FanoutState with BatchWriteItem.
func (s *Store) SaveFanoutProgress(ctx context.Context, rows []store.Progress) error {
	if err := store.CheckProgress(rows); err != nil {
		return err
	}
	if len(rows) == 0 {
		return nil
	}
	// BatchWriteItem refuses two writes to one key in a request: the last row of a key wins.
	last := make(map[string]int, len(rows))
	for i, r := range rows {
		last[r.Key] = i
	}
	items := make([]any, 0, len(last))
	for i, r := range rows {
		if last[r.Key] == i {
			items = append(items, progressItem{PK: progressPK(r.Key), SK: progressSK, TTL: ttlOf(r.ExpiresAt),
				Cursor: r.Cursor, Until: r.Until, Done: r.Done, Parts: r.Parts, ExpiresAt: r.ExpiresAt.UTC()})
		}
	}
	if _, err := s.registry.Batch(attrPK, attrSK).Write().Put(items...).Run(ctx); err != nil {
		return fmt.Errorf("save fan-out progress: %w", err)
	}
	return nil
}
