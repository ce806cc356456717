// Package store defines the records the service keeps (connections, subscriptions, app data items) and the contract its backends meet.
//
// There are two kinds of data. The registry (connections and their subscriptions) is the service's
// own bookkeeping and never reaches the change stream. App data is what users write: items of the
// data table (Data), of types the app declares with @item in its schema (ItemType: a name and key
// templates; Items[T] is the typed view). Every change to app data is reported as a DynamoDB
// stream record, and that stream is what the fan-out reads (package store/stream decodes it).
//
// The contract is shaped for DynamoDB without transactions: every state transition that can race
// is one conditional write on one item (create a connection, acknowledge it once, claim an operation
// id once), multi-item changes are ordered so that a crash between them leaves only rows that a later
// read ignores or a TTL removes, and every registry row carries an expiry that reads honour even
// before the backend deletes it.
//
// Two bounds are kept by conditional writes, so concurrent handlers cannot exceed them: a
// connection's subscriptions (Connection.MaxSubscriptions, counted on the connection's record)
// and the connections acknowledged with one subject (Ack.MaxPerSubject). Connections are indexed
// by the subject of their principal at acknowledgement, so that a subject's connections can be
// found (SubjectConnections) and its subscriptions ended.
//
// Subscriptions are found by topic. A subscription is stored twice: once under its connection (the
// operation record, which makes the id unique per connection and lets $disconnect find everything
// the connection owns) and once under its topic (what the fan-out reads, page by page, never touching
// another topic's rows).
package store

import (
	"context"
	"encoding/json"
	"errors"
	"iter"
	"time"
)

// Errors every backend returns, wrapped with context; test them with errors.Is.
var (
	// ErrNotFound reports that a record does not exist (or has expired).
	ErrNotFound = errors.New("store: not found")
	// ErrConflict reports that a conditional write lost: the record exists, or is not in the state
	// the write required.
	ErrConflict = errors.New("store: conflict")
	// ErrLimit reports that a write would pass a bound the records keep: a connection's
	// subscriptions, or a subject's connections.
	ErrLimit = errors.New("store: limit reached")
)

// DefaultPageSize is how many registry rows a backend reads in one request (a page of a topic, a
// connection's operations, the connection listing) unless its options say otherwise.
const DefaultPageSize = 100

// ConnState is where a connection is in the GraphQL over WebSocket handshake.
type ConnState string

// Connection states.
const (
	// StatePending: connected, connection_init not yet accepted.
	StatePending ConnState = "pending"
	// StateReady: connection_init accepted and acknowledged; operations may run.
	StateReady ConnState = "ready"
)

// A Connection is one client WebSocket as API Gateway knows it.
type Connection struct {
	// ID is API Gateway's connection id.
	ID string `json:"id"`
	// Subprotocol is the negotiated subprotocol (graphql-transport-ws or graphql-ws), opaque to
	// the store.
	Subprotocol string `json:"subprotocol"`
	// State is StatePending until connection_init is accepted.
	State ConnState `json:"state"`
	// Principal is the authenticated caller, opaque to the store; empty when anonymous. It may be
	// set at CreateConnection (a token at $connect) and is replaced by AcknowledgeConnection.
	Principal json.RawMessage `json:"principal,omitempty"`
	// Subject is the principal's subject, recorded and indexed by AcknowledgeConnection; empty
	// when anonymous.
	Subject string `json:"subject,omitempty"`
	// MaxSubscriptions bounds the connection's subscriptions (operations with a topic): a
	// PutSubscription past it fails with ErrLimit. Zero is unbounded. Set at CreateConnection.
	MaxSubscriptions int `json:"maxSubscriptions,omitempty"`
	// Subscriptions is how many subscriptions the connection has, as PutSubscription and
	// DeleteSubscription count them; read-only. (A crash between the count and the rows can leave
	// it one too high, never too low: the bound is never passed.)
	Subscriptions int `json:"subscriptions,omitempty"`
	// ConnectedAt is when $connect was handled.
	ConnectedAt time.Time `json:"connectedAt"`
	// AckedAt is when connection_init was accepted; zero while pending.
	AckedAt time.Time `json:"ackedAt,omitzero"`
	// LastSeenAt is when the client was last known active (see TouchConnection); zero if never
	// recorded. It is coarse: handlers record it at most about once a minute.
	LastSeenAt time.Time `json:"lastSeenAt,omitzero"`
	// ExpiresAt is the TTL: after it the record is treated as absent.
	ExpiresAt time.Time `json:"expiresAt"`
}

