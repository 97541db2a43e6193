package wasmbin

import (
	"bytes"
	"errors"
	"fmt"
)

// Sections and opcodes FindGoResume reads.
const (
	sectionCode = 10

	opCall       = 0x10
	opLocalGet   = 0x20
	opLocalSet   = 0x21
	opLocalTee   = 0x22
	opGlobalGet  = 0x23
	opGlobalSet  = 0x24
	opI64Load    = 0x29
	opI64Store32 = 0x3e
	opI64Const   = 0x42
	opI32Add     = 0x6a
	opI64ShrU    = 0x88
	opI32WrapI64 = 0xa7
	opI64ExtendU = 0xad
)

// GoResume is what it takes to re-enter a Go module (GOOS=wasip1 GOARCH=wasm, built with
// the gc toolchain) whose exported function is blocked in a call of an import, in a
// fresh instance given the blocked one's memory and globals.
//
// A Go module keeps its goroutines' stacks in linear memory, with the stack pointer
// (SP) in global 0, and never needs the WebAssembly call stack to resume a function: any
// call may unwind the WebAssembly stack (a goroutine switch), after which a trampoline,
// wasm_pc_f_loop_export, calls the function whose resume address is at SP-8 with the
// block to resume at. An import is called from a generated wrapper (no frame of its
// own) that stores the import's result at SP+ImportResultOffset and returns, popping
// its return address (SP += 8). So a blocked call is completed, in an instance with the
// blocked one's memory and globals, by storing the answer where the wrapper would, doing
// the wrapper's SP += 8, and calling the trampoline with the PC_F the export wrapper
// stops it at (StopPCF): it resumes the caller exactly where the wrapper would have
// returned to, and returns when the exported Go function does; its result is then at
// SP+ExportResultOffset.
type GoResume struct {
	// Loop is the function index of wasm_pc_f_loop_export, type (i32) -> ().
	Loop uint32
	// StopPCF is the argument Loop stops at: the export wrapper's PC_F.
	StopPCF uint32
	// ExportResultOffset is where, from SP, the export wrapper loads its i64 result.
	ExportResultOffset uint32
	// ImportResultOffset is where, from SP, the import's wrapper stores its i32 result
	// (zero-extended to 64 bits).
	ImportResultOffset uint32
}

// ErrNotGo is wrapped by FindGoResume's errors for modules whose code does not have the
// shapes the Go toolchain generates.
var ErrNotGo = errors.New("not a Go module of the expected shape")

// FindGoResume finds, in a Go module, how to resume its export named export blocked in
// the import module.name (see GoResume). It reads the code of the export's wrapper and
// of the import's wrapper, and fails (wrapping ErrNotGo) unless each has exactly the
// expected shape.
func FindGoResume(wasm []byte, export, module, name string) (*GoResume, error) {
	if len(wasm) < len(magic) || !bytes.Equal(wasm[:len(magic)], magic) {
		return nil, errors.New("not a WebAssembly binary (bad magic or version)")
	}
	var imports, exports, code []byte
	for pos := len(magic); pos < len(wasm); {
		id := wasm[pos]
		size, n, err := readU32(wasm, pos+1)
		if err != nil {
			return nil, fmt.Errorf("section at offset %d: %w", pos, err)
		}
		pos += 1 + n
		if uint64(pos)+uint64(size) > uint64(len(wasm)) {
			return nil, fmt.Errorf("section %d overruns the binary", id)
		}
		body := wasm[pos : pos+int(size)]
		switch id {
		case sectionImport:
			imports = body
		case sectionExport:
			exports = body
		case sectionCode:
			code = body
		}
		pos += int(size)
	}
	funcImports, target, err := findFuncImport(imports, module, name)
	if err != nil {
		return nil, err
	}
	exported, err := findFuncExport(exports, export)
	if err != nil {
		return nil, err
	}
	bodies, err := codeBodies(code)
	if err != nil {
		return nil, err
	}
	if exported < funcImports || int(exported-funcImports) >= len(bodies) {
		return nil, fmt.Errorf("%w: export %s is not a function defined by the module", ErrNotGo, export)
	}
	r := &GoResume{}
	if r.Loop, r.StopPCF, r.ExportResultOffset, err = exportWrapper(bodies[exported-funcImports]); err != nil {
		return nil, fmt.Errorf("export %s: %w", export, err)
	}
	found := 0
	for _, b := range bodies {
		if off, ok := importWrapper(b, target); ok {
			r.ImportResultOffset = off
			found++
		}
	}
	if found != 1 {
		return nil, fmt.Errorf("%w: %d wrappers of import %s.%s, want 1", ErrNotGo, found, module, name)
	}
	return r, nil
}

