package wasmbin

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
)

type seg struct {
	flags  byte // 0 active, 1 passive
	offset int32
	expr   []byte // overrides i32.const offset
	data   string
}

func section(id byte, body []byte) []byte {
	return append(append([]byte{id}, appendU32(nil, uint32(len(body)))...), body...)
}

// module builds a module with one memory of 1 page, exported, and the given
// data segments; dataCount adds a data count section.
func module(segs []seg, dataCount bool) []byte {
	out := append([]byte(nil), magic...)
	out = append(out, section(5, []byte{1, 0x00, 1})...)                              // memory min 1
	out = append(out, section(7, append(append([]byte{1, 6}, "memory"...), 2, 0))...) // export memory
	if dataCount {
		out = append(out, section(sectionDataCount, appendU32(nil, uint32(len(segs))))...)
	}
	body := appendU32(nil, uint32(len(segs)))
	for _, s := range segs {
		body = append(body, s.flags)
		if s.flags == 0 {
			if s.expr != nil {
				body = append(body, s.expr...)
			} else {
				body = append(body, opI32Const)
				body = appendS32(body, s.offset)
				body = append(body, opEnd)
			}
		}
		body = appendU32(body, uint32(len(s.data)))
		body = append(body, s.data...)
	}
	out = append(out, section(sectionData, body)...)
	return append(out, section(0, append([]byte{4}, "tailx"...))...) // a custom section after data
}

// memoryOf instantiates wasm and returns its memory.
func memoryOf(t *testing.T, wasm []byte) []byte {
	t.Helper()
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	m, err := r.Instantiate(ctx, wasm)
	if err != nil {
		t.Fatalf("instantiate: %v", err)
	}
	b, _ := m.Memory().Read(0, m.Memory().Size())
	return bytes.Clone(b)
}

func TestMergeData(t *testing.T) {
	tests := []struct {
		name      string
		segs      []seg
		dataCount bool
		gap       int
		merged    bool
		after     int
	}{
		{name: "adjacent and small gaps", segs: []seg{{offset: 10, data: "abc"}, {offset: 13, data: "def"}, {offset: 20, data: "gh"}, {offset: 1000, data: "far"}},
			gap: 16, merged: true, after: 2},
		{name: "unordered", segs: []seg{{offset: 500, data: "late"}, {offset: 0, data: "early"}}, gap: 1 << 20, merged: true, after: 1},
		{name: "overlapping: later wins", segs: []seg{{offset: 10, data: "aaaaaa"}, {offset: 12, data: "BB"}, {offset: 8, data: "cc"}}, gap: 0, merged: true, after: 1},
		{name: "gap larger than maxGap", segs: []seg{{offset: 100, data: "x"}, {offset: 200, data: "y"}}, gap: 98, merged: true, after: 2},
		{name: "gap equal to maxGap", segs: []seg{{offset: 100, data: "x"}, {offset: 200, data: "y"}}, gap: 99, merged: true, after: 1},
		{name: "one segment", segs: []seg{{offset: 1, data: "x"}}, gap: 10},
		{name: "passive", segs: []seg{{offset: 1, data: "x"}, {flags: 1, data: "p"}}, gap: 10},
		{name: "data count", segs: []seg{{offset: 1, data: "x"}, {offset: 3, data: "y"}}, dataCount: true, gap: 10},
		{name: "global offset", segs: []seg{{offset: 1, data: "x"}, {expr: []byte{0x23, 0, opEnd}, data: "y"}}, gap: 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := module(tt.segs, tt.dataCount)
			out, st, ok, err := MergeData(in, tt.gap)
			if err != nil {
				t.Fatal(err)
			}
			if ok != tt.merged {
				t.Fatalf("merged = %v, want %v", ok, tt.merged)
			}
			if !ok {
				if !bytes.Equal(out, in) {
					t.Error("unmerged module changed")
				}
				return
			}
			if st.SegmentsBefore != len(tt.segs) || st.SegmentsAfter != tt.after {
				t.Errorf("stats %+v, want %d -> %d", st, len(tt.segs), tt.after)
			}
			if !bytes.HasSuffix(out, section(0, append([]byte{4}, "tailx"...))) {
				t.Error("sections after data lost")
			}
			if !bytes.Equal(memoryOf(t, out), memoryOf(t, in)) {
				t.Error("memory differs after merging")
			}
		})
	}
}

func TestMergeDataMalformed(t *testing.T) {
	good := module([]seg{{offset: 1, data: "x"}, {offset: 3, data: "y"}}, false)
	for name, b := range map[string][]byte{
		"not wasm":          []byte("hello world"),
		"truncated section": good[:len(magic)+2],
		"truncated data":    good[:len(good)-12],
	} {
		if _, _, ok, err := MergeData(b, 10); err == nil || ok {
			t.Errorf("%s: ok=%v err=%v", name, ok, err)
		}
	}
	if _, _, _, err := MergeData([]byte("\x00asm\x01\x00\x00\x00\x0b\x03\x05\x00\x41"), 10); err == nil || !strings.Contains(err.Error(), "data section") {
		t.Errorf("segment count beyond the section: %v", err)
	}
}

func TestLEB(t *testing.T) {
	for _, v := range []int32{0, 1, -1, 63, 64, -64, -65, 1 << 20, -1 << 31, 1<<31 - 1} {
		b := appendS32(nil, v)
		got, n, err := readS32(b, 0)
		if err != nil || got != v || n != len(b) {
			t.Errorf("s32 %d: %d %d %v", v, got, n, err)
		}
	}
	for _, v := range []uint32{0, 1, 127, 128, 1<<32 - 1} {
		b := appendU32(nil, v)
		got, n, err := readU32(b, 0)
		if err != nil || got != v || n != len(b) {
			t.Errorf("u32 %d: %d %d %v", v, got, n, err)
		}
	}
}

func FuzzMergeData(f *testing.F) {
	f.Add(module([]seg{{offset: 1, data: "x"}, {offset: 3, data: "y"}}, false), 4)
	f.Add(module([]seg{{offset: 7, data: "abc"}, {flags: 1, data: "p"}}, false), 0)
	f.Fuzz(func(t *testing.T, wasm []byte, gap int) {
		out, _, ok, err := MergeData(wasm, gap&0xffff)
		if (err != nil || !ok) && !bytes.Equal(out, wasm) {
			t.Fatal("module changed without a merge")
		}
	})
}
