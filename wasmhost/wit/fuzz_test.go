package wit

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// testdataWIT returns the text of every .wit file under testdata.
func testdataWIT(f *testing.F) []string {
	var texts []string
	err := filepath.WalkDir("testdata", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".wit") {
			return err
		}
		b, err := os.ReadFile(p)
		texts = append(texts, string(b))
		return err
	})
	if err != nil {
		f.Fatal(err)
	}
	return texts
}

// FuzzParse checks that the parser never panics, and that whatever it accepts
// prints as WIT that parses again to the same text.
func FuzzParse(f *testing.F) {
	for _, text := range testdataWIT(f) {
		f.Add(text)
	}
	f.Add("package a:b; interface i { f: func(x: list<option<result<_, tuple<u8, %type>>>>) -> result; type %type = u8; }")
	f.Add("package a:b; world w { include c:d/e with { a as b }; export f: func(); } package c:d { world e {} }")
	f.Fuzz(func(t *testing.T, text string) {
		r, err := Parse([]File{{Path: "main.wit", Text: text}})
		if err != nil {
			return
		}
		for _, fn := range append(r.Exports(), r.Imports()...) {
			_ = fn.FFQN() + fn.String()
		}
		printed := printAll(r)
		r2, err := Parse(printed)
		if err != nil {
			t.Fatalf("printed WIT does not parse: %v\ninput:\n%s\nprinted:\n%v", err, text, printed)
		}
		if again := printAll(r2); len(again) != len(printed) || again[0] != printed[0] {
			t.Fatalf("printing is not stable:\n%v\n---\n%v", printed, again)
		}
	})
}

// FuzzCheckValue checks that CheckValue and IsPermanentError never panic and
// that CheckValue accepts only valid JSON.
func FuzzCheckValue(f *testing.F) {
	fuzzTypeExprs := []string{
		"bool", "u8", "s8", "u64", "s64", "f32", "f64", "char", "string", "list<u8>", "list<u8, 2>",
		"tuple<u8, string>", "option<option<u32>>", "result", "result<u64>", "result<_, string>",
		"result<point, shape>", "point", "opt", "shape", "color", "perms", "nested", "count", "res",
		"borrow<res>", "error",
	}
	seeds := []string{`null`, `true`, `0`, `-1`, `18446744073709551615`, `1e2`, `3.5`, `"a"`, `[1, 2]`,
		`{"x": 1, "y": 2}`, `{"ok": null}`, `{"err": "x"}`, `"none"`, `{"circle": 1}`, `["read"]`,
		`{"items": [], "shape": "none"}`, `{"permanent_failure": "x"}`, `[[[[]]]]`, `{"a": {"b": {}}}`}
	for i := range fuzzTypeExprs {
		for _, s := range seeds {
			f.Add(uint8(i), s)
		}
	}
	var text strings.Builder
	for i, e := range fuzzTypeExprs {
		text.WriteString("p" + strconv.Itoa(i) + ": func(x: " + e + ");\n")
	}
	r, err := Parse([]File{{Path: "v.wit", Text: withFunc(text.String())}})
	if err != nil {
		f.Fatal(err)
	}
	fns := r.Main().Interface("v").Functions
	f.Fuzz(func(t *testing.T, idx uint8, value string) {
		typ := fns[int(idx)%len(fns)].Params[0].Type
		err := CheckValue(typ, json.RawMessage(value))
		if err == nil && !json.Valid([]byte(value)) {
			t.Fatalf("CheckValue(%s) accepted invalid JSON %q", typ, value)
		}
		_ = IsPermanentError(typ, json.RawMessage(value))
	})
}

// FuzzExtractFromWasm checks that reading the custom section of arbitrary bytes
// never panics, and that embedding into an accepted module round-trips.
func FuzzExtractFromWasm(f *testing.F) {
	f.Add(minimalModule())
	embedded, err := EmbedInWasm(minimalModule(), []File{{Path: "a.wit", Text: "package a:b;"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(embedded)
	f.Add([]byte(wasmHeader))
	f.Fuzz(func(t *testing.T, wasm []byte) {
		_, _ = ExtractFromWasm(wasm)
		files := []File{{Path: "x.wit", Text: "package x:y;"}}
		out, err := EmbedInWasm(wasm, files)
		if err != nil {
			return
		}
		got, err := ExtractFromWasm(out)
		if err != nil || len(got) != 1 || got[0] != files[0] {
			t.Fatalf("round trip: %v, %v", got, err)
		}
	})
}