// findFuncImport returns the number of imported functions and the function index of
// module.name.
func findFuncImport(b []byte, module, name string) (count, index uint32, err error) {
	if b == nil {
		return 0, 0, fmt.Errorf("%w: no import section", ErrNotGo)
	}
	n, pos, err := readU32(b, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("import section: %w", err)
	}
	found := false
	for i := uint32(0); i < n; i++ {
		var names [2]string
		for j := range names {
			s, l, err := readName(b, pos)
			if err != nil {
				return 0, 0, fmt.Errorf("import %d: %w", i, err)
			}
			names[j], pos = s, pos+l
		}
		if pos >= len(b) || b[pos] != externFunc {
			return 0, 0, fmt.Errorf("%w: import %d is not a function", ErrNotGo, i)
		}
		_, l, err := readU32(b, pos+1)
		if err != nil {
			return 0, 0, fmt.Errorf("import %d: %w", i, err)
		}
		pos += 1 + l
		if names[0] == module && names[1] == name {
			index, found = count, true
		}
		count++
	}
	if !found {
		return 0, 0, fmt.Errorf("%w: no import %s.%s", ErrNotGo, module, name)
	}
	return count, index, nil
}

// findFuncExport returns the function index exported as name.
func findFuncExport(b []byte, name string) (uint32, error) {
	if b == nil {
		return 0, fmt.Errorf("%w: no export section", ErrNotGo)
	}
	n, pos, err := readU32(b, 0)
	if err != nil {
		return 0, fmt.Errorf("export section: %w", err)
	}
	for i := uint32(0); i < n; i++ {
		s, l, err := readName(b, pos)
		if err != nil {
			return 0, fmt.Errorf("export %d: %w", i, err)
		}
		pos += l
		if pos >= len(b) {
			return 0, fmt.Errorf("export %d: unexpected end", i)
		}
		kind := b[pos]
		idx, l, err := readU32(b, pos+1)
		if err != nil {
			return 0, fmt.Errorf("export %d: %w", i, err)
		}
		pos += 1 + l
		if s == name && kind == externFunc {
			return idx, nil
		}
	}
	return 0, fmt.Errorf("%w: no function export %s", ErrNotGo, name)
}

// codeBodies splits the code section into function bodies (locals included).
func codeBodies(b []byte) ([][]byte, error) {
	if b == nil {
		return nil, fmt.Errorf("%w: no code section", ErrNotGo)
	}
	n, pos, err := readU32(b, 0)
	if err != nil {
		return nil, fmt.Errorf("code section: %w", err)
	}
	bodies := make([][]byte, 0, n)
	for i := uint32(0); i < n; i++ {
		size, l, err := readU32(b, pos)
		if err != nil {
			return nil, fmt.Errorf("code %d: %w", i, err)
		}
		pos += l
		if uint64(pos)+uint64(size) > uint64(len(b)) {
			return nil, fmt.Errorf("code %d overruns its section", i)
		}
		bodies = append(bodies, b[pos:pos+int(size)])
		pos += int(size)
	}
	return bodies, nil
}

