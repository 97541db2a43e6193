package gogen

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/obelisk-go/obelisk/wasmhost/wit"
)

func gen(t *testing.T, text string, opts Options) string {
	t.Helper()
	r, err := wit.Parse([]wit.File{{Path: "main.wit", Text: text}})
	if err != nil {
		t.Fatal(err)
	}
	if opts.Package == "" {
		opts.Package = "bindings"
	}
	src, err := Generate(r, opts)
	if err != nil {
		t.Fatal(err)
	}
	return string(src)
}

func contains(t *testing.T, src string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(src, l) {
			t.Errorf("missing %q in\n%s", l, src)
		}
	}
}

const fiboWIT = `package testing:fibo;
interface fibo {
  fibo: func(n: u8) -> result<u64>;
}
world any { export fibo; }
`

func TestFibo(t *testing.T) {
	src := gen(t, fiboWIT, Options{})
	if !strings.HasPrefix(src, Header+"\n") {
		t.Errorf("no header:\n%s", src)
	}
	contains(t, src,
		"package bindings\n",
		"\t\"github.com/obelisk-go/obelisk/sdk/go/obelisk\"\n)",
		`const FFQNFibo = "testing:fibo/fibo.fibo"`,
		"func Fibo(ctx obelisk.Context, n uint8) (uint64, error) {\n\treturn obelisk.Call[uint64](ctx, FFQNFibo, n)\n}",
		"func FiboSubmit(ctx obelisk.Context, js obelisk.JoinSet, n uint8) (string, error) {\n\treturn obelisk.Submit(ctx, js, FFQNFibo, n)\n}",
		"func FiboAwaitNext(ctx obelisk.Context, js obelisk.JoinSet) (string, uint64, error) {\n\treturn obelisk.AwaitNext[uint64](ctx, js, FFQNFibo)\n}",
		"func FiboGet(ctx obelisk.Context, executionID string) (uint64, error) {\n\treturn obelisk.Get[uint64](ctx, executionID)\n}",
		"func FiboSchedule(ctx obelisk.Context, at obelisk.ScheduleAt, n uint8) (string, error) {\n\treturn obelisk.Schedule(ctx, at, FFQNFibo, n)\n}",
	)
	if strings.Contains(src, "encoding/json") {
		t.Errorf("unused import encoding/json:\n%s", src)
	}
}

func TestRecordsOptionsLists(t *testing.T) {
	src := gen(t, `package testing:types@1.2.0;
interface shapes {
  record inner-point { x-pos: s32, label: char }
  record shape { points: list<inner-point>, name: option<string>, data: list<u8>, color: color, v: kind, pair: tuple<u8, string> }
  enum color { red, dark-blue }
  variant kind { a, b(u32) }
  make: func(s: shape, type: string, ctx: u8) -> result<shape, string>;
  fail-until: func(tags: list<string>, limit: option<u64>) -> result;
}
world any { export shapes; }
`, Options{Package: "shapes"})
	contains(t, src,
		"package shapes\n",
		"\"encoding/json\"",
		"type InnerPoint struct {\n\tXPos  int32  `json:\"x_pos\"`\n\tLabel string `json:\"label\"`\n}",
		"\tPoints []InnerPoint    `json:\"points\"`",
		"\tName   *string         `json:\"name\"`",
		"\tData   obelisk.Bytes   `json:\"data\"`",
		"\tColor  string          `json:\"color\"`",
		"\tV      json.RawMessage `json:\"v\"`",
		"\tPair   []any           `json:\"pair\"`",
		`const FFQNMake = "testing:types/shapes@1.2.0.make"`,
		"func Make(ctx obelisk.Context, s Shape, type_ string, ctx_ uint8) (Shape, error) {\n\treturn obelisk.Call[Shape](ctx, FFQNMake, s, type_, ctx_)\n}",
		"func FailUntil(ctx obelisk.Context, tags []string, limit *uint64) error {\n\treturn obelisk.CallVoid(ctx, FFQNFailUntil, tags, limit)\n}",
		"func FailUntilAwaitNext(ctx obelisk.Context, js obelisk.JoinSet) (string, error) {\n\tid, _, err := obelisk.AwaitNext[struct{}](ctx, js, FFQNFailUntil)\n\treturn id, err\n}",
		"func FailUntilGet(ctx obelisk.Context, executionID string) error {\n\t_, err := obelisk.Get[struct{}](ctx, executionID)\n\treturn err\n}",
		"func FailUntilSchedule(ctx obelisk.Context, at obelisk.ScheduleAt, tags []string, limit *uint64) (string, error) {",
	)
}

