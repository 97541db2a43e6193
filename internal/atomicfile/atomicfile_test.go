package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

// Write creates the folder, replaces an existing file whole, sets the permissions and
// leaves no temporary file behind.
func TestWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "f.json")
	for _, content := range []string{"first", "second, longer"} {
		if err := Write(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != content {
			t.Fatalf("read back %q, %v; want %q", got, err, content)
		}
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v, %v; want 0644", fi.Mode().Perm(), err)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil || len(entries) != 1 {
		t.Fatalf("folder holds %v (%v), want only the file", entries, err)
	}
}
