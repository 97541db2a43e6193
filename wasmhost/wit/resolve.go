package wit

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
)

// Parse parses and resolves the WIT files of a component's WIT folder.
//
// Files whose path has no '/' form the component's own ("main") package; they
// must declare it with `package ns:name[@version];` (in at least one of them).
// Other files are dependencies: a file directly under deps/ is a package of its
// own, and the files of any other directory (such as deps/testing-fibo/) form
// one package. Any file may also define packages in nested
// `package ns:name { ... }` blocks. Every name is resolved: `use` statements,
// type aliases, references across interfaces and packages, world imports,
// exports and includes.
//
// Errors are [*ParseError] values located at "file:line:col" when they can be,
// and name the offending item.
func Parse(files []File) (*Resolve, error) {
	if len(files) == 0 {
		return nil, fmt.Errorf("wit: no WIT files given")
	}
	sorted := slices.Clone(files)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	for i, f := range sorted {
		if err := checkFilePath(f.Path); err != nil {
			return nil, fmt.Errorf("wit: %w", err)
		}
		if i > 0 && sorted[i-1].Path == f.Path {
			return nil, fmt.Errorf("wit: file %q given twice", f.Path)
		}
	}
	asts := make([]*astFile, 0, len(sorted))
	for _, f := range sorted {
		a, err := parseFile(f)
		if err != nil {
			return nil, err
		}
		asts = append(asts, a)
	}
	r := &resolver{
		pkgs:      map[string]*pkgState{},
		typeDecls: map[*Type]declPos{},
	}
	return r.run(asts)
}

// checkFilePath validates a relative, '/'-separated, clean file path.
func checkFilePath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("empty file path")
	case strings.Contains(p, "\\"):
		return fmt.Errorf("file path %q: use '/' as separator", p)
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("file path %q must be relative to the WIT folder", p)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("file path %q is not a clean relative path", p)
		}
	}
	return nil
}

// groupOf returns the key of the package group of a file: "" for the main
// package, the file itself directly under deps/, else its directory.
func groupOf(p string) string {
	dir := path.Dir(p)
	switch dir {
	case ".":
		return ""
	case "deps":
		return p
	}
	return dir
}

type declPos struct {
	path string
	pos  position
}

type resolver struct {
	pkgs      map[string]*pkgState // by PackageName.String()
	order     []*pkgState
	ifaces    []*ifaceState
	worlds    []*worldState
	handles   []handleRef
	typeDecls map[*Type]declPos
}

type pkgState struct {
	pkg    *Package
	ifaces map[string]*ifaceState
	worlds map[string]*worldState
	decl   map[string]declPos // interface and world names
}

// scope is the package-level scope of one body: its package and the names
// introduced by top-level `use` statements.
type scope struct {
	body *astBody
	pkg  *pkgState
	uses map[string]*astTopUse
}

type namedType struct {
	t   *Type
	pos declPos
}

type ifaceState struct {
	iface *Interface
	ast   *astInterface
	sc    *scope
	names map[string]namedType
}

type worldState struct {
	world    *World
	ast      *astWorld
	sc       *scope
	names    map[string]namedType
	state    int // 0 unvisited, 1 flattening, 2 done
	inline   []declPos
	inlineAt []string
}

type handleRef struct {
	t    *Type
	what string
	pos  declPos
}

func (r *resolver) fail(d declPos, format string, args ...any) {
	panic(bail{&ParseError{Path: d.path, Line: d.pos.line, Col: d.pos.col, Msg: fmt.Sprintf(format, args...)}})
}

