package store

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/oklog/ulid/v2"
)

// A Message is one chat message, the example app's data.
type Message struct {
	// ID is a ULID: unique, and ordered by creation time within a room.
	ID        string     `json:"id"`
	RoomID    string     `json:"roomId"`
	Author    string     `json:"author"`
	Text      string     `json:"text"`
	CreatedAt time.Time  `json:"createdAt"`
	EditedAt  *time.Time `json:"editedAt,omitempty"`
	// AuthorSub is the subject of the principal who sent it (authentication on); empty when
	// sent anonymously. Only that principal may edit or delete the message.
	AuthorSub string `json:"authorSub,omitempty"`
}

// MessageType is the item type of messages: a room's messages share its partition, sorted by
// their ids (ULIDs, so by time).
var MessageType = MustItemType("Message", "room#{roomId}", "msg#{id}")

var (
	idMu      sync.Mutex
	idEntropy = ulid.Monotonic(rand.Reader, 0)
)

// NewID returns a new ULID for time t. IDs made in one process are strictly increasing, even
// within one millisecond, so a room's messages sort by id in the order they were sent.
func NewID(t time.Time) string {
	idMu.Lock()
	defer idMu.Unlock()
	return ulid.MustNew(ulid.Timestamp(t), idEntropy).String()
}

// MessageKey returns the data table key of a message (room and id non-empty).
func MessageKey(roomID, id string) (pk, sk string) {
	values := messageKey(roomID, id)
	pk, _ = MessageType.PK.Format(values)
	sk, _ = MessageType.SK.Format(values)
	return pk, sk
}

// MessageItem encodes a message as the data table item MessageType makes of it, with its times
// in UTC.
func MessageItem(m Message) (Item, error) {
	return MessageType.Encode(inUTC(m))
}

func inUTC(m Message) Message {
	m.CreatedAt = m.CreatedAt.UTC()
	if m.EditedAt != nil {
		t := m.EditedAt.UTC()
		m.EditedAt = &t
	}
	return m
}

// Messages stores the example app's data. Every successful write is reported on the change stream.
type Messages interface {
	// PutMessage stores a new message; ErrConflict if its id exists.
	PutMessage(ctx context.Context, m Message) error
	// Message reads one message; ErrNotFound if absent.
	Message(ctx context.Context, roomID, id string) (Message, error)
	// Messages returns the last `last` (at most MaxQueryItems) messages of a room, oldest first.
	Messages(ctx context.Context, roomID string, last int) ([]Message, error)
	// EditMessage replaces a message's text and sets EditedAt; ErrNotFound if absent.
	EditMessage(ctx context.Context, roomID, id, text string, at time.Time) (Message, error)
	// DeleteMessage removes a message and returns it as it was; ErrNotFound if absent.
	DeleteMessage(ctx context.Context, roomID, id string) (Message, error)
}

// MessageStore is Messages over the data table: Items of MessageType.
type MessageStore struct {
	items *Items[Message]
}

var _ Messages = (*MessageStore)(nil)

// NewMessages returns the messages kept in d.
func NewMessages(d Data) *MessageStore {
	return &MessageStore{items: NewItems[Message](d, MessageType)}
}

func messageKey(roomID, id string) map[string]any { return map[string]any{"roomId": roomID, "id": id} }

// PutMessage implements Messages. Times are stored in UTC.
func (s *MessageStore) PutMessage(ctx context.Context, m Message) error {
	m = inUTC(m)
	if err := s.items.Create(ctx, &m); err != nil {
		return fmt.Errorf("put message %s/%s: %w", m.RoomID, m.ID, err)
	}
	return nil
}

// Message implements Messages.
func (s *MessageStore) Message(ctx context.Context, roomID, id string) (Message, error) {
	m, err := s.items.Get(ctx, messageKey(roomID, id))
	if err != nil {
		return Message{}, fmt.Errorf("message %s/%s: %w", roomID, id, err)
	}
	return m, nil
}

// Messages implements Messages.
func (s *MessageStore) Messages(ctx context.Context, roomID string, last int) ([]Message, error) {
	ms, err := s.items.Query(ctx, map[string]any{"roomId": roomID}, last)
	if err != nil {
		return nil, fmt.Errorf("messages of room %s: %w", roomID, err)
	}
	return ms, nil
}

// EditMessage implements Messages: it reads the message and replaces it with the new text. Of
// concurrent edits the last one wins; an edit racing a delete either lands first or finds
// nothing (ErrNotFound), never resurrects the message.
func (s *MessageStore) EditMessage(ctx context.Context, roomID, id, text string, at time.Time) (Message, error) {
	m, err := s.items.Get(ctx, messageKey(roomID, id))
	if err != nil {
		return Message{}, fmt.Errorf("edit message %s/%s: %w", roomID, id, err)
	}
	at = at.UTC()
	m.Text, m.EditedAt = text, &at
	m = inUTC(m)
	if _, err := s.items.Replace(ctx, &m); err != nil {
		return Message{}, fmt.Errorf("edit message %s/%s: %w", roomID, id, err)
	}
	return m, nil
}

// DeleteMessage implements Messages.
func (s *MessageStore) DeleteMessage(ctx context.Context, roomID, id string) (Message, error) {
	m, err := s.items.Delete(ctx, messageKey(roomID, id))
	if err != nil {
		return Message{}, fmt.Errorf("delete message %s/%s: %w", roomID, id, err)
	}
	return m, nil
}

// A Change is one write to a message, decoded from a stream record.
type Change struct {
	Kind ChangeKind
	// Old is the message before the write (Modify, Remove); New after it (Insert, Modify).
	Old, New *Message
	// ByService reports a removal made by DynamoDB's TTL process rather than by the app.
	ByService bool
}

// DecodeChange decodes a stream record of a message (see DecodeItemChange). ok is false, without
// an error, for records of items of other types or of none.
func DecodeChange(rec events.DynamoDBEventRecord) (ch Change, ok bool, err error) {
	ic, ok, err := DecodeItemChange(rec)
	if err != nil || !ok || ic.Type != MessageType.Name {
		return Change{}, false, err
	}
	ch = Change{Kind: ic.Kind, ByService: ic.ByService}
	if ic.Old != nil {
		if ch.Old, err = decodeMessage(ic.Old); err != nil {
			return Change{}, false, fmt.Errorf("%w: event %s: old image: %v", ErrBadRecord, rec.EventID, err)
		}
	}
	if ic.New != nil {
		if ch.New, err = decodeMessage(ic.New); err != nil {
			return Change{}, false, fmt.Errorf("%w: event %s: new image: %v", ErrBadRecord, rec.EventID, err)
		}
	}
	return ch, true, nil
}

func decodeMessage(payload json.RawMessage) (*Message, error) {
	var m Message
	if err := json.Unmarshal(payload, &m); err != nil {
		return nil, err
	}
	if m.ID == "" || m.RoomID == "" {
		return nil, errors.New("not a message: no id or roomId")
	}
	return &m, nil
}
