//go:build linux

package linmem

import (
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"sync"
	"syscall"
	"unsafe"

	"github.com/tetratelabs/wazero/experimental"
)

// Image is the initial contents of linear memories, kept in a memory file
// (memfd) and mapped privately, copy-on-write, into every memory made by its
// Allocator: making a memory copies nothing, the pages the guest only reads
// stay shared by all the memories, and a page is copied when the guest
// first writes it (a ~1 µs fault) instead of all of them up front.
//
// It is safe for concurrent use. Close releases the file; memories made from
// the image keep their mapping and work on.
type Image struct {
	f    *os.File
	fd   uintptr
	size uint64 // a multiple of the page size

	// view is the image's contents, mapped shared and read-only: what Reset copies
	// back. pagemap is this process's /proc/self/pagemap, from which Reset learns
	// which pages of a memory are its own copies. Either is nil when the kernel
	// refused it; Reset then maps the image anew instead.
	view        []byte
	pagemap     *os.File
	viewCleanup runtime.Cleanup

	// mu guards fd against Close while a memory is being mapped: a closed
	// descriptor's number may be reused by another file at once.
	mu     sync.RWMutex
	closed bool
}

// NewImage makes an image of size bytes (a multiple of the page size), zeros
// but for the chunks. Zeros cost no memory: the file has holes there.
func NewImage(size uint64, chunks []Chunk) (*Image, error) {
	if sysMemfdCreate == 0 {
		return nil, ErrNoImages
	}
	if size == 0 || size != roundUp(size) || size > 1<<40 {
		return nil, fmt.Errorf("linmem: image size %d is not a positive multiple of the page size", size)
	}
	name := []byte("obelisk-memory-image\x00")
	fd, _, errno := syscall.Syscall(sysMemfdCreate, uintptr(unsafe.Pointer(&name[0])), mfdCloexec|mfdAllowSealing, 0)
	if errno != 0 {
		return nil, fmt.Errorf("linmem: memfd_create: %w", errno)
	}
	f := os.NewFile(fd, "obelisk-memory-image")
	img := &Image{f: f, fd: fd, size: size}
	if err := img.fill(chunks); err != nil {
		f.Close()
		return nil, err
	}
	if view, err := syscall.Mmap(int(fd), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED); err == nil {
		if pm, err := os.Open("/proc/self/pagemap"); err == nil {
			img.view, img.pagemap = view, pm
			// Images are usually dropped, not closed (their memories may outlive
			// them): the files close themselves when collected, the view is
			// unmapped here. Close unmaps it first when it is called.
			img.viewCleanup = runtime.AddCleanup(img, func(view []byte) { _ = syscall.Munmap(view) }, view)
		} else {
			_ = syscall.Munmap(view)
		}
	}
	return img, nil
}

func (img *Image) fill(chunks []Chunk) error {
	if err := img.f.Truncate(int64(img.size)); err != nil {
		return fmt.Errorf("linmem: sizing image: %w", err)
	}
	for _, c := range chunks {
		if c.Offset+uint64(len(c.Data)) > img.size {
			return fmt.Errorf("linmem: image chunk [%d, +%d) beyond %d bytes", c.Offset, len(c.Data), img.size)
		}
		if _, err := img.f.WriteAt(c.Data, int64(c.Offset)); err != nil {
			return fmt.Errorf("linmem: writing image: %w", err)
		}
	}
	// Seal the file: nothing, not even a bug here, can change the contents
	// every memory shares.
	if _, _, errno := syscall.Syscall(syscall.SYS_FCNTL, img.fd, fAddSeals, fSealShrink|fSealGrow|fSealWrite|fSealSeal); errno != 0 {
		return fmt.Errorf("linmem: sealing image: %w", errno)
	}
	return nil
}

// Size returns the size of the image in bytes.
func (img *Image) Size() uint64 { return img.size }

// Close releases the image's file. Memories made from it are not affected;
// memories made from it afterwards are zeroed, not the image: the caller
// must not make any.
func (img *Image) Close() error {
	img.mu.Lock()
	defer img.mu.Unlock()
	if img.closed {
		return nil
	}
	img.closed = true
	if img.view != nil {
		img.viewCleanup.Stop()
		_ = syscall.Munmap(img.view)
		_ = img.pagemap.Close()
		img.view, img.pagemap = nil, nil
	}
	return img.f.Close()
}

// Allocator returns an allocator whose memories start with the image's
// contents in their first Size bytes (the rest zeros, as usual) instead of
// zeros: a memory's first Reallocate calls, up to Size bytes, reveal them.
func (img *Image) Allocator() experimental.MemoryAllocator {
	return experimental.MemoryAllocatorFunc(img.allocate)
}

func (img *Image) allocate(capBytes, maxBytes uint64) experimental.LinearMemory {
	img.mu.RLock()
	defer img.mu.RUnlock()
	if img.closed {
		panic("linmem: memory allocated from a closed image")
	}
	reserve := roundUp(max(maxBytes, capBytes))
	if m := img.mapInto(reserve); m != nil {
		return m
	}
	// Address space exhausted (ulimit -v): a heap memory with the image
	// copied in, slower but the same.
	h := &heapMemory{buf: make([]byte, 0, max(capBytes, min(img.size, reserve)))}
	if _, err := img.f.ReadAt(h.buf[:min(img.size, reserve)], 0); err != nil {
		// Cannot happen for a sealed memfd; never hand out wrong contents.
		panic(fmt.Sprintf("linmem: reading image: %v", err))
	}
	return h
}

