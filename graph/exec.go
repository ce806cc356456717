package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/99designs/gqlgen/graphql/executor"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/realtime-gql/lambdaws/internal/facts"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// Options configure an Executor.
type Options struct {
	// QueryCacheSize is how many distinct parsed and validated documents are kept; default 1000.
	QueryCacheSize int
	// DisableIntrospection turns off __schema and __type queries; introspection is on by default.
	DisableIntrospection bool
}

// Executor runs single GraphQL operations against the schema, with no transport of its own.
// It is safe for concurrent use.
type Executor struct {
	exec *executor.Executor
}

// NewExecutor returns an Executor over the resolvers r.
func NewExecutor(r *Resolver, opts Options) *Executor {
	if opts.QueryCacheSize <= 0 {
		opts.QueryCacheSize = 1000
	}
	exec := executor.New(NewExecutableSchema(Config{Resolvers: r}))
	exec.SetQueryCache(lru.New[*ast.QueryDocument](opts.QueryCacheSize))
	exec.SetErrorPresenter(presentError)
	exec.SetRecoverFunc(recoverPanic)
	if !opts.DisableIntrospection {
		// gqlgen's executor disables introspection unless this extension enables it.
		exec.Use(extension.Introspection{})
	}
	return &Executor{exec: exec}
}

// A Request is one GraphQL request.
type Request struct {
	Query         string
	OperationName string
	// Variables is the raw JSON variables object; nil for none.
	Variables json.RawMessage
}

// An Operation is a validated request, ready to execute or to store.
type Operation struct {
	// Kind is query, mutation or subscription.
	Kind ast.Operation
	// Topic is the subscription's topic; empty for queries and mutations.
	Topic string
	opCtx *graphql.OperationContext
}

// ErrNoTopic reports a subscription whose field cannot be turned into a topic.
var ErrNoTopic = errors.New("graph: subscription has no topic")

// Prepare parses, validates and coerces a request, and for a subscription derives its topic. The
// errors it returns are GraphQL errors fit for the client (pass them to ErrorResponse).
func (e *Executor) Prepare(ctx context.Context, req Request) (*Operation, gqlerror.List) {
	vars, err := decodeVariables(req.Variables)
	if err != nil {
		return nil, gqlerror.List{gqlerror.Errorf("variables: %v", err)}
	}
	ctx = graphql.StartOperationTrace(ctx)
	opCtx, errs := e.exec.CreateOperationContext(ctx, &graphql.RawParams{
		Query: req.Query, OperationName: req.OperationName, Variables: vars,
	})
	if errs != nil {
		return nil, errs
	}
	op := &Operation{Kind: opCtx.Operation.Operation, opCtx: opCtx}
	if op.Kind == ast.Subscription {
		topic, err := subscriptionTopic(opCtx)
		if err != nil {
			return nil, gqlerror.List{gqlerror.Errorf("%v", err)}
		}
		if len(topic) > facts.MaxTopic {
			e := gqlerror.Errorf("the subscription's arguments are too long (topic of %d bytes, at most %d)", len(topic), facts.MaxTopic)
			errcode.Set(e, CodeBadUserInput)
			return nil, gqlerror.List{e}
		}
		op.Topic = topic
	}
	return op, nil
}

// subscriptionTopic derives the topic from the subscription's single root field and the values
// of its @topic arguments, with variables and defaults applied.
func subscriptionTopic(opCtx *graphql.OperationContext) (string, error) {
	fields := graphql.CollectFields(opCtx, opCtx.Operation.SelectionSet, []string{"Subscription"})
	if len(fields) != 1 || fields[0].Definition == nil {
		return "", fmt.Errorf("%w: a subscription must select exactly one field", ErrNoTopic)
	}
	f := fields[0]
	values := f.ArgumentMap(opCtx.Variables)
	args := map[string]any{}
	for _, def := range f.Definition.Arguments {
		if def.Directives.ForName("topic") != nil {
			args[def.Name] = values[def.Name]
		}
	}
	return Topic(f.Name, args), nil
}

// Execute runs a query or mutation and returns its result.
func (e *Executor) Execute(ctx context.Context, op *Operation) *graphql.Response {
	if op.Kind == ast.Subscription {
		return e.ErrorResponse(ctx, gqlerror.List{gqlerror.Errorf("a subscription cannot be executed here")})
	}
	handler, ctx := e.exec.DispatchOperation(ctx, op.opCtx)
	return handler(ctx)
}

// Render executes a stored subscription against one event and returns the result the subscriber
// receives, or nil when the event does not concern it. A stored request that no longer validates
// renders as an error result.
func (e *Executor) Render(ctx context.Context, req Request, ev *Event) *graphql.Response {
	op, errs := e.Prepare(ctx, req)
	if errs != nil {
		return e.ErrorResponse(ctx, errs)
	}
	if op.Kind != ast.Subscription {
		return e.ErrorResponse(ctx, gqlerror.List{gqlerror.Errorf("stored operation is not a subscription")})
	}
	ctx = withEvent(ctx, ev)
	handler, ctx := e.exec.DispatchOperation(ctx, op.opCtx)
	return handler(ctx)
}

// ErrorResponse presents request errors (from Prepare) as a response.
func (e *Executor) ErrorResponse(ctx context.Context, errs gqlerror.List) *graphql.Response {
	return e.exec.DispatchError(ctx, errs)
}

func decodeVariables(raw json.RawMessage) (map[string]any, error) {
	if len(raw) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var vars map[string]any
	if err := dec.Decode(&vars); err != nil {
		return nil, errors.New("must be a JSON object")
	}
	return vars, nil
}
