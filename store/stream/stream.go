// Package stream is the codec of the data table's DynamoDB stream records: it decodes a record of an item written through a store.ItemType into its type and JSON payloads, and builds the record DynamoDB would emit for a write (for the embedded backend and the local runtime).
//
// It holds the store's dependency on aws-lambda-go's event types, so that package store, which
// everything imports, has none: publish decodes records here, the engine maps what they hold.
package stream

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/realtime-gql/lambdaws/store"
)

// ChangeKind is what a write did to an item, as the stream names it.
type ChangeKind string

// Change kinds, the stream's eventName values.
const (
	Insert ChangeKind = "INSERT"
	Modify ChangeKind = "MODIFY"
	Remove ChangeKind = "REMOVE"
)

// ErrBadRecord reports a stream record that cannot be decoded.
var ErrBadRecord = errors.New("stream: malformed record")

// An ItemChange is one write to an item of the data table, decoded from a stream record.
type ItemChange struct {
	// Kind is what the write did.
	Kind ChangeKind
	// Type is the item's type, its __typename.
	Type string
	// Old is the item before the write (Modify, Remove) and New after it (Insert, Modify), each
	// as store.ItemPayload gives it (a JSON object of the item's fields, without pk, sk, __typename and
	// ttl); nil when the kind has no such image.
	Old, New json.RawMessage
	// ByService reports a removal made by DynamoDB's TTL process rather than by the app.
	ByService bool
	// EventID and Seq are the record's eventID and sequence number: its identity, for logs and
	// for recognising a redelivered record.
	EventID, Seq string
}

// DecodeItemChange decodes a stream record of the data table. ok is false, cheaply and without
// an error, for a record of an item without __typename (not written through an ItemType): only
// that attribute is looked at. Any other record that cannot be decoded is an error wrapping
// ErrBadRecord that names the record: an eventName other than INSERT, MODIFY and REMOVE, a
// missing image the kind requires (the stream view must be NEW_AND_OLD_IMAGES), a __typename that
// is not a non-empty string or differs between the two images, an image that does not convert
// to JSON. A record never panics the decoder, whatever its attribute values claim.
func DecodeItemChange(rec events.DynamoDBEventRecord) (ch ItemChange, ok bool, err error) {
	bad := func(format string, args ...any) (ItemChange, bool, error) {
		return ItemChange{}, false, fmt.Errorf("%w: event %s: %s", ErrBadRecord, rec.EventID, fmt.Sprintf(format, args...))
	}
	ch.Kind = ChangeKind(rec.EventName)
	var needOld, needNew bool
	switch ch.Kind {
	case Insert:
		needNew = true
	case Modify:
		needOld, needNew = true, true
	case Remove:
		needOld = true
	default:
		return bad("eventName %q", rec.EventName)
	}
	var oldType, newType string
	if needOld {
		if len(rec.Change.OldImage) == 0 {
			return bad("old image: missing (is the stream view NEW_AND_OLD_IMAGES?)")
		}
		if oldType, err = typenameOf(rec.Change.OldImage); err != nil {
			return bad("old image: %v", err)
		}
	}
	if needNew {
		if len(rec.Change.NewImage) == 0 {
			return bad("new image: missing (is the stream view NEW_AND_OLD_IMAGES?)")
		}
		if newType, err = typenameOf(rec.Change.NewImage); err != nil {
			return bad("new image: %v", err)
		}
	}
	switch {
	case oldType == "" && newType == "":
		return ItemChange{}, false, nil // not written through an ItemType: not ours
	case oldType != "" && newType != "" && oldType != newType:
		return bad("the old image is a %s, the new image a %s", oldType, newType)
	case newType != "":
		ch.Type = newType
	default:
		ch.Type = oldType
	}
	if needOld {
		if ch.Old, err = imagePayload(rec.Change.OldImage); err != nil {
			return bad("old image: %v", err)
		}
	}
	if needNew {
		if ch.New, err = imagePayload(rec.Change.NewImage); err != nil {
			return bad("new image: %v", err)
		}
	}
	ch.ByService = rec.UserIdentity != nil && rec.UserIdentity.Type == "Service"
	ch.EventID, ch.Seq = rec.EventID, rec.Change.SequenceNumber
	return ch, true, nil
}

// typenameOf returns an image's __typename, "" if it has none.
func typenameOf(img map[string]events.DynamoDBAttributeValue) (string, error) {
	v, found := img[store.AttrTypename]
	if !found {
		return "", nil
	}
	av, err := fromStreamValue(v)
	if err != nil {
		return "", fmt.Errorf("%s: %w", store.AttrTypename, err)
	}
	s, isS := av.(*types.AttributeValueMemberS)
	if !isS || s.Value == "" {
		return "", fmt.Errorf("%s is not a non-empty string", store.AttrTypename)
	}
	return s.Value, nil
}

func imagePayload(img map[string]events.DynamoDBAttributeValue) (json.RawMessage, error) {
	item, err := FromStreamImage(img)
	if err != nil {
		return nil, err
	}
	return store.ItemPayload(item)
}

