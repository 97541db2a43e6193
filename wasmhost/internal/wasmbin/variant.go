package wasmbin

import (
	"errors"
	"fmt"
	"strconv"
)

// Section ids and encodings used by SnapshotVariant.
const (
	sectionCustom = 0
	sectionImport = 2
	sectionMemory = 5
	sectionGlobal = 6
	sectionExport = 7
	sectionStart  = 8

	externFunc   = 0x00
	externTable  = 0x01
	externMemory = 0x02
	externGlobal = 0x03
	externTag    = 0x04
)

// Value types a snapshot can hold in a global: the numeric ones, whose value
// is a plain 64-bit pattern. References (and v128, wider than wazero's
// Global.Get) cannot be carried from one instance to another.
const (
	TypeI32 byte = 0x7f
	TypeI64 byte = 0x7e
	TypeF32 byte = 0x7d
	TypeF64 byte = 0x7c
)

// ErrUnsupported is wrapped by SnapshotVariant's errors for modules it cannot
// rewrite without changing their meaning (as opposed to malformed ones).
var ErrUnsupported = errors.New("module not supported")

// Global is a mutable global a module defines.
type Global struct {
	Index uint32 // in the module's global index space
	Type  byte   // TypeI32, TypeI64, TypeF32 or TypeF64
	// Export is the name it is exported under in the variant.
	Export string
}

// Segment is an active data segment: Data written at Offset of memory 0.
type Segment struct {
	Offset uint32
	Data   []byte
}

// Variant is a module rewritten so that an instance of it can be brought to
// the state of an instance of the original by the host, from outside: see
// SnapshotVariant.
type Variant struct {
	// Wasm is the rewritten module.
	Wasm []byte
	// Globals are the module's mutable globals, each exported.
	Globals []Global
	// Data are the active data segments removed from the module, in their
	// order: an instance of the original starts with them applied.
	Data []Segment
	// Start is the export name of the function the removed start section
	// named, "" when there was none.
	Start string
	// MemoryMin is the minimum size of the memory, in 64 KiB pages.
	MemoryMin uint32
	// Resume, when SnapshotVariant was given a ResumeCall and the module is a Go
	// module of the expected shape, says how to resume the call, and ResumeExport
	// names the export of its Loop function; otherwise ResumeErr says why not.
	Resume       *GoResume
	ResumeExport string
	ResumeErr    error
}

// ResumeCall names an exported function and an import it may be blocked in, for
// SnapshotVariant to make resumable (see GoResume).
type ResumeCall struct{ Export, Module, Name string }

