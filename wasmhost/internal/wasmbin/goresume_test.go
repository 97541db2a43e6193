package wasmbin

import (
	"errors"
	"testing"
)

// A module without the Go toolchain's shapes is not resumable: FindGoResume says so, and
// SnapshotVariant still rewrites it, without the resume export, saying why in ResumeErr.
func TestFindGoResumeNotGo(t *testing.T) {
	wasm := vmod{exports: []string{"run"}}.encode()
	if _, err := FindGoResume(wasm, "run", "env", "call"); !errors.Is(err, ErrNotGo) {
		t.Fatalf("FindGoResume: %v, want ErrNotGo", err)
	}
	v, err := SnapshotVariant(wasm, "snap:", ResumeCall{Export: "run", Module: "env", Name: "call"})
	if err != nil {
		t.Fatal(err)
	}
	if v.Resume != nil || v.ResumeExport != "" || !errors.Is(v.ResumeErr, ErrNotGo) {
		t.Fatalf("variant resume %+v %q %v, want none and ErrNotGo", v.Resume, v.ResumeExport, v.ResumeErr)
	}
	if _, err := FindGoResume([]byte("nope"), "run", "env", "call"); err == nil {
		t.Fatal("FindGoResume accepted a non-WebAssembly binary")
	}
}

// The shapes FindGoResume reads, as the Go toolchain emits them (Go 1.26: the import's
// wrapper keeps SP in a local).
func TestGoWrapperShapes(t *testing.T) {
	// ... i64.const (PC_F 7 << 16 | 1); i64.const 16; i64.shr_u; i32.wrap_i64; call 42; end;
	// global.get 0; i64.load align=3 offset=16
	export := []byte{0x01, 0x01, 0x7f, opI64Const}
	export = append(export, sleb64(7<<16|1)...)
	export = append(export, opI64Const, 16, opI64ShrU, opI32WrapI64, opCall, 42, opEnd, opGlobalGet, 0, opI64Load, 3, 16, opEnd)
	loop, stop, off, err := exportWrapper(export)
	if err != nil || loop != 42 || stop != 7 || off != 16 {
		t.Fatalf("exportWrapper: %d %d %d %v, want 42 7 16", loop, stop, off, err)
	}
	// call 17; global.get 0; local.set 1; i64.extend_i32_u; local.set 2; local.get 1;
	// local.get 2; i64.store32 align=2 offset=40; local.get 1; i32.const 8; i32.add;
	// local.tee 1; global.set 0
	imp := []byte{opCall, 17, opGlobalGet, 0, opLocalSet, 1, opI64ExtendU, opLocalSet, 2, opLocalGet, 1, opLocalGet, 2,
		opI64Store32, 2, 40, opLocalGet, 1, opI32Const, 8, opI32Add, opLocalTee, 1, opGlobalSet, 0}
	if off, ok := importWrapper(imp, 17); !ok || off != 40 {
		t.Fatalf("importWrapper (SP in a local): %d %v, want 40", off, ok)
	}
	if _, ok := importWrapper(imp, 18); ok {
		t.Fatal("importWrapper matched another import")
	}
	// The older shape: SP read from its global every time.
	old := []byte{opCall, 17, opI64ExtendU, opLocalSet, 2, opGlobalGet, 0, opLocalGet, 2,
		opI64Store32, 2, 24, opGlobalGet, 0, opI32Const, 8, opI32Add, opGlobalSet, 0}
	if off, ok := importWrapper(old, 17); !ok || off != 24 {
		t.Fatalf("importWrapper (SP in its global): %d %v, want 24", off, ok)
	}
	// A wrapper with a frame (SP += 16) is not the shape: its result offset would be wrong.
	framed := append(append([]byte(nil), old[:len(old)-5]...), opI32Const, 16, opI32Add, opGlobalSet, 0)
	if _, ok := importWrapper(framed, 17); ok {
		t.Fatal("importWrapper matched a wrapper with a frame")
	}
}

func sleb64(v int64) []byte {
	var out []byte
	for {
		b := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && b&0x40 == 0) || (v == -1 && b&0x40 != 0) {
			return append(out, b)
		}
		out = append(out, b|0x80)
	}
}
