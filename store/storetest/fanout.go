package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/realtime-gql/lambdaws/store"
)

// runFanout runs the conformance tests of store.FanoutState.
func runFanout(t *testing.T, open Factory) {
	t.Run("TopicPagesByCursor", func(t *testing.T) { testTopicPages(t, open) })
	t.Run("TopicCursors", func(t *testing.T) { testTopicCursors(t, open) })
	t.Run("TopicSubscriptionsByKey", func(t *testing.T) { testTopicSubscriptions(t, open) })
	t.Run("FanoutProgress", func(t *testing.T) { testFanoutProgress(t, open) })
}

const fanTopic = "messageAdded?roomId=f1"

// fill stores n subscriptions c000…, operation "1", in the topic, and one in each of the
// neighbouring topics (their keys share prefixes with the topic's).
func fill(t *testing.T, s store.Store, now time.Time, n int) []string {
	t.Helper()
	ctx := context.Background()
	var ids []string
	for i := range n {
		id := fmt.Sprintf("c%03d", i)
		ids = append(ids, id)
		if err := s.PutSubscription(ctx, sub(id, "1", fanTopic, now), false); err != nil {
			t.Fatal(err)
		}
	}
	for _, other := range []string{"messageAdded?roomId=f", "messageAdded?roomId=f10", "messageEdited?roomId=f1"} {
		if err := s.PutSubscription(ctx, sub("other", other, other, now), false); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

// pages reads a range of the topic, failing the test on an error.
func pages(t *testing.T, s store.Store, topic, after, until string) []store.Page {
	t.Helper()
	var out []store.Page
	for pg, err := range s.TopicPages(context.Background(), topic, after, until) {
		if err != nil {
			t.Fatalf("TopicPages(%q, %q): %v", after, until, err)
		}
		out = append(out, pg)
		if len(out) > 1000 {
			t.Fatal("TopicPages does not end")
		}
	}
	return out
}

// conns lists the connection ids of the pages' subscriptions, in order, checking each is of the
// topic.
func conns(t *testing.T, pgs []store.Page) []string {
	t.Helper()
	var out []string
	for i, pg := range pgs {
		if (pg.Next == "") != (i == len(pgs)-1) {
			t.Fatalf("page %d of %d has Next %q: only the last page has none", i+1, len(pgs), pg.Next)
		}
		for _, s := range pg.Subs {
			if s.Topic != fanTopic {
				t.Fatalf("page %d holds a subscription of topic %q", i+1, s.Topic)
			}
			out = append(out, s.ConnectionID)
		}
	}
	return out
}

// testTopicPages reads a topic by cursor: every subscription once, in order; a range resumed
// after a page's Next holds exactly the rest; a range up to a cursor ends there; expired and
// deleted subscriptions are left out while the cursors around them stay valid.
func testTopicPages(t *testing.T, open Factory) {
	ctx := context.Background()
	clk := NewClock()
	s := open(t, clk.Now)

	if got := pages(t, s, fanTopic, "", ""); len(got) != 1 || len(got[0].Subs) != 0 || got[0].Next != "" {
		t.Fatalf("an empty topic reads as %+v, want one empty page without Next", got)
	}

	ids := fill(t, s, clk.Now(), 30)
	all := pages(t, s, fanTopic, "", "")
	got := conns(t, all)
	if !slices.Equal(got, ids) {
		t.Fatalf("the topic read as %v\nwant %v", got, ids)
	}
	if len(all) < 3 {
		t.Fatalf("30 subscriptions read in %d pages: the backend's page size must be below 15 for this test", len(all))
	}

	// Resuming after the first page's Next reads exactly the rest.
	first := len(all[0].Subs)
	if rest := conns(t, pages(t, s, fanTopic, all[0].Next, "")); !slices.Equal(rest, ids[first:]) {
		t.Fatalf("after the first page: %v, want %v", rest, ids[first:])
	}
	// Up to the second page's Next (the cursor of its last subscription) reads the first two.
	two := first + len(all[1].Subs)
	if head := conns(t, pages(t, s, fanTopic, "", all[1].Next)); !slices.Equal(head, ids[:two]) {
		t.Fatalf("up to the second page's end: %v, want %v", head, ids[:two])
	}
	// Both bounds: exactly the second page.
	if mid := conns(t, pages(t, s, fanTopic, all[0].Next, all[1].Next)); !slices.Equal(mid, ids[first:two]) {
		t.Fatalf("the second page's range: %v, want %v", mid, ids[first:two])
	}

	// The subscription a cursor names is deleted: the cursor still resumes after its place.
	last := all[0].Subs[first-1].ConnectionID
	if _, err := s.DeleteSubscription(ctx, last, "1"); err != nil {
		t.Fatal(err)
	}
	if rest := conns(t, pages(t, s, fanTopic, all[0].Next, "")); !slices.Equal(rest, ids[first:]) {
		t.Fatalf("after a deleted cursor: %v, want %v", rest, ids[first:])
	}

	// An expired subscription is left out.
	short := sub("c015", "1", fanTopic, clk.Now())
	short.ExpiresAt = clk.Now().Add(time.Minute)
	if err := s.PutSubscription(ctx, short, true); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Minute)
	want := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return id == last || id == "c015" })
	if got := conns(t, pages(t, s, fanTopic, "", "")); !slices.Equal(got, want) {
		t.Fatalf("with one expired and one deleted: %v, want %v", got, want)
	}

	// Every field reads back as stored, from a page as from a lookup by key (a backend may read
	// only what a subscription needs, but it needs all of it).
	full := sub("c100", "op-1", fanTopic, clk.Now())
	full.OperationName, full.Filter = "OnMessage", `{"author":{"eq":"ann"}}`
	full.Principal = json.RawMessage(`{"sub":"u1","exp":1900000000}`)
	if err := s.PutSubscription(ctx, full, false); err != nil {
		t.Fatal(err)
	}
	var paged *store.Subscription
	for _, pg := range pages(t, s, fanTopic, "", "") {
		for i := range pg.Subs {
			if pg.Subs[i].ConnectionID == full.ConnectionID {
				paged = &pg.Subs[i]
			}
		}
	}
	byKey, err := s.TopicSubscriptions(ctx, fanTopic, []store.SubKey{{ConnectionID: full.ConnectionID, ID: full.ID}})
	if err != nil || len(byKey) != 1 || paged == nil {
		t.Fatalf("the full subscription: in a page %v, by key %v, %v", paged != nil, byKey, err)
	}
	if n := reflect.TypeFor[store.Subscription]().NumField(); n != 11 {
		t.Fatalf("store.Subscription has %d fields: compare the new ones in sameSubscription and set them here", n)
	}
	for how, got := range map[string]store.Subscription{"TopicPages": *paged, "TopicSubscriptions": byKey[0]} {
		if !sameSubscription(got, full) {
			t.Fatalf("%s read %+v\nwant %+v", how, got, full)
		}
	}
	if _, err := s.DeleteSubscription(ctx, full.ConnectionID, full.ID); err != nil {
		t.Fatal(err)
	}

	// Stopping early is allowed; a cancelled context ends the read with its error.
	for _, err := range s.TopicPages(ctx, fanTopic, "", "") {
		if err != nil {
			t.Fatal(err)
		}
		break
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	var gotErr error
	for _, err := range s.TopicPages(cctx, fanTopic, "", "") {
		gotErr = err
	}
	if !errors.Is(gotErr, context.Canceled) {
		t.Fatalf("TopicPages with a cancelled context ended with %v, want context.Canceled", gotErr)
	}
}

