// Package wasmbin rewrites WebAssembly binaries in ways that keep their
// meaning but make them cheaper to instantiate.
package wasmbin

import (
	"bytes"
	"errors"
	"fmt"
)

const (
	sectionData      = 11
	sectionDataCount = 12

	opI32Const = 0x41
	opEnd      = 0x0b

	// maxImage bounds the span of memory the data segments may cover for
	// MergeData to rewrite them.
	maxImage = 64 << 20
)

var magic = []byte("\x00asm\x01\x00\x00\x00")

// DataStats describes what MergeData did.
type DataStats struct {
	SegmentsBefore, SegmentsAfter int
	// Bytes is the number of bytes the merged segments copy at
	// instantiation (the original data plus the zero gaps filled in).
	Bytes int
}

// MergeData rewrites the data section so that active segments into memory 0
// with constant offsets become a few large segments: runs of data separated
// by at most maxGap bytes are joined, the gaps filled with zeros (what fresh
// memory holds anyway). A module compiled by Go has tens of thousands of small
// segments, and instantiating each one has a fixed cost.
//
// The module is returned unchanged (and ok false) when the rewrite could
// change its meaning or is not worth it: a data count section (memory.init
// and data.drop refer to segments by index), passive segments, offsets that
// are not i32.const, or segments spanning more than 64 MiB. err is only for
// a malformed binary.
func MergeData(wasm []byte, maxGap int) (out []byte, stats DataStats, ok bool, err error) {
	if !bytes.HasPrefix(wasm, magic) {
		return wasm, stats, false, errors.New("not a WebAssembly binary (bad magic or version)")
	}
	var dataStart, dataEnd int // the whole data section, id byte included
	for pos := len(magic); pos < len(wasm); {
		start := pos
		id := wasm[pos]
		size, n, err := readU32(wasm, pos+1)
		if err != nil {
			return wasm, stats, false, fmt.Errorf("section at offset %d: %w", start, err)
		}
		pos += 1 + n
		if uint64(pos)+uint64(size) > uint64(len(wasm)) {
			return wasm, stats, false, fmt.Errorf("section %d at offset %d overruns the binary", id, start)
		}
		switch id {
		case sectionDataCount:
			return wasm, stats, false, nil
		case sectionData:
			dataStart, dataEnd = start, pos+int(size)
		}
		pos += int(size)
	}
	if dataEnd == 0 {
		return wasm, stats, false, nil
	}
	_, n, _ := readU32(wasm, dataStart+1)
	segs, err := parseSegments(wasm[dataStart+1+n : dataEnd])
	if err != nil {
		return wasm, stats, false, fmt.Errorf("data section: %w", err)
	}
	if segs == nil || len(segs) < 2 {
		return wasm, stats, false, nil
	}
	stats.SegmentsBefore = len(segs)

	lo, hi := segs[0].offset, segs[0].offset+uint64(len(segs[0].data))
	for _, s := range segs {
		lo = min(lo, s.offset)
		hi = max(hi, s.offset+uint64(len(s.data)))
	}
	if hi-lo > maxImage {
		return wasm, stats, false, nil
	}
	// Apply the segments in order, as instantiation does, to an image of the
	// span they cover, remembering which bytes some segment wrote.
	image := make([]byte, hi-lo)
	covered := newBitset(int(hi - lo))
	for _, s := range segs {
		at := int(s.offset - lo)
		copy(image[at:], s.data)
		covered.setRange(at, at+len(s.data))
	}
	var merged []segment
	for i := 0; i < len(image); {
		if !covered.has(i) {
			i++
			continue
		}
		start, end := i, i+1 // end: past the last covered byte of the run
		for j := i + 1; j < len(image) && j-end <= maxGap; j++ {
			if covered.has(j) {
				end = j + 1
			}
		}
		merged = append(merged, segment{offset: lo + uint64(start), data: image[start:end]})
		stats.Bytes += end - start
		i = end
	}
	if merged[len(merged)-1].offset+uint64(len(merged[len(merged)-1].data)) > 1<<32 {
		return wasm, stats, false, nil
	}
	stats.SegmentsAfter = len(merged)

	var body []byte
	body = appendU32(body, uint32(len(merged)))
	for _, s := range merged {
		body = append(body, 0x00, opI32Const)
		body = appendS32(body, int32(uint32(s.offset)))
		body = append(body, opEnd)
		body = appendU32(body, uint32(len(s.data)))
		body = append(body, s.data...)
	}
	out = make([]byte, 0, len(wasm)-(dataEnd-dataStart)+len(body)+6)
	out = append(out, wasm[:dataStart]...)
	out = append(out, sectionData)
	out = appendU32(out, uint32(len(body)))
	out = append(out, body...)
	out = append(out, wasm[dataEnd:]...)
	return out, stats, true, nil
}

