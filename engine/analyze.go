package engine

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/realtime-gql/lambdaws/internal/envelope"
	"github.com/realtime-gql/lambdaws/store"
	"github.com/vektah/gqlparser/v2/ast"
)

// The names of the declarations in directives.graphqls.
const (
	dirItem       = "item"
	dirTopic      = "topic"
	dirFromChange = "fromChange"
	dirFromEvent  = "fromEvent"
	enumKind      = "ChangeKind"
	filterArg     = "filter"
)

// Sources is the routing table read from a schema's declarations: which subscription fields each
// change to an item type and each external event type feeds, and how each field's topic is made.
// It is built once at start-up by Analyze and is safe for concurrent use.
type Sources struct {
	fields  map[string]*Field
	items   map[string]store.ItemType
	changes map[changeKey][]*Field
	events  map[string][]*Field
}

type changeKey struct {
	item string
	kind ChangeKind
}

// A Field is one subscription field's entry in the routing table.
type Field struct {
	// Name is the field's name; Type the name of the object type it returns.
	Name, Type string
	// TopicArgs are the names of its @topic arguments, sorted.
	TopicArgs []string
	// Filter is the input type of its filter argument; empty when it has none.
	Filter string
	// Changes are the changes to data-table items that feed it, sorted by kind.
	Changes []ChangeSource
	// EventTypes are the external event types that feed it, sorted.
	EventTypes []string
}

// A ChangeSource is one kind of change to one @item type.
type ChangeSource struct {
	Item string
	Kind ChangeKind
}

// Field returns the routing entry of a subscription field.
func (s *Sources) Field(name string) (Field, bool) {
	f, ok := s.fields[name]
	if !ok {
		return Field{}, false
	}
	return *f, true
}

// Fields returns every subscription field's entry, sorted by name.
func (s *Sources) Fields() []Field {
	out := make([]Field, 0, len(s.fields))
	for _, name := range slices.Sorted(maps.Keys(s.fields)) {
		out = append(out, *s.fields[name])
	}
	return out
}

// Item returns an @item type: its name and key templates, as the store reads and writes its items.
func (s *Sources) Item(typ string) (store.ItemType, bool) {
	it, ok := s.items[typ]
	return it, ok
}

// Items returns every @item type, sorted by name.
func (s *Sources) Items() []store.ItemType {
	out := make([]store.ItemType, 0, len(s.items))
	for _, name := range slices.Sorted(maps.Keys(s.items)) {
		out = append(out, s.items[name])
	}
	return out
}

// EventTypes returns every external event type some field subscribes to, sorted: what an
// EventBridge rule or a queue subscription filter lets through.
func (s *Sources) EventTypes() []string { return slices.Sorted(maps.Keys(s.events)) }

// A FilterSpec checks a subscription field's filter input type against the type the field returns
// (the payload its filters are matched with); internal/filter provides it. Its error is reported
// under the field's name.
type FilterSpec func(schema *ast.Schema, inputType string, payload *ast.Definition) error

// An Option configures Analyze.
type Option func(*analyzer)

// WithFilterSpec checks every filter argument's input type with fs, besides the checks Analyze
// always makes (the argument is an input object).
func WithFilterSpec(fs FilterSpec) Option { return func(a *analyzer) { a.filterSpec = fs } }

// Analyze reads the schema's declarations (directives.graphqls) and builds the routing table. It
// checks them all and reports every mistake at once (errors.Join), each naming where it is, e.g.
//
//	Subscription.messageAdded: @fromChange(type: "Mesage"): no @item type "Mesage"
//
// The rules: every Subscription field returns an object type and has at least one source
// (@fromChange or @fromEvent); @fromChange's type is an @item type equal to the field's return
// type and its `on` lists each kind at most once; an event type is valid (envelope.CheckType), is
// not the service's own (envelope.ReservedTypePrefix), and
// feeds fields of a single return type; each @topic argument is a non-list scalar or enum and names
// a non-list field of the return type of a compatible type (the same type, or ID with String or
// Int); an argument named filter is an input object (and passes the FilterSpec, if any); @item key
// templates parse, name non-null non-list scalar or enum fields of the type, and pk has at least
// one placeholder; the directives are used only where they mean something, with known arguments,
// and are declared exactly as directives.graphqls declares them.
func Analyze(schema *ast.Schema, opts ...Option) (*Sources, error) {
	a := &analyzer{schema: schema, src: &Sources{
		fields:  map[string]*Field{},
		items:   map[string]store.ItemType{},
		changes: map[changeKey][]*Field{},
		events:  map[string][]*Field{},
	}}
	for _, o := range opts {
		o(a)
	}
	a.declarations()
	a.itemTypes()
	a.misplaced()
	a.subscriptions()
	if len(a.errs) > 0 {
		return nil, errors.Join(a.errs...)
	}
	return a.src, nil
}

