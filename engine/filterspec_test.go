package engine_test

import (
	"strings"
	"testing"

	"github.com/realtime-gql/lambdaws/engine"
	"github.com/realtime-gql/lambdaws/internal/filter"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
)

// filterSpec is how internal/filter plugs into Analyze.
var filterSpec engine.FilterSpec = filter.Check

func TestInternalFilterAsFilterSpec(t *testing.T) {
	if _, err := engine.Analyze(load(t, "testdata/valid/chat.graphqls"), engine.WithFilterSpec(filterSpec)); err != nil {
		t.Fatalf("the chat schema's filters: %v", err)
	}
	// A filter that tests a field the payload does not have.
	schema, gerr := gqlparser.LoadSchema(engine.Declarations(), &ast.Source{Name: "bad", Input: `
type Announcement { id: ID!, roomId: ID!, text: String! }
input StringFilter { eq: String }
input AnnouncementFilter { author: StringFilter, and: [AnnouncementFilter!] }
type Query { x: Int }
type Subscription { announcement(roomId: ID! @topic, filter: AnnouncementFilter): Announcement! @fromEvent(type: "chat.announcement") }
`})
	if gerr != nil {
		t.Fatal(gerr)
	}
	_, err := engine.Analyze(schema, engine.WithFilterSpec(filterSpec))
	if err == nil || !strings.HasPrefix(err.Error(), "Subscription.announcement: argument filter: AnnouncementFilter: ") || !strings.Contains(err.Error(), "author") {
		t.Errorf("Analyze with a filter of a missing field = %v", err)
	}
}
