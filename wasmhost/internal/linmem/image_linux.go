//go:build linux

package linmem

import (
	"fmt"
	"os"
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
// again: the image is mapped anew over its first Size bytes, which drops every page the
// memory wrote there (copy-on-write copies) at once. mem must not have been grown
// beyond the image's size. It reports false when mem is not such a memory (then
// nothing changed).
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
	addr, _, errno := syscall.Syscall6(syscall.SYS_MMAP, uintptr(unsafe.Pointer(&m.buf[0])), uintptr(img.size),
		syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_FIXED, img.fd, 0)
	return errno == 0 && addr == uintptr(unsafe.Pointer(&m.buf[0]))
}
