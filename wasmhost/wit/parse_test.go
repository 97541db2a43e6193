package wit

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func loadTestdata(t testing.TB, dir string) []File {
	t.Helper()
	files, err := LoadDir(filepath.Join("testdata", dir))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func mustParse(t testing.TB, files []File) *Resolve {
	t.Helper()
	r, err := Parse(files)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return r
}

// parseMain parses a single top-level file main.wit.
func parseMain(t testing.TB, text string) *Resolve {
	t.Helper()
	return mustParse(t, []File{{Path: "main.wit", Text: text}})
}

func describeFuncs(fns []*Function) []string {
	var out []string
	for _, f := range fns {
		out = append(out, f.FFQN()+": "+f.Signature())
	}
	return out
}

func TestParseComponents(t *testing.T) {
	tests := []struct {
		dir     string
		main    string
		exports []string
		imports []string
	}{
		{
			dir:     "fibo",
			main:    "testing:fibo",
			exports: []string{"testing:fibo/fibo.fibo: func(n: u8) -> result<u64>"},
		},
		{
			dir:  "fibo-workflow",
			main: "testing:fibo-workflow",
			exports: []string{
				"testing:fibo-workflow/workflow.fibow: func(n: u8, iterations: u32) -> result<u64>",
				"testing:fibo-workflow/workflow.fiboa: func(n: u8, iterations: u32) -> result<u64>",
			},
			imports: []string{"testing:fibo/fibo.fibo: func(n: u8) -> result<u64>"},
		},
		{
			dir:     "sleep",
			main:    "testing:sleep",
			exports: []string{"testing:sleep/sleep.sleep: func(millis: u64) -> result"},
		},
		{
			dir:     "sleep-workflow",
			main:    "testing:sleep-workflow",
			exports: []string{"testing:sleep-workflow/workflow.sleep-activity: func(millis: u64) -> result"},
			imports: []string{"testing:sleep/sleep.sleep: func(millis: u64) -> result"},
		},
		{
			dir:     "http",
			main:    "testing:http",
			exports: []string{"testing:http/http-get.get: func(url: string) -> result<string, string>"},
		},
		{
			dir:     "http-workflow",
			main:    "testing:http-workflow",
			exports: []string{"testing:http-workflow/workflow.get: func(url: string) -> result<string, string>"},
			imports: []string{"testing:http/http-get.get: func(url: string) -> result<string, string>"},
		},
		{
			dir:  "flaky",
			main: "testing:flaky",
			exports: []string{
				"testing:flaky/flaky.fail-until: func(attempts: u32) -> result<u32, string>",
				"testing:flaky/flaky.fail-permanently: func() -> result<_, error>",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			r := mustParse(t, loadTestdata(t, filepath.Join("components", tt.dir)))
			if got := r.Main().Name.String(); got != tt.main {
				t.Errorf("Main() = %s, want %s", got, tt.main)
			}
			if got := describeFuncs(r.Exports()); !slices.Equal(got, tt.exports) {
				t.Errorf("Exports() =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.exports, "\n"))
			}
			if got := describeFuncs(r.Imports()); !slices.Equal(got, tt.imports) {
				t.Errorf("Imports() =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.imports, "\n"))
			}
			for _, f := range r.Exports() {
				if got, ok := r.Function(f.FFQN()); !ok || got != f {
					t.Errorf("Function(%q) = %v, %v", f.FFQN(), got, ok)
				}
				if _, ok := r.ImportedFunction(f.FFQN()); ok {
					t.Errorf("ImportedFunction(%q) found an export", f.FFQN())
				}
				if u := f.Result.Underlying(); u == nil || u.Kind != KindResult {
					t.Errorf("%s does not return a result", f.FFQN())
				}
			}
			for _, f := range r.Imports() {
				if got, ok := r.ImportedFunction(f.FFQN()); !ok || got != f {
					t.Errorf("ImportedFunction(%q) = %v, %v", f.FFQN(), got, ok)
				}
			}
		})
	}
}

func TestParseRich(t *testing.T) {
	r := mustParse(t, loadTestdata(t, "rich"))
	if got, want := r.Main().Name, (PackageName{"example", "rich", "0.2.0"}); got != want {
		t.Fatalf("Main().Name = %v, want %v", got, want)
	}
	var pkgs []string
	for _, p := range r.Packages {
		pkgs = append(pkgs, p.Name.String())
	}
	wantPkgs := []string{"example:rich@0.2.0", "example:shared@1.0.0", "example:shared@2.0.0", "other:a", "other:b@2.0.0"}
	if !slices.Equal(pkgs, wantPkgs) {
		t.Errorf("packages = %v, want %v", pkgs, wantPkgs)
	}

	types, ok := r.Interface("example:rich/types@0.2.0")
	if !ok {
		t.Fatal("interface example:rich/types@0.2.0 not found")
	}
	// a name used from another package, renamed
	figure := types.Type("figure")
	if figure == nil || figure.Kind != KindAlias || figure.Underlying().Name != "shape" ||
		figure.Underlying().Interface.FullName() != "example:shared/common@1.0.0" {
		t.Errorf("figure = %+v", figure)
	}
	// the same name from two versions of a package
	p1, p2 := types.Type("point").Underlying(), types.Type("point2").Underlying()
	if len(p1.Fields) != 2 || len(p2.Fields) != 3 || p1.Fields[0].Type.Kind != KindS32 || p2.Fields[0].Type.Kind != KindS64 {
		t.Errorf("point = %+v, point2 = %+v", p1, p2)
	}
	// uses resolve to the same shared type
	origin := r.Packages[1].Interface("common").Function("origin")
	if origin.Result != p1 {
		t.Errorf("common.origin result is not the point record used by types")
	}

	person := types.Type("person")
	var fields []string
	for _, f := range person.Fields {
		fields = append(fields, f.Name+": "+f.Type.String())
	}
	wantFields := []string{"name: name", "age: u8", "type: kind", "nick-name: option<string>",
		"tags: list<string>", "pos: tuple<s32, s32>", "field-2: maybe-name"}
	if !slices.Equal(fields, wantFields) {
		t.Errorf("person fields = %v, want %v", fields, wantFields)
	}
	if k := person.Fields[2].Type; k.Kind != KindEnum || !slices.Equal(k.Labels, []string{"human", "robot", "other-thing"}) {
		t.Errorf("forward reference to kind = %+v", k)
	}
	if u := person.Fields[6].Type.Underlying(); u.Kind != KindOption || u.Elem.Name != "name" || u.Elem.Underlying().Kind != KindString {
		t.Errorf("maybe-name resolves to %v", u)
	}
	if got := types.Type("permissions").Labels; !slices.Equal(got, []string{"read", "write", "exec-all"}) {
		t.Errorf("permissions = %v", got)
	}
	event := types.Type("event")
	var cases []string
	for _, c := range event.Cases {
		if c.Type == nil {
			cases = append(cases, c.Name)
		} else {
			cases = append(cases, c.Name+"("+c.Type.String()+")")
		}
	}
	wantCases := []string{"created(person)", "deleted", "moved(tuple<point, point>)", "nested(inner)", "drawn(figure)"}
	if !slices.Equal(cases, wantCases) {
		t.Errorf("event cases = %v, want %v", cases, wantCases)
	}
	if got := types.Type("inner").Cases[0].Type.String(); got != "option<result<u32, string>>" {
		t.Errorf("inner.a = %s", got)
	}

	counter := types.Type("counter")
	var methods []string
	for _, m := range counter.Funcs {
		methods = append(methods, m.String())
		if m.Resource != counter || m.Interface != types {
			t.Errorf("method %s: resource %v, interface %v", m.Name, m.Resource, m.Interface)
		}
	}
	wantMethods := []string{"constructor(start: u64)", "add: func(n: u64) -> u64", "get: func() -> u64", "make: static func() -> counter"}
	if !slices.Equal(methods, wantMethods) {
		t.Errorf("counter = %v, want %v", methods, wantMethods)
	}

	wantExports := []string{
		"example:rich/api@0.2.0.greet: func(who: person, perms: permissions) -> result<string, error-kind>",
		"example:rich/api@0.2.0.emit: func(events: list<event>, at: option<id>) -> result<_, string>",
		"example:rich/api@0.2.0.use: func(c: borrow<counter>) -> u64",
		"example:rich/api@0.2.0.nothing: func()",
		"example:rich/api@0.2.0.bounds: func(a: s8, b: s16, c: s32, d: s64, e: u16, f: u32, g: u64, h: f32, i: f64, j: char, k: bool, l: f64) -> result",
		"example:rich/api@0.2.0.fixed: func(rgb: list<u8, 3>) -> result<tuple<u8, u8, u8>>",
		"example:rich/api@0.2.0.deep: func(x: option<option<u32>>) -> result<list<option<point2>>, list<string>>",
		"example:rich/api@0.2.0.async-thing: async func(p: point2, ps: points) -> result<point2>",
		"example:rich/api@0.2.0.give: func(c: own<counter>, k: kind) -> result<kind>",
	}
	if got := describeFuncs(r.Exports()); !slices.Equal(got, wantExports) {
		t.Errorf("Exports() =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantExports, "\n"))
	}
	wantImports := []string{
		"example:shared/common@1.0.0.origin: func() -> point",
		"other:b/y@2.0.0.pair: func() -> t",
		"example:rich/logging@0.2.0.log: func(level: level, message: string)",
	}
	if got := describeFuncs(r.Imports()); !slices.Equal(got, wantImports) {
		t.Errorf("Imports() =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantImports, "\n"))
	}
	var exported []string
	for _, i := range r.ExportedInterfaces() {
		exported = append(exported, i.FullName())
	}
	if want := []string{"example:rich/api@0.2.0", "example:rich/types@0.2.0"}; !slices.Equal(exported, want) {
		t.Errorf("ExportedInterfaces() = %v, want %v", exported, want)
	}
	if len(r.ImportedInterfaces()) != 3 {
		t.Errorf("ImportedInterfaces() = %v", r.ImportedInterfaces())
	}

	pair, ok := r.ImportedFunction("other:b/y@2.0.0.pair")
	if !ok || pair.Result.Underlying().String() != "tuple<string, u32>" {
		t.Errorf("pair = %v", pair)
	}
	greet, ok := r.Function("example:rich/api@0.2.0.greet")
	if !ok || greet.InterfaceName() != "example:rich/api@0.2.0" || greet.Params[0].Type.Underlying() != person {
		t.Errorf("greet = %v", greet)
	}
	id := r.Main().Interface("api").Type("id")
	if id.Kind != KindAlias || id.Elem != types.Type("id") || id.Underlying().Kind != KindU64 {
		t.Errorf("api.id = %+v", id)
	}
	if w := r.Main().World("rich"); w == nil || len(w.Imports) != 3 || len(w.Exports) != 2 {
		t.Errorf("world rich = %+v", w)
	}
	if _, ok := r.Package("other:a"); !ok {
		t.Error(`Package("other:a") not found`)
	}
	if _, ok := r.Function("example:rich/api.greet"); ok {
		t.Error("Function found an FFQN without the version")
	}
}

func TestParseSyntax(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		check func(t *testing.T, r *Resolve)
	}{
		{
			name: "no world exports every interface",
			files: map[string]string{"a.wit": `package a:b;
				interface one { f: func(); }
				interface two { g: func() -> (); }`},
			check: func(t *testing.T, r *Resolve) {
				if got := describeFuncs(r.Exports()); !slices.Equal(got, []string{"a:b/one.f: func()", "a:b/two.g: func()"}) {
					t.Errorf("exports = %v", got)
				}
				if len(r.Imports()) != 0 {
					t.Errorf("imports = %v", r.Imports())
				}
			},
		},
		{
			name: "comments, gates, escapes, trailing commas, CRLF and BOM",
			files: map[string]string{"a.wit": "\uFEFF// line\r\n/* block /* nested */ */\r\n/// doc\r\n" +
				"@since(version = 1.0.0)\r\npackage a:b@1.0.0-rc.1+build.5;\r\n" +
				"@unstable(feature = x)\r\ninterface %interface {\r\n" +
				"  record %record { %type: u8, b: string, }\r\n" +
				"  @deprecated(version = 0.1.0)\r\n  %func: func(%result: %record,) -> float32;\r\n}\r\n"},
			check: func(t *testing.T, r *Resolve) {
				f, ok := r.Function("a:b/interface@1.0.0-rc.1+build.5.func")
				if !ok {
					t.Fatalf("exports = %v", describeFuncs(r.Exports()))
				}
				if got := f.String(); got != "%func: func(%result: %record) -> f32" {
					t.Errorf("String() = %s", got)
				}
				if got := f.Params[0].Type.Fields[0].Name; got != "type" {
					t.Errorf("field = %s", got)
				}
			},
		},
		{
			name: "use forms",
			files: map[string]string{
				"a.wit": `package a:b;
					use c:d/e@1.2.3 as ee;
					use c:d/other;
					interface i {
						use ee.{x, y as z};
						use other.{w};
						use j.{v};
						f: func(a: x, b: z, c: w, d: v) -> result<v, z>;
					}
					interface j { type v = u16; }`,
				"deps/cd/e.wit": `package c:d@1.2.3;
					interface e { type x = u8; type y = s8; }
					interface other { use e.{x}; type w = list<x>; }`,
			},
			check: func(t *testing.T, r *Resolve) {
				f := r.Main().Interface("i").Function("f")
				var got []string
				for _, p := range f.Params {
					got = append(got, p.Type.Name+"="+p.Type.Underlying().String())
				}
				if want := []string{"x=u8", "z=s8", "w=list<x>", "v=u16"}; !slices.Equal(got, want) {
					t.Errorf("params = %v, want %v", got, want)
				}
			},
		},
		{
			name: "unversioned reference matches the only version",
			files: map[string]string{
				"a.wit":      "package a:b; world w { import c:d/e; export i; } interface i { f: func(); }",
				"deps/d.wit": "package c:d@0.1.0; interface e { g: func(); }",
			},
			check: func(t *testing.T, r *Resolve) {
				if _, ok := r.ImportedFunction("c:d/e@0.1.0.g"); !ok {
					t.Errorf("imports = %v", describeFuncs(r.Imports()))
				}
			},
		},
		{
			name: "nested packages in the main file",
			files: map[string]string{"a.wit": `package a:b;
				package x:y { interface z { type t = string; } }
				interface i { use x:y/z.{t}; f: func(s: t); }`},
			check: func(t *testing.T, r *Resolve) {
				if len(r.Packages) != 2 || r.Main().Name.String() != "a:b" {
					t.Errorf("packages = %v", r.Packages)
				}
			},
		},
		{
			name: "resources, handles, futures and streams",
			files: map[string]string{"a.wit": `package a:b;
				interface i {
					resource r;
					type rr = r;
					resource s { constructor(); m: func(other: borrow<rr>) -> own<s>; }
					f: func(a: borrow<r>, b: own<rr>, c: future, d: future<u8>, e: stream<string>, g: stream, h: error-context);
				}`},
			check: func(t *testing.T, r *Resolve) {
				f := r.Main().Interface("i").Function("f")
				if got := f.Signature(); got != "func(a: borrow<r>, b: own<rr>, c: future, d: future<u8>, e: stream<string>, g: stream, h: error-context)" {
					t.Errorf("signature = %s", got)
				}
			},
		},
		{
			name: "several files of one package",
			files: map[string]string{
				"a.wit": "package a:b;\ninterface one { use two.{t}; f: func(x: t); }",
				"b.wit": "interface two { type t = bool; }\nworld w { export one; }",
			},
			check: func(t *testing.T, r *Resolve) {
				if got := describeFuncs(r.Exports()); !slices.Equal(got, []string{"a:b/one.f: func(x: t)"}) {
					t.Errorf("exports = %v", got)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustParse(t, filesOf(tt.files))
			if tt.check != nil {
				tt.check(t, r)
			}
		})
	}
}

func TestParseWorldInclude(t *testing.T) {
	files := map[string]string{
		"a.wit": `package a:b;
			interface i { type t = u8; f: func(); }
			world base { import i; }
			world w {
				use i.{t};
				type u = list<t>;
				record r { a: u }
				include base;
				include c:d/imports with { x as y };
				export i;
			}`,
		"deps/d.wit": `package c:d;
			interface k { g: func(); }
			world imports { import k; }
			world other { import log: interface { log: func(m: string); } export run: func(); }`,
	}
	r := mustParse(t, filesOf(files))
	w := r.Main().World("w")
	var imports []string
	for _, i := range w.Imports {
		imports = append(imports, i.FullName())
	}
	if want := []string{"a:b/i", "c:d/k"}; !slices.Equal(imports, want) {
		t.Errorf("imports = %v, want %v", imports, want)
	}
	if len(w.Exports) != 1 || w.Exports[0].Name != "i" {
		t.Errorf("exports = %v", w.Exports)
	}
	var types []string
	for _, ty := range w.Types {
		types = append(types, ty.Name+"="+ty.Underlying().String())
	}
	if want := []string{"t=u8", "u=list<t>", "r=r"}; !slices.Equal(types, want) {
		t.Errorf("world types = %v, want %v", types, want)
	}
	if got := describeFuncs(r.Imports()); !slices.Equal(got, []string{"a:b/i.f: func()", "c:d/k.g: func()"}) {
		t.Errorf("Imports() = %v", got)
	}
	if got := describeFuncs(r.Exports()); !slices.Equal(got, []string{"a:b/i.f: func()"}) {
		t.Errorf("Exports() = %v", got)
	}

	// Including a world with inline items into the main package is an error.
	files["a.wit"] = "package a:b;\nworld w {\n  include c:d/other;\n}"
	_, err := Parse(filesOf(files))
	if err == nil || !strings.Contains(err.Error(), "deps/d.wit:4:25: `import log: interface { ... }` in world `w` is not supported") {
		t.Errorf("error = %v", err)
	}
}

func filesOf(m map[string]string) []File {
	var files []File
	for p, text := range m {
		files = append(files, File{Path: p, Text: text})
	}
	return files
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"missing semicolon", map[string]string{"m.wit": "package a:b;\ninterface i {\n  f: func()\n}"},
			"m.wit:4:1: expected ';' after the function `f`, found '}'"},
		{"unknown type", map[string]string{"m.wit": "package a:b;\ninterface i {\n  f: func(x: foo);\n}"},
			"m.wit:3:14: unknown type `foo`"},
		{"unterminated comment", map[string]string{"m.wit": "package a:b;\n  /* /* */"},
			"m.wit:2:3: unterminated block comment"},
		{"snake_case identifier", map[string]string{"m.wit": "package a:b;\ninterface foo_bar {}"},
			"m.wit:2:11: invalid identifier `foo_bar`: WIT identifiers are kebab-case (use `foo-bar`)"},
		{"mixed case identifier", map[string]string{"m.wit": "package a:b; interface fooBar {}"},
			"m.wit:1:24: invalid identifier `fooBar`: word \"fooBar\" mixes upper and lower case"},
		{"double dash", map[string]string{"m.wit": "package a:b; interface a--b {}"},
			"invalid identifier `a--b`: empty word between dashes"},
		{"unexpected character", map[string]string{"m.wit": "package a:b; # x"},
			"m.wit:1:14: unexpected character '#'"},
		{"keyword as name", map[string]string{"m.wit": "package a:b; interface i { type: func(); }"},
			"m.wit:1:28: `type` is a keyword; write `%type` to use it as a name"},
		{"percent without name", map[string]string{"m.wit": "package a:b; interface % {}"},
			"m.wit:1:24: '%' must be followed by an identifier"},
		{"duplicate type", map[string]string{"m.wit": "package a:b;\ninterface i {\n type t = u8;\n record t { a: u8 }\n}"},
			"m.wit:4:9: type `t` is defined more than once (first at line 3)"},
		{"duplicate function", map[string]string{"m.wit": "package a:b; interface i { f: func(); f: func(); }"},
			"m.wit:1:39: function `f` is defined more than once in interface a:b/i (first at line 1)"},
		{"duplicate field", map[string]string{"m.wit": "package a:b; interface i { record r { a: u8, a: u8 } }"},
			"field `a` is defined more than once in record `r`"},
		{"duplicate case", map[string]string{"m.wit": "package a:b; interface i { variant v { a, a } }"},
			"case `a` is defined more than once in variant `v`"},
		{"duplicate flag", map[string]string{"m.wit": "package a:b; interface i { flags f { a, a } }"},
			"`a` is defined more than once in flags `f`"},
		{"duplicate param", map[string]string{"m.wit": "package a:b; interface i { f: func(a: u8, a: u8); }"},
			"parameter `a` is defined more than once in function `f`"},
		{"duplicate interface across files", map[string]string{"a.wit": "package a:b; interface i {}", "b.wit": "interface i {}"},
			"b.wit:1:11: interface `i` is defined more than once in package a:b (first as an interface at a.wit:1:24)"},
		{"world and interface of one name", map[string]string{"m.wit": "package a:b; interface i {} world i {}"},
			"m.wit:1:35: world `i` is defined more than once in package a:b (first as an interface at m.wit:1:24)"},
		{"unknown interface in use", map[string]string{"m.wit": "package a:b; interface i { use j.{t}; }"},
			"m.wit:1:32: interface `j` not found in package a:b"},
		{"unknown name in use", map[string]string{"m.wit": "package a:b; interface i { use j.{t}; } interface j {}"},
			"m.wit:1:35: type `t` is not defined in interface a:b/j"},
		{"interface uses itself", map[string]string{"m.wit": "package a:b; interface i { use i.{t}; type u = u8; }"},
			"interface `i` cannot use itself"},
		{"missing dependency", map[string]string{"m.wit": "package a:b; world w { import x:y/z; }"},
			"m.wit:1:31: package x:y not found; add its WIT files under deps/"},
		{"wrong version", map[string]string{"m.wit": "package a:b; world w { import x:y/z@2.0.0; }", "deps/x.wit": "package x:y@1.0.0; interface z {}"},
			"m.wit:1:31: package x:y@2.0.0 not found; available: x:y@1.0.0"},
		{"unknown interface in dependency", map[string]string{"m.wit": "package a:b; world w { export x:y/q; }", "deps/x.wit": "package x:y; interface z {}"},
			"interface `q` not found in package x:y"},
		{"export a world", map[string]string{"m.wit": "package a:b; world v {} world w { export v; }"},
			"m.wit:1:42: `v` is a world, not an interface"},
		{"alias cycle", map[string]string{"m.wit": "package a:b; interface i {\ntype a = b;\ntype b = list<a>; }"},
			"m.wit:2:6: type `a` refers to itself (a -> b -> a)"},
		{"recursive record", map[string]string{"m.wit": "package a:b; interface i { record r { next: option<r> } }"},
			"type `r` refers to itself (r -> r)"},
		{"cycle through use", map[string]string{"m.wit": "package a:b; interface i { use j.{b}; type a = b; } interface j { use i.{a}; type b = a; }"},
			"refers to itself"},
		{"borrow of a record", map[string]string{"m.wit": "package a:b; interface i { record r { a: u8 } f: func(x: borrow<r>); }"},
			"m.wit:1:58: `borrow<r>` needs a resource, but `r` is a record"},
		{"inline export in the main world", map[string]string{"m.wit": "package a:b; world w { export run: func(); }"},
			"m.wit:1:31: `export run: func(...)` in world `w` is not supported: define an interface with the function(s) and import or export it by name"},
		{"inline import interface", map[string]string{"m.wit": "package a:b; world w { import x: interface { f: func(); } }"},
			"`import x: interface { ... }` in world `w` is not supported"},
		{"no package declaration", map[string]string{"m.wit": "interface i {}"},
			"m.wit:1:1: no package declaration: add `package namespace:name;` to one of the top-level WIT files"},
		{"no top-level file", map[string]string{"deps/a.wit": "package a:b;"},
			"no top-level WIT file declares the component's package"},
		{"dependency without package", map[string]string{"m.wit": "package a:b;", "deps/x/y.wit": "interface i {}"},
			"deps/x/y.wit:1:1: no package declaration: add `package namespace:name;` to one of the files of deps/x"},
		{"conflicting packages", map[string]string{"a.wit": "package a:b;", "b.wit": "package a:c;"},
			"b.wit:1:1: package a:c conflicts with package a:b declared at a.wit:1:1"},
		{"package not first", map[string]string{"m.wit": "interface i {} package a:b;"},
			"m.wit:1:16: the package declaration must come first in the file"},
		{"named results", map[string]string{"m.wit": "package a:b; interface i { f: func() -> (a: u8); }"},
			"m.wit:1:41: named results `-> (name: type, ...)` are not supported"},
		{"invalid version", map[string]string{"m.wit": "package a:b@1.0;"},
			"m.wit:1:13: invalid version `1.0`: expected a semantic version like 1.2.3"},
		{"result with only underscore", map[string]string{"m.wit": "package a:b; interface i { f: func() -> result<_>; }"},
			"`result<_>` is not valid"},
		{"empty record", map[string]string{"m.wit": "package a:b; interface i { record r {} }"},
			"m.wit:1:35: record `r` needs at least one field"},
		{"empty variant", map[string]string{"m.wit": "package a:b; interface i { variant v {} }"},
			"variant `v` needs at least one case"},
		{"empty enum", map[string]string{"m.wit": "package a:b; interface i { enum e {} }"},
			"enum `e` needs at least one case"},
		{"empty tuple", map[string]string{"m.wit": "package a:b; interface i { type t = tuple<>; }"},
			"a tuple needs at least one element"},
		{"zero-length list", map[string]string{"m.wit": "package a:b; interface i { type t = list<u8, 0>; }"},
			"expected a positive list length, found number `0`"},
		{"include itself", map[string]string{"m.wit": "package a:b; world w { include w; }"},
			"world `w` includes itself"},
		{"include cycle", map[string]string{"m.wit": "package a:b; world v { include w; } world w { include v; }"},
			"includes itself"},
		{"nested namespace", map[string]string{"m.wit": "package a:b:c;"},
			"nested package namespaces are not supported"},
		{"type where func expected", map[string]string{"m.wit": "package a:b; interface i { x: u32; }"},
			"m.wit:1:31: expected `func` after `x:`, found `u32` (to define a type use `type x = ...;`)"},
		{"end of file in interface", map[string]string{"m.wit": "package a:b; interface i { f: func();"},
			"m.wit:1:38: expected '}' to close interface `i`, found end of file"},
		{"unknown item", map[string]string{"m.wit": "package a:b; struct x {}"},
			"m.wit:1:14: expected `package`, `interface`, `world` or `use`, found `struct`"},
		{"top-level use of a local name", map[string]string{"m.wit": "package a:b; use i as j; interface i {}"},
			"a top-level use needs a full path"},
		{"top-level use conflict", map[string]string{"m.wit": "package a:b; use x:y/i; interface i {}", "deps/x.wit": "package x:y; interface i {}"},
			"`i` conflicts with the interface of the same name in package a:b; rename it with `as`"},
		{"bad path", map[string]string{"../m.wit": "package a:b;"},
			`file path "../m.wit" is not a clean relative path`},
		{"invalid UTF-8", map[string]string{"m.wit": "package a:b; \xff"},
			"m.wit:1:14: invalid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(filesOf(tt.files))
			if err == nil {
				t.Fatalf("Parse succeeded, want error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %q\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

func TestParseErrorType(t *testing.T) {
	_, err := Parse([]File{{Path: "dir/../x.wit", Text: ""}})
	if err == nil {
		t.Fatal("unclean path accepted")
	}
	_, err = Parse([]File{{Path: "m.wit", Text: "package a:b;\n\ninterface i { f: func(x: nope); }"}})
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *ParseError", err, err)
	}
	if pe.Path != "m.wit" || pe.Line != 3 || pe.Col != 26 || pe.Msg != "unknown type `nope`" {
		t.Errorf("ParseError = %+v", pe)
	}
	if _, err := Parse(nil); err == nil {
		t.Error("Parse(nil) succeeded")
	}
	if _, err := Parse([]File{{Path: "a.wit", Text: "package a:b;"}, {Path: "a.wit", Text: "package a:b;"}}); err == nil ||
		!strings.Contains(err.Error(), `file "a.wit" given twice`) {
		t.Errorf("duplicate files: %v", err)
	}
}

// TestPrintRoundTrip prints every package, parses the printed text again and
// checks that printing it gives the same text.
func TestPrintRoundTrip(t *testing.T) {
	dirs := []string{"rich"}
	for _, c := range []string{"fibo", "fibo-workflow", "sleep", "sleep-workflow", "http", "http-workflow", "flaky"} {
		dirs = append(dirs, filepath.Join("components", c))
	}
	for _, dir := range dirs {
		t.Run(dir, func(t *testing.T) {
			r := mustParse(t, loadTestdata(t, dir))
			printed := printAll(r)
			r2, err := Parse(printed)
			if err != nil {
				t.Fatalf("reparsing printed WIT: %v\n%s", err, printed[0].Text)
			}
			again := printAll(r2)
			if !slices.Equal(printed, again) {
				t.Errorf("round trip differs:\n%v\n---\n%v", printed, again)
			}
			if !slices.Equal(describeFuncs(r.Exports()), describeFuncs(r2.Exports())) ||
				!slices.Equal(describeFuncs(r.Imports()), describeFuncs(r2.Imports())) {
				t.Errorf("exports or imports differ after a round trip")
			}
		})
	}
}

func printAll(r *Resolve) []File {
	files := []File{{Path: "main.wit", Text: r.Main().WIT()}}
	for i, p := range r.Packages {
		if p != r.Main() {
			files = append(files, File{Path: fmt.Sprintf("deps/%d.wit", i), Text: p.WIT()})
		}
	}
	return files
}

func TestPrintInterface(t *testing.T) {
	r := mustParse(t, loadTestdata(t, "components/flaky"))
	want := `interface flaky {
  variant error {
    permanent-failure(string),
    transient(string),
  }

  fail-until: func(attempts: u32) -> result<u32, string>;
  fail-permanently: func() -> result<_, error>;
}
`
	if got := r.Main().Interface("flaky").WIT(); got != want {
		t.Errorf("WIT() =\n%s\nwant\n%s", got, want)
	}
	if got, want := r.Main().World("any").WIT(), "world any {\n  export flaky;\n}\n"; got != want {
		t.Errorf("World.WIT() = %q, want %q", got, want)
	}
}

func TestTypeString(t *testing.T) {
	r := parseMain(t, `package a:b;
		interface i {
			record point { x: u8 }
			f: func(a: result, b: result<u8>, c: result<_, string>, d: result<u8, string>,
				e: list<list<point>>, g: option<tuple<u8, char, string>>, h: list<u8, 4>);
		}`)
	var got []string
	for _, p := range r.Main().Interface("i").Function("f").Params {
		got = append(got, p.Type.String())
	}
	want := []string{"result", "result<u8>", "result<_, string>", "result<u8, string>",
		"list<list<point>>", "option<tuple<u8, char, string>>", "list<u8, 4>"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for k := KindInvalid; k <= KindAlias+1; k++ {
		if k.String() == "" {
			t.Errorf("Kind(%d).String() is empty", k)
		}
	}
}