type analyzer struct {
	schema     *ast.Schema
	filterSpec FilterSpec
	src        *Sources
	errs       []error
}

func (a *analyzer) errorf(format string, args ...any) {
	a.errs = append(a.errs, fmt.Errorf(format, args...))
}

// declarations checks that the directives and the enum are declared as directives.graphqls
// declares them (an app that declares its own @item with other arguments gets an error, not a
// surprise).
func (a *analyzer) declarations() {
	want := declarations()
	for _, name := range []string{dirItem, dirTopic, dirFromChange, dirFromEvent} {
		got := a.schema.Directives[name]
		if got == nil {
			continue // not declared: not used either (gqlparser refuses unknown directives)
		}
		if g, w := directiveSignature(got), directiveSignature(want.directives[name]); g != w {
			a.errorf("directive @%s: declared as %q; include engine/directives.graphqls instead, which declares %q", name, g, w)
		}
	}
	if got := a.schema.Types[enumKind]; got != nil {
		if g, w := enumSignature(got), enumSignature(want.kind); g != w {
			a.errorf("%s: declared as %q; include engine/directives.graphqls instead, which declares %q", enumKind, g, w)
		}
	}
}

func directiveSignature(d *ast.DirectiveDefinition) string {
	var b strings.Builder
	b.WriteString("directive @" + d.Name)
	if len(d.Arguments) > 0 {
		b.WriteString("(")
		for i, arg := range d.Arguments {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(arg.Name + ": " + arg.Type.String())
			if arg.DefaultValue != nil {
				b.WriteString(" = " + arg.DefaultValue.String())
			}
		}
		b.WriteString(")")
	}
	if d.IsRepeatable {
		b.WriteString(" repeatable")
	}
	locs := make([]string, len(d.Locations))
	for i, l := range d.Locations {
		locs[i] = string(l)
	}
	slices.Sort(locs)
	b.WriteString(" on " + strings.Join(locs, " | "))
	return b.String()
}

func enumSignature(d *ast.Definition) string {
	vals := make([]string, len(d.EnumValues))
	for i, v := range d.EnumValues {
		vals[i] = v.Name
	}
	return strings.ToLower(string(d.Kind)) + " " + d.Name + " { " + strings.Join(vals, " ") + " }"
}

// sortedTypes returns the schema's type definitions in name order, so errors come in a stable order.
func (a *analyzer) sortedTypes() []*ast.Definition {
	defs := slices.Collect(maps.Values(a.schema.Types))
	slices.SortFunc(defs, func(x, y *ast.Definition) int { return cmp.Compare(x.Name, y.Name) })
	return defs
}

// itemTypes reads the @item types and their key templates.
func (a *analyzer) itemTypes() {
	for _, def := range a.sortedTypes() {
		dirs := def.Directives.ForNames(dirItem)
		if len(dirs) == 0 {
			continue
		}
		if def.Kind != ast.Object {
			a.errorf("%s: @item: only an object type can be an item, not %s", def.Name, strings.ToLower(string(def.Kind)))
			continue
		}
		if len(dirs) > 1 {
			a.errorf("%s: @item: declared %d times", def.Name, len(dirs))
			continue
		}
		where := def.Name + ": @item"
		args, ok := a.arguments(where, dirs[0], "pk", "sk")
		if !ok {
			continue
		}
		it := store.ItemType{Name: def.Name}
		var okPK, okSK bool
		it.PK, okPK = a.keyTemplate(def, "pk", args["pk"], true)
		it.SK, okSK = a.keyTemplate(def, "sk", args["sk"], false)
		if !okPK || !okSK {
			continue
		}
		if err := it.Validate(); err != nil {
			a.errorf("%s: %v", where, err)
			continue
		}
		a.src.items[def.Name] = it
	}
}

