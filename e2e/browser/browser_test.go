// Package browser drives the pages the binary serves (GraphiQL, the chat demo) in headless
// Chromium through playwright-core, against `bootstrap dev` run as a child process. Screenshots
// go to $TEST_ARTIFACTS/browser, or e2e/browser/artifacts.
package browser

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/internal/devproc"
	"github.com/realtime-gql/lambdaws/internal/testenv"
)

// record is one line a scenario prints (see e2e/browser/js/browser.mjs and each scenario).
type record struct {
	Kind    string          `json:"kind"`
	Page    string          `json:"page"`
	Message string          `json:"message"`
	File    string          `json:"file"`
	Shows   string          `json:"shows"`
	Result  json.RawMessage `json:"result"`
	Rounds  int             `json:"rounds"`
	Step    string          `json:"step"`
	Labels  []struct {
		Label   string `json:"label"`
		Visible bool   `json:"visible"`
		Input   string `json:"input"`
		Want    string `json:"want"`
	} `json:"labels"`
	Messages      []listed       `json:"messages"`
	Announcements []announcement `json:"announcements"`
	Text          string         `json:"text"`
	DevAid        bool           `json:"devAid"`
	Sent          []string       `json:"sent"`
	Received      []string       `json:"received"`
	Marks         []int          `json:"marks"`
}

// announcement is an announcement as a demo tab lists it.
type announcement struct {
	Text     string `json:"text"`
	Priority int    `json:"priority"`
}

// listed is a message as a demo tab lists it.
type listed struct {
	Author string `json:"author"`
	Text   string `json:"text"`
	Edited bool   `json:"edited"`
}

// artifacts is where screenshots go.
func artifacts(t *testing.T, root string) string {
	dir := filepath.Join(root, "e2e", "browser", "artifacts")
	if d := os.Getenv("TEST_ARTIFACTS"); d != "" {
		dir = filepath.Join(d, "browser")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// scenario runs e2e/browser/js/<name>.mjs against a fresh `bootstrap dev` and returns its
// records; it fails the test when the scenario fails or a page logged an error, and checks that
// every screenshot it reports is a PNG on disk.
func scenario(t *testing.T, name string) []record {
	t.Helper()
	root := devproc.Root(t)
	chromium := testenv.Chromium(t)
	node, _ := testenv.Node(t, root, "playwright-core")
	p := devproc.Start(t, t.TempDir())
	dir := artifacts(t, root)

	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join("e2e", "browser", "js", name+".mjs"), "http://"+p.Addr, dir, chromium)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "BOOTSTRAP="+devproc.Build(t)) // for scenarios that run `bootstrap publish`
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()

	var recs []record
	sc := bufio.NewScanner(bytes.NewReader(stdout.Bytes()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s.mjs printed a line that is not a record: %q", name, sc.Text())
		}
		recs = append(recs, r)
	}
	if runErr != nil || !slices.ContainsFunc(recs, func(r record) bool { return r.Kind == "done" }) {
		t.Fatalf("%s.mjs: %v (context: %v)\nstdout:\n%s\nstderr:\n%s\nbootstrap dev:\n%s\nscreenshots in %s",
			name, runErr, ctx.Err(), stdout.String(), stderr.String(), p.Output(), dir)
	}
	for _, r := range recs {
		switch r.Kind {
		case "page-error":
			t.Errorf("page %s logged an error: %s", r.Page, r.Message)
		case "screenshot":
			b, err := os.ReadFile(filepath.Join(dir, r.File))
			if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
				t.Errorf("screenshot %s: not a PNG on disk (%v)", r.File, err)
			}
			t.Logf("screenshot %s: %s", filepath.Join(dir, r.File), r.Shows)
		}
	}
	return recs
}

func find(recs []record, kind string) []record {
	var out []record
	for _, r := range recs {
		if r.Kind == kind {
			out = append(out, r)
		}
	}
	return out
}

