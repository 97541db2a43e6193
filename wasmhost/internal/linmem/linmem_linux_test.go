//go:build linux

package linmem

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

func TestLinearMemory(t *testing.T) {
	alloc := Allocator()
	if alloc == nil {
		if Supported {
			t.Fatal("Supported but no allocator")
		}
		t.Skip("no mmap allocator on this platform")
	}
	const page = 64 << 10
	if _, ok := alloc.Allocate(page, 1024*page).(*heapMemory); !ok {
		t.Error("a small memory is not on the heap")
	}
	mem := alloc.Allocate(40*page, 1024*page)
	if _, ok := mem.(*mmapMemory); !ok {
		t.Fatalf("a large memory is a %T", mem)
	}
	buf := mem.Reallocate(page)
	if len(buf) != page || cap(buf) != page {
		t.Fatalf("len %d cap %d", len(buf), cap(buf))
	}
	if !bytes.Equal(buf, make([]byte, page)) {
		t.Fatal("fresh memory not zeroed")
	}
	copy(buf[page-3:], "abc")
	grown := mem.Reallocate(300 * page)
	if len(grown) != 300*page || &grown[0] != &buf[0] {
		t.Fatal("grow moved or mis-sized the buffer")
	}
	if string(grown[page-3:page]) != "abc" {
		t.Fatal("grow lost the contents")
	}
	grown[len(grown)-1] = 1 // accessible to the end
	if mem.Reallocate(1025*page) != nil {
		t.Fatal("grew past max")
	}
	mem.Free()
	mem.Free() // idempotent
}

func TestImage(t *testing.T) {
	const page = 64 << 10
	size := uint64(40 * page)
	chunks := []Chunk{{Offset: 0, Data: []byte("start")}, {Offset: 3*page + 17, Data: bytes.Repeat([]byte{7}, 2*page)}, {Offset: size - 3, Data: []byte("end")}}
	img, err := NewImage(size, chunks)
	if err != nil {
		t.Fatal(err)
	}
	if img.Size() != size {
		t.Errorf("Size = %d", img.Size())
	}
	want := make([]byte, size)
	for _, c := range chunks {
		copy(want[c.Offset:], c.Data)
	}
	alloc := img.Allocator()
	a := alloc.Allocate(page, 1024*page)
	b := alloc.Allocate(page, 1024*page)
	if _, ok := a.(*mmapMemory); !ok {
		t.Fatalf("memory from an image is a %T", a)
	}
	bufA := a.Reallocate(page) // what wazero does first: the module's minimum
	if len(bufA) != page || string(bufA[:5]) != "start" {
		t.Fatalf("first page %q...", bufA[:5])
	}
	bufA = a.Reallocate(size)
	bufB := b.Reallocate(size)
	if !bytes.Equal(bufA, want) || !bytes.Equal(bufB, want) {
		t.Fatal("memories do not start with the image")
	}
	// Copy-on-write: a write is the memory's own.
	copy(bufA[3*page+17:], "mine")
	if !bytes.Equal(bufB, want) {
		t.Error("a write to one memory shows in another")
	}
	if c := alloc.Allocate(page, 1024*page).Reallocate(size); !bytes.Equal(c, want) {
		t.Error("a write to a memory changed the image")
	}
	// Beyond the image: zeros, and the buffer does not move.
	grown := a.Reallocate(size + 100*page)
	if &grown[0] != &bufA[0] || string(grown[3*page+17:][:4]) != "mine" || !bytes.Equal(grown[size:], make([]byte, 100*page)) {
		t.Error("growing past the image")
	}
	grown[len(grown)-1] = 1
	if err := img.Close(); err != nil {
		t.Fatal(err)
	}
	// Memories outlive the image's file.
	if bufB[size-1] != 'd' {
		t.Error("memory lost its contents when the image closed")
	}
	bufB[0] = 'S'
	a.Free()
	b.Free()
}

func TestImageFallbacks(t *testing.T) {
	const page = 64 << 10
	img, err := NewImage(4*page, []Chunk{{Offset: page, Data: []byte("x")}})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	// No address space for the reservation: a heap memory, same contents.
	h := img.allocate(page, 1<<41)
	if _, ok := h.(*heapMemory); !ok {
		t.Fatalf("got a %T", h)
	}
	if buf := h.Reallocate(4 * page); buf[page] != 'x' || len(buf) != 4*page {
		t.Error("heap fallback lacks the image")
	}
	// A maximum smaller than the image: only what fits is mapped.
	m := img.allocate(page, 2*page)
	if buf := m.Reallocate(2 * page); len(buf) != 2*page || buf[page] != 'x' {
		t.Error("small memory")
	}
	if m.Reallocate(3*page) != nil {
		t.Error("grew past the maximum")
	}
	m.Free()

	for _, size := range []uint64{0, 1000} {
		if _, err := NewImage(size, nil); err == nil {
			t.Errorf("NewImage(%d) succeeded", size)
		}
	}
	if _, err := NewImage(page, []Chunk{{Offset: page - 1, Data: []byte("xy")}}); err == nil {
		t.Error("chunk beyond the image accepted")
	}
}

