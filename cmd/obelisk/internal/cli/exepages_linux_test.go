package cli

import (
	"os"
	"strings"
	"testing"
)

// exeRSS returns the resident bytes of the test binary's private read-only mappings.
func exeRSS(t *testing.T) int64 {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	maps, err := readOnlyMappings(f, exe)
	if err != nil {
		t.Fatal(err)
	}
	if len(maps) == 0 {
		t.Fatalf("no read-only mapping of %s in /proc/self/smaps", exe)
	}
	var rss int64
	for _, m := range maps {
		rss += m.rss
	}
	return rss
}

// Releasing the executable's pages leaves fewer of them resident, and the process runs
// on (its code is mapped again as it runs).
func TestReleaseExecutablePages(t *testing.T) {
	before := exeRSS(t)
	released, err := releaseExecutablePages()
	if err != nil {
		t.Fatal(err)
	}
	after := exeRSS(t)
	t.Logf("resident %d KiB before, %d KiB released, %d KiB after", before>>10, released>>10, after>>10)
	if released <= 0 || after >= before {
		t.Errorf("resident %d bytes before, %d after (released %d): nothing was released", before, after, released)
	}
	if !strings.Contains(strings.Repeat("x", 3), "xx") { // code and data still work
		t.Fatal("strings stopped working")
	}
}

// readOnlyMappings keeps the private read-only mappings of the file, and leaves out one
// that holds a private copy of a page.
func TestReadOnlyMappings(t *testing.T) {
	smaps := `00400000-00402000 r--p 00000000 fe:00 1 /bin/obelisk
Rss:                   8 kB
Anonymous:             0 kB
00402000-01ada000 r-xp 00002000 fe:00 1 /bin/obelisk
Rss:               20664 kB
Anonymous:             4 kB
01ada000-03348000 r--p 016da000 fe:00 1 /bin/obelisk
Rss:               24984 kB
Anonymous:             0 kB
03349000-03402000 rw-p 02f48000 fe:00 1 /bin/obelisk
Rss:                 608 kB
Anonymous:           600 kB
7f0000000000-7f0000001000 r--p 00000000 fe:00 2 /lib/libc.so.6
Rss:                   4 kB
Anonymous:             0 kB
7f0000002000-7f0000003000 r-xp 00000000 00:00 0
Rss:                   4 kB
`
	got, err := readOnlyMappings(strings.NewReader(smaps), "/bin/obelisk")
	if err != nil {
		t.Fatal(err)
	}
	want := []mapping{{0x00400000, 0x00402000, 8 << 10}, {0x01ada000, 0x03348000, 24984 << 10}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("mapping %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}