// keyTemplate reads one key template of an @item type (store.ParseKeyTemplate's syntax).
func (a *analyzer) keyTemplate(def *ast.Definition, name string, v *ast.Value, needField bool) (store.KeyTemplate, bool) {
	where := fmt.Sprintf("%s: @item(%s: %s)", def.Name, name, v.String())
	s, ok := a.stringValue(where, v)
	if !ok {
		return store.KeyTemplate{}, false
	}
	t, err := store.ParseKeyTemplate(s)
	if err != nil {
		if te := (*store.TemplateError)(nil); errors.As(err, &te) {
			a.errorf("%s: %s", where, te.Reason)
		} else {
			a.errorf("%s: %v", where, err)
		}
		return store.KeyTemplate{}, false
	}
	if needField && len(t.Fields()) == 0 {
		a.errorf("%s: needs at least one {field} placeholder, so items spread over partitions", where)
		return store.KeyTemplate{}, false
	}
	good := true
	for _, name := range t.Fields() {
		f := def.Fields.ForName(name)
		switch {
		case f == nil:
			a.errorf("%s: %s has no field %q", where, def.Name, name)
		case f.Type.Elem != nil:
			a.errorf("%s: %s.%s is a list; a key needs a scalar or enum", where, def.Name, name)
		case !a.isLeaf(f.Type.Name()):
			a.errorf("%s: %s.%s is of type %s; a key needs a scalar or enum", where, def.Name, name, f.Type.Name())
		case !f.Type.NonNull:
			a.errorf("%s: %s.%s is nullable; a key needs a value, make it %s!", where, def.Name, name, f.Type.Name())
		default:
			continue
		}
		good = false
	}
	return t, good
}

// misplaced reports the directives used where they have no meaning: sources on fields of other
// types than Subscription, @topic on their arguments.
func (a *analyzer) misplaced() {
	for _, def := range a.sortedTypes() {
		if def == a.schema.Subscription || def.BuiltIn {
			continue
		}
		for _, f := range def.Fields {
			for _, name := range []string{dirFromChange, dirFromEvent} {
				if f.Directives.ForName(name) != nil {
					a.errorf("%s.%s: @%s applies to fields of the subscription type only", def.Name, f.Name, name)
				}
			}
			for _, arg := range f.Arguments {
				if arg.Directives.ForName(dirTopic) != nil {
					a.errorf("%s.%s: argument %s: @topic applies to arguments of subscription fields only", def.Name, f.Name, arg.Name)
				}
			}
		}
	}
	for _, d := range slices.Sorted(maps.Keys(a.schema.Directives)) {
		for _, arg := range a.schema.Directives[d].Arguments {
			if arg.Directives.ForName(dirTopic) != nil {
				a.errorf("directive @%s: argument %s: @topic applies to arguments of subscription fields only", d, arg.Name)
			}
		}
	}
}

// subscriptions reads every subscription field's sources, topic arguments and filter.
func (a *analyzer) subscriptions() {
	sub := a.schema.Subscription
	if sub == nil {
		return
	}
	// eventOwner remembers, for each event type, the first field it feeds, for the clash check.
	eventOwner := map[string]*Field{}
	for _, fd := range sub.Fields {
		if strings.HasPrefix(fd.Name, "__") {
			continue
		}
		where := sub.Name + "." + fd.Name
		f := &Field{Name: fd.Name, Type: fd.Type.Name()}
		nerr := len(a.errs)
		ret := a.schema.Types[f.Type]
		if fd.Type.Elem != nil || ret == nil || ret.Kind != ast.Object {
			a.errorf("%s: returns %s; a subscription field fed by events returns one object type (not a list, scalar, enum, interface or union)", where, fd.Type.String())
			ret = nil
		}
		a.topicAndFilter(where, fd, f, ret)
		a.changeSources(where, fd, f)
		a.eventSources(where, fd, f, eventOwner)
		if len(fd.Directives.ForNames(dirFromChange))+len(fd.Directives.ForNames(dirFromEvent)) == 0 {
			a.errorf("%s: no source: declare where its events come from with @fromChange(type: ..., on: [...]) or @fromEvent(type: ...)%s", where, a.declaredHint())
		}
		if len(a.errs) > nerr {
			continue
		}
		a.src.fields[f.Name] = f
		for _, c := range f.Changes {
			k := changeKey{c.Item, c.Kind}
			a.src.changes[k] = append(a.src.changes[k], f)
		}
		for _, t := range f.EventTypes {
			a.src.events[t] = append(a.src.events[t], f)
		}
	}
}