func (r *resolver) run(files []*astFile) (res *Resolve, err error) {
	defer func() {
		if rec := recover(); rec != nil {
			b, ok := rec.(bail)
			if !ok {
				panic(rec)
			}
			res, err = nil, b.err
		}
	}()

	// Which package do the top levels of the files belong to?
	groupPkg := map[string]*PackageName{}
	groupDecl := map[string]declPos{}
	for _, f := range files {
		if f.pkg == nil {
			continue
		}
		g := groupOf(f.path)
		d := declPos{f.path, f.pkgPos}
		if prev, ok := groupPkg[g]; ok && prev.String() != f.pkg.String() {
			pd := groupDecl[g]
			r.fail(d, "package %s conflicts with package %s declared at %s:%d:%d; all files of one folder belong to one package",
				f.pkg, prev, pd.path, pd.pos.line, pd.pos.col)
		}
		groupPkg[g], groupDecl[g] = f.pkg, d
	}
	var bodies []*astBody
	for _, f := range files {
		g := groupOf(f.path)
		if pn := groupPkg[g]; pn != nil {
			f.top.pkg = pn
		} else if !f.top.empty() || g == "" {
			where := "the top-level WIT files"
			if g != "" {
				where = "the files of " + g
			}
			r.fail(declPos{f.path, position{1, 1}}, "no package declaration: add `package namespace:name;` to one of %s", where)
		}
		if f.top.pkg != nil {
			bodies = append(bodies, f.top)
		}
		bodies = append(bodies, f.nested...)
	}
	mainName := groupPkg[""]
	if mainName == nil {
		r.fail(declPos{files[0].path, position{1, 1}}, "no top-level WIT file declares the component's package (`package namespace:name;`)")
	}

	// Register packages, interfaces and worlds.
	r.pkgState(*mainName)
	var scopes []*scope
	for _, b := range bodies {
		ps := r.pkgState(*b.pkg)
		sc := &scope{body: b, pkg: ps, uses: map[string]*astTopUse{}}
		scopes = append(scopes, sc)
		for _, ai := range b.interfaces {
			r.declare(ps, ai.name, "interface", declPos{b.path, ai.pos})
			is := &ifaceState{
				iface: &Interface{Name: ai.name, Package: ps.pkg},
				ast:   ai, sc: sc, names: map[string]namedType{},
			}
			ps.ifaces[ai.name] = is
			ps.pkg.Interfaces = append(ps.pkg.Interfaces, is.iface)
			r.ifaces = append(r.ifaces, is)
		}
		for _, aw := range b.worlds {
			r.declare(ps, aw.name, "world", declPos{b.path, aw.pos})
			ws := &worldState{
				world: &World{Name: aw.name, Package: ps.pkg},
				ast:   aw, sc: sc, names: map[string]namedType{},
			}
			ps.worlds[aw.name] = ws
			ps.pkg.Worlds = append(ps.pkg.Worlds, ws.world)
			r.worlds = append(r.worlds, ws)
		}
	}
	for _, sc := range scopes {
		for _, u := range sc.body.uses {
			name := u.as
			if name == "" {
				name = u.path.name
			}
			d := declPos{sc.body.path, u.pos}
			if prev, ok := sc.uses[name]; ok {
				r.fail(d, "`%s` is already used at line %d", name, prev.pos.line)
			}
			if _, ok := sc.pkg.decl[name]; ok {
				r.fail(d, "`%s` conflicts with the %s of the same name in package %s; rename it with `as`",
					name, r.kindOfDecl(sc.pkg, name), sc.pkg.pkg.Name)
			}
			if u.path.pkg == nil {
				r.fail(declPos{sc.body.path, u.path.pos}, "a top-level use needs a full path `namespace:package/name`")
			}
			sc.uses[name] = u
		}
	}

	// Interfaces: declare names, link uses, resolve definitions.
	for _, is := range r.ifaces {
		r.declareTypes(is.names, is.iface, is.sc, is.ast.uses, is.ast.types, func(t *Type) {
			is.iface.Types = append(is.iface.Types, t)
		})
	}
	for _, ws := range r.worlds {
		r.declareTypes(ws.names, nil, ws.sc, ws.ast.uses, ws.ast.types, func(t *Type) {
			ws.world.Types = append(ws.world.Types, t)
		})
	}
	for _, is := range r.ifaces {
		r.linkUses(is.sc, is.names, is.ast.uses, is)
	}
	for _, ws := range r.worlds {
		r.linkUses(ws.sc, ws.names, ws.ast.uses, nil)
	}
	for _, is := range r.ifaces {
		r.defineTypes(is.sc.body.path, is.names, is.iface, is.ast.types)
		seen := map[string]position{}
		for _, af := range is.ast.funcs {
			if prev, ok := seen[af.name]; ok {
				r.fail(declPos{is.sc.body.path, af.pos}, "function `%s` is defined more than once in interface %s (first at line %d)",
					af.name, is.iface.FullName(), prev.line)
			}
			seen[af.name] = af.pos
			is.iface.Functions = append(is.iface.Functions, r.function(is.sc.body.path, is.names, is.iface, nil, af))
		}
	}
	for _, ws := range r.worlds {
		r.defineTypes(ws.sc.body.path, ws.names, nil, ws.ast.types)
	}
	r.checkCycles()
	for _, h := range r.handles {
		if u := h.t.Underlying(); u == nil || u.Kind != KindResource {
			r.fail(h.pos, "`%s` needs a resource, but `%s` is %s", h.what, h.t.Name, describeKind(u))
		}
	}

	// Worlds.
	for _, ws := range r.worlds {
		r.flattenWorld(ws)
	}

	return r.finish(r.pkgs[mainName.String()])
}

