// Package linmem backs WebAssembly linear memories with memory mapped outside
// the Go heap.
//
// wazero's default linear memory is a Go []byte: every grow copies it into a
// larger slice and zeroes the new part, and the garbage it leaves paces the
// Go GC, whose stop-the-world phases must wait for running guest code to
// return to Go. A Go guest grows its memory from ~3 MiB to ~8 MiB while it
// initialises, so that is a large part of instantiating it.
//
// Here each memory of 2 MiB or more (smaller ones stay on the Go heap)
// reserves its maximum size of address space once (no
// physical memory, no commit charge) and makes pages accessible as it grows:
// the buffer never moves, growing copies nothing, and the kernel hands out
// zeroed pages on first touch. Free returns everything to the kernel at once.
//
// An Image gives memories initial contents without copying them: it maps a
// sealed memory file holding them privately (copy-on-write) at the start of
// each memory's reservation. wasmhost restores workflow instances from a
// snapshot of an initialised one this way.
//
// The caller must guarantee that no guest code or host function uses the
// memory after Free (wasmhost only closes an instance when nothing runs in it):
// unlike a Go slice, an unmapped buffer faults.
package linmem

import "github.com/tetratelabs/wazero/experimental"

// heapMemory is the fallback: a Go slice, as wazero does by default.
type heapMemory struct{ buf []byte }

func (h *heapMemory) Reallocate(size uint64) []byte {
	if size <= uint64(cap(h.buf)) {
		h.buf = h.buf[:size]
		return h.buf
	}
	nb := make([]byte, size, max(size, 2*uint64(cap(h.buf))))
	copy(nb, h.buf)
	h.buf = nb
	return h.buf
}

func (h *heapMemory) Free() { h.buf = nil }

var _ experimental.LinearMemory = (*heapMemory)(nil)

// HeapAllocator returns an allocator of memories on the Go heap, as wazero
// makes them without an allocator: for a caller that wraps an allocator where
// the platform has no other.
func HeapAllocator() experimental.MemoryAllocator {
	return experimental.MemoryAllocatorFunc(func(capBytes, _ uint64) experimental.LinearMemory {
		return &heapMemory{buf: make([]byte, 0, capBytes)}
	})
}
