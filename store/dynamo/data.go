package dynamo

import (
	"context"
	"errors"
	"fmt"

	"github.com/guregu/dynamo/v2"
	"github.com/realtime-gql/lambdaws/store"
	"github.com/realtime-gql/lambdaws/store/stream"
)

var _ store.Data = (*Store)(nil)

// liveItem is the condition that the key holds a live item: it exists, and has no ttl or one that
// has not passed (the rule of store.ItemLive). Arguments: pk, ttl, ttl, now.
const liveItem = "attribute_exists($) AND (attribute_not_exists($) OR $ > ?)"

// CreateItem implements store.Data: one PutItem on the condition that no live item has the key
// (absentOrExpired), returning the item it replaced (ALL_OLD), which is an expired one if any: the
// stream reports that put as a MODIFY, and so does OnChange.
func (s *Store) CreateItem(ctx context.Context, it store.Item) error {
	it, pk, sk, err := store.NormalizeItem(it)
	if err != nil {
		return fmt.Errorf("create item: %w", err)
	}
	var old dynamo.Item
	err = s.data.Put(it).If(absentOrExpired, attrPK, attrTTL, s.now().Unix()).OldValue(ctx, &old)
	switch {
	case errors.Is(err, dynamo.ErrNotFound): // nothing was there
		old = nil
	case dynamo.IsCondCheckFailed(err):
		return fmt.Errorf("create item %q/%q: %w", pk, sk, store.ErrConflict)
	case err != nil:
		return fmt.Errorf("create item %q/%q: %w", pk, sk, err)
	}
	if old != nil {
		s.changed(stream.Modify, old, it)
	} else {
		s.changed(stream.Insert, nil, it)
	}
	return nil
}

// GetItem implements store.Data, with a strongly consistent read.
func (s *Store) GetItem(ctx context.Context, pk, sk string) (store.Item, error) {
	if err := store.CheckKey(pk, sk); err != nil {
		return nil, fmt.Errorf("get item: %w", err)
	}
	var it dynamo.Item
	err := s.data.Get(attrPK, pk).Range(attrSK, dynamo.Equal, sk).Consistent(true).One(ctx, &it)
	switch {
	case errors.Is(err, dynamo.ErrNotFound):
		return nil, fmt.Errorf("item %q/%q: %w", pk, sk, store.ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("item %q/%q: %w", pk, sk, err)
	case !store.ItemLive(it, s.now()):
		return nil, fmt.Errorf("item %q/%q: %w", pk, sk, store.ErrNotFound)
	}
	return it, nil
}

// ReplaceItem implements store.Data: one PutItem on the condition liveItem, returning the old
// item (ALL_OLD).
func (s *Store) ReplaceItem(ctx context.Context, it store.Item) (store.Item, error) {
	it, pk, sk, err := store.NormalizeItem(it)
	if err != nil {
		return nil, fmt.Errorf("replace item: %w", err)
	}
	var old dynamo.Item
	err = s.data.Put(it).If(liveItem, attrPK, attrTTL, attrTTL, s.now().Unix()).OldValue(ctx, &old)
	switch {
	case dynamo.IsCondCheckFailed(err):
		return nil, fmt.Errorf("replace item %q/%q: %w", pk, sk, store.ErrNotFound)
	case err != nil: // including ErrNotFound (no old item), which the condition rules out
		return nil, fmt.Errorf("replace item %q/%q: %w", pk, sk, err)
	}
	s.changed(stream.Modify, old, it)
	return old, nil
}

// DeleteItem implements store.Data: one DeleteItem on the condition liveItem, returning the old
// item (ALL_OLD).
func (s *Store) DeleteItem(ctx context.Context, pk, sk string) (store.Item, error) {
	if err := store.CheckKey(pk, sk); err != nil {
		return nil, fmt.Errorf("delete item: %w", err)
	}
	var old dynamo.Item
	err := s.data.Delete(attrPK, pk).Range(attrSK, sk).If(liveItem, attrPK, attrTTL, attrTTL, s.now().Unix()).OldValue(ctx, &old)
	switch {
	case dynamo.IsCondCheckFailed(err):
		return nil, fmt.Errorf("delete item %q/%q: %w", pk, sk, store.ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("delete item %q/%q: %w", pk, sk, err)
	}
	s.changed(stream.Remove, old, nil)
	return old, nil
}

// QueryItems implements store.Data: strongly consistent Queries of the partition (with
// begins_with on sk when skPrefix is set) in the requested order, each for as many items as are
// still missing, continued from LastEvaluatedKey; expired items are left out.
func (s *Store) QueryItems(ctx context.Context, pk, skPrefix string, limit int, descending bool) ([]store.Item, error) {
	if err := store.CheckQuery(pk, limit); err != nil {
		return nil, err
	}
	var out []store.Item
	now := s.now()
	var start dynamo.PagingKey
	for len(out) < limit {
		q := s.data.Get(attrPK, pk).Consistent(true).SearchLimit(limit - len(out))
		if skPrefix != "" {
			q = q.Range(attrSK, dynamo.BeginsWith, skPrefix)
		}
		if descending {
			q = q.Order(dynamo.Descending)
		}
		if start != nil {
			q = q.StartFrom(start)
		}
		var page []dynamo.Item
		next, err := q.AllWithLastEvaluatedKey(ctx, &page)
		if err != nil {
			return nil, fmt.Errorf("query items of %q: %w", pk, err)
		}
		for _, it := range page {
			if store.ItemLive(it, now) {
				out = append(out, it)
			}
		}
		if len(next) == 0 {
			break
		}
		start = next
	}
	return out, nil
}

// changed reports a successful write to OnChange.
func (s *Store) changed(kind stream.ChangeKind, old, new store.Item) {
	if s.onChange != nil {
		s.onChange(kind, old, new)
	}
}
