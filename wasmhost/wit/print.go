package wit

import (
	"strconv"
	"strings"
)

// isKeyword reports whether name must be written %-escaped as an identifier.
func isKeyword(name string) bool {
	switch name {
	case "use", "type", "func", "u8", "u16", "u32", "u64", "s8", "s16", "s32", "s64",
		"f32", "f64", "float32", "float64", "char", "bool", "string", "record", "resource",
		"own", "borrow", "flags", "variant", "enum", "option", "result", "future", "stream",
		"error-context", "list", "tuple", "as", "from", "static", "interface", "import",
		"export", "world", "package", "constructor", "include", "with", "async":
		return true
	}
	return false
}

// escapeName returns name, %-escaped when it is a WIT keyword.
func escapeName(name string) string {
	if isKeyword(name) {
		return "%" + name
	}
	return name
}

func writeTypeRef(b *strings.Builder, t *Type) { writeTypeRefAs(b, t, nil) }

// writeTypeRefAs writes a type reference like writeTypeRef, except that named
// types found in local are written by the name given there: the generated
// extension interfaces rename a type that would clash with an obelisk:types name.
func writeTypeRefAs(b *strings.Builder, t *Type, local map[*Type]string) {
	// shadows writeTypeRef so that the recursive calls below keep the renaming
	writeTypeRef := func(b *strings.Builder, t *Type) { writeTypeRefAs(b, t, local) }
	if t == nil {
		b.WriteString("_")
		return
	}
	if t.Name != "" {
		if name, ok := local[t]; ok {
			b.WriteString(escapeName(name))
			return
		}
		b.WriteString(escapeName(t.Name))
		return
	}
	switch t.Kind {
	case KindList:
		b.WriteString("list<")
		writeTypeRef(b, t.Elem)
		if t.Len > 0 {
			b.WriteString(", ")
			b.WriteString(strconv.Itoa(t.Len))
		}
		b.WriteString(">")
	case KindOption:
		b.WriteString("option<")
		writeTypeRef(b, t.Elem)
		b.WriteString(">")
	case KindResult:
		b.WriteString("result")
		switch {
		case t.Ok == nil && t.Err == nil:
		case t.Err == nil:
			b.WriteString("<")
			writeTypeRef(b, t.Ok)
			b.WriteString(">")
		default:
			b.WriteString("<")
			writeTypeRef(b, t.Ok)
			b.WriteString(", ")
			writeTypeRef(b, t.Err)
			b.WriteString(">")
		}
	case KindTuple:
		b.WriteString("tuple<")
		for i, e := range t.Tuple {
			if i > 0 {
				b.WriteString(", ")
			}
			writeTypeRef(b, e)
		}
		b.WriteString(">")
	case KindOwn, KindBorrow:
		b.WriteString(t.Kind.String())
		b.WriteString("<")
		writeTypeRef(b, t.Elem)
		b.WriteString(">")
	case KindFuture, KindStream:
		b.WriteString(t.Kind.String())
		if t.Elem != nil {
			b.WriteString("<")
			writeTypeRef(b, t.Elem)
			b.WriteString(">")
		}
	default:
		b.WriteString(t.Kind.String())
	}
}

func writeSignature(b *strings.Builder, f *Function) {
	if f.Kind == FunctionConstructor {
		b.WriteString("constructor")
	} else {
		if f.Kind == FunctionStatic {
			b.WriteString("static ")
		}
		if f.Async {
			b.WriteString("async ")
		}
		b.WriteString("func")
	}
	b.WriteString("(")
	for i, p := range f.Params {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(escapeName(p.Name))
		b.WriteString(": ")
		writeTypeRef(b, p.Type)
	}
	b.WriteString(")")
	if f.Result != nil {
		b.WriteString(" -> ")
		writeTypeRef(b, f.Result)
	}
}

// WIT prints the interface as WIT text, as it would appear in its package.
func (i *Interface) WIT() string {
	var b strings.Builder
	writeInterface(&b, i)
	return b.String()
}

// WIT prints the world as WIT text, with includes flattened into imports and
// exports.
func (w *World) WIT() string {
	var b strings.Builder
	writeWorld(&b, w)
	return b.String()
}

// WIT prints the package as one WIT file: its declaration, interfaces and worlds.
func (p *Package) WIT() string {
	var b strings.Builder
	b.WriteString("package ")
	writePackageName(&b, p.Name)
	b.WriteString(";\n")
	for _, i := range p.Interfaces {
		b.WriteString("\n")
		writeInterface(&b, i)
	}
	for _, w := range p.Worlds {
		b.WriteString("\n")
		writeWorld(&b, w)
	}
	return b.String()
}

func writePackageName(b *strings.Builder, n PackageName) {
	b.WriteString(escapeName(n.Namespace))
	b.WriteString(":")
	b.WriteString(escapeName(n.Name))
	if n.Version != "" {
		b.WriteString("@")
		b.WriteString(n.Version)
	}
}

