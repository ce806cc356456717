package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/realtime-gql/lambdaws/engine"
)

// TestEventTypesOfTheApp: the app's schema, read as gqlgen reads it, subscribes to
// chat.announcement; lambdaws.invalidate is always let through; the file is what serverless.yml
// includes (make check compares it with the committed one).
func TestEventTypesOfTheApp(t *testing.T) {
	types, err := eventTypes("../../../gqlgen.yml")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(types, " ") != "chat.announcement lambdaws.invalidate" {
		t.Fatalf("event types %q", types)
	}
	want := "detailTypes:\n  - \"chat.announcement\"\n  - \"lambdaws.invalidate\"\n"
	if got := string(render(types)); !strings.HasPrefix(got, "# Code generated") || !strings.HasSuffix(got, want) {
		t.Fatalf("rendered:\n%s", got)
	}
}

// TestEventTypesRefusesInvalidDeclarations: go generate fails, naming the field, on a schema the
// service would refuse at start-up.
func TestEventTypesRefusesInvalidDeclarations(t *testing.T) {
	dir := t.TempDir()
	directives, err := os.ReadFile("../../../" + engine.DeclarationsFile)
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		"directives.graphqls": string(directives),
		"app.graphqls": `type Note { id: ID! }
type Query { x: Int }
type Subscription { note(room: ID! @topic): Note! @fromEvent(type: "note.added") }
`,
		"gqlgen.yml": "schema:\n  - directives.graphqls\n  - app.graphqls\nexec:\n  filename: generated.go\n  package: app\nmodel:\n  filename: models.go\n  package: app\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, err = eventTypes(filepath.Join(dir, "gqlgen.yml"))
	if err == nil || !strings.Contains(err.Error(), "Subscription.note: argument room: @topic: Note has no field room") {
		t.Fatalf("eventTypes of an invalid schema = %v", err)
	}
}
