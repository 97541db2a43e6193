package wit

import (
	"errors"
	"fmt"
	"strconv"
)

// ParseError is an error located in a WIT file: a syntax error or a resolution
// error such as an unknown type. Its message reads "path:line:col: message".
type ParseError struct {
	Path string // file path as given in [File.Path]
	Line int    // 1-based line
	Col  int    // 1-based column, counted in characters
	Msg  string // what is wrong
}

// Error returns "path:line:col: message".
func (e *ParseError) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.Path, e.Line, e.Col, e.Msg)
}

// ---- syntax tree ----

type astFile struct {
	path   string
	pkg    *PackageName // top-level `package ...;`, nil if absent
	pkgPos position
	top    *astBody // items outside nested package blocks
	nested []*astBody
}

// astBody is the content of a package in one file: either the top level of the
// file or one nested `package ... { }` block.
type astBody struct {
	path       string
	pkg        *PackageName // nil for a top-level body without declaration
	uses       []*astTopUse
	interfaces []*astInterface
	worlds     []*astWorld
}

func (b *astBody) empty() bool {
	return len(b.uses) == 0 && len(b.interfaces) == 0 && len(b.worlds) == 0
}

type astTopUse struct {
	path *astUsePath
	as   string
	pos  position // of the name it introduces
}

// astUsePath names an interface or a world: `name` or `ns:pkg/name@version`.
type astUsePath struct {
	pkg  *PackageName // nil for a name local to the package
	name string
	pos  position
}

func (p *astUsePath) String() string {
	if p.pkg == nil {
		return p.name
	}
	s := p.pkg.Namespace + ":" + p.pkg.Name + "/" + p.name
	if p.pkg.Version != "" {
		s += "@" + p.pkg.Version
	}
	return s
}

type astInterface struct {
	name  string
	pos   position
	uses  []*astUse
	types []*astTypeDef
	funcs []*astFunc
}

type astUse struct {
	path  *astUsePath
	names []astUseName
}

type astUseName struct {
	name, as string
	pos      position
}

func (n astUseName) local() string {
	if n.as != "" {
		return n.as
	}
	return n.name
}

type astTypeDef struct {
	kind    Kind // KindAlias, KindRecord, KindVariant, KindEnum, KindFlags or KindResource
	name    string
	pos     position
	alias   *astType
	fields  []astField // record fields, variant cases (typ may be nil)
	labels  []astLabel // enum cases, flags
	methods []*astFunc // resource
}

type astField struct {
	name string
	pos  position
	typ  *astType
}

type astLabel struct {
	name string
	pos  position
}

type astFunc struct {
	name   string
	pos    position
	kind   FunctionKind
	async  bool
	params []astField
	result *astType
}

// astType is a type expression. For builtin kinds only kind is set; named
// references have kind KindInvalid and name set.
type astType struct {
	kind    Kind
	name    string // named type, or the resource of own/borrow
	pos     position
	elem    *astType // list, option, future, stream
	size    int      // fixed-size list
	ok, err *astType // result
	tuple   []*astType
}

type worldItemKind uint8

const (
	worldImport worldItemKind = iota + 1
	worldExport
	worldInclude
)

type astWorld struct {
	name  string
	pos   position
	items []*astWorldItem
	uses  []*astUse
	types []*astTypeDef
}

type astWorldItem struct {
	kind   worldItemKind
	path   *astUsePath // interface, or world for include
	inline string      // "function" or "interface" for unsupported inline items
	name   string      // name of an inline item
	pos    position
}

// ---- parser ----

type parser struct {
	path  string
	toks  []token
	i     int
	depth int
}

// bail carries a parse error out of the recursive descent.
type bail struct{ err *ParseError }