// TestGraphiQLSubscription: page A runs a messageAdded subscription in GraphiQL at /, page B (at
// /graphql, another browser context) types and runs a sendMessage mutation, and page A's result
// pane shows exactly the message B's mutation created.
func TestGraphiQLSubscription(t *testing.T) {
	recs := scenario(t, "graphiql")
	sent, received := find(recs, "sent"), find(recs, "received")
	if len(sent) != 1 || len(received) != 1 {
		t.Fatalf("want one sent and one received record, got %d and %d", len(sent), len(received))
	}
	var s struct {
		Data struct{ SendMessage map[string]string } `json:"data"`
	}
	var r struct {
		Data struct{ MessageAdded map[string]string } `json:"data"`
	}
	if err := json.Unmarshal(sent[0].Result, &s); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(received[0].Result, &r); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"id": s.Data.SendMessage["id"], "author": "page B", "text": "hello from page B"}
	if want["id"] == "" || !equal(s.Data.SendMessage, want) || !equal(r.Data.MessageAdded, want) {
		t.Fatalf("page B sent %v, page A showed %v; want both %v", s.Data.SendMessage, r.Data.MessageAdded, want)
	}
	t.Logf("page A showed page B's message after %d sync round(s)", find(recs, "sync")[0].Rounds)
}

func equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestDemo: the chat demo in tabs. Every field has a visible label; tab B picks the room with the
// Room field; tab A sends with Enter and with the Send button, edits and deletes, and tab B's list
// follows each step exactly; a third tab loads the same history.
func TestDemo(t *testing.T) {
	recs := scenario(t, "demo")
	labels := find(recs, "labels")
	if len(labels) != 1 {
		t.Fatalf("want one labels record, got %d", len(labels))
	}
	for _, l := range labels[0].Labels {
		if !l.Visible || l.Input != strings.ToLower(l.Label) {
			t.Errorf("field %s: label visible %v, labels input %q (want #%s)", l.Label, l.Visible, l.Input, strings.ToLower(l.Label))
		}
	}
	if len(labels[0].Labels) != 3 {
		t.Errorf("labels checked: %d, want 3", len(labels[0].Labels))
	}

	enter := listed{"ann", "Hello, sent with Enter", false}
	button := listed{"ann", "Hello, sent with the Send button", false}
	edited := listed{"ann", "Hello, sent with Enter and edited", true}
	want := map[string][]listed{
		"B sent with Enter":      {enter},
		"B sent with the button": {enter, button},
		"B edited":               {edited, button},
		"B deleted":              {edited},
		"A deleted":              {edited},
		"C history":              {edited},
	}
	seen := map[string]bool{}
	for _, r := range find(recs, "step") {
		key := r.Page + " " + r.Step
		seen[key] = true
		// The sync rounds' messages come first; the scenario's follow them.
		var got []listed
		for _, m := range r.Messages {
			if !strings.HasPrefix(m.Text, "sync ") {
				got = append(got, m)
			}
		}
		if !slices.Equal(got, want[key]) {
			t.Errorf("tab %s after %q lists %+v, want %+v", r.Page, r.Step, got, want[key])
		}
		if syncs := len(r.Messages) - len(got); syncs != find(recs, "sync")[0].Rounds {
			t.Errorf("tab %s after %q lists %d sync messages, want %d (one per round)", r.Page, r.Step, syncs, find(recs, "sync")[0].Rounds)
		}
	}
	for key := range want {
		if !seen[key] {
			t.Errorf("no record of %s", key)
		}
	}
}

