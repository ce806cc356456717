package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/realtime-gql/lambdaws/store"
	"github.com/rs/zerolog"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// Error codes in extensions.code. (The executor's own, GRAPHQL_PARSE_FAILED and
// GRAPHQL_VALIDATION_FAILED, are gqlgen's errcode.ParseFailed and errcode.ValidationFailed.)
const (
	// CodeBadUserInput: an argument is out of bounds; nothing was written.
	CodeBadUserInput = "BAD_USER_INPUT"
	// CodeNotFound: the record the operation names does not exist.
	CodeNotFound = "NOT_FOUND"
	// CodeInternal: the service failed; the details are in the log, not in the message.
	CodeInternal = "INTERNAL_SERVER_ERROR"
	// CodeResultTooLarge: the result is over the transport's message limit and was replaced by
	// this error.
	CodeResultTooLarge = "RESULT_TOO_LARGE"
	// CodeUnauthenticated: no valid token (HTTP answers 401).
	CodeUnauthenticated = "UNAUTHENTICATED"
	// CodeForbidden: the caller is authenticated but may not do this.
	CodeForbidden = "FORBIDDEN"
	// CodeTooManySubscriptions: the connection has as many subscriptions as it may.
	CodeTooManySubscriptions = "SUBSCRIPTION_LIMIT_EXCEEDED"
)

// Input limits.
const (
	MaxTextLength   = 4096 // characters
	MaxAuthorLength = 100  // characters
	MaxIDLength     = 256  // characters, for roomId and id
	MaxLast         = 500
)

// userError is an error whose message and code are meant for the client.
type userError struct {
	code, msg string
}

func (e *userError) Error() string { return e.msg }

func badInput(format string, args ...any) error {
	return &userError{code: CodeBadUserInput, msg: fmt.Sprintf(format, args...)}
}

// Forbidden is the error a resolver or a SubscribeRule returns to deny an authenticated caller:
// the client reads the message, with extensions.code FORBIDDEN.
func Forbidden(format string, args ...any) error {
	return &userError{code: CodeForbidden, msg: fmt.Sprintf(format, args...)}
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

// notFoundAs turns store.ErrNotFound into a NOT_FOUND error with a client message; other errors
// pass through.
func notFoundAs(err error, format string, args ...any) error {
	if isNotFound(err) {
		return &userError{code: CodeNotFound, msg: fmt.Sprintf(format, args...)}
	}
	return err
}

// check returns the first failed argument check.
func check(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func required(name, v string, maxChars int) error {
	if strings.TrimSpace(v) == "" {
		return badInput("%s must not be empty", name)
	}
	if n := utf8.RuneCountInString(v); n > maxChars {
		return badInput("%s must be at most %d characters, got %d", name, maxChars, n)
	}
	return nil
}

func roomArg(v string) error   { return required("roomId", v, MaxIDLength) }
func idArg(v string) error     { return required("id", v, MaxIDLength) }
func authorArg(v string) error { return required("author", v, MaxAuthorLength) }
func textArg(v string) error   { return required("text", v, MaxTextLength) }

func lastArg(n int) error {
	if n < 1 || n > MaxLast {
		return badInput("last must be between 1 and %d, got %d", MaxLast, n)
	}
	return nil
}

// This file is the one place where errors become what a client sees. The executor presents
// resolver errors with presentError and panics with recoverPanic; the transports (the WebSocket
// routes, the HTTP endpoint, the fan-out) take the errors they must show from the functions below
// and never write error JSON themselves.

// InternalError is what a client sees when the service failed: a fixed message and
// INTERNAL_SERVER_ERROR. The details belong in the log.
func InternalError() *gqlerror.Error {
	e := &gqlerror.Error{Message: "internal error"}
	errcode.Set(e, CodeInternal)
	return e
}

// ResultTooLarge is the error that replaces a result of size bytes that cannot be sent because
// it is over the limit (the message limit of the transport), with RESULT_TOO_LARGE.
func ResultTooLarge(size, limit int) *gqlerror.Error {
	e := gqlerror.Errorf("the result is %d bytes, over the %d-byte message limit", size, limit)
	errcode.Set(e, CodeResultTooLarge)
	return e
}

// Unauthenticated is the error of a request without a valid token: msg (auth.ClientMessage's
// short text), with UNAUTHENTICATED.
func Unauthenticated(msg string) *gqlerror.Error {
	e := &gqlerror.Error{Message: msg}
	errcode.Set(e, CodeUnauthenticated)
	return e
}

// TooManySubscriptions is the error of a subscribe past a connection's bound of max.
func TooManySubscriptions(max int) *gqlerror.Error {
	e := gqlerror.Errorf("the connection has %d subscriptions, the most it may have: complete one first", max)
	errcode.Set(e, CodeTooManySubscriptions)
	return e
}

// RequestError is an error about a request that did not reach GraphQL (the wrong method, an
// unacceptable media type, a body too large): a message and nothing else.
func RequestError(format string, args ...any) *gqlerror.Error {
	return gqlerror.Errorf(format, args...)
}

// ErrorsJSON is the JSON of a GraphQL response that holds only errors: {"errors":[...]}.
func ErrorsJSON(errs ...*gqlerror.Error) json.RawMessage {
	b, _ := json.Marshal(struct {
		Errors []*gqlerror.Error `json:"errors"`
	}{errs})
	return b
}

// presentError is the executor's error presenter: user errors keep their message and code,
// GraphQL errors (parse, validation, coercion) pass through, and anything else is logged and
// shown only as an internal error.
func presentError(ctx context.Context, err error) *gqlerror.Error {
	var gerr *gqlerror.Error
	if !errors.As(err, &gerr) {
		gerr = gqlerror.WrapPath(graphql.GetPath(ctx), err)
	}
	var uerr *userError
	switch {
	case errors.As(err, &uerr):
		gerr.Message = uerr.msg
		errcode.Set(gerr, uerr.code)
	case isNotFound(err):
		gerr.Message = "not found"
		errcode.Set(gerr, CodeNotFound)
	case gerr.Err == nil:
		// A GraphQL error made by the executor itself: already fit for the client.
	default:
		zerolog.Ctx(ctx).Error().Err(err).Str("path", gerr.Path.String()).Msg("resolver failed")
		internal := InternalError()
		gerr.Message, gerr.Extensions = internal.Message, internal.Extensions
	}
	return gerr
}

// recoverPanic turns a resolver panic into an internal error and logs it with its stack.
func recoverPanic(ctx context.Context, p any) error {
	zerolog.Ctx(ctx).Error().Str("panic", fmt.Sprint(p)).Bytes("stack", debug.Stack()).Msg("resolver panicked")
	return InternalError()
}
