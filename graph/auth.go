package graph

// This file is the framework's side of authorization: the principal every path puts in the
// context, the one accessor resolvers read it with, and the subscribe-time hook an app implements
// per subscription field. The example's own rules live with its resolvers (rules.go).

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/99designs/gqlgen/graphql"
	"github.com/realtime-gql/lambdaws/internal/auth"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

type principalKey struct{}

// WithPrincipal returns ctx carrying the caller's principal. Every path that reaches the
// executor sets it: the HTTP endpoint (from the bearer token), the WebSocket routes (from the
// connection's stored principal) and the fan-out (from the subscription's stored principal).
func WithPrincipal(ctx context.Context, p auth.Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the caller's principal: the one accessor resolvers use. ok is false when
// no path set one (a direct call of the executor in a test); the executor then runs the
// operation as the anonymous principal, or, when Options.Authenticated is set, refuses it.
// With authentication off (AUTH_MODE=none) the principal is anonymous (IsAnonymous).
func PrincipalFrom(ctx context.Context) (auth.Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(auth.Principal)
	return p, ok
}

// PrincipalFromJSON decodes a principal stored as JSON (a connection's or a subscription's), for
// the paths that set it from the registry. An empty value is the anonymous principal.
func PrincipalFromJSON(raw json.RawMessage) (auth.Principal, error) {
	var p auth.Principal
	if err := p.UnmarshalJSON(raw); err != nil {
		return auth.Principal{}, fmt.Errorf("stored principal: %w", err)
	}
	return p, nil
}

// A SubscribeRule authorizes subscribing to one Subscription field: it is called when a client
// subscribes (and again at each render, with the principal stored with the subscription) with
// the caller's principal and the field's arguments, variables and defaults applied. nil allows;
// an error denies, and the client reads its message (use Forbidden for a FORBIDDEN code).
type SubscribeRule func(ctx context.Context, p auth.Principal, args map[string]any) error

// checkPrincipal makes sure ctx carries a principal, and refuses an anonymous one when
// authentication is required.
func (e *Executor) checkPrincipal(ctx context.Context) (context.Context, *gqlerror.Error) {
	p, ok := PrincipalFrom(ctx)
	if !ok {
		p = auth.Anonymous()
		ctx = WithPrincipal(ctx, p)
	}
	if e.authenticated && p.IsAnonymous() {
		return ctx, Unauthenticated("authentication required")
	}
	return ctx, nil
}

// authorizeSubscription runs the field's SubscribeRule, if it has one.
func (e *Executor) authorizeSubscription(ctx context.Context, f graphql.CollectedField, args map[string]any) *gqlerror.Error {
	rule, ok := e.subscribeRules[f.Name]
	if !ok {
		return nil
	}
	p, _ := PrincipalFrom(ctx)
	if err := rule(ctx, p, args); err != nil {
		return presentError(ctx, err)
	}
	return nil
}
