package engine_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/realtime-gql/lambdaws/engine"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
)

// load reads a schema from testdata with the engine's declarations, as gqlgen loads the app's;
// a file whose first lines say "# load: alone" is loaded without them.
func load(t testing.TB, path string) *ast.Schema {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sources := []*ast.Source{engine.Declarations()}
	if strings.Contains(string(b), "# load: alone") {
		sources = nil
	}
	schema, gerr := gqlparser.LoadSchema(append(sources, &ast.Source{Name: path, Input: string(b)})...)
	if gerr != nil {
		t.Fatalf("%s does not load: %v", path, gerr)
	}
	return schema
}

func analyze(t testing.TB, path string, opts ...engine.Option) *engine.Sources {
	t.Helper()
	src, err := engine.Analyze(load(t, path), opts...)
	if err != nil {
		t.Fatalf("Analyze(%s): %v", path, err)
	}
	return src
}

func TestAnalyzeChat(t *testing.T) {
	src := analyze(t, "testdata/valid/chat.graphqls")
	msg := func(kinds ...engine.ChangeKind) []engine.ChangeSource {
		var out []engine.ChangeSource
		for _, k := range kinds {
			out = append(out, engine.ChangeSource{Item: "Message", Kind: k})
		}
		return out
	}
	want := []engine.Field{
		{Name: "alert", Type: "Alert", TopicArgs: []string{"level", "room", "urgent"}, EventTypes: []string{"ops.alert"}},
		{Name: "allAnnouncements", Type: "Announcement", EventTypes: []string{"chat.announcement", "chat.broadcast"}},
		{Name: "announcement", Type: "Announcement", TopicArgs: []string{"roomId"}, Filter: "AnnouncementFilter", EventTypes: []string{"chat.announcement"}},
		{Name: "messageAdded", Type: "Message", TopicArgs: []string{"roomId"}, Filter: "MessageFilter", Changes: msg(engine.Insert)},
		{Name: "messageChanged", Type: "Message", TopicArgs: []string{"roomId"}, Changes: msg(engine.Insert, engine.Modify, engine.Remove), EventTypes: []string{"chat.message.imported"}},
		{Name: "messageDeleted", Type: "Message", TopicArgs: []string{"roomId"}, Filter: "MessageFilter", Changes: msg(engine.Remove)},
		{Name: "messageEdited", Type: "Message", TopicArgs: []string{"roomId"}, Filter: "MessageFilter", Changes: msg(engine.Modify)},
		{Name: "urgent", Type: "Announcement", TopicArgs: []string{"priority", "roomId"}, EventTypes: []string{"chat.announcement"}},
	}
	if got := src.Fields(); !reflect.DeepEqual(got, want) {
		t.Errorf("Fields():\n got %+v\nwant %+v", got, want)
	}
	if f, ok := src.Field("announcement"); !ok || f.Filter != "AnnouncementFilter" {
		t.Errorf(`Field("announcement") = %+v, %v`, f, ok)
	}
	if _, ok := src.Field("messages"); ok {
		t.Error(`Field("messages"): a query field has no routing entry`)
	}
	if got, want := src.EventTypes(), []string{"chat.announcement", "chat.broadcast", "chat.message.imported", "ops.alert"}; !reflect.DeepEqual(got, want) {
		t.Errorf("EventTypes() = %q, want %q", got, want)
	}
	items := src.Items()
	if len(items) != 2 || items[0].Name != "Message" || items[1].Name != "Room" {
		t.Fatalf("Items() = %+v, want Message and Room", items)
	}
	if pk, sk := items[0].PK, items[0].SK; pk.String() != "room#{roomId}" || sk.String() != "msg#{id}" ||
		!reflect.DeepEqual(pk.Fields(), []string{"roomId"}) || !reflect.DeepEqual(sk.Fields(), []string{"id"}) {
		t.Errorf("Message keys = %v %v", pk, sk)
	}
	if it, ok := src.Item("Room"); !ok || it.SK.String() != "META" || len(it.SK.Fields()) != 0 {
		t.Errorf(`Item("Room") = %+v, %v`, it, ok)
	}
}