func (a *analyzer) declaredHint() string {
	if a.schema.Directives[dirFromChange] == nil || a.schema.Directives[dirFromEvent] == nil {
		return " (the schema does not declare them: list engine/directives.graphqls in gqlgen.yml's schema)"
	}
	return ""
}

// topicAndFilter reads a subscription field's @topic arguments and its filter argument. ret is the
// field's return type, nil when it is not an object.
func (a *analyzer) topicAndFilter(where string, fd *ast.FieldDefinition, f *Field, ret *ast.Definition) {
	for _, arg := range fd.Arguments {
		at := fmt.Sprintf("%s: argument %s", where, arg.Name)
		topics := arg.Directives.ForNames(dirTopic)
		if len(topics) > 1 {
			a.errorf("%s: @topic declared %d times", at, len(topics))
		}
		if arg.Name == filterArg {
			a.filter(at, arg, f, ret, len(topics) > 0)
			if len(topics) > 0 {
				continue
			}
		}
		if len(topics) == 0 {
			continue
		}
		if len(topics[0].Arguments) > 0 {
			a.errorf("%s: @topic: unknown argument %q", at, topics[0].Arguments[0].Name)
		}
		if arg.Type.Elem != nil || !a.isLeaf(arg.Type.Name()) {
			a.errorf("%s: @topic needs a scalar or enum argument, not %s", at, arg.Type.String())
			continue
		}
		f.TopicArgs = append(f.TopicArgs, arg.Name)
		if ret == nil {
			continue
		}
		pf := ret.Fields.ForName(arg.Name)
		switch {
		case pf == nil:
			a.errorf("%s: @topic: %s has no field %s to match it with", at, ret.Name, arg.Name)
		case pf.Type.Elem != nil:
			a.errorf("%s: @topic: %s.%s is a list, not a value to match", at, ret.Name, arg.Name)
		case !compatible(arg.Type.Name(), pf.Type.Name()):
			a.errorf("%s: @topic: its type %s does not match %s.%s of type %s (want the same type; ID also matches String and Int)",
				at, arg.Type.Name(), ret.Name, arg.Name, pf.Type.Name())
		}
	}
	slices.Sort(f.TopicArgs)
}

func (a *analyzer) filter(at string, arg *ast.ArgumentDefinition, f *Field, ret *ast.Definition, topic bool) {
	def := a.schema.Types[arg.Type.Name()]
	switch {
	case topic:
		a.errorf("%s: the filter argument cannot be a @topic argument", at)
	case arg.Type.Elem != nil || def == nil || def.Kind != ast.InputObject:
		a.errorf("%s: a filter is an input object, not %s", at, arg.Type.String())
	default:
		f.Filter = def.Name
		if a.filterSpec == nil || ret == nil {
			return
		}
		if err := a.filterSpec(a.schema, def.Name, ret); err != nil {
			a.errorf("%s: %s: %w", at, def.Name, err)
		}
	}
}

// compatible reports whether a @topic argument of type arg can be matched with a payload field of
// type field: their values give the same topic text for the same value.
func compatible(arg, field string) bool {
	if arg == field {
		return true
	}
	textual := func(t string) bool { return t == "String" || t == "Int" }
	return arg == "ID" && textual(field) || field == "ID" && textual(arg)
}

func (a *analyzer) isLeaf(typ string) bool {
	def := a.schema.Types[typ]
	return def != nil && (def.Kind == ast.Scalar || def.Kind == ast.Enum)
}

func (a *analyzer) changeSources(where string, fd *ast.FieldDefinition, f *Field) {
	seen := map[ChangeSource]bool{}
	for _, d := range fd.Directives.ForNames(dirFromChange) {
		args, ok := a.arguments(where+": @fromChange", d, "type", "on")
		if !ok {
			continue
		}
		typ, ok := a.stringValue(where+": @fromChange: type", args["type"])
		if !ok {
			continue
		}
		at := fmt.Sprintf("%s: @fromChange(type: %q)", where, typ)
		def := a.schema.Types[typ]
		switch {
		case def == nil:
			a.errorf("%s: no @item type %q", at, typ)
			continue
		case def.Directives.ForName(dirItem) == nil:
			a.errorf("%s: %s is not an @item type (declare @item(pk: ..., sk: ...) on it)", at, typ)
			continue
		case typ != f.Type:
			a.errorf("%s: the field returns %s, not %s: a change yields the item itself", at, f.Type, typ)
			continue
		}
		kinds, ok := a.kinds(at, args["on"])
		if !ok {
			continue
		}
		for _, k := range kinds {
			cs := ChangeSource{Item: typ, Kind: k}
			if seen[cs] {
				a.errorf("%s: on: %s is listed twice", at, k)
				continue
			}
			seen[cs] = true
			f.Changes = append(f.Changes, cs)
		}
	}
	slices.SortFunc(f.Changes, func(x, y ChangeSource) int {
		return cmp.Or(cmp.Compare(x.Item, y.Item), cmp.Compare(kindOrder(x.Kind), kindOrder(y.Kind)))
	})
}