// exportWrapper reads the tail of a Go export wrapper:
//
//	i64.const RETADDR; i64.const 16; i64.shr_u; i32.wrap_i64; call LOOP; end
//	global.get 0 (SP); i64.load OFFSET
//
// and returns LOOP, RETADDR>>16 (the wrapper's PC_F) and OFFSET.
func exportWrapper(body []byte) (loop, stop, offset uint32, err error) {
	shift := []byte{opI64Const, 16, opI64ShrU, opI32WrapI64, opCall}
	at := bytes.Index(body, shift)
	if at < 0 || bytes.Index(body[at+1:], shift) >= 0 {
		return 0, 0, 0, fmt.Errorf("%w: no single call of the stack-switching loop", ErrNotGo)
	}
	// The return address is the i64.const just before: find where its LEB starts.
	var ret int64
	okRet := false
	for start := max(0, at-11); start < at; start++ {
		if body[start] != opI64Const {
			continue
		}
		if v, n, err := readS64(body, start+1); err == nil && start+1+n == at {
			ret, okRet = v, true
			break
		}
	}
	if !okRet || ret < 0 {
		return 0, 0, 0, fmt.Errorf("%w: no return address before the stack-switching loop", ErrNotGo)
	}
	pos := at + len(shift)
	loop, n, err := readU32(body, pos)
	if err != nil {
		return 0, 0, 0, err
	}
	pos += n
	if !bytes.HasPrefix(body[pos:], []byte{opEnd, opGlobalGet, 0, opI64Load}) {
		return 0, 0, 0, fmt.Errorf("%w: the export's result is not loaded from SP after the loop", ErrNotGo)
	}
	pos += 4
	_, n, err = readU32(body, pos) // alignment
	if err != nil {
		return 0, 0, 0, err
	}
	offset, _, err = readU32(body, pos+n)
	if err != nil {
		return 0, 0, 0, err
	}
	return loop, uint32(ret >> 16), offset, nil
}

// importWrapper reports whether body is the Go wrapper of the import with function
// index target, whose tail is
//
//	call TARGET; [global.get 0; local.set L]; i64.extend_i32_u; local.set R;
//	SP; local.get R; i64.store32 OFFSET; SP; i32.const 8; i32.add; [local.tee L]; global.set 0
//
// where SP is global.get 0, or local.get L when the wrapper keeps SP in local L (Go
// 1.26): the result stored at SP+OFFSET, then the return address popped (no frame). It
// returns OFFSET.
func importWrapper(body []byte, target uint32) (uint32, bool) {
	call := appendU32([]byte{opCall}, target)
	at := bytes.Index(body, call)
	if at < 0 {
		return 0, false
	}
	c := cursor{b: body, pos: at + len(call)}
	sp := []byte{opGlobalGet, 0}
	if c.take(opGlobalGet, 0, opLocalSet) {
		l, ok := c.u32()
		if !ok {
			return 0, false
		}
		sp = appendU32([]byte{opLocalGet}, l)
	}
	if !c.take(opI64ExtendU, opLocalSet) {
		return 0, false
	}
	r, ok := c.u32()
	if !ok || !c.take(sp...) || !c.take(appendU32([]byte{opLocalGet}, r)...) || !c.take(opI64Store32) {
		return 0, false
	}
	if _, ok := c.u32(); !ok { // alignment
		return 0, false
	}
	off, ok := c.u32()
	if !ok || !c.take(sp...) || !c.take(opI32Const, 8, opI32Add) {
		return 0, false
	}
	if sp[0] == opLocalGet && !c.take(append([]byte{opLocalTee}, sp[1:]...)...) {
		return 0, false
	}
	return off, c.take(opGlobalSet, 0)
}

// cursor reads a function body.
type cursor struct {
	b   []byte
	pos int
}

// take consumes want if the body continues with it.
func (c *cursor) take(want ...byte) bool {
	if !bytes.HasPrefix(c.b[c.pos:], want) {
		return false
	}
	c.pos += len(want)
	return true
}

func (c *cursor) u32() (uint32, bool) {
	v, n, err := readU32(c.b, c.pos)
	if err != nil {
		return 0, false
	}
	c.pos += n
	return v, true
}

// readS64 reads a signed LEB128 of at most 64 bits.
func readS64(b []byte, pos int) (int64, int, error) {
	var v int64
	var shift uint
	for i := 0; i < 10; i++ {
		if pos+i >= len(b) {
			return 0, 0, errors.New("unexpected end in a LEB128")
		}
		c := b[pos+i]
		v |= int64(c&0x7f) << shift
		shift += 7
		if c&0x80 == 0 {
			if shift < 64 && c&0x40 != 0 {
				v |= -1 << shift
			}
			return v, i + 1, nil
		}
	}
	return 0, 0, errors.New("LEB128 too long")
}