func TestImageReset(t *testing.T) {
	page := syscall.Getpagesize()
	size := uint64(2 * maxKeptPages * page)
	chunks := []Chunk{{Offset: 0, Data: bytes.Repeat([]byte{1}, 3*page)}, {Offset: size - 5, Data: []byte("image")}}
	want := make([]byte, size)
	for _, c := range chunks {
		copy(want[c.Offset:], c.Data)
	}
	for _, copying := range []bool{true, false} {
		t.Run(fmt.Sprintf("copying=%v", copying), func(t *testing.T) {
			img, err := NewImage(size, chunks)
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			if copying && img.view == nil {
				t.Skip("the kernel gives no pagemap here")
			}
			if !copying && img.view != nil {
				img.viewCleanup.Stop()
				_ = syscall.Munmap(img.view)
				img.view = nil
			}
			mem := img.Allocator().Allocate(size, 2*size)
			defer mem.Free()
			buf := mem.Reallocate(size)
			// A run: reads some pages (they stay the image's), writes others, some of
			// which were holes in the image.
			var sum byte
			for p := 10; p < 20; p++ {
				sum += buf[p*page]
			}
			_ = sum
			for _, p := range []int{0, 2, 3, 50, 51, 52} {
				buf[p*page+7] = 9
			}
			if !img.Reset(mem) {
				t.Fatal("Reset failed")
			}
			if !bytes.Equal(buf, want) {
				t.Fatal("after Reset the memory is not the image")
			}
			if got := ownedPages(t, buf); copying && got != 6 || !copying && got != 0 {
				t.Errorf("after Reset the memory owns %d pages", got)
			}
			// A run that writes more than a reset keeps: the image is mapped anew.
			for p := range maxKeptPages + 1 {
				buf[p*page+1] = 8
			}
			if !img.Reset(mem) || !bytes.Equal(buf, want) {
				t.Fatal("Reset after a big run")
			}
			if got := ownedPages(t, buf); got != 0 {
				t.Errorf("after a big run's Reset the memory owns %d pages", got)
			}
		})
	}
}

// ownedPages counts the pages of buf that its mapping owns (copy-on-write copies).
func ownedPages(t *testing.T, buf []byte) int {
	f, err := os.Open("/proc/self/pagemap")
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	page := syscall.Getpagesize()
	pages := len(buf) / page
	entries := make([]byte, pages*8)
	if _, err := f.ReadAt(entries, int64(uintptr(unsafe.Pointer(&buf[0]))/uintptr(page)*8)); err != nil {
		t.Fatal(err)
	}
	n := 0
	for p := range pages {
		if ownedPage(entries, uint64(p)) {
			n++
		}
	}
	return n
}

// TestImageDroppedUnmapsView: an image dropped without Close releases its view of the
// file once collected.
func TestImageDroppedUnmapsView(t *testing.T) {
	img, err := NewImage(uint64(64*syscall.Getpagesize()), []Chunk{{Offset: 0, Data: []byte("x")}})
	if err != nil {
		t.Fatal(err)
	}
	if img.view == nil {
		t.Skip("the kernel gives no pagemap here")
	}
	start := uintptr(unsafe.Pointer(&img.view[0]))
	img = nil
	for range 50 {
		runtime.GC()
		if !mapped(t, start) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Error("the view of a dropped image is still mapped")
}

// mapped reports whether addr starts a mapping in /proc/self/maps.
func mapped(t *testing.T, addr uintptr) bool {
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Skip(err)
	}
	return bytes.Contains(maps, fmt.Appendf(nil, "\n%x-", addr)) || bytes.HasPrefix(maps, fmt.Appendf(nil, "%x-", addr))
}

// TestPopulate: populating part of a memory mapped from an image (unaligned bounds
// included) changes nothing the guest sees: the image's bytes stay, beyond it zeros,
// and the pages are then the memory's own, as a write would have made them.
func TestPopulate(t *testing.T) {
	const page = 64 << 10
	size := uint64(4 * page)
	img, err := NewImage(size, []Chunk{{Offset: 0, Data: bytes.Repeat([]byte{9}, int(size))}})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	mem := img.Allocator().Allocate(size, 64*page)
	defer mem.Free()
	buf := mem.Reallocate(6 * page)
	Populate(buf[100 : 5*page+7])
	Populate(nil)
	Populate(buf[10:20]) // within one page: nothing whole
	if !bytes.Equal(buf[:size], bytes.Repeat([]byte{9}, int(size))) || !bytes.Equal(buf[size:], make([]byte, 2*page)) {
		t.Fatal("populating changed the memory's contents")
	}
	if err := syscall.Madvise(buf[:4096], madvPopulateWrite); err != nil {
		t.Skipf("the kernel does not populate (%v): writes fault as before", err)
	}
	m := mem.(*mmapMemory)
	owned := 0
	entries := make([]byte, 8*(size/4096))
	if _, err := syscall.Pread(int(img.pagemap.Fd()), entries, int64(uintptr(unsafe.Pointer(&m.buf[0]))/4096*8)); err != nil {
		t.Skipf("pagemap: %v", err)
	}
	for p := range size / 4096 {
		if ownedPage(entries, p) {
			owned++
		}
	}
	if owned < int(size/4096)-2 {
		t.Errorf("%d of the image's %d pages are the memory's own after populating, want all but the partial first", owned, size/4096)
	}
}