// A Subscription is one operation a connection has running. Subscriptions (Topic set) stay until
// completed; queries and mutations over the socket (Topic empty) are held only while they execute,
// so that their id counts as active.
type Subscription struct {
	// ConnectionID and ID (the client's operation id) identify the subscription.
	ConnectionID string `json:"connectionId"`
	ID           string `json:"id"`
	// Topic selects the changes this subscription receives; empty for a query or mutation.
	Topic string `json:"topic,omitempty"`
	// Subprotocol decides how results are framed (next or data).
	Subprotocol string `json:"subprotocol"`
	// Query, OperationName and Variables are the stored GraphQL request.
	Query         string          `json:"query,omitempty"`
	OperationName string          `json:"operationName,omitempty"`
	Variables     json.RawMessage `json:"variables,omitempty"`
	// Filter is the subscription's filter argument, compiled and in its canonical form (opaque to
	// the store); empty for none. The fan-out matches it before it renders anything.
	Filter string `json:"filter,omitempty"`
	// Principal is the connection's principal when the subscription was made.
	Principal json.RawMessage `json:"principal,omitempty"`
	// CreatedAt is when the subscription was stored.
	CreatedAt time.Time `json:"createdAt"`
	// ExpiresAt is the TTL; it matches the connection's.
	ExpiresAt time.Time `json:"expiresAt"`
}

// Registry stores connections and their subscriptions.
type Registry interface {
	// CreateConnection stores a new connection; ErrConflict if the id exists.
	CreateConnection(ctx context.Context, c Connection) error
	// Connection reads a connection with a strongly consistent read; ErrNotFound if absent or expired.
	Connection(ctx context.Context, id string) (Connection, error)
	// AcknowledgeConnection moves a pending connection to StateReady, recording the principal and
	// indexing it under its subject, in one conditional write: ErrConflict if it is not pending
	// (already acknowledged), ErrNotFound if absent, ErrLimit if the subject has
	// ack.MaxPerSubject live connections already (the connection stays pending).
	AcknowledgeConnection(ctx context.Context, id string, ack Ack) error
	// SubjectConnections yields the ids of the live connections acknowledged with a subject,
	// read page by page. It stops at the first error, which it yields.
	SubjectConnections(ctx context.Context, subject string) iter.Seq2[string, error]
	// DeleteConnection removes a connection and everything it owns. Deleting an absent connection
	// is not an error.
	DeleteConnection(ctx context.Context, id string) error
	// TouchConnection records that the client was active at `at`: it sets LastSeenAt if `at` is
	// later (an older touch is a no-op, not an error). It never creates a connection: ErrNotFound
	// if absent or expired.
	TouchConnection(ctx context.Context, id string, at time.Time) error
	// Connections yields every connection record, expired ones included (the sweeper removes
	// them), page by page. The listing may be slightly stale (eventually consistent): re-read a
	// connection with Connection before acting on its state. It stops at the first error, which
	// it yields.
	Connections(ctx context.Context) iter.Seq2[Connection, error]

	// PutSubscription claims the operation id s.ID on its connection and, when s.Topic is set,
	// files it under its topic. ErrConflict if the id is active and replace is false; with replace,
	// an active operation of that id is removed first (legacy `start` semantics). A subscription
	// counts against its connection's MaxSubscriptions: ErrLimit past it (a connection that does
	// not exist bounds nothing).
	PutSubscription(ctx context.Context, s Subscription, replace bool) error
	// DeleteSubscription releases an operation id; it reports whether one was active.
	DeleteSubscription(ctx context.Context, connectionID, id string) (bool, error)
	// Subscriptions yields the live subscriptions of one topic, read page by page; it never reads
	// another topic's rows. It stops at the first error, which it yields.
	Subscriptions(ctx context.Context, topic string) iter.Seq2[Subscription, error]
	// Operations yields the live operations of one connection (subscriptions, and queries and
	// mutations running), read page by page. It stops at the first error, which it yields.
	Operations(ctx context.Context, connectionID string) iter.Seq2[Subscription, error]
}

// Ack is what AcknowledgeConnection records.
type Ack struct {
	// Principal replaces the connection's principal (nil: none, anonymous).
	Principal json.RawMessage
	// Subject is the principal's subject, under which the connection is indexed; empty for
	// anonymous connections, which are not indexed.
	Subject string
	// At is when connection_init was accepted.
	At time.Time
	// ExpiresAt is the connection's expiry, the TTL of its index record.
	ExpiresAt time.Time
	// MaxPerSubject bounds the live connections acknowledged with Subject; zero is unbounded.
	MaxPerSubject int
}

// Store is everything a backend provides.
type Store interface {
	Registry
	FanoutState
	Data
	Close() error
}

// LastActive is the latest of ConnectedAt, AckedAt and LastSeenAt.
func (c Connection) LastActive() time.Time {
	t := c.ConnectedAt
	for _, u := range []time.Time{c.AckedAt, c.LastSeenAt} {
		if u.After(t) {
			t = u
		}
	}
	return t
}

// Live reports whether a record with this expiry is still live at now. A zero expiry never expires.
func Live(expiresAt, now time.Time) bool {
	return expiresAt.IsZero() || now.Before(expiresAt)
}