type bitset []uint64

func newBitset(n int) bitset { return make(bitset, (n+63)/64) }

func (b bitset) has(i int) bool { return b[i/64]&(1<<(i%64)) != 0 }

func (b bitset) setRange(from, to int) {
	for i := from; i < to; i++ {
		if i%64 == 0 && to-i >= 64 {
			b[i/64] = ^uint64(0)
			i += 63
			continue
		}
		b[i/64] |= 1 << (i % 64)
	}
}

type segment struct {
	offset uint64
	data   []byte
}

// parseSegments returns the segments if they are all active, into memory 0,
// at i32.const offsets; nil if not.
func parseSegments(b []byte) ([]segment, error) {
	count, pos, err := readU32(b, 0)
	if err != nil {
		return nil, err
	}
	if uint64(count) > uint64(len(b)) {
		return nil, fmt.Errorf("%d segments in %d bytes", count, len(b))
	}
	segs := make([]segment, 0, count)
	for i := uint32(0); i < count; i++ {
		flags, n, err := readU32(b, pos)
		if err != nil {
			return nil, fmt.Errorf("segment %d: %w", i, err)
		}
		pos += n
		if flags != 0 { // 1: passive, 2: explicit memory index
			return nil, nil
		}
		if pos >= len(b) || b[pos] != opI32Const {
			return nil, nil
		}
		off, n, err := readS32(b, pos+1)
		if err != nil {
			return nil, fmt.Errorf("segment %d offset: %w", i, err)
		}
		pos += 1 + n
		if pos >= len(b) || b[pos] != opEnd {
			return nil, nil
		}
		pos++
		size, n, err := readU32(b, pos)
		if err != nil {
			return nil, fmt.Errorf("segment %d size: %w", i, err)
		}
		pos += n
		if uint64(pos)+uint64(size) > uint64(len(b)) {
			return nil, fmt.Errorf("segment %d overruns the section", i)
		}
		segs = append(segs, segment{offset: uint64(uint32(off)), data: b[pos : pos+int(size)]})
		pos += int(size)
	}
	if pos != len(b) {
		return nil, fmt.Errorf("%d bytes after the last segment", len(b)-pos)
	}
	return segs, nil
}

func readU32(b []byte, pos int) (uint32, int, error) {
	var v uint64
	for i := 0; i < 5; i++ {
		if pos+i >= len(b) {
			return 0, 0, errors.New("unexpected end")
		}
		c := b[pos+i]
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			if v > 1<<32-1 {
				return 0, 0, errors.New("u32 overflows")
			}
			return uint32(v), i + 1, nil
		}
	}
	return 0, 0, errors.New("u32 too long")
}

func readS32(b []byte, pos int) (int32, int, error) {
	var v int64
	for i := 0; i < 5; i++ {
		if pos+i >= len(b) {
			return 0, 0, errors.New("unexpected end")
		}
		c := b[pos+i]
		v |= int64(c&0x7f) << (7 * i)
		if c < 0x80 {
			if shift := 7 * (i + 1); shift < 64 && c&0x40 != 0 {
				v |= -1 << shift
			}
			if v < -1<<31 || v > 1<<31-1 {
				return 0, 0, errors.New("s32 overflows")
			}
			return int32(v), i + 1, nil
		}
	}
	return 0, 0, errors.New("s32 too long")
}

func appendU32(b []byte, v uint32) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func appendS32(b []byte, v int32) []byte {
	x := int64(v)
	for {
		c := byte(x & 0x7f)
		x >>= 7
		if (x == 0 && c&0x40 == 0) || (x == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}
