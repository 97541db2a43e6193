package linmem

import (
	"bytes"
	"testing"
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

func TestHeapFallback(t *testing.T) {
	h := &heapMemory{}
	b := h.Reallocate(10)
	copy(b, "0123456789")
	b = h.Reallocate(100)
	if len(b) != 100 || string(b[:10]) != "0123456789" {
		t.Fatalf("heap grow: %q", b[:10])
	}
	if b = h.Reallocate(50); len(b) != 50 {
		t.Fatal("shrink")
	}
	h.Free()
}
