package publish

import (
	"errors"

	"github.com/realtime-gql/lambdaws/internal/fanout"
	"github.com/realtime-gql/lambdaws/internal/mgmt"
)

// Classify sorts the error of one post for the engine: internal/mgmt's sentinels (a post still
// throttled when the deadline stopped its retries is throttled, not cut), then the context's.
func Classify(err error) fanout.Class {
	switch {
	case errors.Is(err, mgmt.ErrGone):
		return fanout.ClassGone
	case errors.Is(err, mgmt.ErrTooLarge):
		return fanout.ClassTooLarge
	case errors.Is(err, mgmt.ErrForbidden):
		return fanout.ClassForbidden
	case errors.Is(err, mgmt.ErrThrottled):
		return fanout.ClassThrottled
	case errors.Is(err, mgmt.ErrServer):
		return fanout.ClassServer
	case errors.Is(err, mgmt.ErrUnavailable):
		return fanout.ClassUnavailable
	case errors.Is(err, mgmt.ErrDeadline):
		return fanout.ClassDeadline // the margin came before the first attempt
	case errors.Is(err, mgmt.ErrRejected), errors.Is(err, mgmt.ErrCredentials):
		return fanout.ClassOther
	}
	return fanout.DefaultClassify(err)
}
