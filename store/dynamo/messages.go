package dynamo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/guregu/dynamo/v2"
	"github.com/realtime-gql/lambdaws/store"
)

// PutMessage implements store.Messages.
func (s *Store) PutMessage(ctx context.Context, m store.Message) error {
	item, err := store.MessageItem(m)
	if err != nil {
		return err
	}
	err = s.data.Put(item).If("attribute_not_exists($)", attrPK).Run(ctx)
	switch {
	case dynamo.IsCondCheckFailed(err):
		return fmt.Errorf("put message %s/%s: %w", m.RoomID, m.ID, store.ErrConflict)
	case err != nil:
		return fmt.Errorf("put message %s/%s: %w", m.RoomID, m.ID, err)
	}
	s.changed(store.Insert, nil, &m)
	return nil
}

// Message implements store.Messages, with a strongly consistent read.
func (s *Store) Message(ctx context.Context, roomID, id string) (store.Message, error) {
	pk, sk := store.MessageKey(roomID, id)
	var item dynamo.Item
	err := s.data.Get(attrPK, pk).Range(attrSK, dynamo.Equal, sk).Consistent(true).One(ctx, &item)
	switch {
	case errors.Is(err, dynamo.ErrNotFound):
		return store.Message{}, fmt.Errorf("message %s/%s: %w", roomID, id, store.ErrNotFound)
	case err != nil:
		return store.Message{}, fmt.Errorf("message %s/%s: %w", roomID, id, err)
	}
	return store.MessageFromItem(item)
}

// Messages implements store.Messages: the room's partition read newest first, with strongly
// consistent reads, until last messages are found; then reversed.
func (s *Store) Messages(ctx context.Context, roomID string, last int) ([]store.Message, error) {
	out := make([]store.Message, 0, min(max(last, 0), 64))
	pk, msgPrefix := store.MessageKey(roomID, "")
	var start dynamo.PagingKey
	for len(out) < last {
		q := s.data.Get(attrPK, pk).Range(attrSK, dynamo.BeginsWith, msgPrefix).
			Order(dynamo.Descending).Consistent(true).SearchLimit(last - len(out))
		if start != nil {
			q = q.StartFrom(start)
		}
		var page []dynamo.Item
		next, err := q.AllWithLastEvaluatedKey(ctx, &page)
		if err != nil {
			return nil, fmt.Errorf("messages of room %s: %w", roomID, err)
		}
		for _, item := range page {
			m, err := store.MessageFromItem(item)
			if err != nil {
				return nil, fmt.Errorf("messages of room %s: %w", roomID, err)
			}
			out = append(out, m)
		}
		if len(next) == 0 {
			break
		}
		start = next
	}
	slices.Reverse(out)
	return out, nil
}

// EditMessage implements store.Messages: one conditional UpdateItem that returns the old item.
// The new one is the old with the two attributes set, as the stream's NewImage will show it.
func (s *Store) EditMessage(ctx context.Context, roomID, id, text string, at time.Time) (store.Message, error) {
	pk, sk := store.MessageKey(roomID, id)
	at = at.UTC()
	var item dynamo.Item
	err := s.data.Update(attrPK, pk).Range(attrSK, sk).
		Set("text", text).
		Set("editedAt", at).
		If("attribute_exists($)", attrPK).
		OldValue(ctx, &item)
	old, err := oldMessage(item, err, "edit message", roomID, id)
	if err != nil {
		return store.Message{}, err
	}
	m := old
	m.Text, m.EditedAt = text, &at
	s.changed(store.Modify, &old, &m)
	return m, nil
}

// DeleteMessage implements store.Messages: one conditional DeleteItem that returns the old item.
func (s *Store) DeleteMessage(ctx context.Context, roomID, id string) (store.Message, error) {
	pk, sk := store.MessageKey(roomID, id)
	var item dynamo.Item
	err := s.data.Delete(attrPK, pk).Range(attrSK, sk).If("attribute_exists($)", attrPK).OldValue(ctx, &item)
	old, err := oldMessage(item, err, "delete message", roomID, id)
	if err != nil {
		return store.Message{}, err
	}
	s.changed(store.Remove, &old, nil)
	return old, nil
}

// oldMessage decodes the old item a conditional write on an existing message returned, or
// translates the write's error: ErrNotFound when the condition failed (no such message). Errors
// start with what.
func oldMessage(item dynamo.Item, err error, what, roomID, id string) (store.Message, error) {
	if dynamo.IsCondCheckFailed(err) {
		err = store.ErrNotFound
	}
	var m store.Message
	if err == nil {
		m, err = store.MessageFromItem(item)
	}
	if err != nil {
		return store.Message{}, fmt.Errorf("%s %s/%s: %w", what, roomID, id, err)
	}
	return m, nil
}

// changed reports a successful write to OnChange.
func (s *Store) changed(kind store.ChangeKind, old, new *store.Message) {
	if s.onChange != nil {
		s.onChange(kind, old, new)
	}
}

// A ChangeLog takes stream records in order, numbering them itself: build makes the record for
// the sequence number the log assigns. The local runtime's in-memory log is one.
type ChangeLog interface {
	Append(build func(seq uint64) (json.RawMessage, error)) error
}

// StreamTo returns an OnChange that appends to log, for each write to app data, the stream record
// DynamoDB would emit for it (NEW_AND_OLD_IMAGES, under a local stream ARN of the data table
// table), for a DynamoDB endpoint without a stream API. A record that cannot be built (a message
// that cannot be encoded, which the write itself would have refused) is dropped.
func StreamTo(log ChangeLog, table string) func(kind store.ChangeKind, old, new *store.Message) {
	arn := "arn:aws:dynamodb:us-east-1:000000000000:table/" + table + "/stream/local"
	return func(kind store.ChangeKind, old, new *store.Message) {
		log.Append(func(seq uint64) (json.RawMessage, error) {
			rec, err := store.ChangeRecord(kind, old, new, seq, arn, time.Now())
			if err != nil {
				return nil, err
			}
			return json.Marshal(rec)
		})
	}
}