const twoWIT = `package testing:fibo@1.0.0;
interface fibo {
  record fibo { calls: u32 }
  fibo: func(n: u8) -> result<fibo>;
}
interface extra {
  ping: func() -> result;
}
world any { export fibo; export extra; }
`

func TestSeveralInterfaces(t *testing.T) {
	src := gen(t, twoWIT, Options{})
	contains(t, src,
		`const FFQNFiboFibo = "testing:fibo/fibo@1.0.0.fibo"`,
		"type Fibo struct {",
		"func FiboFibo(ctx obelisk.Context, n uint8) (Fibo, error) {",
		"func ExtraPing(ctx obelisk.Context) error {\n\treturn obelisk.CallVoid(ctx, FFQNExtraPing)\n}",
		"func ExtraPingSubmit(ctx obelisk.Context, js obelisk.JoinSet) (string, error) {",
	)
	// one interface selected: no prefix, and the record avoids the function's name
	src = gen(t, twoWIT, Options{Interfaces: []string{"testing:fibo/fibo"}})
	contains(t, src,
		"type FiboFibo struct {",
		"func Fibo(ctx obelisk.Context, n uint8) (FiboFibo, error) {",
	)
	if strings.Contains(src, "Ping") {
		t.Errorf("interface extra generated:\n%s", src)
	}
}

func TestErrors(t *testing.T) {
	r, err := wit.Parse([]wit.File{{Path: "main.wit", Text: twoWIT}})
	if err != nil {
		t.Fatal(err)
	}
	for _, opts := range []Options{
		{Package: "bad-name"},
		{Package: "func"},
		{Package: "p", Interfaces: []string{"testing:fibo/nope"}},
	} {
		if _, err := Generate(r, opts); err == nil {
			t.Errorf("%+v: no error", opts)
		}
	}
	r, err = wit.Parse([]wit.File{{Path: "main.wit", Text: `package a:b;
interface i { f: func() -> u8; }
world w { export i; }
`}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(r, Options{Package: "p"}); err == nil || !strings.Contains(err.Error(), "must return a result") {
		t.Errorf("error %v, want must return a result", err)
	}
}

// TestCompiles generates bindings for test components and the unit test WIT
// into packages inside this module and vets them against the real SDK.
func TestCompiles(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go vet")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	var rnd [6]byte
	rand.Read(rnd[:])
	root := filepath.Join("testdata", "tmp-"+hex.EncodeToString(rnd[:]))
	t.Cleanup(func() {
		os.RemoveAll(root)
		os.Remove("testdata") // only if empty
	})
	write := func(pkg string, r *wit.Resolve) {
		src, err := Generate(r, Options{Package: pkg})
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(root, pkg)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, pkg+".go"), src, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []string{"fibo", "sleep"} {
		files, err := wit.LoadDir(filepath.Join("..", "..", "..", "test", "components", c, "wit"))
		if err != nil {
			t.Fatal(err)
		}
		r, err := wit.Parse(files)
		if err != nil {
			t.Fatal(err)
		}
		write(c, r)
	}
	for pkg, text := range map[string]string{"two": twoWIT, "shapes": `package testing:types;
interface shapes {
  record inner-point { x-pos: s32, label: char }
  record shape { points: list<inner-point>, name: option<string>, data: list<u8>, v: kind, pair: tuple<u8, string>, o: option<option<u8>> }
  variant kind { a, b(u32) }
  make: func(s: shape, type: string, ctx: u8, string: f64) -> result<shape, kind>;
  fail-until: func(tags: list<string>, limit: option<u64>) -> result;
}
world any { export shapes; }
`} {
		r, err := wit.Parse([]wit.File{{Path: "main.wit", Text: text}})
		if err != nil {
			t.Fatal(err)
		}
		write(pkg, r)
	}
	cmd := exec.Command(goBin, "vet", "./"+filepath.ToSlash(root)+"/...")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go vet: %v\n%s", err, out)
	}
}

// TestCommittedBindingsFresh: the bindings test/components/fibo-workflow uses are what
// the generator makes of test/components/fibo/wit now (`make bindings` regenerates them).
func TestCommittedBindingsFresh(t *testing.T) {
	files, err := wit.LoadDir("../../../test/components/fibo/wit")
	if err != nil {
		t.Fatal(err)
	}
	r, err := wit.Parse(files)
	if err != nil {
		t.Fatal(err)
	}
	want, err := Generate(r, Options{Package: "fibo"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../../../test/components/fibo-workflow/internal/fibo/fibo_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatal("test/components/fibo-workflow/internal/fibo/fibo_gen.go is stale: run make bindings")
	}
}
