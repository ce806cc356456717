package embedded_test

import (
	"time"

	"github.com/realtime-gql/lambdaws/store"
)

// message is a chat message as an app declares it (type Message @item(pk: "room#{roomId}",
// sk: "msg#{id}")): the tests' data, and the type the migration of old files writes.
type message struct {
	ID        string     `json:"id"`
	RoomID    string     `json:"roomId"`
	Author    string     `json:"author"`
	Text      string     `json:"text"`
	CreatedAt time.Time  `json:"createdAt"`
	EditedAt  *time.Time `json:"editedAt,omitempty"`
}

var msgType = store.MustItemType("Message", "room#{roomId}", "msg#{id}")

func messages(d store.Data) *store.Items[message] { return store.NewItems[message](d, msgType) }

func roomOf(id string) map[string]any { return map[string]any{"roomId": id} }