func (r *resolver) pkgState(name PackageName) *pkgState {
	key := name.String()
	if ps, ok := r.pkgs[key]; ok {
		return ps
	}
	ps := &pkgState{
		pkg:    &Package{Name: name},
		ifaces: map[string]*ifaceState{},
		worlds: map[string]*worldState{},
		decl:   map[string]declPos{},
	}
	r.pkgs[key] = ps
	r.order = append(r.order, ps)
	return ps
}

func (r *resolver) kindOfDecl(ps *pkgState, name string) string {
	if _, ok := ps.worlds[name]; ok {
		return "world"
	}
	return "interface"
}

func (r *resolver) declare(ps *pkgState, name, kind string, d declPos) {
	if prev, ok := ps.decl[name]; ok {
		r.fail(d, "%s `%s` is defined more than once in package %s (first as %s at %s:%d:%d)",
			kind, name, ps.pkg.Name, describeDecl(r.kindOfDecl(ps, name)), prev.path, prev.pos.line, prev.pos.col)
	}
	ps.decl[name] = d
}

// findPackage finds a package by name. An unversioned reference matches the
// only version present.
func (r *resolver) findPackage(name PackageName, d declPos) *pkgState {
	if ps, ok := r.pkgs[name.String()]; ok {
		return ps
	}
	var candidates []*pkgState
	var versions []string
	for _, ps := range r.order {
		if ps.pkg.Name.Namespace == name.Namespace && ps.pkg.Name.Name == name.Name {
			candidates = append(candidates, ps)
			versions = append(versions, ps.pkg.Name.String())
		}
	}
	if name.Version == "" && len(candidates) == 1 {
		return candidates[0]
	}
	if len(versions) > 0 {
		r.fail(d, "package %s not found; available: %s", name, strings.Join(versions, ", "))
	}
	r.fail(d, "package %s not found; add its WIT files under deps/", name)
	return nil
}

// lookupInterface resolves an interface path in a scope.
func (r *resolver) lookupInterface(sc *scope, p *astUsePath) *ifaceState {
	d := declPos{sc.body.path, p.pos}
	ps := sc.pkg
	name := p.name
	if p.pkg == nil {
		if u, ok := sc.uses[p.name]; ok {
			ps = r.findPackage(*u.path.pkg, d)
			name = u.path.name
		} else if is, ok := ps.ifaces[p.name]; ok {
			return is
		} else {
			if _, ok := ps.worlds[p.name]; ok {
				r.fail(d, "`%s` is a world, not an interface", p.name)
			}
			r.fail(d, "interface `%s` not found in package %s", p.name, ps.pkg.Name)
		}
	} else {
		ps = r.findPackage(*p.pkg, d)
	}
	is, ok := ps.ifaces[name]
	if !ok {
		if _, ok := ps.worlds[name]; ok {
			r.fail(d, "`%s` in package %s is a world, not an interface", name, ps.pkg.Name)
		}
		r.fail(d, "interface `%s` not found in package %s", name, ps.pkg.Name)
	}
	return is
}

