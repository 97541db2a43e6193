package kvconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/events"
)

// TestBucket: a bucket flattens its file's tables into dotted keys, pages through them
// in key order, and reads the file again when it changes.
func TestBucket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "b.toml")
	write := func(s string, mtime time.Time) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now().Add(-time.Hour)
	write("a = \"x\"\nn = 7\nlist = [1, 2]\n[db]\nhost = \"h\"\n[db.pool]\nsize = 3\n", start)
	b, err := Open("cfg", path)
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"a": "x", "n": "7", "list": "[1,2]", "db.host": "h", "db.pool.size": "3"} {
		if v, ok, err := b.Get(key); err != nil || !ok || v != want {
			t.Errorf("Get(%q) = %q, %v, %v; want %q", key, v, ok, err, want)
		}
	}
	if _, ok, err := b.Get("db"); ok || err != nil {
		t.Errorf("Get(a table) = %v, %v; want not set", ok, err)
	}
	page, cursor, err := b.List("db.", "", 1)
	if err != nil || len(page) != 1 || page[0] != (events.KVEntry{Key: "db.host", Value: "h"}) || cursor != "db.host" {
		t.Fatalf("List(db., 1) = %v, %q, %v", page, cursor, err)
	}
	page, cursor, err = b.List("db.", cursor, 1)
	if err != nil || len(page) != 1 || page[0].Key != "db.pool.size" || cursor != "" {
		t.Fatalf("List(db., after db.host) = %v, %q, %v", page, cursor, err)
	}

	write("a = \"y\"\n", start.Add(time.Minute))
	if v, _, err := b.Get("a"); err != nil || v != "y" {
		t.Errorf("after the file changed: Get(a) = %q, %v", v, err)
	}
	if _, ok, _ := b.Get("n"); ok {
		t.Error("a key removed from the file is still set")
	}
	write("= nope", start.Add(2*time.Minute))
	if _, _, err := b.Get("a"); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("after the file broke: err = %v, want one naming %s", err, path)
	}
}

// TestOpenRefusesBadFiles: a missing or malformed file is refused, naming the bucket.
func TestOpenRefusesBadFiles(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.toml")
	if err := os.WriteFile(bad, []byte("= nope"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(t.TempDir(), "missing.toml"), bad} {
		if _, err := Open("cfg", path); err == nil || !strings.Contains(err.Error(), `kv_config bucket "cfg"`) || !strings.Contains(err.Error(), path) {
			t.Errorf("Open(%s) = %v", path, err)
		}
	}
}
