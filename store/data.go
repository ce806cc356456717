package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// MaxQueryItems bounds the limit of one QueryItems (and the last of Items.Query).
const MaxQueryItems = 1000

// Data is the app data table: items of any type, keyed by pk (partition) and sk (sort key), as
// DynamoDB holds them. Every successful write is reported on the change stream exactly once, as
// the NEW_AND_OLD_IMAGES record DynamoDB would emit; failed writes report nothing.
//
// Items are checked and stored as NormalizeItem describes (numbers in DynamoDB's canonical form).
// An item whose ttl (epoch seconds) has passed reads as absent everywhere: it is not found, not
// listed, and does not block a create. DynamoDB removes such items lazily; until then a create
// over one replaces it, which the stream reports as a MODIFY of the expired item, as DynamoDB
// does. Invalid items, keys and limits are refused with ErrInvalid before any I/O.
type Data interface {
	// CreateItem stores a new item; ErrConflict if a live item has its key.
	CreateItem(ctx context.Context, it Item) error
	// GetItem reads an item with a strongly consistent read; ErrNotFound if absent or expired.
	GetItem(ctx context.Context, pk, sk string) (Item, error)
	// ReplaceItem replaces the whole item at its key, which must hold a live item (ErrNotFound
	// otherwise), and returns the item it replaced. Of concurrent replaces, the last one wins.
	ReplaceItem(ctx context.Context, it Item) (old Item, err error)
	// DeleteItem removes an item and returns it as it was; ErrNotFound if absent or expired.
	DeleteItem(ctx context.Context, pk, sk string) (old Item, err error)
	// QueryItems returns up to limit (1 to MaxQueryItems; 0 returns none) live items of partition
	// pk whose sort key starts with skPrefix ("" for all), in ascending sort key order (byte order
	// of the UTF-8 keys), or descending if descending is set, read with strongly consistent reads.
	QueryItems(ctx context.Context, pk, skPrefix string, limit int, descending bool) ([]Item, error)
}

// ItemLive reports whether an item is live at now: it has no ttl attribute, or one that is not a
// number (DynamoDB's TTL ignores those), or now is before it, to the whole second. Both backends
// and DynamoDB conditions use this rule.
func ItemLive(it Item, now time.Time) bool {
	n, ok := it[AttrTTL].(*types.AttributeValueMemberN)
	if !ok {
		return true
	}
	ttl, err := strconv.ParseFloat(n.Value, 64)
	if err != nil {
		return true
	}
	return float64(now.Unix()) < ttl
}

// CheckLimit checks a QueryItems limit; errors wrap ErrInvalid.
func CheckLimit(limit int) error {
	if limit < 0 || limit > MaxQueryItems {
		return fmt.Errorf("%w: limit %d is not between 0 and %d", ErrInvalid, limit, MaxQueryItems)
	}
	return nil
}

// CheckQuery checks the arguments of a QueryItems as every backend must before any I/O: the
// limit, and pk as a data table key. Errors wrap ErrInvalid.
func CheckQuery(pk string, limit int) error {
	if err := CheckLimit(limit); err != nil {
		return fmt.Errorf("query items: %w", err)
	}
	if err := CheckKey(pk, "-"); err != nil {
		return fmt.Errorf("query items: %w", err)
	}
	return nil
}

// Items is the typed view of one item type in the data table: values of T (a struct whose JSON
// encoding holds the type's key fields) stored with their keys and __typename, read back decoded.
// It is safe for concurrent use if its Data is.
type Items[T any] struct {
	data Data
	typ  ItemType
}

// NewItems returns the items of type typ in d. It panics if typ is invalid (see
// ItemType.Validate): item types are fixed when the program starts.
func NewItems[T any](d Data, typ ItemType) *Items[T] {
	if err := typ.Validate(); err != nil {
		panic(err)
	}
	return &Items[T]{data: d, typ: typ}
}

// Type returns the item type.
func (x *Items[T]) Type() ItemType { return x.typ }

// Create stores a new item; ErrConflict if one with its key exists.
func (x *Items[T]) Create(ctx context.Context, v *T) error {
	it, err := x.typ.Encode(v)
	if err != nil {
		return err
	}
	return x.data.CreateItem(ctx, it)
}

// Get reads the item whose key fields are key; ErrNotFound if absent.
func (x *Items[T]) Get(ctx context.Context, key map[string]any) (T, error) {
	var zero T
	pk, sk, err := x.lookupKey(key)
	if err != nil {
		return zero, err
	}
	it, err := x.data.GetItem(ctx, pk, sk)
	if err != nil {
		return zero, err
	}
	return x.decode(it)
}

// Replace replaces the item with v's key by v, and returns the item it replaced; ErrNotFound if
// there is none.
func (x *Items[T]) Replace(ctx context.Context, v *T) (old T, err error) {
	it, err := x.typ.Encode(v)
	if err != nil {
		return old, err
	}
	prev, err := x.data.ReplaceItem(ctx, it)
	if err != nil {
		return old, err
	}
	return x.decode(prev)
}

// Delete removes the item whose key fields are key and returns it; ErrNotFound if absent.
func (x *Items[T]) Delete(ctx context.Context, key map[string]any) (old T, err error) {
	pk, sk, err := x.lookupKey(key)
	if err != nil {
		return old, err
	}
	prev, err := x.data.DeleteItem(ctx, pk, sk)
	if err != nil {
		return old, err
	}
	return x.decode(prev)
}

// Query returns the last `last` items (0 to MaxQueryItems; in sort key order) of the partition
// whose fields are partition, oldest first: the partition key is made from partition, and the
// items are those whose sort key starts with the sort key template's literal prefix.
func (x *Items[T]) Query(ctx context.Context, partition map[string]any, last int) ([]T, error) {
	if err := CheckLimit(last); err != nil {
		return nil, fmt.Errorf("query %s: %w", x.typ.Name, err)
	}
	pk, err := x.typ.PK.Format(partition)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", x.typ.Name, err)
	}
	if len(pk) > MaxPKBytes {
		return nil, nil // no item has such a key
	}
	items, err := x.data.QueryItems(ctx, pk, x.typ.SK.Prefix(), last, true)
	if err != nil {
		return nil, err
	}
	out := make([]T, len(items))
	for i, it := range items {
		if out[len(items)-1-i], err = x.decode(it); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// lookupKey makes the key of a read or delete. A key longer than DynamoDB allows belongs to no
// item: ErrNotFound, not ErrInvalid, since no such item can exist.
func (x *Items[T]) lookupKey(key map[string]any) (pk, sk string, err error) {
	if pk, err = x.typ.PK.Format(key); err != nil {
		return "", "", fmt.Errorf("%s: %w", x.typ.Name, err)
	}
	if sk, err = x.typ.SK.Format(key); err != nil {
		return "", "", fmt.Errorf("%s: %w", x.typ.Name, err)
	}
	if len(pk) > MaxPKBytes || len(sk) > MaxSKBytes {
		return "", "", fmt.Errorf("%s with a key of %d+%d bytes: %w", x.typ.Name, len(pk), len(sk), ErrNotFound)
	}
	return pk, sk, nil
}

func (x *Items[T]) decode(it Item) (T, error) {
	var v T
	err := x.typ.Decode(it, &v)
	return v, err
}