// lookupWorld resolves a world path in a scope.
func (r *resolver) lookupWorld(sc *scope, p *astUsePath) *worldState {
	d := declPos{sc.body.path, p.pos}
	ps := sc.pkg
	name := p.name
	if p.pkg != nil {
		ps = r.findPackage(*p.pkg, d)
	} else if u, ok := sc.uses[p.name]; ok {
		ps = r.findPackage(*u.path.pkg, d)
		name = u.path.name
	}
	ws, ok := ps.worlds[name]
	if !ok {
		r.fail(d, "world `%s` not found in package %s", name, ps.pkg.Name)
	}
	return ws
}

// declareTypes creates the named types of an interface or world: aliases for
// used names, then the type definitions, so that definitions may refer to each
// other in any order.
func (r *resolver) declareTypes(names map[string]namedType, owner *Interface, sc *scope, uses []*astUse, defs []*astTypeDef, add func(*Type)) {
	define := func(name string, t *Type, d declPos) {
		if prev, ok := names[name]; ok {
			r.fail(d, "type `%s` is defined more than once (first at line %d)", name, prev.pos.pos.line)
		}
		names[name] = namedType{t, d}
		r.typeDecls[t] = d
		add(t)
	}
	for _, u := range uses {
		for _, n := range u.names {
			define(n.local(), &Type{Kind: KindAlias, Name: n.local(), Interface: owner, used: true}, declPos{sc.body.path, n.pos})
		}
	}
	for _, td := range defs {
		define(td.name, &Type{Kind: td.kind, Name: td.name, Interface: owner}, declPos{sc.body.path, td.pos})
	}
}

// linkUses points the aliases created for `use` statements at the types they name.
func (r *resolver) linkUses(sc *scope, names map[string]namedType, uses []*astUse, self *ifaceState) {
	for _, u := range uses {
		target := r.lookupInterface(sc, u.path)
		if target == self {
			r.fail(declPos{sc.body.path, u.path.pos}, "interface `%s` cannot use itself", self.iface.Name)
		}
		for _, n := range u.names {
			nt, ok := target.names[n.name]
			if !ok {
				r.fail(declPos{sc.body.path, n.pos}, "type `%s` is not defined in interface %s", n.name, target.iface.FullName())
			}
			names[n.local()].t.Elem = nt.t
		}
	}
}

// defineTypes resolves the bodies of type definitions.
func (r *resolver) defineTypes(file string, names map[string]namedType, owner *Interface, defs []*astTypeDef) {
	for _, td := range defs {
		t := names[td.name].t
		d := declPos{file, td.pos}
		switch td.kind {
		case KindAlias:
			t.Elem = r.typ(file, names, td.alias)
		case KindRecord:
			if len(td.fields) == 0 {
				r.fail(d, "record `%s` needs at least one field", td.name)
			}
			seen := map[string]bool{}
			for _, f := range td.fields {
				if seen[f.name] {
					r.fail(declPos{file, f.pos}, "field `%s` is defined more than once in record `%s`", f.name, td.name)
				}
				seen[f.name] = true
				t.Fields = append(t.Fields, Field{Name: f.name, Type: r.typ(file, names, f.typ)})
			}
		case KindVariant:
			if len(td.fields) == 0 {
				r.fail(d, "variant `%s` needs at least one case", td.name)
			}
			seen := map[string]bool{}
			for _, c := range td.fields {
				if seen[c.name] {
					r.fail(declPos{file, c.pos}, "case `%s` is defined more than once in variant `%s`", c.name, td.name)
				}
				seen[c.name] = true
				var ct *Type
				if c.typ != nil {
					ct = r.typ(file, names, c.typ)
				}
				t.Cases = append(t.Cases, Case{Name: c.name, Type: ct})
			}
		case KindEnum, KindFlags:
			what := "enum"
			if td.kind == KindFlags {
				what = "flags"
			}
			if len(td.labels) == 0 {
				r.fail(d, "%s `%s` needs at least one case", what, td.name)
			}
			seen := map[string]bool{}
			for _, l := range td.labels {
				if seen[l.name] {
					r.fail(declPos{file, l.pos}, "`%s` is defined more than once in %s `%s`", l.name, what, td.name)
				}
				seen[l.name] = true
				t.Labels = append(t.Labels, l.name)
			}
		case KindResource:
			seen := map[string]bool{}
			for _, m := range td.methods {
				if seen[m.name] {
					r.fail(declPos{file, m.pos}, "`%s` is defined more than once in resource `%s`", m.name, td.name)
				}
				seen[m.name] = true
				t.Funcs = append(t.Funcs, r.function(file, names, owner, t, m))
			}
		}
	}
}

