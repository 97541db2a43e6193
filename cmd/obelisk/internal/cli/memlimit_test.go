package cli

import (
	"log/slog"
	"runtime/debug"
	"testing"
)

// The server sets server.go_memory_limit as the Go runtime's limit, none for 0, and
// leaves a GOMEMLIMIT from the environment alone.
func TestSetGoMemoryLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	log := slog.New(slog.DiscardHandler)

	t.Setenv("GOMEMLIMIT", "")
	setGoMemoryLimit(log, 200<<20)
	if got := debug.SetMemoryLimit(-1); got != 200<<20 {
		t.Errorf("limit %d after setting 200MiB", got)
	}
	debug.SetMemoryLimit(before)
	setGoMemoryLimit(log, 0)
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Errorf("limit %d after setting none, want it unchanged (%d)", got, before)
	}
	t.Setenv("GOMEMLIMIT", "300MiB")
	setGoMemoryLimit(log, 200<<20)
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Errorf("limit %d with GOMEMLIMIT set, want the runtime's own (%d)", got, before)
	}
}