// sameSubscription reports whether a subscription read back is the one stored: every field, times
// as instants.
func sameSubscription(a, b store.Subscription) bool {
	return a.ConnectionID == b.ConnectionID && a.ID == b.ID && a.Topic == b.Topic && a.Subprotocol == b.Subprotocol &&
		a.Query == b.Query && a.OperationName == b.OperationName && string(a.Variables) == string(b.Variables) &&
		a.Filter == b.Filter && string(a.Principal) == string(b.Principal) &&
		a.CreatedAt.Equal(b.CreatedAt) && a.ExpiresAt.Equal(b.ExpiresAt)
}

// testTopicCursors splits a topic at every n-th subscription: the ranges between consecutive
// boundaries hold exactly n subscriptions each, the last range is not empty, and together they
// hold the whole topic once.
func testTopicCursors(t *testing.T, open Factory) {
	ctx := context.Background()
	clk := NewClock()
	s := open(t, clk.Now)
	ids := fill(t, s, clk.Now(), 30)

	for _, every := range []int{1, 10, 11, 30, 31} {
		bounds, err := s.TopicCursors(ctx, fanTopic, "", "", every)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(bounds); n != (30-1)/every {
			t.Fatalf("every %d: %d boundaries, want %d (none at the last subscription)", every, n, (30-1)/every)
		}
		var got []string
		after := ""
		for i, b := range append(bounds, "") {
			part := conns(t, pages(t, s, fanTopic, after, b))
			if b != "" && len(part) != every {
				t.Fatalf("every %d: range %d holds %d subscriptions", every, i+1, len(part))
			}
			if b == "" && len(part) == 0 {
				t.Fatalf("every %d: the last range is empty", every)
			}
			got = append(got, part...)
			after = b
		}
		if !slices.Equal(got, ids) {
			t.Fatalf("every %d: the ranges hold %v\nwant %v", every, got, ids)
		}
	}

	// Within a range: the boundaries of (b1, b2] split it the same way.
	bounds, err := s.TopicCursors(ctx, fanTopic, "", "", 10)
	if err != nil || len(bounds) < 2 {
		t.Fatalf("TopicCursors = %v, %v", bounds, err)
	}
	inner, err := s.TopicCursors(ctx, fanTopic, bounds[0], bounds[1], 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(inner) != 2 {
		t.Fatalf("every 4 within a range of 10: %d boundaries", len(inner))
	}
	if part := conns(t, pages(t, s, fanTopic, bounds[0], inner[0])); !slices.Equal(part, ids[10:14]) {
		t.Fatalf("first inner range: %v, want %v", part, ids[10:14])
	}
	if _, err := s.TopicCursors(ctx, fanTopic, "", "", 0); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("TopicCursors every 0 = %v, want ErrInvalid", err)
	}
}