func parseFile(f File) (file *astFile, err error) {
	toks, lerr := tokenize(f.Text)
	if lerr != nil {
		var le *lexError
		if errors.As(lerr, &le) {
			return nil, &ParseError{Path: f.Path, Line: le.pos.line, Col: le.pos.col, Msg: le.msg}
		}
		return nil, lerr
	}
	p := &parser{path: f.Path, toks: toks}
	defer func() {
		if r := recover(); r != nil {
			b, ok := r.(bail)
			if !ok {
				panic(r)
			}
			file, err = nil, b.err
		}
	}()
	return p.file(), nil
}

func (p *parser) fail(pos position, format string, args ...any) {
	panic(bail{&ParseError{Path: p.path, Line: pos.line, Col: pos.col, Msg: fmt.Sprintf(format, args...)}})
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) peekAt(n int) token {
	if p.i+n < len(p.toks) {
		return p.toks[p.i+n]
	}
	return p.toks[len(p.toks)-1]
}

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tokEOF {
		p.i++
	}
	return t
}

func (p *parser) accept(k tokenKind) bool {
	if p.peek().kind == k {
		p.next()
		return true
	}
	return false
}

func (p *parser) acceptKeyword(kw string) bool {
	if p.peek().is(kw) {
		p.next()
		return true
	}
	return false
}

func (p *parser) expect(k tokenKind, context string) token {
	t := p.next()
	if t.kind != k {
		p.fail(t.pos, "expected %s %s, found %s", k, context, t.describe())
	}
	return t
}

func (p *parser) expectKeyword(kw, context string) {
	t := p.next()
	if !t.is(kw) {
		p.fail(t.pos, "expected `%s` %s, found %s", kw, context, t.describe())
	}
}

func (p *parser) ident(context string) (string, position) {
	t := p.next()
	if t.kind != tokIdent {
		p.fail(t.pos, "expected %s, found %s", context, t.describe())
	}
	return t.text, t.pos
}

func (p *parser) file() *astFile {
	f := &astFile{path: p.path, top: &astBody{path: p.path}}
	p.gates()
	if p.peek().is("package") {
		pos := p.next().pos
		name := p.packageName()
		switch t := p.next(); t.kind {
		case tokSemi:
			f.pkg, f.pkgPos = &name, pos
			f.top.pkg = &name
		case tokLBrace:
			f.nested = append(f.nested, p.nestedPackage(name))
		default:
			p.fail(t.pos, "expected ';' or '{' after the package name, found %s", t.describe())
		}
	}
	for p.peek().kind != tokEOF {
		p.gates()
		t := p.peek()
		if t.is("package") {
			p.next()
			name := p.packageName()
			if nt := p.next(); nt.kind != tokLBrace {
				if nt.kind == tokSemi {
					p.fail(t.pos, "the package declaration must come first in the file")
				}
				p.fail(nt.pos, "expected '{' after the package name, found %s", nt.describe())
			}
			f.nested = append(f.nested, p.nestedPackage(name))
			continue
		}
		if !p.packageItem(f.top) {
			p.fail(t.pos, "expected `package`, `interface`, `world` or `use`, found %s", t.describe())
		}
	}
	return f
}

func (p *parser) nestedPackage(name PackageName) *astBody {
	b := &astBody{path: p.path, pkg: &name}
	for !p.accept(tokRBrace) {
		p.gates()
		t := p.peek()
		if t.kind == tokEOF {
			p.fail(t.pos, "expected '}' to close package %s, found end of file", name)
		}
		if !p.packageItem(b) {
			p.fail(t.pos, "expected `interface`, `world`, `use` or '}', found %s", t.describe())
		}
	}
	return b
}

// packageItem parses one interface, world or top-level use into b. It returns
// false when the next token starts none of them.
func (p *parser) packageItem(b *astBody) bool {
	t := p.peek()
	switch {
	case t.is("interface"):
		p.next()
		b.interfaces = append(b.interfaces, p.interfaceDef())
	case t.is("world"):
		p.next()
		b.worlds = append(b.worlds, p.world())
	case t.is("use"):
		p.next()
		path := p.usePath()
		u := &astTopUse{path: path, pos: path.pos}
		if p.acceptKeyword("as") {
			u.as, u.pos = p.ident("a name after `as`")
		}
		p.expect(tokSemi, "after the use statement")
		b.uses = append(b.uses, u)
	default:
		return false
	}
	return true
}