// SnapshotVariant rewrites a module for instantiation from a snapshot of one
// of its instances (memory contents and globals captured after
// initialisation). Compared with the original, the variant
//
//   - exports every mutable global the module defines, under names made of
//     exportPrefix and the global's index, so that the host can read and set
//     them (they are the part of an instance's state outside its memory, such
//     as a Go module's stack pointer);
//   - has no data section: a restored instance gets its memory from the
//     snapshot, and copying the data segments first would be wasted work.
//     They are returned in Variant.Data, for the host to apply to the one
//     instance it initialises itself;
//   - has no start section: its function, if any, is exported (Variant.Start)
//     for the host to call when it initialises an instance, and is not run
//     again by restored instances.
//
// Everything else (code, types, tables, elements, other exports, custom
// sections) is kept byte for byte.
//
// It returns an error wrapping ErrUnsupported when a snapshot could not
// capture the state of an instance or the rewrite could change the module's
// meaning: imported globals, memories or tables; not exactly one memory, or a
// shared or 64-bit one; a mutable global that is not i32, i64, f32 or f64; a
// data count section or a data segment that is passive or does not have an
// i32.const offset (its state would outlive instantiation); no export
// section; an export name starting with exportPrefix.
//
// Given a ResumeCall, the variant of a Go module also exports the function that
// resumes a blocked call (Variant.Resume, FindGoResume).
func SnapshotVariant(wasm []byte, exportPrefix string, resume ...ResumeCall) (*Variant, error) {
	if len(wasm) < len(magic) || string(wasm[:len(magic)]) != string(magic) {
		return nil, errors.New("not a WebAssembly binary (bad magic or version)")
	}
	type span struct {
		id         byte
		start, end int // the whole section, id byte included
		body       []byte
	}
	var sections []span
	for pos := len(magic); pos < len(wasm); {
		start := pos
		id := wasm[pos]
		size, n, err := readU32(wasm, pos+1)
		if err != nil {
			return nil, fmt.Errorf("section at offset %d: %w", start, err)
		}
		pos += 1 + n
		if uint64(pos)+uint64(size) > uint64(len(wasm)) {
			return nil, fmt.Errorf("section %d at offset %d overruns the binary", id, start)
		}
		sections = append(sections, span{id: id, start: start, end: pos + int(size), body: wasm[pos : pos+int(size)]})
		pos += int(size)
	}

	v := &Variant{}
	var (
		memories   int
		startFunc  = -1
		exportBody []byte
	)
	for _, s := range sections {
		var err error
		switch s.id {
		case sectionImport:
			err = checkImports(s.body)
		case sectionMemory:
			memories, v.MemoryMin, err = parseMemories(s.body)
		case sectionGlobal:
			// No global is imported (checkImports): the section's
			// globals are numbered from 0.
			v.Globals, err = parseGlobals(s.body)
		case sectionExport:
			exportBody = s.body
		case sectionStart:
			var idx uint32
			idx, _, err = readU32(s.body, 0)
			startFunc = int(idx)
		case sectionDataCount:
			err = fmt.Errorf("%w: data count section (passive data segments keep state)", ErrUnsupported)
		case sectionData:
			v.Data, err = parseActiveSegments(s.body)
		}
		if err != nil {
			return nil, err
		}
	}
	if memories != 1 {
		return nil, fmt.Errorf("%w: %d memories defined, want 1", ErrUnsupported, memories)
	}
	if exportBody == nil {
		return nil, fmt.Errorf("%w: no export section", ErrUnsupported)
	}

	// The new export section: the original entries, then the globals and
	// the start function.
	count, entries, err := readU32(exportBody, 0)
	if err != nil {
		return nil, fmt.Errorf("export section: %w", err)
	}
	pos := entries
	for i := uint32(0); i < count; i++ {
		name, n, err := readName(exportBody, pos)
		if err != nil {
			return nil, fmt.Errorf("export %d: %w", i, err)
		}
		if len(name) >= len(exportPrefix) && name[:len(exportPrefix)] == exportPrefix {
			return nil, fmt.Errorf("%w: export %q clashes with the prefix %q", ErrUnsupported, name, exportPrefix)
		}
		pos += n
		if pos >= len(exportBody) {
			return nil, fmt.Errorf("export %d: unexpected end", i)
		}
		_, n, err = readU32(exportBody, pos+1) // kind, index
		if err != nil {
			return nil, fmt.Errorf("export %d: %w", i, err)
		}
		pos += 1 + n
	}
	if pos != len(exportBody) {
		return nil, fmt.Errorf("export section: %d bytes after the last export", len(exportBody)-pos)
	}
	added := uint32(len(v.Globals))
	if startFunc >= 0 {
		added++
	}
	for _, rc := range resume[:min(len(resume), 1)] {
		if v.Resume, v.ResumeErr = FindGoResume(wasm, rc.Export, rc.Module, rc.Name); v.Resume != nil {
			added++
		}
	}
	body := appendU32(nil, count+added)
	body = append(body, exportBody[entries:]...)
	for i := range v.Globals {
		g := &v.Globals[i]
		g.Export = exportPrefix + "global." + strconv.FormatUint(uint64(g.Index), 10)
		body = appendName(body, g.Export)
		body = append(body, externGlobal)
		body = appendU32(body, g.Index)
	}
	if startFunc >= 0 {
		v.Start = exportPrefix + "start"
		body = appendName(body, v.Start)
		body = append(body, externFunc)
		body = appendU32(body, uint32(startFunc))
	}
	if v.Resume != nil {
		v.ResumeExport = exportPrefix + "resume"
		body = appendName(body, v.ResumeExport)
		body = append(body, externFunc)
		body = appendU32(body, v.Resume.Loop)
	}

	out := make([]byte, 0, len(wasm)+len(body))
	out = append(out, magic...)
	for _, s := range sections {
		switch s.id {
		case sectionStart, sectionData:
			continue
		case sectionExport:
			out = append(out, sectionExport)
			out = appendU32(out, uint32(len(body)))
			out = append(out, body...)
		default:
			out = append(out, wasm[s.start:s.end]...)
		}
	}
	v.Wasm = out
	return v, nil
}

// checkImports returns an error wrapping ErrUnsupported for imports other
// than functions.
func checkImports(b []byte) error {
	count, pos, err := readU32(b, 0)
	if err != nil {
		return fmt.Errorf("import section: %w", err)
	}
	for i := uint32(0); i < count; i++ {
		var names [2]string
		for j := range names {
			name, n, err := readName(b, pos)
			if err != nil {
				return fmt.Errorf("import %d: %w", i, err)
			}
			names[j] = name
			pos += n
		}
		if pos >= len(b) {
			return fmt.Errorf("import %d: unexpected end", i)
		}
		switch kind := b[pos]; kind {
		case externFunc:
			_, n, err := readU32(b, pos+1)
			if err != nil {
				return fmt.Errorf("import %d: %w", i, err)
			}
			pos += 1 + n
		default:
			// A global, memory, table or tag shared with another module is
			// state the snapshot would not own.
			return fmt.Errorf("%w: imports %s.%s of kind %d (only functions can be imported)", ErrUnsupported, names[0], names[1], kind)
		}
	}
	return nil
}

