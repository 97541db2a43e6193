//go:build linux

package linmem

import (
	"syscall"
	"unsafe"

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

// madvPopulateWrite is MADV_POPULATE_WRITE (Linux 5.14).
const madvPopulateWrite = 23

// Populate makes the whole pages within b, a part of a memory this package made (or any
// other), present and writable at once, as writing each would, but in one system call
// instead of a fault per page: for a caller about to overwrite many pages (a resumed
// instance's memory: about half the cost per page in a VM). Best effort: an older kernel
// or memory it does not apply to just faults on the writes, as before.
func Populate(b []byte) {
	if len(b) == 0 {
		return
	}
	page := uintptr(syscall.Getpagesize())
	start := uintptr(unsafe.Pointer(&b[0]))
	first := (start + page - 1) &^ (page - 1)
	last := (start + uintptr(len(b))) &^ (page - 1)
	if last <= first {
		return
	}
	_ = syscall.Madvise(b[first-start:last-start], madvPopulateWrite)
}