// writeInterfacePath writes the path of iface as seen from package from.
func writeInterfacePath(b *strings.Builder, iface *Interface, from *Package) {
	if iface.Package == from || iface.Package == nil {
		b.WriteString(escapeName(iface.Name))
		return
	}
	n := iface.Package.Name
	b.WriteString(escapeName(n.Namespace))
	b.WriteString(":")
	b.WriteString(escapeName(n.Name))
	b.WriteString("/")
	b.WriteString(escapeName(iface.Name))
	if n.Version != "" {
		b.WriteString("@")
		b.WriteString(n.Version)
	}
}

func writeInterface(b *strings.Builder, i *Interface) {
	b.WriteString("interface ")
	b.WriteString(escapeName(i.Name))
	b.WriteString(" {\n")
	section := writeTypes(b, i.Types, i.Package, false)
	if len(i.Functions) > 0 {
		if section {
			b.WriteString("\n")
		}
		for _, f := range i.Functions {
			b.WriteString("  ")
			b.WriteString(f.String())
			b.WriteString(";\n")
		}
	}
	b.WriteString("}\n")
}

func writeWorld(b *strings.Builder, w *World) {
	b.WriteString("world ")
	b.WriteString(escapeName(w.Name))
	b.WriteString(" {\n")
	section := writeTypes(b, w.Types, w.Package, false)
	if section && len(w.Imports)+len(w.Exports) > 0 {
		b.WriteString("\n")
	}
	for _, i := range w.Imports {
		b.WriteString("  import ")
		writeInterfacePath(b, i, w.Package)
		b.WriteString(";\n")
	}
	for _, i := range w.Exports {
		b.WriteString("  export ")
		writeInterfacePath(b, i, w.Package)
		b.WriteString(";\n")
	}
	b.WriteString("}\n")
}

// writeTypes writes `use` statements and type definitions, and reports whether
// it wrote anything.
func writeTypes(b *strings.Builder, types []*Type, pkg *Package, wrote bool) bool {
	// use statements, grouped by interface in order of first appearance
	var order []*Interface
	groups := map[*Interface][]*Type{}
	for _, t := range types {
		if !t.used || t.Elem == nil || t.Elem.Interface == nil {
			continue
		}
		src := t.Elem.Interface
		if _, ok := groups[src]; !ok {
			order = append(order, src)
		}
		groups[src] = append(groups[src], t)
	}
	for _, src := range order {
		b.WriteString("  use ")
		writeInterfacePath(b, src, pkg)
		b.WriteString(".{")
		for j, t := range groups[src] {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString(escapeName(t.Elem.Name))
			if t.Elem.Name != t.Name {
				b.WriteString(" as ")
				b.WriteString(escapeName(t.Name))
			}
		}
		b.WriteString("};\n")
		wrote = true
	}
	var prev *Type
	for _, t := range types {
		if t.used {
			continue
		}
		// a blank line between definitions, except between consecutive aliases
		if wrote && (prev == nil || prev.Kind != KindAlias || t.Kind != KindAlias) {
			b.WriteString("\n")
		}
		prev = t
		wrote = true
		writeTypeDef(b, t)
	}
	return wrote
}

func writeTypeDef(b *strings.Builder, t *Type) {
	name := escapeName(t.Name)
	switch t.Kind {
	case KindAlias:
		b.WriteString("  type " + name + " = ")
		writeTypeRef(b, t.Elem)
		b.WriteString(";\n")
	case KindRecord:
		b.WriteString("  record " + name + " {\n")
		for _, f := range t.Fields {
			b.WriteString("    " + escapeName(f.Name) + ": ")
			writeTypeRef(b, f.Type)
			b.WriteString(",\n")
		}
		b.WriteString("  }\n")
	case KindVariant:
		b.WriteString("  variant " + name + " {\n")
		for _, c := range t.Cases {
			b.WriteString("    " + escapeName(c.Name))
			if c.Type != nil {
				b.WriteString("(")
				writeTypeRef(b, c.Type)
				b.WriteString(")")
			}
			b.WriteString(",\n")
		}
		b.WriteString("  }\n")
	case KindEnum, KindFlags:
		b.WriteString("  " + t.Kind.String() + " " + name + " {\n")
		for _, l := range t.Labels {
			b.WriteString("    " + escapeName(l) + ",\n")
		}
		b.WriteString("  }\n")
	case KindResource:
		if len(t.Funcs) == 0 {
			b.WriteString("  resource " + name + ";\n")
			return
		}
		b.WriteString("  resource " + name + " {\n")
		for _, f := range t.Funcs {
			b.WriteString("    ")
			b.WriteString(f.String())
			b.WriteString(";\n")
		}
		b.WriteString("  }\n")
	}
}
