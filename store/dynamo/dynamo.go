// Package dynamo is the production backend: the registry and the app data in two DynamoDB tables, written without transactions.
//
// # Tables
//
// The registry table (Options.RegistryTable) holds connections and their operations. Its key is
// pk (S, hash) and sk (S, range); it has no stream and no index; its TTL attribute is ttl (N, epoch
// seconds). Every row carries ttl, taken from the record's ExpiresAt rounded up to a whole second
// (no ttl for a zero ExpiresAt, which never expires).
//
//	row          pk                         sk                                holds
//	connection   "conns#<shard>"            "conn#<connectionId>"             the Connection, its subject and
//	                                                                          subscription count (subs, maxSubs)
//	operation    "conn#<connectionId>"      "op#<operationId>"                the whole Subscription
//	topic row    "topic#<topic>"            "<connectionId>#<operationId>"    the whole Subscription
//	subject row  "subject#<subject>"        "conn#<connectionId>"             the connection id (its index entry)
//	slots row    "subject#<subject>"        "slots"                           conns: the subject's connection ids,
//	                                                                          when CONNECTIONS_PER_SUBJECT bounds them
//
// Connection rows live in a fixed set of 16 shard partitions, so that they can be listed without
// a Scan (which the IAM role does not grant) and without an index: <shard> is fnv-32a of the
// connection id modulo 16, as two decimal digits ("00" to "15"). A connection's row is read and
// written at the key its id determines; Connections (the sweeper's listing, every minute, expired
// rows included) Queries the 16 partitions in turn, with begins_with(sk, "conn#"), Limit PageSize
// per page, continued from LastEvaluatedKey: one eventually consistent Query per page and no
// per-connection reads. The shards are not a hot spot: a partition serves up to 1,000 WCU and
// 3,000 RCU, so 16 of them take far more than API Gateway's quota of 500 new connections a
// second per account.
//
// Every active operation has an operation row; a subscription (Topic set) also has a topic row.
// API Gateway connection ids never contain '#', so topic rows of different connections cannot
// collide (nor can "conn#<connectionId>" be a shard partition's key). A topic lookup is a strongly
// consistent Query of one topic partition, Limit PageSize per page, continued from
// LastEvaluatedKey; a connection's operations are a Query of its partition with
// begins_with(sk, "op#"). No index is needed: every lookup is by partition key, and a global
// index would be eventually consistent, while a subscribe followed at once by a change must find
// the new subscription.
//
// Times are RFC 3339 strings in UTC. lastSeenAt is written with all nine fractional digits
// (still RFC 3339, read the same way), so that string order is time order for the condition of
// TouchConnection.
//
// The data table (Options.DataTable) holds app data, keyed the same way (pk, sk), with a stream of
// NEW_AND_OLD_IMAGES that feeds the fan-out. Items are stored as the caller gives them (an
// [store.ItemType] adds __typename and makes pk and sk from the item's fields, e.g. messages at
// pk "room#<roomId>", sk "msg#<id>"), after [store.NormalizeItem] has checked them; its ttl
// attribute (TTL is enabled on ttl) expires them. Reads are strongly consistent, so a client reads
// its own writes; a partition's items are a Query with begins_with(sk, prefix), in either order.
//
// # Expiry
//
// DynamoDB deletes expired rows lazily (often hours late), so every read filters out rows whose
// ttl has passed, and every conditional write treats them as absent. Reads and conditions use the
// same rule, live while now < ttl, so a record's expiry is honoured to the whole second, rounded up.
//
// # Writes without transactions
//
// Every transition that can race is one conditional write on one item:
//
//   - CreateConnection puts the connection row if attribute_not_exists(pk) OR ttl <= now: an
//     expired row does not block a new connection with its id.
//   - AcknowledgeConnection updates the row to ready if it exists, is live and is pending; when the
//     condition fails, a consistent read tells ErrNotFound (absent or expired) from ErrConflict.
//   - TouchConnection sets lastSeenAt if the row exists, is live, and has no lastSeenAt or an
//     earlier one; when the condition fails, a consistent read tells ErrNotFound (absent or
//     expired) from a touch that is not later than the stored one, which is a no-op.
//   - PutSubscription claims the operation id by putting the operation row with the condition of
//     CreateConnection, so exactly one of several racing subscribes wins.
//   - CreateItem puts if no live item has the key (the condition of CreateConnection);
//     ReplaceItem and DeleteItem require a live item (attribute_exists(pk) AND (no ttl OR ttl >
//     now)). All three return the old item (ALL_OLD), which OnChange needs.
//   - Before, a subscription takes a place in its connection's count: ADD subs 1 if the row
//     exists, is live and subs < maxSubs; a complete, or a claim that loses, gives it back
//     (ADD subs -1).
//   - AcknowledgeConnection, with a bound on the subject's connections, first adds the id to the
//     subject's slots row if size(conns) < max (or it is there already); ids of connections that
//     ended without giving their slot back are cleared, and the add retried once, before
//     ErrLimit. The subject row is written before the acknowledgement and taken back if it fails.
//
// Changes to several rows are ordered so that a crash between writes leaves only rows that reads
// ignore or that TTL removes, never a live topic row without its operation: PutSubscription claims
// the operation row before it writes the topic row (and deletes the claim if that write fails);
// DeleteSubscription and DeleteConnection delete topic rows before operation rows. DeleteConnection
// deletes the connection row first: a subscribe that overlaps it re-reads the connection after
// storing its rows, so either it sees the connection gone and takes its subscription back, or its
// rows exist before the delete lists them. Repeating any of these after a crash completes it; rows
// a crash leaves behind belong to a connection that no longer exists, and the fan-out's
// GoneException, the next delete or the TTL removes them. That is why no transaction is needed
// (and dynalite, the local DynamoDB used in tests, has none).
//
// The only actions used are GetItem, PutItem, UpdateItem, DeleteItem, Query, BatchGetItem (the
// fan-out's reads by key, see fanout.go) and BatchWriteItem;
// CreateTables also uses DescribeTable, CreateTable and UpdateTimeToLive.
package dynamo

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	"github.com/guregu/dynamo/v2"
	"github.com/guregu/dynamo/v2/dynamodbiface"
	"github.com/realtime-gql/lambdaws/store"
	"github.com/realtime-gql/lambdaws/store/stream"
)