// gates skips feature gates and attributes such as @since(version = 1.0.0),
// @unstable(feature = x) and @deprecated(version = 1.0.0).
func (p *parser) gates() {
	for p.peek().kind == tokAt {
		p.next()
		p.ident("an attribute name after '@'")
		if p.accept(tokLParen) {
			for depth := 1; depth > 0; {
				t := p.next()
				switch t.kind {
				case tokLParen:
					depth++
				case tokRParen:
					depth--
				case tokEOF:
					p.fail(t.pos, "unterminated attribute, expected ')'")
				}
			}
		}
	}
}

func (p *parser) packageName() PackageName {
	ns, _ := p.ident("a package namespace")
	p.expect(tokColon, "between the package namespace and name")
	name, _ := p.ident("a package name")
	if t := p.peek(); t.kind == tokColon || t.kind == tokSlash {
		p.fail(t.pos, "nested package namespaces are not supported, expected `namespace:name`")
	}
	pn := PackageName{Namespace: ns, Name: name}
	if p.accept(tokAt) {
		pn.Version = p.version()
	}
	return pn
}

func (p *parser) version() string {
	t := p.next()
	if t.kind != tokNumber {
		p.fail(t.pos, "expected a version after '@', found %s", t.describe())
	}
	if !validSemver(t.text) {
		p.fail(t.pos, "invalid version `%s`: expected a semantic version like 1.2.3", t.text)
	}
	return t.text
}

// usePath parses `name` or `ns:pkg/name[@version]`.
func (p *parser) usePath() *astUsePath {
	first, pos := p.ident("an interface name or `namespace:package/interface`")
	if !p.accept(tokColon) {
		return &astUsePath{name: first, pos: pos}
	}
	pkg, _ := p.ident("a package name after ':'")
	if t := p.peek(); t.kind == tokColon {
		p.fail(t.pos, "nested package namespaces are not supported, expected `namespace:package/interface`")
	}
	p.expect(tokSlash, "after the package name of a path (`namespace:package/interface`)")
	name, _ := p.ident("an interface name after '/'")
	pn := &PackageName{Namespace: first, Name: pkg}
	if p.accept(tokAt) {
		pn.Version = p.version()
	}
	return &astUsePath{pkg: pn, name: name, pos: pos}
}

func (p *parser) interfaceDef() *astInterface {
	name, pos := p.ident("an interface name")
	return p.interfaceBody(name, pos)
}

// interfaceBody parses `{ items }` of an interface whose name was consumed.
func (p *parser) interfaceBody(name string, pos position) *astInterface {
	iface := &astInterface{name: name, pos: pos}
	p.expect(tokLBrace, "to open interface `"+name+"`")
	for !p.accept(tokRBrace) {
		p.gates()
		t := p.peek()
		switch {
		case t.kind == tokEOF:
			p.fail(t.pos, "expected '}' to close interface `%s`, found end of file", name)
		case t.is("use") && p.peekAt(1).kind == tokColon:
			p.fail(t.pos, "`use` is a keyword; write `%%use` to use it as a name")
		case t.is("use"):
			p.next()
			iface.uses = append(iface.uses, p.use())
		default:
			if td := p.typeDef(); td != nil {
				iface.types = append(iface.types, td)
				continue
			}
			if t.kind != tokIdent {
				p.fail(t.pos, "expected a type definition, a function or '}' in interface `%s`, found %s", name, t.describe())
			}
			iface.funcs = append(iface.funcs, p.function(FunctionFreestanding))
		}
	}
	return iface
}

