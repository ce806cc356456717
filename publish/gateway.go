package publish

import (
	"context"
	"errors"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/smithy-go"
	"github.com/realtime-gql/lambdaws/internal/fanout"
	"github.com/realtime-gql/lambdaws/internal/mgmt"
)

// Classify sorts the error of one post for the engine: internal/mgmt's sentinels first (a post
// still throttled when the deadline stopped its retries is throttled, not cut), then the errors
// of the SDK's client (SDK), then the context's.
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
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "GoneException":
			return fanout.ClassGone
		case "ForbiddenException", "AccessDeniedException":
			return fanout.ClassForbidden
		case "PayloadTooLargeException":
			return fanout.ClassTooLarge
		case "LimitExceededException", "ThrottlingException", "TooManyRequestsException":
			return fanout.ClassThrottled
		}
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		switch s := re.HTTPStatusCode(); {
		case s == http.StatusGone:
			return fanout.ClassGone
		case s == http.StatusForbidden:
			return fanout.ClassForbidden
		case s == http.StatusRequestEntityTooLarge:
			return fanout.ClassTooLarge
		case s == http.StatusTooManyRequests:
			return fanout.ClassThrottled
		case s >= 500:
			return fanout.ClassServer
		}
		return fanout.ClassOther
	}
	if c := fanout.DefaultClassify(err); c == fanout.ClassDeadline {
		return c
	}
	// No answer at all (a refused or reset connection, a timeout of the SDK's own).
	var oe *smithy.OperationError
	if errors.As(err, &oe) {
		return fanout.ClassUnavailable
	}
	return fanout.ClassOther
}

// SDKClient is the SDK's management API client, or anything with its methods (mgmttest).
type SDKClient interface {
	PostToConnection(ctx context.Context, in *apigatewaymanagementapi.PostToConnectionInput,
		optFns ...func(*apigatewaymanagementapi.Options)) (*apigatewaymanagementapi.PostToConnectionOutput, error)
	DeleteConnection(ctx context.Context, in *apigatewaymanagementapi.DeleteConnectionInput,
		optFns ...func(*apigatewaymanagementapi.Options)) (*apigatewaymanagementapi.DeleteConnectionOutput, error)
}

// SDK adapts the SDK's management API client to Gateway; Classify sorts its errors. Production
// posts with internal/mgmt's client instead, which costs a third of the SDK's CPU per post; this
// serves in-process fakes of the SDK's client (mgmttest) and callers that have only that client.
func SDK(c SDKClient) Gateway { return sdkGateway{c} }

type sdkGateway struct{ c SDKClient }

func (g sdkGateway) Post(ctx context.Context, connID string, data []byte) error {
	_, err := g.c.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: aws.String(connID), Data: data})
	return err
}

func (g sdkGateway) Delete(ctx context.Context, connID string) error {
	_, err := g.c.DeleteConnection(ctx, &apigatewaymanagementapi.DeleteConnectionInput{ConnectionId: aws.String(connID)})
	return err
}
