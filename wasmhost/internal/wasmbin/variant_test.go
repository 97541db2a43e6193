package wasmbin

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
)

// vmod describes a module for the SnapshotVariant tests. The module always
// has one type, () -> (), and the functions "start" (named by the start
// section if start is set) and "bump", exported: start writes "S" at
// address 100 and sets global 0 to 42; bump adds 1 to global 1.
type vmod struct {
	imports  []byte   // import entries (without the count), if any
	memories [][]byte // memory entries (limits); default one memory of min 1
	globals  [][]byte // global entries; default: mut i32 = 5, mut i64 = 7, const i32 = 9
	exports  []string // extra function exports of bump
	start    bool
	data     []byte // data section body; default one active segment "hello" at 10
	dataCnt  bool
	noExport bool
}

func (m vmod) encode() []byte {
	vec := func(entries ...[]byte) []byte {
		out := appendU32(nil, uint32(len(entries)))
		for _, e := range entries {
			out = append(out, e...)
		}
		return out
	}
	out := append([]byte(nil), magic...)
	out = append(out, section(1, vec([]byte{0x60, 0, 0}))...)
	if m.imports != nil {
		out = append(out, section(sectionImport, append([]byte{1}, m.imports...))...)
	}
	out = append(out, section(3, vec([]byte{0}, []byte{0}))...) // start, bump
	mems := m.memories
	if mems == nil {
		mems = [][]byte{{0x00, 1}}
	}
	out = append(out, section(sectionMemory, vec(mems...))...)
	globals := m.globals
	if globals == nil {
		globals = [][]byte{
			{TypeI32, 1, opI32Const, 5, opEnd},
			{TypeI64, 1, 0x42, 7, opEnd},
			{TypeI32, 0, opI32Const, 9, opEnd},
		}
	}
	out = append(out, section(sectionGlobal, vec(globals...))...)
	if !m.noExport {
		exps := [][]byte{
			appendName(nil, "memory"), appendName(nil, "bump"),
		}
		exps[0] = append(exps[0], externMemory, 0)
		exps[1] = append(exps[1], externFunc, 1)
		for _, name := range m.exports {
			exps = append(exps, append(appendName(nil, name), externFunc, 1))
		}
		out = append(out, section(sectionExport, vec(exps...))...)
	}
	if m.start {
		out = append(out, section(sectionStart, []byte{0})...)
	}
	if m.dataCnt {
		out = append(out, section(sectionDataCount, []byte{1})...)
	}
	start := []byte{0, opI32Const} // no locals
	start = appendS32(start, 100)
	start = append(appendS32(append(start, opI32Const), 'S'), 0x3a, 0, 0) // i32.store8 [100] = 'S'
	start = append(appendS32(append(start, opI32Const), 42), 0x24, 0)     // global.set 0
	start = append(start, opEnd)
	bump := []byte{0, 0x23, 1, 0x42, 1, 0x7c, 0x24, 1, opEnd} // global1 += 1
	out = append(out, section(10, vec(append(appendU32(nil, uint32(len(start))), start...), append(appendU32(nil, uint32(len(bump))), bump...)))...)
	data := m.data
	if data == nil {
		data = vec(append([]byte{0, opI32Const, 10, opEnd, 5}, "hello"...))
	}
	out = append(out, section(sectionData, data)...)
	return append(out, section(sectionCustom, append(appendName(nil, "tail"), "x"...))...)
}

type instanceState struct {
	memory  []byte
	globals []uint64
}

