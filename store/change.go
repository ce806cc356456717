package store

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// ChangeKind is what a write did to an item, as the stream names it.
type ChangeKind string

// Change kinds, the stream's eventName values.
const (
	Insert ChangeKind = "INSERT"
	Modify ChangeKind = "MODIFY"
	Remove ChangeKind = "REMOVE"
)

// A Change is one write to a message, decoded from a stream record.
type Change struct {
	Kind ChangeKind
	// Old is the message before the write (Modify, Remove); New after it (Insert, Modify).
	Old, New *Message
	// ByService reports a removal made by DynamoDB's TTL process rather than by the app.
	ByService bool
}

// ErrBadRecord reports a stream record that cannot be decoded.
var ErrBadRecord = errors.New("store: malformed stream record")

// DecodeChange decodes a stream record of the data table. ok is false, cheaply and without an
// error, for records of items that are not messages: only the keys are looked at for those.
func DecodeChange(rec events.DynamoDBEventRecord) (ch Change, ok bool, err error) {
	if sk, found := rec.Change.Keys["sk"]; !found || sk.DataType() != events.DataTypeString ||
		!strings.HasPrefix(sk.String(), messagePrefix) {
		return Change{}, false, nil
	}
	ch.Kind = ChangeKind(rec.EventName)
	ch.ByService = rec.UserIdentity != nil && rec.UserIdentity.Type == "Service"
	var needOld, needNew bool
	switch ch.Kind {
	case Insert:
		needNew = true
	case Modify:
		needOld, needNew = true, true
	case Remove:
		needOld = true
	default:
		return Change{}, false, fmt.Errorf("%w: event %s: eventName %q", ErrBadRecord, rec.EventID, rec.EventName)
	}
	if needOld {
		if ch.Old, err = decodeImage(rec.Change.OldImage); err != nil {
			return Change{}, false, fmt.Errorf("%w: event %s: old image: %v", ErrBadRecord, rec.EventID, err)
		}
	}
	if needNew {
		if ch.New, err = decodeImage(rec.Change.NewImage); err != nil {
			return Change{}, false, fmt.Errorf("%w: event %s: new image: %v", ErrBadRecord, rec.EventID, err)
		}
	}
	return ch, true, nil
}

func decodeImage(img map[string]events.DynamoDBAttributeValue) (*Message, error) {
	if len(img) == 0 {
		return nil, errors.New("missing (is the stream view NEW_AND_OLD_IMAGES?)")
	}
	item, err := FromStreamImage(img)
	if err != nil {
		return nil, err
	}
	m, err := MessageFromItem(item)
	if err != nil {
		return nil, err
	}
	return &m, nil
}

// ChangeRecord builds the stream record DynamoDB would emit for a write to a message: old and new
// are the item before and after (nil for none). seq is the record's sequence number; arn names the
// table's stream.
func ChangeRecord(kind ChangeKind, old, new *Message, seq uint64, arn string, at time.Time) (events.DynamoDBEventRecord, error) {
	rec := events.DynamoDBEventRecord{
		AWSRegion:      regionOf(arn),
		EventID:        fmt.Sprintf("%032x", seq),
		EventName:      string(kind),
		EventSource:    "aws:dynamodb",
		EventVersion:   "1.1",
		EventSourceArn: arn,
		Change: events.DynamoDBStreamRecord{
			ApproximateCreationDateTime: events.SecondsEpochTime{Time: at.Truncate(time.Second)},
			SequenceNumber:              fmt.Sprint(seq),
			StreamViewType:              string(events.DynamoDBStreamViewTypeNewAndOldImages),
		},
	}
	var size int64
	image := func(m *Message) (map[string]events.DynamoDBAttributeValue, error) {
		if m == nil {
			return nil, nil
		}
		item, err := MessageItem(*m)
		if err != nil {
			return nil, err
		}
		img := ToStreamImage(item)
		for k, v := range img {
			size += int64(len(k)) + attrSize(v)
		}
		if rec.Change.Keys == nil {
			rec.Change.Keys = map[string]events.DynamoDBAttributeValue{"pk": img["pk"], "sk": img["sk"]}
		}
		return img, nil
	}
	var err error
	if rec.Change.OldImage, err = image(old); err != nil {
		return rec, err
	}
	if rec.Change.NewImage, err = image(new); err != nil {
		return rec, err
	}
	rec.Change.SizeBytes = size
	return rec, nil
}

// regionOf returns the region field of an ARN, or "local".
func regionOf(arn string) string {
	if parts := strings.SplitN(arn, ":", 5); len(parts) == 5 && parts[3] != "" {
		return parts[3]
	}
	return "local"
}

func attrSize(v events.DynamoDBAttributeValue) int64 {
	switch v.DataType() {
	case events.DataTypeString:
		return int64(len(v.String()))
	case events.DataTypeNumber:
		return int64(len(v.Number()))
	case events.DataTypeBinary:
		return int64(len(v.Binary()))
	default:
		return 1
	}
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
