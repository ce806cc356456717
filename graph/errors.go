package graph

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/realtime-gql/lambdaws/store"
	"github.com/rs/zerolog"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// Error codes in extensions.code.
const (
	CodeBadUserInput = "BAD_USER_INPUT"
	CodeNotFound     = "NOT_FOUND"
	CodeInternal     = "INTERNAL_SERVER_ERROR"
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

// presentError is the one place errors become client responses: user errors keep their message and
// code, GraphQL errors (parse, validation, coercion) pass through, and anything else is logged
// and shown only as an internal error.
func presentError(ctx context.Context, err error) *gqlerror.Error {
	var gerr *gqlerror.Error
	if !errors.As(err, &gerr) {
		gerr = gqlerror.WrapPath(graphql.GetPath(ctx), err)
	}
	var uerr *userError
	switch {
	case errors.As(err, &uerr):
		gerr.Message = uerr.msg
		setCode(gerr, uerr.code)
	case isNotFound(err):
		gerr.Message = "not found"
		setCode(gerr, CodeNotFound)
	case gerr.Err == nil:
		// A GraphQL error made by the executor itself: already fit for the client.
	default:
		zerolog.Ctx(ctx).Error().Err(err).Str("path", gerr.Path.String()).Msg("resolver failed")
		gerr.Message = "internal error"
		setCode(gerr, CodeInternal)
	}
	return gerr
}

func setCode(e *gqlerror.Error, code string) {
	if e.Extensions == nil {
		e.Extensions = map[string]any{}
	}
	e.Extensions["code"] = code
}

// recoverPanic turns a resolver panic into an internal error and logs it with its stack.
func recoverPanic(ctx context.Context, p any) error {
	zerolog.Ctx(ctx).Error().Str("panic", fmt.Sprint(p)).Bytes("stack", debug.Stack()).Msg("resolver panicked")
	return &gqlerror.Error{Message: "internal error", Extensions: map[string]any{"code": CodeInternal}}
}