// TestDemoFiltersAndAnnouncements: the demo's filters and announcements in two tabs on one room
// (e2e/browser/js/demo-filters.mjs). Tab A filters to ann's messages and announcements with
// priority ≥ 3, completing each old subscription before subscribing with the filter; tab B has no
// filter. B sends as ann and bob: A lists ann's messages alone and its filtered subscriptions never
// carry bob's, B lists both. An announcement with priority 5 sent with `bootstrap publish` reaches
// both tabs, one with priority 1 sent with B's dev-aid form (the invoke endpoint) only B. A filter
// the server refuses (101 authors) shows the server's own message; clearing subscribes again.
func TestDemoFiltersAndAnnouncements(t *testing.T) {
	recs := scenario(t, "demo-filters")

	labels := find(recs, "labels")
	if len(labels) != 1 || len(labels[0].Labels) != 5 {
		t.Fatalf("want one labels record of 5 controls, got %+v", labels)
	}
	for _, l := range labels[0].Labels {
		if !l.Visible || l.Input != l.Want {
			t.Errorf("control %q: label visible %v, labels input %q (want #%s)", l.Label, l.Visible, l.Input, l.Want)
		}
	}
	hint := find(recs, "hint")
	if len(hint) != 1 || !strings.Contains(hint[0].Text, "bootstrap publish --type chat.announcement --data '{") ||
		!strings.Contains(hint[0].Text, "invoke endpoint") || !hint[0].DevAid {
		t.Errorf("the announcement hint and dev aid: %+v", hint)
	}

	// What each tab lists, without the sync rounds' messages and announcements.
	steps := map[string]record{}
	for _, r := range find(recs, "step") {
		steps[r.Page+" "+r.Step] = r
	}
	messages := func(key string) []listed {
		var out []listed
		for _, m := range steps[key].Messages {
			if !strings.HasPrefix(m.Text, "sync ") {
				out = append(out, m)
			}
		}
		return out
	}
	announcements := func(key string) []announcement {
		var out []announcement
		for _, a := range steps[key].Announcements {
			if !strings.HasPrefix(a.Text, "sync ") {
				out = append(out, a)
			}
		}
		return out
	}
	annFirst, bob, annLast := listed{"ann", "from ann, first", false}, listed{"bob", "from bob", false}, listed{"ann", "from ann, last", false}
	high, low := announcement{"high priority: every tab", 5}, announcement{"low priority: only unfiltered tabs", 1}
	for key, want := range map[string][]listed{
		"A filtered":   {annFirst, annLast},
		"B unfiltered": {annFirst, bob, annLast},
	} {
		if got := messages(key); !slices.Equal(got, want) {
			t.Errorf("tab %s lists messages %+v, want %+v", key, got, want)
		}
	}
	for key, want := range map[string][]announcement{
		"A filtered":   {high}, // newest first
		"B unfiltered": {high, low},
	} {
		if got := announcements(key); !slices.Equal(got, want) {
			t.Errorf("tab %s lists announcements %+v, want %+v", key, got, want)
		}
	}
	for _, m := range steps["A filtered"].Messages {
		if m.Author != "ann" {
			t.Errorf("tab A, filtered to ann, lists %+v", m)
		}
	}
	if got := messages("A cleared"); !slices.ContainsFunc(got, func(m listed) bool { return strings.HasPrefix(m.Text, "from bob, after clearing") }) ||
		!slices.Contains(got, bob) {
		t.Errorf("tab A after clearing its filters lists %+v: want bob's messages back", got)
	}

	frames := find(recs, "frames")
	if len(frames) != 1 || len(frames[0].Marks) != 3 {
		t.Fatalf("want one frames record with three marks, got %d", len(frames))
	}
	checkResubscribed(t, frames[0])
	checkRefused(t, frames[0], find(recs, "refused"))
}

// frame is a GraphQL-over-WebSocket message.
type frame struct {
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload"`
}

func frames(t *testing.T, raw []string) []frame {
	t.Helper()
	out := make([]frame, len(raw))
	for i, r := range raw {
		if err := json.Unmarshal([]byte(r), &out[i]); err != nil {
			t.Fatalf("frame %q: %v", r, err)
		}
	}
	return out
}

