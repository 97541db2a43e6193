package e2e

import (
	"encoding/json"
	"fmt"
	"github.com/obelisk-go/obelisk/test/harness"
	"sync"
	"testing"
	"time"
)

// TestCrashRecovery submits a few hundred fiboa workflows, SIGKILLs the server while they
// run, restarts it on the same data, and checks that every workflow finishes with the
// right sum and that no workflow step was recorded twice.
func TestCrashRecovery(t *testing.T) {
	t.Parallel()
	for _, strategy := range []string{"await", "interrupt"} {
		t.Run(strategy, func(t *testing.T) {
			const n, iterations = 300, 10
			s := harness.Start(t, harness.Options{BlockingStrategy: strategy})
			ids := make([]string, n)
			var wg sync.WaitGroup
			for i := range ids {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ids[i] = s.Submit("testing:fibo-workflow/workflow.fiboa", fmt.Sprintf("[10, %d]", iterations))
				}()
			}
			wg.Wait()
			// Kill once some but not all workflows have finished.
			waitUntil(t, 2*time.Minute, func() bool {
				finished := countFinished(s, ids)
				return finished > 0
			})
			finishedBefore := countFinished(s, ids)
			s.Kill()
			t.Logf("killed the server with %d/%d workflows finished", finishedBefore, n)
			s.Start()
			for _, id := range ids {
				harness.JSONEq(t, s.Result(id, 3*time.Minute), fmt.Sprintf(`{"ok":%d}`, 55*iterations))
			}
			for _, id := range ids {
				checkHistoryOnce(t, s, id, iterations)
			}
		})
	}
}

func countFinished(s *harness.Server, ids []string) int {
	n := 0
	for _, id := range ids {
		st, err := s.State(id)
		if err == nil && st.Status == "finished" {
			n++
		}
	}
	return n
}

// checkHistoryOnce: every call of the workflow was requested once, under the ID that
// replay derives, and its child ran to exactly one finished result.
func checkHistoryOnce(t *testing.T, s *harness.Server, id string, iterations int) {
	t.Helper()
	var requested []string
	for _, e := range s.Events(id) {
		if e.Kind != "history.join_set_request" {
			continue
		}
		var d struct {
			Child string `json:"child_execution_id"`
		}
		json.Unmarshal([]byte(e.DetailsJson), &d)
		requested = append(requested, d.Child)
	}
	if len(requested) != iterations {
		t.Fatalf("%s: %d child requests recorded, want %d", id, len(requested), iterations)
	}
	for i, child := range requested {
		want := fmt.Sprintf("%s.o:%d-fibo_1", id, i+1)
		if child != want {
			t.Fatalf("%s: request %d is %s, want %s", id, i, child, want)
		}
		evs := s.Events(child)
		if harness.CountKind(evs, "created") != 1 || harness.CountKind(evs, "finished") != 1 {
			t.Fatalf("%s: created %d, finished %d times", child, harness.CountKind(evs, "created"), harness.CountKind(evs, "finished"))
		}
	}
}

func waitUntil(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met in %v", timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