// TestSnapshotVariant checks that an instance of the variant, once the host
// has applied the data segments and called the start function, is in the
// state an instance of the original starts in, and that its mutable globals
// can be read and set through the added exports.
func TestSnapshotVariant(t *testing.T) {
	ctx := context.Background()
	for _, start := range []bool{false, true} {
		orig := vmod{start: start}.encode()
		v, err := SnapshotVariant(orig, "snap:")
		if err != nil {
			t.Fatal(err)
		}
		if len(v.Globals) != 2 || v.Globals[0] != (Global{0, TypeI32, "snap:global.0"}) || v.Globals[1] != (Global{1, TypeI64, "snap:global.1"}) {
			t.Errorf("globals %+v", v.Globals)
		}
		if len(v.Data) != 1 || v.Data[0].Offset != 10 || string(v.Data[0].Data) != "hello" || v.MemoryMin != 1 {
			t.Errorf("data %+v, memory min %d", v.Data, v.MemoryMin)
		}
		if start != (v.Start == "snap:start") {
			t.Errorf("start %q", v.Start)
		}
		if !bytes.HasSuffix(v.Wasm, section(sectionCustom, append(appendName(nil, "tail"), "x"...))) {
			t.Error("custom section lost")
		}

		r := wazero.NewRuntime(ctx)
		defer r.Close(ctx)
		// The original: state read with the internal API, as exports are missing.
		om, err := r.InstantiateWithConfig(ctx, orig, wazero.NewModuleConfig().WithName("orig"))
		if err != nil {
			t.Fatal(err)
		}
		want := instanceState{}
		want.memory, _ = om.Memory().Read(0, om.Memory().Size())
		for i := range 2 {
			want.globals = append(want.globals, om.(experimental.InternalModule).Global(i).Get())
		}

		vm, err := r.InstantiateWithConfig(ctx, v.Wasm, wazero.NewModuleConfig().WithName("variant"))
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := vm.Memory().Read(0, vm.Memory().Size()); !bytes.Equal(b, make([]byte, len(b))) {
			t.Error("the variant applied data segments or ran its start function")
		}
		for _, d := range v.Data {
			vm.Memory().Write(d.Offset, d.Data)
		}
		if v.Start != "" {
			if _, err := vm.ExportedFunction(v.Start).Call(ctx); err != nil {
				t.Fatal(err)
			}
		}
		got := instanceState{}
		got.memory, _ = vm.Memory().Read(0, vm.Memory().Size())
		for _, g := range v.Globals {
			got.globals = append(got.globals, vm.ExportedGlobal(g.Export).Get())
		}
		if !bytes.Equal(got.memory, want.memory) || len(got.globals) != 2 || got.globals[0] != want.globals[0] || got.globals[1] != want.globals[1] {
			t.Errorf("start=%v: variant state %v %q, original %v %q", start, got.globals, got.memory[:128], want.globals, want.memory[:128])
		}
		// The globals are the instance's own: bump sees a value set from outside.
		g1 := vm.ExportedGlobal("snap:global.1").(api.MutableGlobal)
		g1.Set(1000)
		if _, err := vm.ExportedFunction("bump").Call(ctx); err != nil || g1.Get() != 1001 {
			t.Errorf("bump after Set(1000): %d %v", g1.Get(), err)
		}
	}
}

func TestSnapshotVariantUnsupported(t *testing.T) {
	funcref := byte(0x70)
	tests := []struct {
		name string
		mod  vmod
		want string
	}{
		{"imported global", vmod{imports: append(append(appendName(nil, "env"), appendName(nil, "g")...), externGlobal, TypeI32, 0)}, "imports env.g of kind 3"},
		{"imported memory", vmod{imports: append(append(appendName(nil, "env"), appendName(nil, "m")...), externMemory, 0, 1)}, "imports env.m of kind 2"},
		{"two memories", vmod{memories: [][]byte{{0, 1}, {0, 1}}}, "2 memories"},
		{"no memory", vmod{memories: [][]byte{}}, "0 memories"},
		{"shared memory", vmod{memories: [][]byte{{0x03, 1, 2}}}, "shared or 64-bit"},
		{"64-bit memory", vmod{memories: [][]byte{{0x04, 1}}}, "shared or 64-bit"},
		{"mutable funcref global", vmod{globals: [][]byte{{funcref, 1, 0xd0, funcref, opEnd}}}, "mutable global 0 of type 0x70"},
		{"unknown const instruction", vmod{globals: [][]byte{{TypeI32, 1, 0x45, opEnd}}}, "opcode 0x45"},
		{"data count", vmod{dataCnt: true}, "data count"},
		{"passive segment", vmod{data: append([]byte{1, 1, 2}, "hi"...)}, "passive"},
		{"global offset", vmod{data: append([]byte{1, 0, 0x23, 0, opEnd, 2}, "hi"...)}, "computed offset"},
		{"export clash", vmod{exports: []string{"snap:mine"}}, `export "snap:mine" clashes`},
		{"no export section", vmod{noExport: true}, "no export section"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := SnapshotVariant(tt.mod.encode(), "snap:")
			if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want ErrUnsupported mentioning %q", err, tt.want)
			}
		})
	}
	// An immutable reference global is fine.
	if _, err := SnapshotVariant(vmod{globals: [][]byte{{funcref, 0, 0xd0, funcref, opEnd}}}.encode(), "snap:"); err != nil {
		t.Errorf("immutable funcref global: %v", err)
	}
}

func TestSnapshotVariantMalformed(t *testing.T) {
	good := vmod{}.encode()
	for name, b := range map[string][]byte{
		"not wasm":          []byte("hello world"),
		"truncated section": good[:len(magic)+2],
		"truncated":         good[:len(good)-20],
		"bad global":        vmod{globals: [][]byte{{TypeI32, 1, opI32Const}}}.encode(),
	} {
		if _, err := SnapshotVariant(b, "snap:"); err == nil || errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: err = %v, want a malformed-module error", name, err)
		}
	}
}

func FuzzSnapshotVariant(f *testing.F) {
	f.Add(vmod{start: true}.encode())
	f.Add(vmod{dataCnt: true}.encode())
	f.Fuzz(func(t *testing.T, wasm []byte) {
		v, err := SnapshotVariant(wasm, "snap:")
		if err != nil {
			return
		}
		// The variant must parse again, to the same globals.
		v2, err := SnapshotVariant(v.Wasm, "other:")
		if err != nil {
			t.Fatalf("variant does not parse again: %v", err)
		}
		if len(v2.Globals) != len(v.Globals) || len(v2.Data) != 0 || v2.Start != "" {
			t.Fatalf("variant of the variant: %+v, first %+v", v2, v)
		}
	})
}