// use parses the rest of `use path.{a, b as c};` after `use`.
func (p *parser) use() *astUse {
	u := &astUse{path: p.usePath()}
	p.expect(tokDot, "after the interface of a use statement (`use iface.{name}`)")
	p.expect(tokLBrace, "to start the list of used names")
	for {
		name, pos := p.ident("a type name in the use list")
		n := astUseName{name: name, pos: pos}
		if p.acceptKeyword("as") {
			n.as, n.pos = p.ident("a name after `as`")
		}
		u.names = append(u.names, n)
		if !p.accept(tokComma) {
			break
		}
		if p.peek().kind == tokRBrace {
			break
		}
	}
	p.expect(tokRBrace, "to end the list of used names")
	p.expect(tokSemi, "after the use statement")
	return u
}

// typeDef parses a type definition if the next token starts one, else returns nil.
func (p *parser) typeDef() *astTypeDef {
	t := p.peek()
	var kind Kind
	switch {
	case t.is("type"):
		kind = KindAlias
	case t.is("record"):
		kind = KindRecord
	case t.is("variant"):
		kind = KindVariant
	case t.is("enum"):
		kind = KindEnum
	case t.is("flags"):
		kind = KindFlags
	case t.is("resource"):
		kind = KindResource
	default:
		return nil
	}
	p.next()
	if nt := p.peek(); nt.kind == tokColon {
		p.fail(t.pos, "`%s` is a keyword; write `%%%s` to use it as a name", t.text, t.text)
	}
	name, pos := p.ident("a type name after `" + t.text + "`")
	td := &astTypeDef{kind: kind, name: name, pos: pos}
	switch kind {
	case KindAlias:
		p.expect(tokEquals, "after the type name")
		td.alias = p.typ()
		p.expect(tokSemi, "after the type alias")
	case KindRecord:
		p.expect(tokLBrace, "to open record `"+name+"`")
		td.fields = p.fieldList(tokRBrace, "a record field name")
		p.expect(tokRBrace, "to close record `"+name+"`")
	case KindVariant:
		p.expect(tokLBrace, "to open variant `"+name+"`")
		for p.peek().kind != tokRBrace {
			cname, cpos := p.ident("a variant case name")
			c := astField{name: cname, pos: cpos}
			if p.accept(tokLParen) {
				c.typ = p.typ()
				p.expect(tokRParen, "after the payload type of case `"+cname+"`")
			}
			td.fields = append(td.fields, c)
			if !p.accept(tokComma) {
				break
			}
		}
		p.expect(tokRBrace, "to close variant `"+name+"`")
	case KindEnum, KindFlags:
		what := "an enum case name"
		if kind == KindFlags {
			what = "a flag name"
		}
		p.expect(tokLBrace, "to open `"+name+"`")
		for p.peek().kind != tokRBrace {
			lname, lpos := p.ident(what)
			td.labels = append(td.labels, astLabel{name: lname, pos: lpos})
			if !p.accept(tokComma) {
				break
			}
		}
		p.expect(tokRBrace, "to close `"+name+"`")
	case KindResource:
		if p.accept(tokSemi) {
			break
		}
		p.expect(tokLBrace, "or ';' after resource `"+name+"`")
		for !p.accept(tokRBrace) {
			p.gates()
			mt := p.peek()
			switch {
			case mt.kind == tokEOF:
				p.fail(mt.pos, "expected '}' to close resource `%s`, found end of file", name)
			case mt.is("constructor"):
				p.next()
				fn := &astFunc{name: "constructor", pos: mt.pos, kind: FunctionConstructor}
				fn.params, fn.result = p.signature()
				p.expect(tokSemi, "after the constructor")
				td.methods = append(td.methods, fn)
			default:
				td.methods = append(td.methods, p.function(FunctionMethod))
			}
		}
	}
	return td
}

