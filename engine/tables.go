package engine

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/realtime-gql/lambdaws/store"
)

// Tables are the typed views of the data table, one for each @item type of the schema. They are
// built once at start-up from the analysed schema, and a resolver reaches the items of an @item
// type through Table:
//
//	msgs := engine.Table[model.Message](r.Tables) // *store.Items[model.Message]
//	err := msgs.Create(ctx, &model.Message{ID: id, RoomID: roomID, Text: text})
//
// Tables is safe for concurrent use.
type Tables struct {
	data  store.Data
	types map[string]store.ItemType // by Go name: the GraphQL name with its first letter upper-cased
	names []string                  // the @item types' GraphQL names, sorted, for errors
	views sync.Map                  // reflect.Type → *store.Items[T]
}

// NewTables returns the typed views of the @item types src declares, over the data table d.
func NewTables(src *Sources, d store.Data) *Tables {
	t := &Tables{data: d, types: map[string]store.ItemType{}}
	for _, it := range src.Items() {
		t.types[goName(it.Name)] = it
		t.names = append(t.names, it.Name)
	}
	return t
}

// Data returns the data table the views read and write.
func (t *Tables) Data() store.Data { return t.data }

// Table returns the typed table of an @item type: T is the model gqlgen generates for it (a struct
// named as the type, its first letter upper-cased as Go requires), and the items are stored with
// the keys the type's @item(pk, sk) templates make of their fields, and read back as T.
//
// Table panics when T is not the model of an @item type: that is a mistake in the program, found
// the first time the resolver runs (any test of it), never a condition to handle.
func Table[T any](t *Tables) *store.Items[T] {
	rt := reflect.TypeFor[T]()
	if v, ok := t.views.Load(rt); ok {
		return v.(*store.Items[T])
	}
	it, ok := t.types[rt.Name()]
	if !ok || rt.Kind() != reflect.Struct {
		panic(fmt.Sprintf("engine: Table[%s]: %s is not the model of an @item type of the schema (they are: %s)",
			rt, rt, strings.Join(t.names, ", ")))
	}
	v, _ := t.views.LoadOrStore(rt, store.NewItems[T](t.data, it))
	return v.(*store.Items[T])
}

// goName is the name gqlgen gives a type's model: the GraphQL name with its first letter
// upper-cased.
func goName(name string) string {
	r, n := utf8.DecodeRuneInString(name)
	return string(unicode.ToUpper(r)) + name[n:]
}