func (r *resolver) function(file string, names map[string]namedType, owner *Interface, resource *Type, af *astFunc) *Function {
	fn := &Function{Interface: owner, Name: af.name, Kind: af.kind, Resource: resource, Async: af.async}
	seen := map[string]bool{}
	for _, p := range af.params {
		if seen[p.name] {
			r.fail(declPos{file, p.pos}, "parameter `%s` is defined more than once in function `%s`", p.name, af.name)
		}
		seen[p.name] = true
		fn.Params = append(fn.Params, Param{Name: p.name, Type: r.typ(file, names, p.typ)})
	}
	if af.result != nil {
		fn.Result = r.typ(file, names, af.result)
	}
	return fn
}

// typ resolves a type expression.
func (r *resolver) typ(file string, names map[string]namedType, at *astType) *Type {
	d := declPos{file, at.pos}
	lookup := func(name string) *Type {
		nt, ok := names[name]
		if !ok {
			r.fail(d, "unknown type `%s`", name)
		}
		return nt.t
	}
	switch at.kind {
	case KindInvalid:
		return lookup(at.name)
	case KindList, KindOption:
		return &Type{Kind: at.kind, Elem: r.typ(file, names, at.elem), Len: at.size}
	case KindFuture, KindStream:
		t := &Type{Kind: at.kind}
		if at.elem != nil {
			t.Elem = r.typ(file, names, at.elem)
		}
		return t
	case KindResult:
		t := &Type{Kind: KindResult}
		if at.ok != nil {
			t.Ok = r.typ(file, names, at.ok)
		}
		if at.err != nil {
			t.Err = r.typ(file, names, at.err)
		}
		return t
	case KindTuple:
		t := &Type{Kind: KindTuple}
		for _, e := range at.tuple {
			t.Tuple = append(t.Tuple, r.typ(file, names, e))
		}
		return t
	case KindOwn, KindBorrow:
		res := lookup(at.name)
		r.handles = append(r.handles, handleRef{t: res, what: fmt.Sprintf("%s<%s>", at.kind, at.name), pos: d})
		return &Type{Kind: at.kind, Elem: res}
	}
	return &Type{Kind: at.kind}
}

// checkCycles rejects named types that contain themselves.
func (r *resolver) checkCycles() {
	state := map[*Type]int{} // 1 visiting, 2 done
	var stack []*Type
	var visit func(t *Type)
	visit = func(t *Type) {
		if t == nil {
			return
		}
		if t.Name != "" {
			switch state[t] {
			case 1:
				i := slices.Index(stack, t)
				var chain []string
				for _, s := range stack[i:] {
					chain = append(chain, s.Name)
				}
				chain = append(chain, t.Name)
				r.fail(r.typeDecls[t], "type `%s` refers to itself (%s)", t.Name, strings.Join(chain, " -> "))
			case 2:
				return
			}
			state[t] = 1
			stack = append(stack, t)
			defer func() { state[t] = 2; stack = stack[:len(stack)-1] }()
		}
		if t.Kind == KindResource {
			return
		}
		visit(t.Elem)
		visit(t.Ok)
		visit(t.Err)
		for _, e := range t.Tuple {
			visit(e)
		}
		for _, f := range t.Fields {
			visit(f.Type)
		}
		for _, c := range t.Cases {
			visit(c.Type)
		}
	}
	for _, is := range r.ifaces {
		for _, t := range is.iface.Types {
			visit(t)
		}
	}
	for _, ws := range r.worlds {
		for _, t := range ws.world.Types {
			visit(t)
		}
	}
}