func kindOrder(k ChangeKind) int {
	return map[ChangeKind]int{Insert: 0, Modify: 1, Remove: 2}[k]
}

// kinds reads the `on` argument: a list of ChangeKind values, or one value (GraphQL's input
// coercion of a single value to a list).
func (a *analyzer) kinds(at string, v *ast.Value) ([]ChangeKind, bool) {
	vals := []*ast.Value{v}
	if v.Kind == ast.ListValue {
		vals = vals[:0]
		for _, c := range v.Children {
			vals = append(vals, c.Value)
		}
	}
	if len(vals) == 0 {
		a.errorf("%s: on: lists no kind of change; want one or more of INSERT, MODIFY, REMOVE", at)
		return nil, false
	}
	out := make([]ChangeKind, 0, len(vals))
	for _, c := range vals {
		k := ChangeKind(c.Raw)
		if c.Kind != ast.EnumValue || !k.Valid() {
			a.errorf("%s: on: %s is not a kind of change; want INSERT, MODIFY or REMOVE", at, c.String())
			return nil, false
		}
		out = append(out, k)
	}
	return out, true
}

func (a *analyzer) eventSources(where string, fd *ast.FieldDefinition, f *Field, owner map[string]*Field) {
	for _, d := range fd.Directives.ForNames(dirFromEvent) {
		args, ok := a.arguments(where+": @fromEvent", d, "type")
		if !ok {
			continue
		}
		typ, ok := a.stringValue(where+": @fromEvent: type", args["type"])
		if !ok {
			continue
		}
		at := fmt.Sprintf("%s: @fromEvent(type: %q)", where, typ)
		if err := envelope.CheckType(typ); err != nil {
			a.errorf("%s: %w", at, err)
			continue
		}
		if strings.HasPrefix(typ, envelope.ReservedTypePrefix) {
			a.errorf("%s: event types starting with %s are the service's own (such as %s), not for subscribers", at, envelope.ReservedTypePrefix, envelope.InvalidateType)
			continue
		}
		if slices.Contains(f.EventTypes, typ) {
			a.errorf("%s: declared twice", at)
			continue
		}
		f.EventTypes = append(f.EventTypes, typ)
		if first, ok := owner[typ]; !ok {
			owner[typ] = f
		} else if first.Type != f.Type {
			a.errorf("%s: returns %s, but the event also feeds %s.%s, which returns %s; an event type feeds fields of one return type",
				at, f.Type, a.schema.Subscription.Name, first.Name, first.Type)
		}
	}
	slices.Sort(f.EventTypes)
}

// arguments returns a directive's arguments by name, reporting unknown, repeated and missing ones.
func (a *analyzer) arguments(where string, d *ast.Directive, names ...string) (map[string]*ast.Value, bool) {
	out := make(map[string]*ast.Value, len(names))
	ok := true
	for _, arg := range d.Arguments {
		switch {
		case !slices.Contains(names, arg.Name):
			a.errorf("%s: unknown argument %q (want %s)", where, arg.Name, strings.Join(names, ", "))
			ok = false
		case out[arg.Name] != nil:
			a.errorf("%s: argument %q given twice", where, arg.Name)
			ok = false
		default:
			out[arg.Name] = arg.Value
		}
	}
	for _, n := range names {
		if out[n] == nil {
			a.errorf("%s: missing argument %q", where, n)
			ok = false
		}
	}
	return out, ok
}

func (a *analyzer) stringValue(where string, v *ast.Value) (string, bool) {
	if v.Kind != ast.StringValue && v.Kind != ast.BlockValue {
		a.errorf("%s: want a string, not %s", where, v.String())
		return "", false
	}
	return v.Raw, true
}
