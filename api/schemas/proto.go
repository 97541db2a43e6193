package schemas

import (
	"math"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// direction says which side of the connect JSON codec a schema describes. connect-go
// marshals with protojson's defaults: lowerCamelCase JSON names, fields with their zero
// value left out, 64-bit integers as strings, enums by name, bytes in base64. It
// unmarshals with protojson too, which also takes the proto field names, numbers given
// as strings and enums given as numbers, and ignores unknown fields.
type direction int

const (
	request  direction = iota // what the server accepts
	response                  // what the server sends
)

// protoGen turns message descriptors into JSON Schemas of their protojson encoding.
type protoGen struct {
	dir      direction
	comments map[string]string
	// field returns extra keywords for a field (an enum of the values the server uses,
	// a format, the schema of embedded JSON), or nil.
	field func(fd protoreflect.FieldDescriptor, dir direction) *object
	defs  *object
}

// document returns the schema of message md as a standalone document: the message at
// the root, the messages it uses in $defs.
func (g *protoGen) document(md protoreflect.MessageDescriptor) *object {
	g.defs = obj()
	body := g.messageBody(md)
	if g.defs.get(string(md.FullName())) != nil {
		// md refers to itself: keep the $defs entry too.
		body = obj("$ref", "#/$defs/"+string(md.FullName()))
	}
	if len(g.defs.keys) > 0 {
		body.set("$defs", g.defs)
	}
	return body
}

func (g *protoGen) messageRef(md protoreflect.MessageDescriptor) *object {
	name := string(md.FullName())
	if g.defs.get(name) == nil {
		g.defs.set(name, true) // placeholder against recursion
		g.defs.set(name, g.messageBody(md))
	}
	return obj("$ref", "#/$defs/"+name)
}

func (g *protoGen) messageBody(md protoreflect.MessageDescriptor) *object {
	s := obj("title", string(md.Name()))
	if d := g.comments[string(md.FullName())]; d != "" {
		s.set("description", d)
	}
	s.set("type", "object")
	props := obj()
	fields := md.Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		fs := g.fieldSchema(fd)
		props.set(fd.JSONName(), fs)
		if g.dir == request && string(fd.Name()) != fd.JSONName() {
			alias := fs.clone()
			alias.set("description", "the same as "+fd.JSONName()+" (protojson takes the proto field name too)")
			props.set(string(fd.Name()), alias)
		}
	}
	s.set("properties", props)
	// At most one member of a oneof is set.
	var oneofs []any
	for i := 0; i < md.Oneofs().Len(); i++ {
		od := md.Oneofs().Get(i)
		if od.IsSynthetic() || od.Fields().Len() < 2 {
			continue
		}
		var pairs []any
		for a := 0; a < od.Fields().Len(); a++ {
			for b := a + 1; b < od.Fields().Len(); b++ {
				pairs = append(pairs, obj("required", []any{od.Fields().Get(a).JSONName(), od.Fields().Get(b).JSONName()}))
			}
		}
		oneofs = append(oneofs, obj("description", "at most one member of oneof "+string(od.Name())+" is set", "not", obj("anyOf", pairs)))
	}
	if len(oneofs) > 0 {
		s.set("allOf", oneofs)
	}
	s.set("additionalProperties", false)
	return s
}

func (g *protoGen) fieldSchema(fd protoreflect.FieldDescriptor) *object {
	var s *object
	switch {
	case fd.IsMap():
		s = obj("type", "object", "additionalProperties", g.singular(fd.MapValue()))
		if k := fd.MapKey().Kind(); k != protoreflect.StringKind {
			s.set("propertyNames", obj("pattern", `^-?[0-9]+$|^true$|^false$`))
		}
	case fd.IsList():
		s = obj("type", "array", "items", g.singular(fd))
	default:
		s = g.singular(fd)
	}
	desc := g.comments[string(fd.FullName())]
	if desc != "" {
		s = prepend(s, "description", desc)
	}
	if g.field != nil {
		if extra := g.field(fd, g.dir); extra != nil {
			for _, k := range extra.keys {
				s.set(k, extra.vals[k])
			}
		}
	}
	return s
}

// prepend returns a copy of s with k first.
func prepend(s *object, k string, v any) *object {
	out := obj(k, v)
	for _, key := range s.keys {
		if key != k {
			out.set(key, s.vals[key])
		}
	}
	return out
}

// singular is the schema of one value of the field's type (an element of a repeated
// field, the value of a map).
func (g *protoGen) singular(fd protoreflect.FieldDescriptor) *object {
	intSchema := func(min, max any, asString bool) *object {
		pattern := `^-?[0-9]+$`
		if !asString {
			if g.dir == response {
				return obj("type", "integer", "minimum", min, "maximum", max)
			}
			// protojson also takes numbers as strings (and exponents such as 1e2).
			return obj("type", []any{"integer", "string"}, "minimum", min, "maximum", max, "pattern", pattern)
		}
		if g.dir == response {
			return obj("type", "string", "pattern", pattern)
		}
		return obj("type", []any{"integer", "string"}, "minimum", min, "maximum", max, "pattern", pattern)
	}
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return obj("type", "boolean")
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return intSchema(math.MinInt32, math.MaxInt32, false)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return intSchema(0, uint64(math.MaxUint32), false)
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return intSchema(int64(math.MinInt64), int64(math.MaxInt64), true)
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return intSchema(0, uint64(math.MaxUint64), true)
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return obj("anyOf", []any{obj("type", "number"), obj("enum", []any{"NaN", "Infinity", "-Infinity"})})
	case protoreflect.StringKind:
		return obj("type", "string")
	case protoreflect.BytesKind:
		return obj("type", "string", "contentEncoding", "base64")
	case protoreflect.EnumKind:
		ed := fd.Enum()
		var names []any
		for i := 0; i < ed.Values().Len(); i++ {
			names = append(names, string(ed.Values().Get(i).Name()))
		}
		s := obj("title", string(ed.Name()))
		if d := g.comments[string(ed.FullName())]; d != "" {
			s.set("description", d)
		}
		if g.dir == request {
			return s.set("anyOf", []any{obj("enum", names), obj("type", "integer", "minimum", math.MinInt32, "maximum", math.MaxInt32)})
		}
		return s.set("enum", names)
	case protoreflect.MessageKind, protoreflect.GroupKind:
		if strings.HasPrefix(string(fd.Message().FullName()), "google.protobuf.") {
			return obj("description", "well-known type "+string(fd.Message().FullName())+" (its special JSON form)")
		}
		return g.messageRef(fd.Message())
	}
	return obj()
}