// parseMemories returns the number of memories and the first one's minimum.
func parseMemories(b []byte) (count int, min uint32, err error) {
	n32, pos, err := readU32(b, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("memory section: %w", err)
	}
	if n32 != 1 {
		return int(n32), 0, nil
	}
	if pos >= len(b) {
		return 0, 0, errors.New("memory section: unexpected end")
	}
	switch flags := b[pos]; flags {
	case 0x00, 0x01: // min, or min and max
	default:
		return 0, 0, fmt.Errorf("%w: memory with limits flags %#x (shared or 64-bit)", ErrUnsupported, flags)
	}
	min, _, err = readU32(b, pos+1)
	if err != nil {
		return 0, 0, fmt.Errorf("memory section: %w", err)
	}
	return 1, min, nil
}

// parseGlobals returns the mutable globals the section defines.
func parseGlobals(b []byte) ([]Global, error) {
	count, pos, err := readU32(b, 0)
	if err != nil {
		return nil, fmt.Errorf("global section: %w", err)
	}
	var globals []Global
	for i := uint32(0); i < count; i++ {
		if pos+2 > len(b) {
			return nil, fmt.Errorf("global %d: unexpected end", i)
		}
		typ, mut := b[pos], b[pos+1]
		pos += 2
		switch typ {
		case TypeI32, TypeI64, TypeF32, TypeF64:
		default:
			if mut != 0 {
				return nil, fmt.Errorf("%w: mutable global %d of type %#x", ErrUnsupported, i, typ)
			}
			if typ == 0x63 || typ == 0x64 { // (ref null? ht): a heap type follows
				return nil, fmt.Errorf("%w: global %d of a typed reference type", ErrUnsupported, i)
			}
		}
		n, err := skipConstExpr(b, pos)
		if err != nil {
			return nil, fmt.Errorf("global %d: %w", i, err)
		}
		pos += n
		if mut == 1 {
			globals = append(globals, Global{Index: i, Type: typ})
		} else if mut != 0 {
			return nil, fmt.Errorf("global %d: bad mutability %d", i, mut)
		}
	}
	if pos != len(b) {
		return nil, fmt.Errorf("global section: %d bytes after the last global", len(b)-pos)
	}
	return globals, nil
}

// skipConstExpr returns the length of the constant expression at pos, end
// included. It knows the instructions WebAssembly 2.0 and the extended-const
// proposal allow there.
func skipConstExpr(b []byte, pos int) (int, error) {
	start := pos
	for pos < len(b) {
		op := b[pos]
		pos++
		var err error
		var n int
		switch op {
		case opEnd:
			return pos - start, nil
		case opI32Const:
			_, n, err = readS32(b, pos)
		case 0x42: // i64.const
			n, err = skipLEB(b, pos, 10)
		case 0x43: // f32.const
			n = 4
		case 0x44: // f64.const
			n = 8
		case 0x23, 0xd2: // global.get, ref.func
			_, n, err = readU32(b, pos)
		case 0xd0: // ref.null heaptype (s33)
			n, err = skipLEB(b, pos, 5)
		case 0x6a, 0x6b, 0x6c, 0x7c, 0x7d, 0x7e: // i32/i64 add, sub, mul
		case 0xfd: // v128.const
			var sub uint32
			sub, n, err = readU32(b, pos)
			if err == nil && sub != 12 {
				err = fmt.Errorf("%w: SIMD opcode %d in a constant expression", ErrUnsupported, sub)
			}
			n += 16
		default:
			return 0, fmt.Errorf("%w: opcode %#x in a constant expression", ErrUnsupported, op)
		}
		if err != nil {
			return 0, err
		}
		pos += n
	}
	return 0, errors.New("constant expression: unexpected end")
}

func skipLEB(b []byte, pos, maxLen int) (int, error) {
	for i := 0; i < maxLen; i++ {
		if pos+i >= len(b) {
			return 0, errors.New("unexpected end")
		}
		if b[pos+i] < 0x80 {
			return i + 1, nil
		}
	}
	return 0, errors.New("LEB128 too long")
}

// parseActiveSegments returns the data segments, which must all be active,
// into memory 0, at i32.const offsets.
func parseActiveSegments(b []byte) ([]Segment, error) {
	segs, err := parseSegments(b)
	if err != nil {
		return nil, fmt.Errorf("data section: %w", err)
	}
	if segs == nil {
		return nil, fmt.Errorf("%w: a data segment is passive, for another memory, or at a computed offset", ErrUnsupported)
	}
	out := make([]Segment, len(segs))
	for i, s := range segs {
		out[i] = Segment{Offset: uint32(s.offset), Data: s.data}
	}
	return out, nil
}

func readName(b []byte, pos int) (string, int, error) {
	size, n, err := readU32(b, pos)
	if err != nil {
		return "", 0, err
	}
	if uint64(pos+n)+uint64(size) > uint64(len(b)) {
		return "", 0, errors.New("name overruns the section")
	}
	return string(b[pos+n : pos+n+int(size)]), n + int(size), nil
}

func appendName(b []byte, s string) []byte {
	b = appendU32(b, uint32(len(s)))
	return append(b, s...)
}
