package wasmstore

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestPutGetListRemove(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a, b := []byte("\x00asm version a"), []byte("\x00asm version b")
	da, err := s.Put(a)
	if err != nil {
		t.Fatal(err)
	}
	if da != Digest(a) || !strings.HasPrefix(da, "sha256:") {
		t.Fatalf("Put returned %q, want %q", da, Digest(a))
	}
	if again, err := s.Put(a); err != nil || again != da {
		t.Fatalf("second Put: %q, %v", again, err)
	}
	db, _ := s.Put(b)
	if got, err := s.Get(da); err != nil || string(got) != string(a) {
		t.Fatalf("Get a: %q, %v", got, err)
	}
	list, err := s.List()
	if err != nil || len(list) != 2 {
		t.Fatalf("List: %v, %v", list, err)
	}
	if err := s.Remove(db); err != nil {
		t.Fatal(err)
	}
	if s.Has(db) || !s.Has(da) {
		t.Fatalf("after Remove(b): Has(a)=%v Has(b)=%v", s.Has(da), s.Has(db))
	}
	if _, err := s.Get(db); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a removed digest: %v, want ErrNotFound", err)
	}
	if err := s.Remove(db); err != nil {
		t.Fatalf("removing twice: %v", err)
	}
}

func TestGetDetectsCorruption(t *testing.T) {
	s, _ := Open(t.TempDir())
	d, _ := s.Put([]byte("original bytes"))
	p, _ := s.Path(d)
	if err := os.WriteFile(p, []byte("flipped bytes!"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := s.Get(d)
	if err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("Get of a corrupted file: %v, want an error saying it is corrupt", err)
	}
	if s.Has(d) {
		t.Fatal("Has of a corrupted file: true, want false (callers would load it by path)")
	}
	if _, err := s.Put([]byte("original bytes")); err != nil {
		t.Fatalf("Put over a corrupted file: %v", err)
	}
	if got, err := s.Get(d); err != nil || string(got) != "original bytes" {
		t.Fatalf("Get after Put repaired it: %q, %v", got, err)
	}
}

func TestParseDigestRejects(t *testing.T) {
	for _, bad := range []string{"", "sha256:", "md5:" + strings.Repeat("a", 64), "sha256:" + strings.Repeat("A", 64), "sha256:" + strings.Repeat("g", 64), "sha256:../../etc/passwd"} {
		if _, err := ParseDigest(bad); err == nil {
			t.Errorf("ParseDigest(%q) accepted it", bad)
		}
	}
	s, _ := Open(t.TempDir())
	if _, err := s.Get("sha256:../../x"); err == nil {
		t.Error("Get accepted a path as a digest")
	}
}
