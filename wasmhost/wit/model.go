package wit

import (
	"fmt"
	"strings"
)

// File is one WIT source file of a component's WIT folder.
type File struct {
	// Path is relative to the WIT folder and '/'-separated. Files at the top
	// level (no '/') belong to the component's own package; files under deps/
	// are dependencies.
	Path string `json:"path"`
	// Text is the WIT source.
	Text string `json:"text"`
}

// PackageName is a WIT package name `namespace:name[@version]`.
type PackageName struct {
	Namespace string // "testing" in testing:fibo
	Name      string // "fibo" in testing:fibo
	Version   string // semantic version, "" if the package is unversioned
}

// String returns `namespace:name` or `namespace:name@version`.
func (n PackageName) String() string {
	s := n.Namespace + ":" + n.Name
	if n.Version != "" {
		s += "@" + n.Version
	}
	return s
}

// Kind is the shape of a [Type].
type Kind uint8

// The kinds of WIT types.
const (
	KindInvalid      Kind = iota // the zero Kind; never set on a resolved Type
	KindBool                     // bool
	KindS8                       // s8
	KindS16                      // s16
	KindS32                      // s32
	KindS64                      // s64
	KindU8                       // u8
	KindU16                      // u16
	KindU32                      // u32
	KindU64                      // u64
	KindF32                      // f32 (also written float32)
	KindF64                      // f64 (also written float64)
	KindChar                     // char: one Unicode scalar value
	KindString                   // string
	KindList                     // list<Elem> or the fixed-size list<Elem, Len>
	KindOption                   // option<Elem>
	KindResult                   // result<Ok, Err>; either side may be absent
	KindTuple                    // tuple<Tuple...>
	KindRecord                   // record Name { Fields }
	KindVariant                  // variant Name { Cases }
	KindEnum                     // enum Name { Labels }
	KindFlags                    // flags Name { Labels }
	KindResource                 // resource Name { Methods }; as a value, an owned handle
	KindOwn                      // own<Elem>, Elem being a resource
	KindBorrow                   // borrow<Elem>, Elem being a resource
	KindFuture                   // future or future<Elem>
	KindStream                   // stream or stream<Elem>
	KindErrorContext             // error-context
	KindAlias                    // a named reference to Elem: `type Name = Elem;` or a `use`d name
)

