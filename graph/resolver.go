// Package graph is the schema-first GraphQL layer: the schema, its resolvers, and the executor the router and the fan-out call directly.
//
// gqlgen generates generated.go from schema.graphqls (go generate ./...); resolvers live in
// schema.resolvers.go. Nothing here runs a server: Executor validates, executes and renders single
// operations for the WebSocket routes, the HTTP API and the stream fan-out.
//
// A subscription in a request/response world: on subscribe nothing is executed; the operation is
// validated and its topic is derived from the subscription field and its @topic arguments. On
// fan-out the change arrives through the context, the resolver yields it once (or not at all if
// it does not match) and its channel is closed, so nothing outlives the invocation.
package graph

//go:generate go tool gqlgen generate

import (
	"time"

	"github.com/realtime-gql/lambdaws/store"
)

// Resolver holds the resolvers' dependencies.
type Resolver struct {
	// Messages is where the app data lives.
	Messages store.Messages
	// Now is the clock; default time.Now.
	Now func() time.Time
}

func (r *Resolver) now() time.Time {
	if r.Now != nil {
		return r.Now().UTC()
	}
	return time.Now().UTC()
}
