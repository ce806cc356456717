package graph

// The example app's authorization rules and complexity weights. (The mechanisms, the principal
// accessor, SubscribeRule and the limits, are the framework's: auth.go, limits.go.)
//
// With authentication on (the principal is not anonymous):
//   - sendMessage takes its author from the principal: the `name` claim, else the subject; an
//     `author` argument that differs is FORBIDDEN;
//   - only a message's author (by subject) may edit or delete it: FORBIDDEN otherwise;
//   - a `rooms` claim, when present, lists the rooms the principal may read, write and subscribe
//     to: FORBIDDEN outside them (a claim that is not a list of strings allows none).

import (
	"context"
	"slices"

	"github.com/realtime-gql/lambdaws/engine"
	"github.com/realtime-gql/lambdaws/graph/model"
	"github.com/realtime-gql/lambdaws/internal/auth"
)

// roomsClaim is the claim that limits the rooms a principal may use.
const roomsClaim = "rooms"

// caller returns the request's principal and whether authentication is on for it.
func caller(ctx context.Context) (auth.Principal, bool) {
	p, _ := PrincipalFrom(ctx)
	return p, !p.IsAnonymous()
}

// authorName is who the principal writes as: its name claim, else its subject.
func authorName(p auth.Principal) string {
	if name, ok := p.StringClaim("name"); ok && name != "" {
		return name
	}
	return p.Subject
}

// roomAllowed reports whether the principal may use a room under its rooms claim.
func roomAllowed(p auth.Principal, roomID string) bool {
	if _, limited := p.Claims[roomsClaim]; !limited {
		return true
	}
	rooms, ok := p.StringsClaim(roomsClaim)
	return ok && slices.Contains(rooms, roomID)
}

// checkRoom is the room rule of queries and mutations.
func checkRoom(ctx context.Context, roomID string) error {
	if p, on := caller(ctx); on && !roomAllowed(p, roomID) {
		return Forbidden("room %q is not among the rooms your token allows", roomID)
	}
	return nil
}

// checkAuthor is the rule of edits and deletes: only the message's author may.
func checkAuthor(ctx context.Context, m model.Message, what string) error {
	if p, on := caller(ctx); on && (m.AuthorSub == "" || m.AuthorSub != p.Subject) {
		return Forbidden("only the author of a message may %s it", what)
	}
	return nil
}

// authorOnly reads a message and applies checkAuthor to it; with authentication off it reads
// nothing. (The author of a message never changes, so reading before writing is no race.)
func (r *Resolver) authorOnly(ctx context.Context, roomID, id, what string) error {
	if _, on := caller(ctx); !on {
		return nil
	}
	m, err := engine.Table[model.Message](r.Tables).Get(ctx, messageKey(roomID, id))
	if err != nil {
		return notFoundAs(err, "message %q not found in room %q", id, roomID)
	}
	return checkAuthor(ctx, m, what)
}

// SubscribeRules are the example's subscribe-time rules: every subscription field takes a roomId,
// which must be one the principal's rooms claim allows (announcements included).
func (r *Resolver) SubscribeRules() map[string]SubscribeRule {
	room := func(ctx context.Context, p auth.Principal, args map[string]any) error {
		roomID, _ := args["roomId"].(string)
		if !p.IsAnonymous() && !roomAllowed(p, roomID) {
			return Forbidden("room %q is not among the rooms your token allows", roomID)
		}
		return nil
	}
	return map[string]SubscribeRule{"messageAdded": room, "messageEdited": room, "messageDeleted": room,
		"announcement": room}
}

// Complexity weights: a field costs 1 plus what it selects; messages(last: n) costs its
// selection n times, and a message's text (up to MaxTextLength characters) costs 4, so that the
// complexity limit bounds the size of a result, not only its field count.
const textWeight = 4

// config is the generated schema's configuration: the resolvers and the complexity functions.
func (r *Resolver) config() Config {
	c := Config{Resolvers: r}
	c.Complexity.Query.Messages = func(child int, _ string, last *int) int {
		n := defaultLast
		if last != nil && *last > 0 {
			n = *last
		}
		return 1 + n*child
	}
	c.Complexity.Message.Text = func(int) int { return textWeight }
	return c
}

// defaultLast is the default of messages(last:), as the schema declares it.
const defaultLast = 50
