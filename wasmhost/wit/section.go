package wit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"
)

// SectionName is the name of the custom section that carries a component's WIT
// folder inside its core WebAssembly module.
const SectionName = "obelisk-wit"

// SectionVersion is the version of the section's JSON document this package
// reads and writes.
const SectionVersion = 1

// ErrNoSection is returned (wrapped or as is) by [ExtractFromWasm] when the
// module carries no obelisk-wit custom section.
var ErrNoSection = errors.New("module has no obelisk-wit custom section; embed one with `obelisk component embed-wit`")

// wasmHeader is the magic number and version of a core WebAssembly module.
const wasmHeader = "\x00asm\x01\x00\x00\x00"

type sectionDoc struct {
	Version *int   `json:"version"`
	Files   []File `json:"files"`
}

// LoadDir reads every .wit file under dir, recursively. Paths are relative to
// dir, '/'-separated and sorted.
func LoadDir(dir string) ([]File, error) {
	var files []File
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(d.Name(), ".wit") {
			return nil
		}
		text, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if !utf8.Valid(text) {
			return fmt.Errorf("%s: not valid UTF-8", p)
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		files = append(files, File{Path: filepath.ToSlash(rel), Text: string(text)})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("wit: loading WIT folder %s: %w", dir, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("wit: loading WIT folder %s: no .wit files found", dir)
	}
	sortFiles(files)
	return files, nil
}

func sortFiles(files []File) {
	slices.SortStableFunc(files, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
}

// EncodeSection returns the payload of the obelisk-wit custom section:
// {"version":1,"files":[{"path":...,"text":...},...]} with files sorted by path.
func EncodeSection(files []File) []byte {
	sorted := slices.Clone(files)
	if sorted == nil {
		sorted = []File{}
	}
	sortFiles(sorted)
	v := SectionVersion
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(sectionDoc{Version: &v, Files: sorted}); err != nil {
		// Strings and ints always encode.
		panic(fmt.Sprintf("wit: encoding section: %v", err))
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// DecodeSection decodes the payload of the obelisk-wit custom section. It
// rejects versions other than [SectionVersion], invalid or duplicate paths and
// an empty file list.
func DecodeSection(payload []byte) ([]File, error) {
	var doc sectionDoc
	if err := json.Unmarshal(payload, &doc); err != nil {
		return nil, fmt.Errorf("wit: decoding the %s section: %w", SectionName, err)
	}
	switch {
	case doc.Version == nil:
		return nil, fmt.Errorf("wit: decoding the %s section: missing \"version\"", SectionName)
	case *doc.Version != SectionVersion:
		return nil, fmt.Errorf("wit: %s section version %d is not supported (this host reads version %d)",
			SectionName, *doc.Version, SectionVersion)
	case len(doc.Files) == 0:
		return nil, fmt.Errorf("wit: the %s section holds no files", SectionName)
	}
	seen := map[string]bool{}
	for _, f := range doc.Files {
		if err := checkFilePath(f.Path); err != nil {
			return nil, fmt.Errorf("wit: %s section: %w", SectionName, err)
		}
		if seen[f.Path] {
			return nil, fmt.Errorf("wit: %s section: file %q appears twice", SectionName, f.Path)
		}
		seen[f.Path] = true
	}
	sortFiles(doc.Files)
	return doc.Files, nil
}

// wasmSection is one section of a module: bytes [start, end) of the binary.
type wasmSection struct {
	id         byte
	start, end int
	name       string // custom sections only
}

// readULEB32 decodes an unsigned LEB128 number of at most 32 bits.
func readULEB32(b []byte, off int) (uint32, int, error) {
	var v uint32
	for i := 0; i < 5; i++ {
		if off+i >= len(b) {
			return 0, 0, fmt.Errorf("truncated LEB128 number at offset %d", off)
		}
		c := b[off+i]
		if i == 4 && c&0xf0 != 0 {
			return 0, 0, fmt.Errorf("LEB128 number at offset %d overflows 32 bits or is longer than 5 bytes", off)
		}
		v |= uint32(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			return v, i + 1, nil
		}
	}
	return 0, 0, fmt.Errorf("LEB128 number at offset %d is longer than 5 bytes", off) // unreachable
}

func appendULEB32(b []byte, v uint32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}

// wasmSections validates the header of a core module and splits it into sections.
func wasmSections(wasm []byte) ([]wasmSection, error) {
	if len(wasm) < 8 || string(wasm[:4]) != wasmHeader[:4] {
		return nil, errors.New("not a WebAssembly binary (missing the \\0asm magic number)")
	}
	if string(wasm[4:8]) != wasmHeader[4:] {
		if wasm[4] == 0x0d && wasm[6] == 0x01 {
			return nil, errors.New("this is a WebAssembly component, but Obelisk runs core modules (WASI preview 1)")
		}
		return nil, fmt.Errorf("unsupported WebAssembly binary version % x (expected 01 00 00 00)", wasm[4:8])
	}
	var secs []wasmSection
	for off := 8; off < len(wasm); {
		id := wasm[off]
		size, n, err := readULEB32(wasm, off+1)
		if err != nil {
			return nil, fmt.Errorf("section %d at offset %d: %w", id, off, err)
		}
		start := off + 1 + n
		end := start + int(size)
		if end > len(wasm) {
			return nil, fmt.Errorf("section %d at offset %d: size %d runs past the end of the module", id, off, size)
		}
		s := wasmSection{id: id, start: off, end: end}
		if id == 0 {
			nlen, m, err := readULEB32(wasm, start)
			if err != nil || start+m+int(nlen) > end {
				return nil, fmt.Errorf("custom section at offset %d: malformed name", off)
			}
			s.name = string(wasm[start+m : start+m+int(nlen)])
		}
		secs = append(secs, s)
		off = end
	}
	return secs, nil
}

// customPayload returns the payload of a custom section (after its name).
func customPayload(wasm []byte, s wasmSection) []byte {
	_, n, _ := readULEB32(wasm, s.start+1)
	start := s.start + 1 + n
	nlen, m, _ := readULEB32(wasm, start)
	return wasm[start+m+int(nlen) : s.end]
}

// EmbedInWasm returns a copy of the core WebAssembly module wasm with the
// obelisk-wit custom section set to files, replacing any existing one. The
// module itself is not validated beyond its header and section structure.
func EmbedInWasm(wasm []byte, files []File) ([]byte, error) {
	secs, err := wasmSections(wasm)
	if err != nil {
		return nil, fmt.Errorf("wit: embedding WIT: %w", err)
	}
	payload := EncodeSection(files)
	body := appendULEB32(nil, uint32(len(SectionName)))
	body = append(body, SectionName...)
	body = append(body, payload...)
	if uint64(len(body)) > 0xffffffff {
		return nil, errors.New("wit: embedding WIT: the section is larger than 4 GiB")
	}
	out := make([]byte, 0, len(wasm)+len(body)+6)
	out = append(out, wasm[:8]...)
	for _, s := range secs {
		if s.id == 0 && s.name == SectionName {
			continue
		}
		out = append(out, wasm[s.start:s.end]...)
	}
	out = append(out, 0)
	out = appendULEB32(out, uint32(len(body)))
	out = append(out, body...)
	return out, nil
}

// ExtractFromWasm finds the obelisk-wit custom section of a core WebAssembly
// module and decodes it. Without one it returns [ErrNoSection].
func ExtractFromWasm(wasm []byte) ([]File, error) {
	secs, err := wasmSections(wasm)
	if err != nil {
		return nil, fmt.Errorf("wit: reading WIT: %w", err)
	}
	var found []wasmSection
	for _, s := range secs {
		if s.id == 0 && s.name == SectionName {
			found = append(found, s)
		}
	}
	switch len(found) {
	case 0:
		return nil, ErrNoSection
	case 1:
		return DecodeSection(customPayload(wasm, found[0]))
	}
	return nil, fmt.Errorf("wit: module has %d %s custom sections; expected one", len(found), SectionName)
}
