package store

import (
	"crypto/rand"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/guregu/dynamo/v2"
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

// Key prefixes of the data table. Its items are keyed generically (pk, sk) so that one table can
// hold several kinds of app data; the fan-out recognises messages by their sort key alone.
const (
	roomPrefix    = "room#"
	messagePrefix = "msg#"
)

// MessageKey returns the data table key of a message.
func MessageKey(roomID, id string) (pk, sk string) {
	return roomPrefix + roomID, messagePrefix + id
}

// messageItem is a message as the data table holds it.
type messageItem struct {
	PK        string     `dynamo:"pk,hash"`
	SK        string     `dynamo:"sk,range"`
	ID        string     `dynamo:"id"`
	RoomID    string     `dynamo:"roomId"`
	Author    string     `dynamo:"author"`
	Text      string     `dynamo:"text"`
	CreatedAt time.Time  `dynamo:"createdAt"`
	EditedAt  *time.Time `dynamo:"editedAt,omitempty"`
	AuthorSub string     `dynamo:"authorSub,omitempty"`
}

// MessageItem encodes a message as a data table item. Both backends use it, so the images on the
// embedded change stream are byte for byte those DynamoDB would stream.
func MessageItem(m Message) (map[string]types.AttributeValue, error) {
	pk, sk := MessageKey(m.RoomID, m.ID)
	it := messageItem{PK: pk, SK: sk, ID: m.ID, RoomID: m.RoomID, Author: m.Author, Text: m.Text,
		CreatedAt: m.CreatedAt.UTC(), EditedAt: utcPtr(m.EditedAt), AuthorSub: m.AuthorSub}
	item, err := dynamo.MarshalItem(it)
	if err != nil {
		return nil, fmt.Errorf("encode message %s/%s: %w", m.RoomID, m.ID, err)
	}
	return item, nil
}

// MessageFromItem decodes a data table item written by MessageItem.
func MessageFromItem(item map[string]types.AttributeValue) (Message, error) {
	var it messageItem
	if err := dynamo.UnmarshalItem(item, &it); err != nil {
		return Message{}, fmt.Errorf("decode message: %w", err)
	}
	if !strings.HasPrefix(it.SK, messagePrefix) || it.ID == "" || it.RoomID == "" {
		return Message{}, fmt.Errorf("decode message: item %q/%q is not a message", it.PK, it.SK)
	}
	return Message{ID: it.ID, RoomID: it.RoomID, Author: it.Author, Text: it.Text,
		CreatedAt: it.CreatedAt, EditedAt: it.EditedAt, AuthorSub: it.AuthorSub}, nil
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
