//go:build linux

package linmem

import (
	"syscall"

	"github.com/tetratelabs/wazero/experimental"
)

// Supported reports whether this platform has the mmap allocator.
const Supported = true

// Allocator returns the mmap-backed allocator.
func Allocator() experimental.MemoryAllocator {
	return experimental.MemoryAllocatorFunc(allocate)
}

func allocate(capBytes, maxBytes uint64) experimental.LinearMemory {
	reserve := roundUp(maxBytes)
	// Small memories stay on the Go heap: for them a mapping costs more
	// (mmap, mprotect, fault, munmap: ~40 µs) than it saves.
	if capBytes < hugePage || reserve > 1<<40 {
		return &heapMemory{buf: make([]byte, 0, capBytes)}
	}
	buf, err := syscall.Mmap(-1, 0, int(reserve), syscall.PROT_NONE,
		syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS|syscall.MAP_NORESERVE)
	if err != nil {
		// Address space exhausted (ulimit -v): fall back to the Go heap.
		return &heapMemory{buf: make([]byte, 0, capBytes)}
	}
	m := &mmapMemory{buf: buf, grain: uint64(syscall.Getpagesize())}
	// Ask for transparent huge pages: a Go guest starts at ~3 MiB and touches
	// ~4 MiB while it initialises, and (in a VM especially) two 2 MiB faults
	// cost far less than a thousand 4 KiB ones. Best effort: THP may be
	// disabled.
	if syscall.Madvise(buf, madvHugepage) == nil {
		m.grain = hugePage
	}
	return m
}

const (
	madvHugepage = 14 // MADV_HUGEPAGE
	hugePage     = 2 << 20
)

// mmapMemory is a reservation of len(buf) bytes of which the first
// accessible bytes are readable and writable.
type mmapMemory struct {
	buf        []byte
	accessible uint64
	grain      uint64 // accessible grows in multiples of this: the page size, or the huge page size
	pagemapBuf []byte // Image.Reset's, kept for the next reset
}

func (m *mmapMemory) Reallocate(size uint64) []byte {
	if size > uint64(len(m.buf)) {
		return nil
	}
	if size > m.accessible {
		// Whole (huge) pages, so that the kernel can back them with one.
		end := min((size+m.grain-1)&^(m.grain-1), uint64(len(m.buf)))
		if err := syscall.Mprotect(m.buf[m.accessible:end], syscall.PROT_READ|syscall.PROT_WRITE); err != nil {
			return nil // wazero reports a failed grow to the guest
		}
		m.accessible = end
	}
	return m.buf[:size:size]
}

func (m *mmapMemory) Free() {
	if m.buf != nil {
		_ = syscall.Munmap(m.buf)
		m.buf = nil
	}
}

func roundUp(n uint64) uint64 {
	page := uint64(syscall.Getpagesize())
	return (n + page - 1) &^ (page - 1)
}
