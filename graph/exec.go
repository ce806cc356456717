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
	"github.com/realtime-gql/lambdaws/engine"
	"github.com/realtime-gql/lambdaws/internal/facts"
	"github.com/realtime-gql/lambdaws/internal/filter"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// Options configure an Executor.
type Options struct {
	// QueryCacheSize is how many distinct parsed and validated documents are kept; default 1000.
	QueryCacheSize int
	// DisableIntrospection turns off __schema and __type queries; introspection is on by default.
	DisableIntrospection bool
	// Schema is the schema to execute; default the app's, over the resolvers NewExecutor is given
	// (with the example's complexity weights).
	Schema graphql.ExecutableSchema
	// Limits bound what one document may cost; zero fields take the defaults.
	Limits Limits
	// Authenticated refuses, with UNAUTHENTICATED, every operation whose context carries no
	// principal or the anonymous one (AUTH_MODE=jwt). A path that forgot to set the principal
	// is then refused rather than run as anonymous.
	Authenticated bool
	// SubscribeRules authorize subscriptions, per Subscription field name; nil takes the
	// resolvers' own (Resolver.SubscribeRules). A field without a rule is open to every caller.
	SubscribeRules map[string]SubscribeRule
}

// Executor runs single GraphQL operations against the schema, with no transport of its own.
// It is safe for concurrent use.
type Executor struct {
	exec           *executor.Executor
	src            *engine.Sources
	filters        map[string]*filter.Spec // by subscription field
	cache          *lru.LRU[*ast.QueryDocument]
	limits         Limits
	authenticated  bool
	subscribeRules map[string]SubscribeRule
}

// NewExecutor returns an Executor over the resolvers r. It analyses the schema's declarations of
// where subscription events come from (Analyze) and fails, naming each field that is wrong, when
// they are invalid: the service refuses to start rather than fail at the first event.
func NewExecutor(r *Resolver, opts Options) (*Executor, error) {
	if opts.QueryCacheSize <= 0 {
		opts.QueryCacheSize = 1000
	}
	if opts.Schema == nil {
		opts.Schema = NewExecutableSchema(r.config())
	}
	if opts.SubscribeRules == nil && r != nil {
		opts.SubscribeRules = r.SubscribeRules()
	}
	src, err := Analyze(opts.Schema.Schema())
	if err != nil {
		return nil, err
	}
	filters, err := filterSpecs(opts.Schema.Schema(), src)
	if err != nil {
		return nil, err
	}
	limits := opts.Limits.WithDefaults()
	exec := executor.New(opts.Schema)
	cache := lru.New[*ast.QueryDocument](opts.QueryCacheSize)
	exec.SetQueryCache(cache)
	exec.SetParserTokenLimit(limits.MaxTokens)
	exec.SetDefaultRulesFn(validationRules)
	exec.SetErrorPresenter(presentError)
	exec.SetRecoverFunc(recoverPanic)
	exec.Use(extension.FixedComplexityLimit(limits.MaxComplexity))
	if !opts.DisableIntrospection {
		// gqlgen's executor disables introspection unless this extension enables it.
		exec.Use(extension.Introspection{})
	}
	return &Executor{exec: exec, src: src, filters: filters, cache: cache, limits: limits,
		authenticated: opts.Authenticated, subscribeRules: opts.SubscribeRules}, nil
}

// Limits returns the limits the executor applies, defaults filled in.
func (e *Executor) Limits() Limits { return e.limits }

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
	// Filter is the subscription's compiled filter argument as its canonical key
	// (filter.Filter.Key); empty when it has none.
	Filter string
	opCtx  *graphql.OperationContext
}

// ErrNoTopic reports a subscription whose field cannot be turned into a topic.
var ErrNoTopic = errors.New("graph: subscription has no topic")