// testTopicSubscriptions reads subscriptions by key: present ones, not absent, expired or
// another topic's, each once.
func testTopicSubscriptions(t *testing.T, open Factory) {
	ctx := context.Background()
	clk := NewClock()
	s := open(t, clk.Now)
	fill(t, s, clk.Now(), 5)
	short := sub("c003", "1", fanTopic, clk.Now())
	short.ExpiresAt = clk.Now().Add(time.Minute)
	if err := s.PutSubscription(ctx, short, true); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Minute)
	var keys []store.SubKey
	for _, k := range [][2]string{{"c001", "1"}, {"c004", "1"}, {"c001", "1"}, {"c003", "1"}, {"c009", "1"}, {"c002", "2"}, {"other", "messageAdded?roomId=f"}} {
		keys = append(keys, store.SubKey{ConnectionID: k[0], ID: k[1]})
	}
	got, err := s.TopicSubscriptions(ctx, fanTopic, keys)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, g := range got {
		if g.Topic != fanTopic || g.Query == "" {
			t.Fatalf("TopicSubscriptions returned %+v", g)
		}
		names = append(names, g.ConnectionID+"/"+g.ID)
	}
	slices.Sort(names)
	if strings.Join(names, " ") != "c001/1 c004/1" {
		t.Fatalf("TopicSubscriptions = %v, want c001/1 and c004/1 once each", names)
	}
	if got, err := s.TopicSubscriptions(ctx, fanTopic, nil); err != nil || len(got) != 0 {
		t.Fatalf("no keys: %v, %v", got, err)
	}
	// More keys than one request of the backend takes.
	var many []store.SubKey
	for i := range 130 {
		many = append(many, store.SubKey{ConnectionID: fmt.Sprintf("c%03d", i), ID: "1"})
	}
	if got, err := s.TopicSubscriptions(ctx, fanTopic, many); err != nil || len(got) != 4 {
		t.Fatalf("130 keys, 4 live: %d subscriptions, %v", len(got), err)
	}
}

