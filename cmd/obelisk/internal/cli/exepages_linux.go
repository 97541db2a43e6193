package cli

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// releaseExecutablePages hands the pages of the executable's code and read-only data
// back to the kernel (MADV_PAGEOUT), after marking them to be read back one page at a
// time (MADV_RANDOM) and never mapped in 2 MiB pages (MADV_NOHUGEPAGE), so that only the
// pages the server goes on to use count in its resident memory. It returns how many
// resident bytes it released (0 when the kernel refused: see below).
//
// Why: Linux keeps a freshly written or read executable in its page cache in large
// folios and maps a whole folio (up to 2 MiB) at the first touch, so the whole binary
// (~48 MiB since the embedded NATS server and the OpenTelemetry exporter joined it) is
// resident from the start, although a single node never runs most of it (the cluster's
// server, the CLI's other commands). Dropping the mappings alone is not enough: the next
// touch maps the whole folio again. Paged out, the pages are read back from the file one
// at a time as the server uses them (~20 MiB under load instead of ~45). The kernel
// leaves alone the pages another process maps too.
//
// Only private, read-only mappings of the executable file are touched, and not one that
// holds a private copy of a page (Anonymous > 0: a debugger's breakpoint, say).
func releaseExecutablePages() (int64, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("release executable pages: %w", err)
	}
	maps, before, err := executableMappings(exe)
	if err != nil {
		return 0, err
	}
	for _, m := range maps {
		// NOHUGEPAGE may be refused (a kernel without transparent huge pages); the pages
		// are dropped all the same.
		syscall.Syscall(syscall.SYS_MADVISE, m.start, m.end-m.start, syscall.MADV_NOHUGEPAGE)
		syscall.Syscall(syscall.SYS_MADVISE, m.start, m.end-m.start, syscall.MADV_RANDOM)
		if _, _, e := syscall.Syscall(syscall.SYS_MADVISE, m.start, m.end-m.start, madvPageout); e != 0 {
			return 0, fmt.Errorf("release executable pages: madvise %x-%x: %w", m.start, m.end, e)
		}
	}
	// What was released, measured: the kernel pages out a file's pages only for a process
	// that owns the file or may write it, and says nothing otherwise.
	_, after, err := executableMappings(exe)
	if err != nil {
		return 0, err
	}
	return before - after, nil
}

// executableMappings returns the private read-only mappings of the executable exe and
// the bytes they hold resident.
func executableMappings(exe string) ([]mapping, int64, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return nil, 0, fmt.Errorf("release executable pages: %w", err)
	}
	defer f.Close()
	maps, err := readOnlyMappings(f, exe)
	if err != nil {
		return nil, 0, fmt.Errorf("release executable pages: %w", err)
	}
	var rss int64
	for _, m := range maps {
		rss += m.rss
	}
	return maps, rss, nil
}

// madvPageout is MADV_PAGEOUT (Linux 5.4), which package syscall lacks.
const madvPageout = 21

// mapping is one mapping of /proc/self/smaps: its addresses and resident bytes.
type mapping struct {
	start, end uintptr
	rss        int64
}

// readOnlyMappings returns the private read-only mappings of the file path in smaps
// (the format of /proc/PID/smaps) that hold no private copy of a page.
func readOnlyMappings(smaps io.Reader, path string) ([]mapping, error) {
	var out []mapping
	var cur *mapping // the mapping whose fields follow, if it is one of path's
	var anon bool
	flush := func() {
		if cur != nil && !anon {
			out = append(out, *cur)
		}
		cur, anon = nil, false
	}
	sc := bufio.NewScanner(smaps)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if strings.HasSuffix(fields[0], ":") { // a field of the current mapping
			if cur == nil || len(fields) < 2 {
				continue
			}
			n, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				continue
			}
			switch fields[0] {
			case "Rss:":
				cur.rss = n << 10
			case "Anonymous:":
				anon = n > 0
			}
			continue
		}
		// A mapping's header: start-end perms offset dev inode [path].
		flush()
		if len(fields) < 6 || strings.Join(fields[5:], " ") != path || (fields[1] != "r-xp" && fields[1] != "r--p") {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			return nil, fmt.Errorf("smaps line %q: no address range", sc.Text())
		}
		start, err := strconv.ParseUint(lo, 16, 64)
		if err != nil {
			return nil, fmt.Errorf("smaps line %q: %w", sc.Text(), err)
		}
		end, err := strconv.ParseUint(hi, 16, 64)
		if err != nil {
			return nil, fmt.Errorf("smaps line %q: %w", sc.Text(), err)
		}
		cur = &mapping{start: uintptr(start), end: uintptr(end)}
	}
	flush()
	return out, sc.Err()
}