// Prepare parses, validates and coerces a request, and for a subscription runs the field's
// SubscribeRule, derives its topic (engine.TopicOf) and compiles its filter argument, if it has
// one: an invalid filter, or one over internal/filter's bounds, is refused here with
// BAD_USER_INPUT, never at fan-out. A document is first measured against the limits, before the
// validator sees it (a document the cache holds has passed them already). The errors it returns
// are GraphQL errors fit for the client (pass them to ErrorResponse).
//
// ctx carries the caller's principal (WithPrincipal); Execute must be given a context with the
// same principal.
func (e *Executor) Prepare(ctx context.Context, req Request) (*Operation, gqlerror.List) {
	ctx, perr := e.checkPrincipal(ctx)
	if perr != nil {
		return nil, gqlerror.List{perr}
	}
	vars, err := decodeVariables(req.Variables)
	if err != nil {
		return nil, gqlerror.List{gqlerror.Errorf("variables: %v", err)}
	}
	if _, cached := e.cache.Get(ctx, req.Query); !cached {
		if lerr := e.limits.checkDocument(req.Query); lerr != nil {
			return nil, gqlerror.List{lerr}
		}
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
		field, args, err := subscriptionField(opCtx)
		if err != nil {
			return nil, gqlerror.List{gqlerror.Errorf("%v", err)}
		}
		if aerr := e.authorizeSubscription(ctx, field, args); aerr != nil {
			return nil, gqlerror.List{aerr}
		}
		topic := engine.TopicOf(field.Field, opCtx.Variables)
		if len(topic) > facts.MaxTopic {
			e := gqlerror.Errorf("the subscription's arguments are too long (topic of %d bytes, at most %d)", len(topic), facts.MaxTopic)
			errcode.Set(e, CodeBadUserInput)
			return nil, gqlerror.List{e}
		}
		op.Topic = topic
		if spec := e.filters[field.Name]; spec != nil {
			flt, err := spec.Compile(args["filter"])
			if err != nil {
				e := gqlerror.Errorf("%v", err)
				errcode.Set(e, CodeBadUserInput)
				return nil, gqlerror.List{e}
			}
			op.Filter = flt.Key()
		}
	}
	return op, nil
}

// subscriptionField returns the subscription's single root field and its arguments, with
// variables and defaults applied.
func subscriptionField(opCtx *graphql.OperationContext) (graphql.CollectedField, map[string]any, error) {
	fields := graphql.CollectFields(opCtx, opCtx.Operation.SelectionSet, []string{"Subscription"})
	if len(fields) != 1 || fields[0].Definition == nil {
		return graphql.CollectedField{}, nil, fmt.Errorf("%w: a subscription must select exactly one field", ErrNoTopic)
	}
	return fields[0], fields[0].ArgumentMap(opCtx.Variables), nil
}

// Execute runs a query or mutation and returns its result. ctx carries the caller's principal,
// as Prepare's did; cancelling it reaches the resolvers.
func (e *Executor) Execute(ctx context.Context, op *Operation) *graphql.Response {
	ctx, perr := e.checkPrincipal(ctx)
	if perr != nil {
		return e.ErrorResponse(ctx, gqlerror.List{perr})
	}
	if op.Kind == ast.Subscription {
		return e.ErrorResponse(ctx, gqlerror.List{gqlerror.Errorf("a subscription cannot be executed here")})
	}
	handler, ctx := e.exec.DispatchOperation(ctx, op.opCtx)
	return handler(ctx)
}

// Events addresses a decoded change or external event to the subscription fields and topics it
// feeds, as the schema declares (engine.Sources.Events).
func (e *Executor) Events(ch engine.Change) ([]engine.Event, error) { return e.src.Events(ch) }

// Filter compiles a stored subscription's filter, by its canonical key (Operation.Filter), for the
// field it filters. An empty key is no filter (nil, which matches everything).
func (e *Executor) Filter(field, key string) (*filter.Filter, error) {
	if key == "" {
		return nil, nil
	}
	spec := e.filters[field]
	if spec == nil {
		return nil, fmt.Errorf("subscription field %q has no filter argument", field)
	}
	return spec.CompileJSON([]byte(key))
}

// Render executes a stored subscription against one event and returns the result the subscriber
// receives, or nil when the event does not concern it. ctx carries the subscriber's stored
// principal (WithPrincipal). A stored request that no longer validates, passes the limits or its
// SubscribeRule renders as an error result. The event's identity (extensions.event) is not added
// here: the fan-out engine splices it into every frame it sends, error results of its own
// included (internal/fanout.WithEvent).
func (e *Executor) Render(ctx context.Context, req Request, ev *engine.Event) *graphql.Response {
	op, errs := e.Prepare(ctx, req)
	switch {
	case errs != nil:
		return e.ErrorResponse(ctx, errs)
	case op.Kind != ast.Subscription:
		return e.ErrorResponse(ctx, gqlerror.List{gqlerror.Errorf("stored operation is not a subscription")})
	}
	ctx = engine.WithEvent(ctx, ev)
	handler, hctx := e.exec.DispatchOperation(ctx, op.opCtx)
	return handler(hctx)
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
