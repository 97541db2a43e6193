package harness

import (
	"io/fs"
	"path/filepath"
	"testing"
)

// DirSize returns the sum of the sizes of the files under dir (a data directory's
// footprint, before and after something that should or should not grow it).
func DirSize(tb testing.TB, dir string) int64 {
	tb.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		n += info.Size()
		return nil
	})
	if err != nil {
		tb.Fatalf("size of %s: %v", dir, err)
	}
	return n
}
