package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
	"github.com/obelisk-go/obelisk/test/harness"
)

// keepaliveLockExpiry is the sleep activity's lock_expiry in these tests: far shorter than
// the sleeps, so only renewals keep them alive.
const keepaliveLockExpiry = 500 * time.Millisecond

// runsOf returns the run IDs of an execution's locked events, in order, and how many
// locked events each run wrote (the lock and its renewals).
func runsOf(t *testing.T, evs []*pb.EventView) (runs []string, locks map[string]int, first map[string]time.Time) {
	t.Helper()
	locks, first = map[string]int{}, map[string]time.Time{}
	for _, e := range evs {
		if e.Kind != "locked" {
			continue
		}
		var d struct {
			RunID string `json:"run_id"`
		}
		if err := json.Unmarshal([]byte(e.DetailsJson), &d); err != nil || d.RunID == "" {
			t.Fatalf("locked event without a run: %s (%v)", e.DetailsJson, err)
		}
		if locks[d.RunID] == 0 {
			runs = append(runs, d.RunID)
			first[d.RunID] = eventTime(t, e.CreatedAt)
		}
		locks[d.RunID]++
	}
	return runs, locks, first
}

// TestActivityKeepalive: with exec.keepalive the sleep activity outlives its 500ms lock
// expiry many times over in one attempt, its lock renewed by that attempt; max_duration
// still kills an attempt that runs too long; after a SIGKILL during a kept-alive sleep the
// retry runs once the server is back and finishes.
func TestActivityKeepalive(t *testing.T) {
	s := harness.Start(t, harness.Options{ExtraTOML: map[string]string{"sleep": `
exec.lock_expiry = "500ms"
exec.keepalive = true
exec.max_duration = "4s"
`}})

	t.Run("outlives its lock expiry", func(t *testing.T) {
		id := s.Submit("testing:sleep/sleep.sleep", "[3000]")
		harness.JSONEq(t, s.Result(id, time.Minute), `{"ok":null}`)
		evs := s.Events(id)
		runs, locks, _ := runsOf(t, evs)
		if len(runs) != 1 {
			t.Fatalf("%d attempts (runs %v), want one", len(runs), runs)
		}
		// 3s under a 500ms lock: at least 3000/500 - 1 renewals, or it would have expired.
		if n := locks[runs[0]]; n < 6 {
			t.Fatalf("%d locked events, want the lock and at least 5 renewals", n)
		}
		if n := harness.CountKind(evs, "temporarily_timed_out"); n != 0 {
			t.Fatalf("%d timeouts", n)
		}
		if v := scrapeMetrics(t, s)("obelisk_activity_lock_renewals_total", map[string]string{"outcome": "ok"}); v < 5 {
			t.Fatalf("obelisk_activity_lock_renewals_total{outcome=ok} = %v, want at least 5", v)
		}
	})

	t.Run("max_duration kills", func(t *testing.T) {
		// Two attempts (max_retries 1), each killed at max_duration.
		id := s.Submit("testing:sleep/sleep.sleep", "[30000]")
		res := s.Result(id, 2*time.Minute)
		harness.JSONEq(t, res, `{"execution_failure":{"kind":"timed_out","reason":"activity exceeded its max_duration of 4s"}}`)
		evs := s.Events(id)
		if runs, _, _ := runsOf(t, evs); len(runs) != 2 {
			t.Fatalf("%d attempts, want 2", len(runs))
		}
		for _, e := range evs {
			if e.Kind == "temporarily_timed_out" && !strings.Contains(e.DetailsJson, "activity exceeded its max_duration of 4s") {
				t.Fatalf("the first timeout does not say max_duration: %s", e.DetailsJson)
			}
		}
		if n := harness.CountKind(evs, "temporarily_timed_out"); n != 1 {
			t.Fatalf("%d retried timeouts, want 1", n)
		}
	})

	t.Run("SIGKILL during a kept-alive sleep", func(t *testing.T) {
		id := s.Submit("testing:sleep/sleep.sleep", "[3000]")
		// Killed once the attempt has outlived its first lock: it was kept alive.
		waitUntil(t, time.Minute, func() bool {
			runs, locks, _ := runsOf(t, s.Events(id))
			return len(runs) == 1 && locks[runs[0]] >= 3
		})
		s.Kill()
		s.Start()
		up := time.Now()
		harness.JSONEq(t, s.Result(id, time.Minute), `{"ok":null}`)
		evs := s.Events(id)
		runs, _, first := runsOf(t, evs)
		if len(runs) != 2 {
			t.Fatalf("%d attempts, want the killed one and its retry", len(runs))
		}
		if late := first[runs[1]].Sub(up); late > keepaliveLockExpiry+time.Second {
			t.Fatalf("the retry started %v after the server was back, want within lock_expiry + 1s", late)
		}
		if n := harness.CountKind(evs, "temporarily_timed_out"); n != 1 {
			t.Fatalf("%d timeouts, want the killed attempt's", n)
		}
	})
}

// TestActivityWithoutKeepalive: the same sleep without keepalive times out at its lock
// expiry on every attempt, as before keepalives existed, and its lock is never renewed.
func TestActivityWithoutKeepalive(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{ExtraTOML: map[string]string{"sleep": `exec.lock_expiry = "500ms"`}})
	id := s.Submit("testing:sleep/sleep.sleep", "[3000]")
	harness.JSONEq(t, s.Result(id, time.Minute), `{"execution_failure":{"kind":"timed_out","reason":"activity exceeded its lock expiry"}}`)
	evs := s.Events(id)
	runs, locks, _ := runsOf(t, evs)
	if len(runs) != 2 || locks[runs[0]] != 1 || locks[runs[1]] != 1 {
		t.Fatalf("runs %v with %v locked events, want 2 attempts locked once each", runs, locks)
	}
	if n := harness.CountKind(evs, "temporarily_timed_out"); n != 1 {
		t.Fatalf("%d retried timeouts, want 1", n)
	}
}
