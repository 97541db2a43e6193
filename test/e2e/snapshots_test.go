package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/test/harness"
)

// TestSnapshotResumeAfterRestart: a workflow snapshotted at its durable sleep is resumed
// from the snapshot after the server was killed and restarted, not replayed; it ends with
// the right result and its log lines stored once.
func TestSnapshotResumeAfterRestart(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{BlockingStrategy: "interrupt", Workflows: "snapshot_every = 1", ServerArgs: []string{"--verbose"}})
	id := s.Submit("testing:sleep-workflow/workflow.sleep-then-call", "[2500, 10]")
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(s.Log(), "workflow: snapshot stored") {
		if time.Now().After(deadline) {
			t.Fatalf("no snapshot stored at the sleep; server log:\n%s", s.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.Kill()
	time.Sleep(2500 * time.Millisecond) // the delay expires while the server is down
	s.Start()
	if res := s.Result(id, 2*time.Minute); res != `{"ok":55}` {
		t.Fatalf("result %s, want fibo(10) = 55", res)
	}
	log := s.Log()
	if !strings.Contains(log, "workflow: resumed from a snapshot") {
		t.Fatalf("the wake-up after the restart did not resume from the snapshot; server log:\n%s", log)
	}
	if strings.Contains(log, "workflow: snapshot not used") {
		t.Fatalf("a snapshot was refused; server log:\n%s", log)
	}
	out, _, code := s.CLI("execution", "logs", id)
	if code != 0 || strings.Count(out, "sleeping 2500 ms") != 1 || strings.Count(out, "calling fibo(10)") != 1 || strings.Count(out, "returned 55") != 1 {
		t.Fatalf("logs (exit %d), want each line once:\n%s", code, out)
	}
}