// fieldList parses `name: type` pairs separated by commas (a trailing comma is
// allowed) up to, not including, the closing token.
func (p *parser) fieldList(closing tokenKind, what string) []astField {
	var fields []astField
	for p.peek().kind != closing {
		name, pos := p.ident(what)
		p.expect(tokColon, "after `"+name+"`")
		fields = append(fields, astField{name: name, pos: pos, typ: p.typ()})
		if !p.accept(tokComma) {
			break
		}
	}
	return fields
}

// function parses `name: [static] [async] func(params) [-> result];`.
func (p *parser) function(kind FunctionKind) *astFunc {
	name, pos := p.ident("a function name")
	p.expect(tokColon, "after the function name `"+name+"`")
	fn := &astFunc{name: name, pos: pos, kind: kind}
	if kind == FunctionMethod && p.acceptKeyword("static") {
		fn.kind = FunctionStatic
	}
	fn.async = p.acceptKeyword("async")
	t := p.peek()
	if !t.is("func") {
		if kind == FunctionFreestanding && (t.kind == tokIdent || t.kind == tokLAngle) {
			p.fail(t.pos, "expected `func` after `%s:`, found %s (to define a type use `type %s = ...;`)", name, t.describe(), name)
		}
		p.fail(t.pos, "expected `func` after `%s:`, found %s", name, t.describe())
	}
	p.next()
	fn.params, fn.result = p.signature()
	p.expect(tokSemi, "after the function `"+name+"`")
	return fn
}

// signature parses `(params) [-> type]`.
func (p *parser) signature() ([]astField, *astType) {
	p.expect(tokLParen, "to start the parameter list")
	params := p.fieldList(tokRParen, "a parameter name")
	p.expect(tokRParen, "to end the parameter list")
	if !p.accept(tokArrow) {
		return params, nil
	}
	if t := p.peek(); t.kind == tokLParen {
		p.next()
		if p.accept(tokRParen) {
			return params, nil // `-> ()`: no result
		}
		p.fail(t.pos, "named results `-> (name: type, ...)` are not supported; return a single type such as a tuple or a record")
	}
	return params, p.typ()
}

const maxTypeDepth = 100

// builtinKind returns the kind of a primitive type keyword.
func builtinKind(name string) (Kind, bool) {
	switch name {
	case "bool":
		return KindBool, true
	case "s8":
		return KindS8, true
	case "s16":
		return KindS16, true
	case "s32":
		return KindS32, true
	case "s64":
		return KindS64, true
	case "u8":
		return KindU8, true
	case "u16":
		return KindU16, true
	case "u32":
		return KindU32, true
	case "u64":
		return KindU64, true
	case "f32", "float32":
		return KindF32, true
	case "f64", "float64":
		return KindF64, true
	case "char":
		return KindChar, true
	case "string":
		return KindString, true
	case "error-context":
		return KindErrorContext, true
	}
	return KindInvalid, false
}

