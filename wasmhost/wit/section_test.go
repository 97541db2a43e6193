package wit

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// minimalModule is a core module with a type section and a custom section.
func minimalModule() []byte {
	m := []byte(wasmHeader)
	m = append(m, 1, 4, 1, 0x60, 0, 0) // type section: one type, func() -> ()
	custom := append([]byte{9}, "producers"...)
	custom = append(custom, "xyz"...)
	m = append(m, 0, byte(len(custom)))
	return append(m, custom...)
}

func TestLoadDir(t *testing.T) {
	files, err := LoadDir(filepath.Join("testdata", "components", "fibo-workflow"))
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range files {
		paths = append(paths, f.Path)
	}
	if want := []string{"deps/testing-fibo/fibo.wit", "workflow.wit"}; !slices.Equal(paths, want) {
		t.Errorf("paths = %v, want %v", paths, want)
	}
	if !strings.HasPrefix(files[1].Text, "package testing:fibo-workflow;") {
		t.Errorf("text = %q", files[1].Text)
	}

	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "deps", "b"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "z.wit"), []byte("package a:b;"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "README.md"), []byte("not WIT"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "deps", "b", "b.wit"), []byte("package b:c;"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "deps", "a.wit"), []byte("package a:c;"), 0o644))
	files, err = LoadDir(dir)
	must(err)
	paths = nil
	for _, f := range files {
		paths = append(paths, f.Path)
	}
	if want := []string{"deps/a.wit", "deps/b/b.wit", "z.wit"}; !slices.Equal(paths, want) {
		t.Errorf("paths = %v, want %v", paths, want)
	}

	if _, err := LoadDir(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no .wit files found") {
		t.Errorf("empty folder: %v", err)
	}
	if _, err := LoadDir(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing folder accepted")
	}
	must(os.WriteFile(filepath.Join(dir, "bad.wit"), []byte("\xff"), 0o644))
	if _, err := LoadDir(dir); err == nil || !strings.Contains(err.Error(), "not valid UTF-8") {
		t.Errorf("invalid UTF-8: %v", err)
	}
}

func TestEncodeSection(t *testing.T) {
	got := string(EncodeSection([]File{{Path: "b.wit", Text: "x"}, {Path: "a.wit", Text: "result<u64> & \"q\"\n"}}))
	want := `{"version":1,"files":[{"path":"a.wit","text":"result<u64> & \"q\"\n"},{"path":"b.wit","text":"x"}]}`
	if got != want {
		t.Errorf("EncodeSection = %s\nwant %s", got, want)
	}
	if got := string(EncodeSection(nil)); got != `{"version":1,"files":[]}` {
		t.Errorf("EncodeSection(nil) = %s", got)
	}
}

