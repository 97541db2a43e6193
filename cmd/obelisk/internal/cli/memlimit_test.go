package cli

import (
	"log/slog"
	"runtime/debug"
	"testing"
)

// The server sets server.go_memory_limit as the Go runtime's limit, with GOGC 200 under
// it; none for 0; and leaves GOMEMLIMIT and GOGC from the environment alone.
func TestSetGoMemoryLimit(t *testing.T) {
	limit, percent := debug.SetMemoryLimit(-1), debug.SetGCPercent(100)
	restore := func() { debug.SetMemoryLimit(limit); debug.SetGCPercent(percent) }
	t.Cleanup(restore)
	log := slog.New(slog.DiscardHandler)
	check := func(what string, wantLimit int64, wantPercent int) {
		t.Helper()
		gotLimit, gotPercent := debug.SetMemoryLimit(-1), debug.SetGCPercent(100)
		if gotLimit != wantLimit || gotPercent != wantPercent {
			t.Errorf("%s: limit %d, GC percent %d; want %d, %d", what, gotLimit, gotPercent, wantLimit, wantPercent)
		}
		restore()
		debug.SetGCPercent(100)
	}

	t.Setenv("GOMEMLIMIT", "")
	t.Setenv("GOGC", "")
	setGoMemoryLimit(log, 200<<20)
	check("200MiB", 200<<20, gcPercentUnderLimit)
	setGoMemoryLimit(log, 0)
	check("none", limit, 100)
	t.Setenv("GOGC", "150")
	setGoMemoryLimit(log, 200<<20)
	check("200MiB with GOGC set", 200<<20, 100)
	t.Setenv("GOMEMLIMIT", "300MiB")
	setGoMemoryLimit(log, 200<<20)
	check("GOMEMLIMIT set", limit, 100)
}
