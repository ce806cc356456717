package engine_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/realtime-gql/lambdaws/engine"
	"github.com/realtime-gql/lambdaws/store"
	"github.com/realtime-gql/lambdaws/store/embedded"
)

// The models of chat.graphqls's @item types, as gqlgen would generate them.
type (
	Message struct {
		ID     string `json:"id"`
		RoomID string `json:"roomId"`
		Text   string `json:"text"`
	}
	Room struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	Announcement struct {
		ID string `json:"id"`
	}
)

// TestTables: each @item type's table stores its items under the keys its @item templates make,
// with its __typename, and reads them back typed; asking for the table of a type that is not an
// @item type is a mistake in the program, named.
func TestTables(t *testing.T) {
	ctx := context.Background()
	s, err := embedded.Open(filepath.Join(t.TempDir(), "d.db"), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tables := engine.NewTables(analyze(t, "testdata/valid/chat.graphqls"), s)
	if tables.Data() != store.Data(s) {
		t.Fatal("Data() is not the table the views were made over")
	}
	msgs := engine.Table[Message](tables)
	if engine.Table[Message](tables) != msgs {
		t.Error("Table made a second view of the same type")
	}
	if err := msgs.Create(ctx, &Message{ID: "m1", RoomID: "r1", Text: "hi"}); err != nil {
		t.Fatal(err)
	}
	it, err := s.GetItem(ctx, "room#r1", "msg#m1")
	if err != nil || it[store.AttrTypename] == nil {
		t.Fatalf("the message item: %v, %v", it, err)
	}
	if got, err := msgs.Get(ctx, map[string]any{"roomId": "r1", "id": "m1"}); err != nil || got.Text != "hi" {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	rooms := engine.Table[Room](tables)
	if err := rooms.Create(ctx, &Room{ID: "r1", Name: "lobby"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetItem(ctx, "room#r1", "META"); err != nil {
		t.Fatalf("the room item: %v", err)
	}

	for name, f := range map[string]func(){
		"Announcement": func() { engine.Table[Announcement](tables) },
		"*Message":     func() { engine.Table[*Message](tables) },
	} {
		func() {
			defer func() {
				p := recover()
				msg, _ := p.(string)
				if !strings.Contains(msg, "is not the model of an @item type") || !strings.Contains(msg, "Message, Room") {
					t.Errorf("Table[%s] panicked with %v, want a message naming the @item types", name, p)
				}
			}()
			f()
		}()
	}
}