// checkResubscribed: once tab A applied its filters it completed each feed's subscription before
// subscribing to it again with the filter (edits and deletions by author only), and what those
// filtered subscriptions received is exactly what passes: ann's messages, priority ≥ 3.
func checkResubscribed(t *testing.T, r record) {
	t.Helper()
	sent, applied, refusing := frames(t, r.Sent), r.Marks[0], r.Marks[1]
	type subscribe struct {
		Query     string         `json:"query"`
		Variables map[string]any `json:"variables"`
	}
	opOf := map[string]string{} // subscription id → operation name
	opName := func(query string) string {
		name, _, _ := strings.Cut(strings.TrimPrefix(query, "subscription "), "(")
		return name
	}
	author := `{"author":{"eq":"ann"}}`
	wantFilter := map[string]string{"Added": author, "Edited": author, "Deleted": author, "Announcement": `{"priority":{"ge":3}}`}
	completed := map[string]bool{} // operation names completed since applied
	filtered := map[string]bool{}  // ids of the filtered subscriptions
	for i, f := range sent[:refusing] {
		switch f.Type {
		case "subscribe":
			var p subscribe
			if err := json.Unmarshal(f.Payload, &p); err != nil {
				t.Fatal(err)
			}
			op := opName(p.Query)
			opOf[f.ID] = op
			if i < applied {
				if _, ok := p.Variables["filter"]; ok {
					t.Errorf("before any filter was applied, %s subscribed with filter %v", op, p.Variables["filter"])
				}
				continue
			}
			got, _ := json.Marshal(p.Variables["filter"])
			if string(got) != wantFilter[op] {
				t.Errorf("%s subscribed again with filter %s, want %s", op, got, wantFilter[op])
			}
			if !completed[op] {
				t.Errorf("%s subscribed again (frame %d) before its old subscription was completed", op, i)
			}
			filtered[f.ID] = true
		case "complete":
			if i >= applied {
				completed[opOf[f.ID]] = true
			}
		}
	}
	if len(filtered) != len(wantFilter) {
		t.Errorf("%d subscriptions started with filters, want %d: %v", len(filtered), len(wantFilter), r.Sent[applied:refusing])
	}
	var got []string
	for _, f := range frames(t, r.Received) {
		if f.Type == "next" && filtered[f.ID] {
			got = append(got, string(f.Payload))
		}
	}
	joined := strings.Join(got, "\n")
	for _, text := range []string{"from ann, first", "from ann, last", "high priority: every tab"} {
		if !strings.Contains(joined, `"`+text+`"`) {
			t.Errorf("tab A's filtered subscriptions never received %q", text)
		}
	}
	for _, text := range []string{`"author":"bob"`, "low priority"} {
		if strings.Contains(joined, text) {
			t.Errorf("tab A's filtered subscriptions received %s:\n%s", text, joined)
		}
	}
}

// checkRefused: the filter of 101 authors was refused by the server with an error frame, and tab
// A shows that error's message.
func checkRefused(t *testing.T, r record, shown []record) {
	t.Helper()
	const want = "invalid filter at author.in: more than 100 in/notIn values in total"
	var refusals int
	for _, f := range frames(t, r.Received) {
		if f.Type != "error" {
			continue
		}
		var errs []struct {
			Message    string `json:"message"`
			Extensions struct {
				Code string `json:"code"`
			} `json:"extensions"`
		}
		if err := json.Unmarshal(f.Payload, &errs); err != nil || len(errs) != 1 || errs[0].Message != want || errs[0].Extensions.Code != "BAD_USER_INPUT" {
			t.Errorf("error frame %s, want one BAD_USER_INPUT error %q", f.Payload, want)
		}
		refusals++
	}
	// messageAdded, messageEdited and messageDeleted each take the author filter.
	if refusals != 3 {
		t.Errorf("%d error frames, want 3 (one per message subscription)", refusals)
	}
	if len(shown) != 1 || !strings.Contains(shown[0].Text, want) {
		t.Fatalf("tab A shows %+v, want the server's message %q", shown, want)
	}
	t.Logf("tab A shows: %s", shown[0].Text)
}