// ChangeRecord builds the stream record DynamoDB would emit for a write to an item: old and new
// are the item before and after (nil for none), as kind requires. seq is the record's sequence
// number; arn names the table's stream; at is when the write happened.
func ChangeRecord(kind ChangeKind, old, new store.Item, seq uint64, arn string, at time.Time) (events.DynamoDBEventRecord, error) {
	var rec events.DynamoDBEventRecord
	switch {
	case kind == Insert && old == nil && new != nil,
		kind == Modify && old != nil && new != nil,
		kind == Remove && old != nil && new == nil:
	default:
		return rec, fmt.Errorf("change record: %s with old %v and new %v images", kind, old != nil, new != nil)
	}
	keyOf := new
	if keyOf == nil {
		keyOf = old
	}
	pk, sk, err := store.ItemKey(keyOf)
	if err != nil {
		return rec, fmt.Errorf("change record: %w", err)
	}
	keys := store.Item{store.AttrPK: &types.AttributeValueMemberS{Value: pk}, store.AttrSK: &types.AttributeValueMemberS{Value: sk}}
	rec = events.DynamoDBEventRecord{
		AWSRegion:      regionOf(arn),
		EventID:        fmt.Sprintf("%032x", seq),
		EventName:      string(kind),
		EventSource:    "aws:dynamodb",
		EventVersion:   "1.1",
		EventSourceArn: arn,
		Change: events.DynamoDBStreamRecord{
			ApproximateCreationDateTime: events.SecondsEpochTime{Time: at.Truncate(time.Second)},
			Keys:                        ToStreamImage(keys),
			SequenceNumber:              fmt.Sprint(seq),
			SizeBytes:                   int64(store.ItemSize(keys) + store.ItemSize(old) + store.ItemSize(new)),
			StreamViewType:              string(events.DynamoDBStreamViewTypeNewAndOldImages),
		},
	}
	if old != nil {
		rec.Change.OldImage = ToStreamImage(old)
	}
	if new != nil {
		rec.Change.NewImage = ToStreamImage(new)
	}
	return rec, nil
}

// regionOf returns the region field of an ARN, or "local".
func regionOf(arn string) string {
	if parts := strings.SplitN(arn, ":", 5); len(parts) == 5 && parts[3] != "" {
		return parts[3]
	}
	return "local"
}

// FromStreamImage converts a stream image (aws-lambda-go's attribute values) to the SDK's
// attribute values, which guregu/dynamo and the SDK unmarshal.
func FromStreamImage(img map[string]events.DynamoDBAttributeValue) (map[string]types.AttributeValue, error) {
	out := make(map[string]types.AttributeValue, len(img))
	for k, v := range img {
		av, err := fromStreamValue(v)
		if err != nil {
			return nil, fmt.Errorf("attribute %q: %w", k, err)
		}
		out[k] = av
	}
	return out, nil
}

func fromStreamValue(v events.DynamoDBAttributeValue) (av types.AttributeValue, err error) {
	defer func() {
		// The accessors of events.DynamoDBAttributeValue panic on a type mismatch; a value that
		// claims one type and holds another must be an error, not a crash.
		if r := recover(); r != nil {
			av, err = nil, fmt.Errorf("inconsistent attribute value: %v", r)
		}
	}()
	switch v.DataType() {
	case events.DataTypeString:
		return &types.AttributeValueMemberS{Value: v.String()}, nil
	case events.DataTypeNumber:
		return &types.AttributeValueMemberN{Value: v.Number()}, nil
	case events.DataTypeBinary:
		return &types.AttributeValueMemberB{Value: v.Binary()}, nil
	case events.DataTypeBoolean:
		return &types.AttributeValueMemberBOOL{Value: v.Boolean()}, nil
	case events.DataTypeNull:
		return &types.AttributeValueMemberNULL{Value: true}, nil
	case events.DataTypeStringSet:
		return &types.AttributeValueMemberSS{Value: v.StringSet()}, nil
	case events.DataTypeNumberSet:
		return &types.AttributeValueMemberNS{Value: v.NumberSet()}, nil
	case events.DataTypeBinarySet:
		return &types.AttributeValueMemberBS{Value: v.BinarySet()}, nil
	case events.DataTypeList:
		list := v.List()
		out := make([]types.AttributeValue, len(list))
		for i, e := range list {
			if out[i], err = fromStreamValue(e); err != nil {
				return nil, err
			}
		}
		return &types.AttributeValueMemberL{Value: out}, nil
	case events.DataTypeMap:
		m, err := FromStreamImage(v.Map())
		if err != nil {
			return nil, err
		}
		return &types.AttributeValueMemberM{Value: m}, nil
	default:
		return nil, fmt.Errorf("unsupported attribute type %d", v.DataType())
	}
}

// ToStreamImage converts SDK attribute values to a stream image.
func ToStreamImage(item map[string]types.AttributeValue) map[string]events.DynamoDBAttributeValue {
	out := make(map[string]events.DynamoDBAttributeValue, len(item))
	for k, v := range item {
		out[k] = toStreamValue(v)
	}
	return out
}

func toStreamValue(v types.AttributeValue) events.DynamoDBAttributeValue {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return events.NewStringAttribute(v.Value)
	case *types.AttributeValueMemberN:
		return events.NewNumberAttribute(v.Value)
	case *types.AttributeValueMemberB:
		return events.NewBinaryAttribute(v.Value)
	case *types.AttributeValueMemberBOOL:
		return events.NewBooleanAttribute(v.Value)
	case *types.AttributeValueMemberSS:
		return events.NewStringSetAttribute(v.Value)
	case *types.AttributeValueMemberNS:
		return events.NewNumberSetAttribute(v.Value)
	case *types.AttributeValueMemberBS:
		return events.NewBinarySetAttribute(v.Value)
	case *types.AttributeValueMemberL:
		list := make([]events.DynamoDBAttributeValue, len(v.Value))
		for i, e := range v.Value {
			list[i] = toStreamValue(e)
		}
		return events.NewListAttribute(list)
	case *types.AttributeValueMemberM:
		return events.NewMapAttribute(ToStreamImage(v.Value))
	default:
		return events.NewNullAttribute()
	}
}