func TestAnalyzeOtherValidSchemas(t *testing.T) {
	src := analyze(t, "testdata/valid/custom_root.graphqls")
	if f, ok := src.Field("ping"); !ok || f.Type != "Ping" || !reflect.DeepEqual(f.TopicArgs, []string{"id"}) {
		t.Errorf(`Field("ping") = %+v, %v`, f, ok)
	}
	src = analyze(t, "testdata/valid/no_subscriptions.graphqls")
	if len(src.Fields()) != 0 || len(src.Items()) != 1 || len(src.EventTypes()) != 0 {
		t.Errorf("no subscriptions: fields %v, items %v, event types %v", src.Fields(), src.Items(), src.EventTypes())
	}
}

// TestAnalyzeMistakes runs every schema in testdata/invalid: each states, in "# want:" lines, every
// error Analyze reports for it, whole and in order.
func TestAnalyzeMistakes(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.graphqls")
	if err != nil || len(files) < 20 {
		t.Fatalf("testdata/invalid: %d files, %v", len(files), err)
	}
	for _, path := range files {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".graphqls"), func(t *testing.T) {
			b, _ := os.ReadFile(path)
			var want []string
			for line := range strings.SplitSeq(string(b), "\n") {
				if w, ok := strings.CutPrefix(line, "# want: "); ok {
					want = append(want, w)
				}
			}
			if len(want) == 0 {
				t.Fatal("no # want: line")
			}
			src, err := engine.Analyze(load(t, path))
			if err == nil {
				t.Fatalf("Analyze accepted it: %+v", src.Fields())
			}
			if src != nil {
				t.Error("Analyze returned a routing table beside its error")
			}
			got := strings.Split(err.Error(), "\n")
			if !reflect.DeepEqual(got, want) {
				t.Errorf("errors:\n got %q\nwant %q", got, want)
			}
		})
	}
}

func TestFilterSpecIsConsulted(t *testing.T) {
	schema := load(t, "testdata/valid/chat.graphqls")
	type call struct{ input, payload string }
	var calls []call
	spec := func(s *ast.Schema, input string, payload *ast.Definition) error {
		if s != schema {
			t.Error("FilterSpec got another schema")
		}
		calls = append(calls, call{input, payload.Name})
		if input == "AnnouncementFilter" {
			return errors.New("priority: IntFilter cannot filter a String")
		}
		return nil
	}
	_, err := engine.Analyze(schema, engine.WithFilterSpec(spec))
	want := "Subscription.announcement: argument filter: AnnouncementFilter: priority: IntFilter cannot filter a String"
	if err == nil || err.Error() != want {
		t.Errorf("Analyze with a failing FilterSpec: %v, want %q", err, want)
	}
	wantCalls := []call{{"MessageFilter", "Message"}, {"MessageFilter", "Message"}, {"MessageFilter", "Message"}, {"AnnouncementFilter", "Announcement"}}
	if !reflect.DeepEqual(calls, wantCalls) {
		t.Errorf("FilterSpec calls = %v, want %v", calls, wantCalls)
	}
}

func TestDeclarationsParse(t *testing.T) {
	schema, err := gqlparser.LoadSchema(engine.Declarations())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"item", "topic", "fromChange", "fromEvent"} {
		if schema.Directives[d] == nil {
			t.Errorf("%s does not declare @%s", engine.DeclarationsFile, d)
		}
	}
	b, err := os.ReadFile(filepath.Join("..", engine.DeclarationsFile))
	if err != nil || string(b) != engine.Declarations().Input {
		t.Errorf("DeclarationsFile %q is not the embedded file: %v", engine.DeclarationsFile, err)
	}
}