func (p *parser) typ() *astType {
	p.depth++
	defer func() { p.depth-- }()
	t := p.next()
	if p.depth > maxTypeDepth {
		p.fail(t.pos, "type nested too deeply (more than %d levels)", maxTypeDepth)
	}
	if t.kind != tokIdent {
		p.fail(t.pos, "expected a type, found %s", t.describe())
	}
	at := &astType{pos: t.pos}
	if t.escaped {
		at.name = t.text
		return at
	}
	if k, ok := builtinKind(t.text); ok {
		at.kind = k
		return at
	}
	open := func() { p.expect(tokLAngle, "after `"+t.text+"`") }
	closeAngle := func() { p.expect(tokRAngle, "to close `"+t.text+"<...>`") }
	switch t.text {
	case "list":
		at.kind = KindList
		open()
		at.elem = p.typ()
		if p.accept(tokComma) {
			nt := p.next()
			n, err := strconv.Atoi(nt.text)
			if nt.kind != tokNumber || err != nil || n <= 0 {
				p.fail(nt.pos, "expected a positive list length, found %s", nt.describe())
			}
			at.size = n
		}
		closeAngle()
	case "option":
		at.kind = KindOption
		open()
		at.elem = p.typ()
		closeAngle()
	case "result":
		at.kind = KindResult
		if !p.accept(tokLAngle) {
			break
		}
		if u := p.peek(); u.kind == tokUnderscore {
			p.next()
			if p.peek().kind != tokComma {
				p.fail(u.pos, "`result<_>` is not valid: write `result` for a result without payloads")
			}
		} else {
			at.ok = p.typ()
		}
		if p.accept(tokComma) {
			at.err = p.typ()
		}
		closeAngle()
	case "tuple":
		at.kind = KindTuple
		open()
		for p.peek().kind != tokRAngle {
			at.tuple = append(at.tuple, p.typ())
			if !p.accept(tokComma) {
				break
			}
		}
		closeAngle()
		if len(at.tuple) == 0 {
			p.fail(t.pos, "a tuple needs at least one element")
		}
	case "borrow", "own":
		at.kind = KindBorrow
		if t.text == "own" {
			at.kind = KindOwn
		}
		open()
		at.name, _ = p.ident("a resource name")
		closeAngle()
	case "future", "stream":
		at.kind = KindFuture
		if t.text == "stream" {
			at.kind = KindStream
		}
		if p.accept(tokLAngle) {
			at.elem = p.typ()
			closeAngle()
		}
	default:
		at.name = t.text
	}
	return at
}

func (p *parser) world() *astWorld {
	name, pos := p.ident("a world name")
	w := &astWorld{name: name, pos: pos}
	p.expect(tokLBrace, "to open world `"+name+"`")
	for !p.accept(tokRBrace) {
		p.gates()
		t := p.peek()
		switch {
		case t.kind == tokEOF:
			p.fail(t.pos, "expected '}' to close world `%s`, found end of file", name)
		case t.is("import"), t.is("export"):
			p.next()
			kind := worldImport
			if t.text == "export" {
				kind = worldExport
			}
			w.items = append(w.items, p.worldExtern(kind))
		case t.is("include"):
			p.next()
			item := &astWorldItem{kind: worldInclude, pos: p.peek().pos}
			item.path = p.usePath()
			if p.acceptKeyword("with") {
				p.expect(tokLBrace, "after `with`")
				for p.peek().kind != tokRBrace {
					p.ident("a name to rename")
					p.expectKeyword("as", "in an include rename")
					p.ident("a new name after `as`")
					if !p.accept(tokComma) {
						break
					}
				}
				p.expect(tokRBrace, "to close the include renames")
			}
			p.expect(tokSemi, "after the include")
			w.items = append(w.items, item)
		case t.is("use"):
			p.next()
			w.uses = append(w.uses, p.use())
		default:
			td := p.typeDef()
			if td == nil {
				p.fail(t.pos, "expected `import`, `export`, `include`, `use`, a type definition or '}' in world `%s`, found %s", name, t.describe())
			}
			w.types = append(w.types, td)
		}
	}
	return w
}

// worldExtern parses the rest of an import or export item.
func (p *parser) worldExtern(kind worldItemKind) *astWorldItem {
	item := &astWorldItem{kind: kind, pos: p.peek().pos}
	if p.peek().kind == tokIdent && p.peekAt(1).kind == tokColon {
		after, after2 := p.peekAt(2), p.peekAt(3)
		switch {
		case after.is("interface") && after2.kind == tokLBrace:
			var pos position
			item.name, pos = p.ident("a name")
			p.next() // ':'
			p.next() // interface
			p.interfaceBody(item.name, pos)
			item.inline = "interface"
			return item
		case (after.is("func") && after2.kind == tokLParen) || (after.is("async") && after2.is("func")):
			fn := p.function(FunctionFreestanding)
			item.name, item.inline = fn.name, "function"
			return item
		}
	}
	item.path = p.usePath()
	if kind == worldImport {
		p.expect(tokSemi, "after the import")
	} else {
		p.expect(tokSemi, "after the export")
	}
	return item
}
