package linmem

import "testing"

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