// String returns the WIT keyword of the kind ("u8", "record", "alias", ...).
func (k Kind) String() string {
	switch k {
	case KindBool:
		return "bool"
	case KindS8:
		return "s8"
	case KindS16:
		return "s16"
	case KindS32:
		return "s32"
	case KindS64:
		return "s64"
	case KindU8:
		return "u8"
	case KindU16:
		return "u16"
	case KindU32:
		return "u32"
	case KindU64:
		return "u64"
	case KindF32:
		return "f32"
	case KindF64:
		return "f64"
	case KindChar:
		return "char"
	case KindString:
		return "string"
	case KindList:
		return "list"
	case KindOption:
		return "option"
	case KindResult:
		return "result"
	case KindTuple:
		return "tuple"
	case KindRecord:
		return "record"
	case KindVariant:
		return "variant"
	case KindEnum:
		return "enum"
	case KindFlags:
		return "flags"
	case KindResource:
		return "resource"
	case KindOwn:
		return "own"
	case KindBorrow:
		return "borrow"
	case KindFuture:
		return "future"
	case KindStream:
		return "stream"
	case KindErrorContext:
		return "error-context"
	case KindAlias:
		return "alias"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Type is a resolved WIT type. Named types (records, variants, enums, flags,
// resources and aliases, including names brought in by `use`) have a Name and
// are shared: every reference to a named type points to the same *Type.
type Type struct {
	// Kind says which of the fields below are set.
	Kind Kind
	// Name is the WIT name of a named type, "" for anonymous types such as
	// u32 or list<string>.
	Name string
	// Interface is the interface that defines a named type, nil for anonymous
	// types and for types defined in a world.
	Interface *Interface

	Elem   *Type       // list, option, own, borrow and alias target; future/stream payload (nil if none)
	Len    int         // fixed-size list length, 0 for list<T>
	Ok     *Type       // result ok payload, nil if none
	Err    *Type       // result err payload, nil if none
	Tuple  []*Type     // tuple elements
	Fields []Field     // record fields
	Cases  []Case      // variant cases
	Labels []string    // enum cases and flags, in declaration order
	Funcs  []*Function // resource constructor, methods and static functions

	used bool // an alias introduced by `use` rather than `type x = y;`
}

// Field is a record field.
type Field struct {
	Name string // kebab-case WIT name; the JSON key is SnakeCase(Name)
	Type *Type  // the field's type
}

// Case is a variant case.
type Case struct {
	Name string // kebab-case WIT name; the JSON key is SnakeCase(Name)
	Type *Type  // payload, nil for a case without payload
}

// Underlying follows aliases and returns the type they name. It returns t when
// t is not an alias.
func (t *Type) Underlying() *Type {
	for i := 0; t != nil && t.Kind == KindAlias && i < 1000; i++ {
		t = t.Elem
	}
	return t
}

// IsNamed reports whether t is a named type (a type definition or a used name).
func (t *Type) IsNamed() bool { return t.Name != "" }

// String prints the type in WIT syntax, named types by name:
// "result<u64, string>", "list<point>", "option<tuple<u8, char>>".
func (t *Type) String() string {
	var b strings.Builder
	writeTypeRef(&b, t)
	return b.String()
}

// SnakeCase maps a kebab-case WIT name to its JSON form: "field-2" -> "field_2".
func SnakeCase(name string) string { return strings.ReplaceAll(name, "-", "_") }

// FunctionKind tells freestanding functions from the functions of a resource.
type FunctionKind uint8

// The kinds of functions.
const (
	FunctionFreestanding FunctionKind = iota // name: func(...) in an interface
	FunctionMethod                           // name: func(...) in a resource; takes an implicit self
	FunctionStatic                           // name: static func(...) in a resource
	FunctionConstructor                      // constructor(...) of a resource
)

// Function is a WIT function.
type Function struct {
	// Interface is the interface that defines the function.
	Interface *Interface
	// Name is the kebab-case function name ("constructor" for constructors).
	Name string
	// Kind tells freestanding functions from resource functions.
	Kind FunctionKind
	// Resource is the resource of a method, static function or constructor.
	Resource *Type
	// Async is set for `async func`.
	Async bool
	// Params are the declared parameters (without the implicit self of methods).
	Params []Param
	// Result is the result type, nil for a function without result.
	Result *Type
}

// Param is a function parameter.
type Param struct {
	Name string // kebab-case WIT name
	Type *Type  // the parameter's type
}

// InterfaceName returns the full name of the function's interface,
// `ns:pkg/iface[@version]`.
func (f *Function) InterfaceName() string {
	if f.Interface == nil {
		return ""
	}
	return f.Interface.FullName()
}

// FFQN returns the fully qualified function name
// `ns:pkg/iface[@version].function`.
func (f *Function) FFQN() string {
	return f.InterfaceName() + "." + f.Name
}

// Signature prints the function type in WIT syntax, e.g.
// "func(n: u8) -> result<u64>".
func (f *Function) Signature() string {
	var b strings.Builder
	writeSignature(&b, f)
	return b.String()
}

// String prints the function as it is declared: "fibo: func(n: u8) -> result<u64>"
// ("constructor(...)" for a constructor).
func (f *Function) String() string {
	if f.Kind == FunctionConstructor {
		return f.Signature()
	}
	return escapeName(f.Name) + ": " + f.Signature()
}

// Interface is a resolved WIT interface.
type Interface struct {
	Name    string   // kebab-case interface name, without package
	Package *Package // the package that defines the interface
	// Types are the named types of the interface in declaration order: its
	// type definitions and the names brought in by `use` (as aliases).
	Types []*Type
	// Functions are the freestanding functions in declaration order.
	Functions []*Function
}

// FullName returns `ns:pkg/iface[@version]`.
func (i *Interface) FullName() string {
	if i.Package == nil {
		return i.Name
	}
	s := i.Package.Name.Namespace + ":" + i.Package.Name.Name + "/" + i.Name
	if i.Package.Name.Version != "" {
		s += "@" + i.Package.Name.Version
	}
	return s
}

// Function returns the freestanding function with the given name, or nil.
func (i *Interface) Function(name string) *Function {
	for _, f := range i.Functions {
		if f.Name == name {
			return f
		}
	}
	return nil
}

// Type returns the named type with the given name, or nil.
func (i *Interface) Type(name string) *Type {
	for _, t := range i.Types {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// World is a resolved WIT world. Includes are flattened into Imports and
// Exports.
type World struct {
	Name    string       // kebab-case world name
	Package *Package     // the package that defines the world
	Imports []*Interface // imported interfaces, including those of included worlds
	Exports []*Interface // exported interfaces, including those of included worlds
	// Types are the types defined in or used into the world.
	Types []*Type
}

// Package is a resolved WIT package: the interfaces and worlds of all files and
// package blocks that declare it.
type Package struct {
	Name       PackageName  // namespace:name[@version]
	Interfaces []*Interface // in the order of their files and declarations
	Worlds     []*World     // in the order of their files and declarations
}

// Interface returns the interface with the given name, or nil.
func (p *Package) Interface(name string) *Interface {
	for _, i := range p.Interfaces {
		if i.Name == name {
			return i
		}
	}
	return nil
}

// World returns the world with the given name, or nil.
func (p *Package) World(name string) *World {
	for _, w := range p.Worlds {
		if w.Name == name {
			return w
		}
	}
	return nil
}

// Resolve is the result of [Parse]: every package of a component's WIT folder
// with all names resolved. It is immutable and safe for concurrent use.
type Resolve struct {
	// Packages holds the main package first, then the dependencies in the
	// order their files were given.
	Packages []*Package

	main        *Package
	exports     []*Function
	imports     []*Function
	exportIfcs  []*Interface
	importIfcs  []*Interface
	exportIndex map[string]*Function
	importIndex map[string]*Function
}

// Main returns the component's own package: the package of the files at the top
// level of the WIT folder.
func (r *Resolve) Main() *Package { return r.main }

// Package returns the package named `ns:name[@version]`.
func (r *Resolve) Package(name string) (*Package, bool) {
	for _, p := range r.Packages {
		if p.Name.String() == name {
			return p, true
		}
	}
	return nil, false
}

// Interface returns the interface with the full name `ns:pkg/iface[@version]`.
func (r *Resolve) Interface(fullName string) (*Interface, bool) {
	for _, p := range r.Packages {
		for _, i := range p.Interfaces {
			if i.FullName() == fullName {
				return i, true
			}
		}
	}
	return nil, false
}

// ExportedInterfaces returns the interfaces exported by the main package's
// worlds, or all its interfaces when it has no world.
func (r *Resolve) ExportedInterfaces() []*Interface {
	return append([]*Interface(nil), r.exportIfcs...)
}

// ImportedInterfaces returns the interfaces imported by the main package's worlds.
func (r *Resolve) ImportedInterfaces() []*Interface {
	return append([]*Interface(nil), r.importIfcs...)
}

// Exports returns the freestanding functions of [Resolve.ExportedInterfaces],
// in declaration order.
func (r *Resolve) Exports() []*Function { return append([]*Function(nil), r.exports...) }

// Imports returns the freestanding functions of [Resolve.ImportedInterfaces],
// in declaration order.
func (r *Resolve) Imports() []*Function { return append([]*Function(nil), r.imports...) }

// Function looks up an exported function by FFQN (`ns:pkg/iface[@version].fn`).
func (r *Resolve) Function(ffqn string) (*Function, bool) {
	f, ok := r.exportIndex[ffqn]
	return f, ok
}

// ImportedFunction looks up an imported function by FFQN.
func (r *Resolve) ImportedFunction(ffqn string) (*Function, bool) {
	f, ok := r.importIndex[ffqn]
	return f, ok
}