// Options configure a Store.
type Options struct {
	// RegistryTable names the table of connections and subscriptions (no stream).
	RegistryTable string
	// DataTable names the table of app data items, whose stream feeds the fan-out.
	DataTable string
	// Now is the clock that decides expiry; default time.Now.
	Now func() time.Time
	// PageSize is how many rows one request of a topic lookup or of the connection listing reads;
	// default store.DefaultPageSize.
	PageSize int
	// OnChange, when set, is called after each successful write to app data with what the stream
	// would report: the kind and the item before and after (nil for none), as the table holds
	// them, so stream.ChangeRecord makes the record DynamoDB would stream. A development aid for
	// DynamoDB endpoints without a stream API; nil on AWS. It runs in the writing goroutine once
	// the write has returned, so unlike a stream it may report racing writes to one item out of
	// order, and a process that dies between the write and the call loses the report.
	OnChange func(kind stream.ChangeKind, old, new store.Item)
}

// Store is the DynamoDB backend. It is safe for concurrent use.
type Store struct {
	db       *dynamo.DB
	registry dynamo.Table
	data     dynamo.Table
	now      func() time.Time
	pageSize int
	onChange func(kind stream.ChangeKind, old, new store.Item)
}

var _ store.Store = (*Store)(nil)

// New returns a Store over client, which is usually a *dynamodb.Client.
func New(client dynamodbiface.DynamoDBAPI, opts Options) *Store {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.PageSize <= 0 {
		opts.PageSize = store.DefaultPageSize
	}
	db := dynamo.NewFromIface(client)
	return &Store{
		db:       db,
		registry: db.Table(opts.RegistryTable),
		data:     db.Table(opts.DataTable),
		now:      opts.Now,
		pageSize: opts.PageSize,
		onChange: opts.OnChange,
	}
}

// Close implements store.Store; the client needs no closing.
func (s *Store) Close() error { return nil }

// Key layout; see the package comment.
const (
	attrPK  = "pk"
	attrSK  = "sk"
	attrTTL = "ttl"

	connsPrefix   = "conns#" // a shard partition of connection rows
	connPrefix    = "conn#"  // a connection row's sk; an operation row's pk
	opPrefix      = "op#"
	topicPrefix   = "topic#"
	subjectPrefix = "subject#"
	slotsSK       = "slots" // a subject's slots row

	// connShards is how many partitions the connection rows are spread over.
	connShards = 16
)

// connShard is the shard partition of a connection's row: fnv-32a of its id, modulo connShards.
func connShard(connID string) int {
	h := fnv.New32a()
	h.Write([]byte(connID))
	return int(h.Sum32() % connShards)
}