// mapInto reserves reserve bytes of address space and maps the image at its
// start; nil if the kernel refused.
func (img *Image) mapInto(reserve uint64) *mmapMemory {
	if reserve > 1<<40 {
		return nil
	}
	buf, err := syscall.Mmap(-1, 0, int(reserve), syscall.PROT_NONE,
		syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS|syscall.MAP_NORESERVE)
	if err != nil {
		return nil
	}
	m := &mmapMemory{buf: buf, grain: uint64(syscall.Getpagesize())}
	// Huge pages for what the memory grows beyond the image (the image's
	// own pages are the file's).
	if syscall.Madvise(buf, madvHugepage) == nil {
		m.grain = hugePage
	}
	n := min(img.size, reserve) // a smaller reservation cannot grow to the image's size anyway
	addr, _, errno := syscall.Syscall6(syscall.SYS_MMAP, uintptr(unsafe.Pointer(&buf[0])), uintptr(n),
		syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_FIXED, img.fd, 0)
	if errno != 0 || addr != uintptr(unsafe.Pointer(&buf[0])) {
		_ = syscall.Munmap(buf)
		return nil
	}
	m.accessible = n
	return m
}

const (
	mfdCloexec      = 0x1
	mfdAllowSealing = 0x2
	fAddSeals       = 1033
	fSealSeal       = 0x1
	fSealShrink     = 0x2
	fSealGrow       = 0x4
	fSealWrite      = 0x8
)

// Reset makes mem, a memory this image's allocator made, hold the image's contents
// again. mem must not have been grown beyond the image's size, and nothing may use it
// during the call. It reports false when mem is not such a memory (then nothing
// changed).
//
// A run writes much the same few dozen pages every time, so the cheap reset is to copy
// the image back over the pages the memory owns (its copy-on-write copies, which
// /proc/self/pagemap tells apart from the image's shared pages) and keep them: the next
// run then writes them without a fault. Each fault (~3 µs in a VM) and each remap
// (which flushes the TLB of every CPU the process runs on) costs more than copying a
// page (~0.3 µs). When the kernel does not say, or the memory owns more than
// maxKeptPages, the image is mapped anew instead, which drops every copy at once.
func (img *Image) Reset(mem experimental.LinearMemory) bool {
	m, ok := mem.(*mmapMemory)
	if !ok || m.buf == nil || m.accessible < img.size {
		return false
	}
	img.mu.RLock()
	defer img.mu.RUnlock()
	if img.closed {
		return false
	}
	if img.view != nil && img.copyBack(m) {
		return true
	}
	addr, _, errno := syscall.Syscall6(syscall.SYS_MMAP, uintptr(unsafe.Pointer(&m.buf[0])), uintptr(img.size),
		syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_FIXED, img.fd, 0)
	return errno == 0 && addr == uintptr(unsafe.Pointer(&m.buf[0]))
}

// maxKeptPages bounds the pages a reset memory keeps (1 MiB of 4 KiB pages): a memory
// waiting on a free list for its next run holds them.
const maxKeptPages = 256

// Bits of a /proc/PID/pagemap entry (Documentation/admin-guide/mm/pagemap.rst). They
// are given to unprivileged processes too; only the frame numbers are not.
const (
	pmPresent = 1 << 63
	pmSwapped = 1 << 62 // also migration entries: anything the page table holds but not a frame
	pmFile    = 1 << 61 // a page of the file (the image) or shared memory, not the mapping's own copy
)

// copyBack copies the image over the pages of m's first Size bytes that m owns, and
// reports whether it did; false leaves m as it was.
//
// Invariant it relies on: a page of a private mapping of the sealed image holds the
// image's bytes unless it is the mapping's own (anonymous) page. A page table entry
// says which: not present and not swapped (the next access reads the image), present
// and a file page (the image's page, shared), or else the mapping's own, present or
// swapped out. The zero page, which a read of a hole may map, counts as owned: copying
// zeros over it is merely unneeded.
func (img *Image) copyBack(m *mmapMemory) bool {
	page := uint64(syscall.Getpagesize())
	pages := img.size / page
	if uint64(cap(m.pagemapBuf)) < pages*8 {
		m.pagemapBuf = make([]byte, pages*8)
	}
	entries := m.pagemapBuf[:pages*8]
	start := uint64(uintptr(unsafe.Pointer(&m.buf[0])))
	if n, err := syscall.Pread(int(img.pagemap.Fd()), entries, int64(start/page*8)); err != nil || n != len(entries) {
		return false
	}
	owned := 0
	for p := range pages {
		if ownedPage(entries, p) {
			if owned++; owned > maxKeptPages {
				return false
			}
		}
	}
	// Copy runs of owned pages: fewer, longer copies.
	for p := uint64(0); p < pages; {
		if !ownedPage(entries, p) {
			p++
			continue
		}
		end := p + 1
		for ; end < pages; end++ {
			if !ownedPage(entries, end) {
				break
			}
		}
		copy(m.buf[p*page:end*page], img.view[p*page:end*page])
		p = end
	}
	return true
}

// ownedPage reports whether pagemap entry p of entries is a page of the mapping's own.
func ownedPage(entries []byte, p uint64) bool {
	e := binary.LittleEndian.Uint64(entries[p*8:])
	return e&pmSwapped != 0 || e&(pmPresent|pmFile) == pmPresent
}
