// Package facts states, once, the limits and defaults lambdaws is built around: those of API Gateway, EventBridge and the GraphQL over WebSocket reference implementation, and the bounds lambdaws sets on its own keys.
//
// Every package that applies one of these reads it here, and the local runtime's flags default to
// them, so that a limit is changed (for a test, say) in one place and reaches every consumer.
// Sources: API Gateway's quotas for WebSocket and HTTP APIs, EventBridge's schedule expressions,
// and the graphql-ws library's server options.
package facts

import "time"

// API Gateway WebSocket APIs.
const (
	// MaxMessage is the largest WebSocket message API Gateway carries, in bytes, in either
	// direction: 128 KiB. A larger message from a client closes its connection (1009); a larger
	// @connections post is refused (413), so a result that large must never be posted.
	MaxMessage = 128 * 1024

	// MaxFrame is the largest WebSocket frame API Gateway accepts from a client, in bytes: 32 KiB.
	// A message may span several frames up to MaxMessage; a larger frame closes the connection.
	MaxFrame = 32 * 1024

	// IdleTimeout is how long a WebSocket connection may go without a message from its client
	// before API Gateway closes it (1001): 10 minutes.
	IdleTimeout = 10 * time.Minute

	// MaxDuration is how long API Gateway keeps a WebSocket connection open at most before it
	// closes it (1001): 2 hours.
	MaxDuration = 2 * time.Hour

	// IntegrationTimeout is how long API Gateway waits for the integration (the Lambda function)
	// to answer a route or an HTTP request: 29 seconds. Lambda's timeout in serverless.yml is set
	// to it too: anything longer would only let a stuck request run on after the client's 504.
	IntegrationTimeout = 29 * time.Second
)

// The registry: how long connection and subscription records live.
const (
	// RegistryMargin is how long a connection's records outlive the longest possible connection,
	// so that no record of a live connection expires even with clock skew: 10 minutes.
	RegistryMargin = 10 * time.Minute

	// RegistryLifetime is the time to live of a connection's registry records (the connection and
	// its subscriptions): MaxDuration plus RegistryMargin. With another maximum duration (the
	// local runtime's --max-duration), the lifetime is that maximum plus RegistryMargin.
	RegistryLifetime = MaxDuration + RegistryMargin
)

// API Gateway HTTP APIs.
const (
	// MaxHTTPPayload is the largest request body an HTTP API accepts, in bytes: 10 MB. A larger
	// one is refused with 413 before it reaches the function.
	MaxHTTPPayload = 10 << 20
)

// Lambda.
const (
	// MaxInvokePayload is the largest event a synchronous invoke carries, in bytes: 6 MB. The
	// local runtime's invoke endpoint refuses a larger one (413) without invoking.
	MaxInvokePayload = 6 << 20

	// InvokePath is the path of the invoke endpoint of the Lambda runtime interface emulator, which
	// the local runtime serves too: POST the event JSON, get the handler's response.
	InvokePath = "/2015-03-31/functions/function/invocations"
)

// The local runtime (bootstrap dev).
const (
	// LocalHost is the address the local runtime listens on by default: loopback only.
	LocalHost = "127.0.0.1"

	// LocalPort is the port the local runtime listens on by default; emit and bootstrap publish
	// send events there unless told otherwise.
	LocalPort = 4000
)

// EventBridge.
const (
	// ScheduleRate is EventBridge's finest schedule rate, and the rate at which serverless.yml
	// runs the sweeper: one minute.
	ScheduleRate = time.Minute
)

// GraphQL over WebSocket.
const (
	// InitTimeout is how long after connecting a client may send connection_init: 3 seconds, the
	// graphql-ws reference server's default (connectionInitWaitTimeout).
	InitTimeout = 3 * time.Second
)

// Bounds lambdaws sets on what becomes part of a database key.
const (
	// MaxOperationID is the longest operation id accepted, in bytes: 128. Ids are stored in
	// registry keys; real clients use short ids (UUIDs, counters). A longer id is an invalid
	// message.
	MaxOperationID = 128

	// MaxTopic is the longest subscription topic, in bytes: 1,024. A topic is a registry
	// partition key (DynamoDB allows 2,048 bytes); a subscription whose arguments make a longer
	// one is refused with BAD_USER_INPUT.
	MaxTopic = 1024
)