func connsPK(shard int) string { return fmt.Sprintf("%s%02d", connsPrefix, shard) }
func connRowKey(connID string) (pk, sk string) {
	return connsPK(connShard(connID)), connPrefix + connID
}
func opPK(connID string) string          { return connPrefix + connID }
func opSK(opID string) string            { return opPrefix + opID }
func topicPK(topic string) string        { return topicPrefix + topic }
func topicSK(connID, opID string) string { return connID + "#" + opID }
func subjectPK(subject string) string    { return subjectPrefix + subject }
func subjectSK(connID string) string     { return connPrefix + connID }

// live reports whether a row with this ttl is live at now. The rule matches the conditions of the
// writes (ttl <= now is expired), evaluated on whole seconds: for an integer ttl,
// now < ttl exactly when now.Unix() < ttl.
func live(ttl int64, now time.Time) bool { return ttl == 0 || now.Unix() < ttl }

// ttlOf is the ttl attribute for an expiry: epoch seconds rounded up, so that DynamoDB never
// removes a row before its ExpiresAt; 0 (no attribute) for a zero expiry, which never expires.
func ttlOf(expiresAt time.Time) int64 {
	if expiresAt.IsZero() {
		return 0
	}
	sec := expiresAt.Unix()
	if expiresAt.Nanosecond() > 0 {
		sec++
	}
	return sec
}

// absentOrExpired is the condition under which a put may replace the row at its key: there is
// none, or its ttl has passed (a row without ttl never expires). Arguments: pk, ttl, now.
const absentOrExpired = "attribute_not_exists($) OR $ <= ?"

// tableKey is the key schema both tables share.
type tableKey struct {
	PK string `dynamo:"pk,hash"`
	SK string `dynamo:"sk,range"`
}

// CreateTables creates both tables if they are missing (on demand capacity; the data table with a
// NEW_AND_OLD_IMAGES stream), waits until they are active, and enables TTL on the ttl attribute of
// both where the endpoint supports it. For development and tests; production tables come from
// the deployment template.
func (s *Store) CreateTables(ctx context.Context) error {
	if err := s.createTable(ctx, s.registry.Name(), false); err != nil {
		return err
	}
	if err := s.createTable(ctx, s.data.Name(), true); err != nil {
		return err
	}
	for _, table := range []dynamo.Table{s.registry, s.data} {
		err := table.UpdateTTL(attrTTL, true).Run(ctx)
		var ae smithy.APIError
		switch {
		case err == nil:
		case errors.As(err, &ae) && ae.ErrorCode() == "UnknownOperationException":
			// dynalite has no TTL; reads filter expired rows anyway.
		case errors.As(err, &ae) && ae.ErrorCode() == "ValidationException" &&
			strings.Contains(strings.ToLower(ae.ErrorMessage()), "already enabled"):
		default:
			return fmt.Errorf("enable TTL on %s: %w", table.Name(), err)
		}
	}
	return nil
}

func (s *Store) createTable(ctx context.Context, name string, stream bool) error {
	_, err := s.db.Table(name).Describe().Run(ctx)
	var missing *types.ResourceNotFoundException
	switch {
	case err == nil:
		return s.waitActive(ctx, name)
	case !errors.As(err, &missing):
		return fmt.Errorf("describe table %s: %w", name, err)
	}
	ct := s.db.CreateTable(name, tableKey{}).OnDemand(true)
	if stream {
		ct = ct.Stream(dynamo.NewAndOldImagesView)
	}
	var inUse *types.ResourceInUseException
	if err := ct.Run(ctx); err != nil && !errors.As(err, &inUse) { // in use: created meanwhile
		return fmt.Errorf("create table %s: %w", name, err)
	}
	return s.waitActive(ctx, name)
}

// waitActive polls DescribeTable until the table is active. (The SDK's waiter sleeps at least 20s
// between attempts, which is far too slow for tests.)
func (s *Store) waitActive(ctx context.Context, name string) error {
	for delay := 20 * time.Millisecond; ; delay = min(2*delay, 2*time.Second) {
		desc, err := s.db.Table(name).Describe().Run(ctx)
		if err != nil {
			return fmt.Errorf("describe table %s: %w", name, err)
		}
		if desc.Status == dynamo.ActiveStatus {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for table %s: %w", name, ctx.Err())
		case <-time.After(delay):
		}
	}
}