// flattenWorld resolves a world's imports and exports, including those of the
// worlds it includes.
func (r *resolver) flattenWorld(ws *worldState) {
	switch ws.state {
	case 1:
		r.fail(declPos{ws.sc.body.path, ws.ast.pos}, "world `%s` includes itself", ws.world.Name)
	case 2:
		return
	}
	ws.state = 1
	w := ws.world
	add := func(list []*Interface, i *Interface) []*Interface {
		if slices.Contains(list, i) {
			return list
		}
		return append(list, i)
	}
	for _, item := range ws.ast.items {
		d := declPos{ws.sc.body.path, item.pos}
		switch {
		case item.inline != "":
			ws.inline = append(ws.inline, d)
			verb := "import"
			if item.kind == worldExport {
				verb = "export"
			}
			shape := "interface { ... }"
			if item.inline == "function" {
				shape = "func(...)"
			}
			ws.inlineAt = append(ws.inlineAt, fmt.Sprintf("`%s %s: %s`", verb, item.name, shape))
		case item.kind == worldInclude:
			inc := r.lookupWorld(ws.sc, item.path)
			if inc == ws {
				r.fail(d, "world `%s` includes itself", w.Name)
			}
			r.flattenWorld(inc)
			for _, i := range inc.world.Imports {
				w.Imports = add(w.Imports, i)
			}
			for _, i := range inc.world.Exports {
				w.Exports = add(w.Exports, i)
			}
			ws.inline = append(ws.inline, inc.inline...)
			ws.inlineAt = append(ws.inlineAt, inc.inlineAt...)
		case item.kind == worldImport:
			w.Imports = add(w.Imports, r.lookupInterface(ws.sc, item.path).iface)
		case item.kind == worldExport:
			w.Exports = add(w.Exports, r.lookupInterface(ws.sc, item.path).iface)
		}
	}
	ws.state = 2
}

func (r *resolver) finish(main *pkgState) (*Resolve, error) {
	res := &Resolve{
		main:        main.pkg,
		exportIndex: map[string]*Function{},
		importIndex: map[string]*Function{},
	}
	for _, ps := range r.order {
		res.Packages = append(res.Packages, ps.pkg)
	}
	addIfc := func(list []*Interface, i *Interface) []*Interface {
		if slices.Contains(list, i) {
			return list
		}
		return append(list, i)
	}
	if len(main.pkg.Worlds) == 0 {
		res.exportIfcs = slices.Clone(main.pkg.Interfaces)
	}
	for _, w := range main.pkg.Worlds {
		ws := main.worlds[w.Name]
		if len(ws.inline) > 0 {
			r.fail(ws.inline[0], "%s in world `%s` is not supported: define an interface with the function(s) and import or export it by name",
				ws.inlineAt[0], w.Name)
		}
		for _, i := range w.Exports {
			res.exportIfcs = addIfc(res.exportIfcs, i)
		}
		for _, i := range w.Imports {
			res.importIfcs = addIfc(res.importIfcs, i)
		}
	}
	for _, i := range res.exportIfcs {
		for _, f := range i.Functions {
			res.exports = append(res.exports, f)
			res.exportIndex[f.FFQN()] = f
		}
	}
	for _, i := range res.importIfcs {
		for _, f := range i.Functions {
			res.imports = append(res.imports, f)
			res.importIndex[f.FFQN()] = f
		}
	}
	return res, nil
}

func describeDecl(kind string) string {
	if kind == "interface" {
		return "an interface"
	}
	return "a " + kind
}

// describeKind names a kind with an article for messages: "a record", "an enum".
func describeKind(t *Type) string {
	if t == nil {
		return "undefined"
	}
	switch k := t.Kind.String(); t.Kind {
	case KindAlias, KindEnum, KindOption, KindOwn, KindErrorContext:
		return "an " + k
	default:
		return "a " + k
	}
}