func TestDecodeSection(t *testing.T) {
	files, err := DecodeSection([]byte(`{"version": 1, "files": [{"path": "z.wit", "text": "b"}, {"path": "deps/a.wit", "text": "a"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := []File{{"deps/a.wit", "a"}, {"z.wit", "b"}}; !slices.Equal(files, want) {
		t.Errorf("files = %v, want %v", files, want)
	}
	tests := []struct {
		payload string
		err     string
	}{
		{`{"version": 2, "files": []}`, "wit: obelisk-wit section version 2 is not supported (this host reads version 1)"},
		{`{"files": [{"path": "a.wit", "text": ""}]}`, `wit: decoding the obelisk-wit section: missing "version"`},
		{`{"version": 1, "files": []}`, "wit: the obelisk-wit section holds no files"},
		{`{"version": 1, "files": [{"path": "../a.wit", "text": ""}]}`, `wit: obelisk-wit section: file path "../a.wit" is not a clean relative path`},
		{`{"version": 1, "files": [{"path": "/a.wit", "text": ""}]}`, `must be relative`},
		{`{"version": 1, "files": [{"path": "a\\b.wit", "text": ""}]}`, `use '/' as separator`},
		{`{"version": 1, "files": [{"path": "a.wit", "text": ""}, {"path": "a.wit", "text": ""}]}`, `file "a.wit" appears twice`},
		{`{"version": "1"}`, "wit: decoding the obelisk-wit section: json: cannot unmarshal"},
		{`not json`, "wit: decoding the obelisk-wit section: invalid character"},
	}
	for _, tt := range tests {
		_, err := DecodeSection([]byte(tt.payload))
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("DecodeSection(%s) = %v, want %q", tt.payload, err, tt.err)
		}
	}
}

func TestEmbedExtract(t *testing.T) {
	files := loadTestdata(t, "rich") // several KiB: a multi-byte section size
	module := minimalModule()
	orig := slices.Clone(module)

	out, err := EmbedInWasm(module, files)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(module, orig) {
		t.Error("EmbedInWasm modified its input")
	}
	got, err := ExtractFromWasm(out)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, files) {
		t.Errorf("extracted files differ: %v", got)
	}
	if _, err := Parse(got); err != nil {
		t.Errorf("extracted files do not parse: %v", err)
	}

	// Embedding again replaces the section and keeps the other sections.
	small := []File{{Path: "fibo.wit", Text: "package testing:fibo;"}}
	out2, err := EmbedInWasm(out, small)
	if err != nil {
		t.Fatal(err)
	}
	secs, err := wasmSections(out2)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range secs {
		if s.id == 0 {
			names = append(names, s.name)
		} else {
			names = append(names, string(rune('0'+s.id)))
		}
	}
	if want := []string{"1", "producers", SectionName}; !slices.Equal(names, want) {
		t.Errorf("sections = %v, want %v", names, want)
	}
	if got, err := ExtractFromWasm(out2); err != nil || !slices.Equal(got, small) {
		t.Errorf("ExtractFromWasm = %v, %v", got, err)
	}
	// The section bytes are exactly: id 0, LEB128 size, name, payload.
	payload := EncodeSection(small)
	want := append([]byte{0, byte(1 + len(SectionName) + len(payload)), byte(len(SectionName))}, SectionName...)
	want = append(want, payload...)
	if tail := out2[len(out2)-len(want):]; !slices.Equal(tail, want) {
		t.Errorf("section bytes = %q, want %q", tail, want)
	}
}

func TestExtractErrors(t *testing.T) {
	_, err := ExtractFromWasm(minimalModule())
	if !errors.Is(err, ErrNoSection) || err.Error() != "module has no obelisk-wit custom section; embed one with `obelisk component embed-wit`" {
		t.Errorf("no section: %v", err)
	}
	withTwo := minimalModule()
	for range 2 {
		body := append([]byte{byte(len(SectionName))}, SectionName...)
		body = append(body, EncodeSection([]File{{Path: "a.wit", Text: ""}})...)
		withTwo = append(append(withTwo, 0, byte(len(body))), body...)
	}
	component := append([]byte("\x00asm\x0d\x00\x01\x00"), 0)
	tests := []struct {
		name string
		wasm []byte
		err  string
	}{
		{"empty", nil, "wit: reading WIT: not a WebAssembly binary (missing the \\0asm magic number)"},
		{"not wasm", []byte("hello, world"), "not a WebAssembly binary"},
		{"component", component, "this is a WebAssembly component, but Obelisk runs core modules (WASI preview 1)"},
		{"version 2", []byte("\x00asm\x02\x00\x00\x00"), "unsupported WebAssembly binary version 02 00 00 00"},
		{"truncated size", append([]byte(wasmHeader), 1, 0x80), "section 1 at offset 8: truncated LEB128 number at offset 9"},
		{"size past end", append([]byte(wasmHeader), 1, 5, 0), "section 1 at offset 8: size 5 runs past the end of the module"},
		{"overlong LEB128", append([]byte(wasmHeader), 1, 0x80, 0x80, 0x80, 0x80, 0x80, 0), "is longer than 5 bytes"},
		{"LEB128 overflow", append([]byte(wasmHeader), 1, 0xff, 0xff, 0xff, 0xff, 0x7f), "overflows 32 bits"},
		{"bad custom name", append([]byte(wasmHeader), 0, 2, 5, 'a'), "custom section at offset 8: malformed name"},
		{"two sections", withTwo, "wit: module has 2 obelisk-wit custom sections; expected one"},
	}
	for _, tt := range tests {
		_, err := ExtractFromWasm(tt.wasm)
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%s: ExtractFromWasm = %v, want %q", tt.name, err, tt.err)
		}
		if tt.name == "two sections" {
			continue
		}
		if _, err := EmbedInWasm(tt.wasm, nil); err == nil {
			t.Errorf("%s: EmbedInWasm accepted the module", tt.name)
		}
	}
}

func TestLEB128(t *testing.T) {
	for _, v := range []uint32{0, 1, 127, 128, 300, 16383, 16384, 1 << 21, 1<<32 - 1} {
		b := appendULEB32(nil, v)
		got, n, err := readULEB32(b, 0)
		if err != nil || got != v || n != len(b) {
			t.Errorf("LEB128 %d: encoded % x, decoded %d (%d bytes, %v)", v, b, got, n, err)
		}
	}
}