// testFanoutProgress writes, replaces and reads progress rows; expired rows read as absent; keys
// are bounded.
func testFanoutProgress(t *testing.T, open Factory) {
	ctx := context.Background()
	clk := NewClock()
	s := open(t, clk.Now)
	exp := clk.Now().Add(24 * time.Hour)
	rows := []store.Progress{
		{Key: "fo1:aa", Cursor: "cur1", ExpiresAt: exp},
		{Key: "fo1:aa/1", Until: "u", Done: true, Parts: 2, ExpiresAt: exp},
		{Key: "fo1:bb", Done: true, ExpiresAt: clk.Now().Add(time.Minute)},
	}
	if err := s.SaveFanoutProgress(ctx, rows); err != nil {
		t.Fatal(err)
	}
	got, err := s.FanoutProgress(ctx, []string{"fo1:aa", "fo1:aa/1", "fo1:bb", "fo1:absent"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("FanoutProgress = %+v, want the three rows", got)
	}
	for _, r := range rows {
		g := got[r.Key]
		if g.Key != r.Key || g.Cursor != r.Cursor || g.Until != r.Until || g.Done != r.Done || g.Parts != r.Parts || !g.ExpiresAt.Equal(r.ExpiresAt) {
			t.Fatalf("row %s read back as %+v, want %+v", r.Key, g, r)
		}
	}
	// A write replaces the whole row.
	if err := s.SaveFanoutProgress(ctx, []store.Progress{{Key: "fo1:aa", Done: true, ExpiresAt: exp}}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Minute)
	got, err = s.FanoutProgress(ctx, []string{"fo1:aa", "fo1:bb"})
	if err != nil {
		t.Fatal(err)
	}
	if g, ok := got["fo1:aa"]; !ok || !g.Done || g.Cursor != "" || len(got) != 1 {
		t.Fatalf("after a replace and an expiry: %+v, want fo1:aa done without cursor, fo1:bb absent", got)
	}
	// Many rows at once: more than one request of the backend.
	var many []store.Progress
	var keys []string
	for i := range 130 {
		k := fmt.Sprintf("fo1:m%03d", i)
		many = append(many, store.Progress{Key: k, Cursor: k, ExpiresAt: exp})
		keys = append(keys, k)
	}
	if err := s.SaveFanoutProgress(ctx, many); err != nil {
		t.Fatal(err)
	}
	if got, err := s.FanoutProgress(ctx, keys); err != nil || len(got) != 130 || got["fo1:m129"].Cursor != "fo1:m129" {
		t.Fatalf("130 rows read back as %d rows, %v", len(got), err)
	}
	if got, err := s.FanoutProgress(ctx, nil); err != nil || len(got) != 0 {
		t.Fatalf("no keys: %v, %v", got, err)
	}
	// The bound on keys: MaxProgressKey bytes, and one more.
	if err := s.SaveFanoutProgress(ctx, []store.Progress{{Key: strings.Repeat("k", store.MaxProgressKey), ExpiresAt: exp}}); err != nil {
		t.Fatalf("a key of MaxProgressKey bytes: %v", err)
	}
	for _, k := range []string{"", strings.Repeat("k", store.MaxProgressKey+1)} {
		if err := s.SaveFanoutProgress(ctx, []store.Progress{{Key: k, ExpiresAt: exp}}); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("a key of %d bytes: %v, want ErrInvalid", len(k), err)
		}
	}
}
