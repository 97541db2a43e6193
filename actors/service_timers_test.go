package actors

import (
	"strings"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/actors/internal/retrybudget"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// TestExpireWorkflowLock: a workflow run whose lock expired without progress timed out;
// it is retried while its component's max_retries allow (the timeout says why), then it
// finishes as timed_out, saying how many attempts timed out. A run that made progress is
// unlocked without counting.
func TestExpireWorkflowLock(t *testing.T) {
	wf := &Component{Config: ComponentConfig{Name: "w", Type: Workflow, LockExpiry: 300 * time.Millisecond, MaxRetries: 2}}
	e := &Engine{reg: &registry{byFFQN: map[string]Function{"t:w/w.f": {Component: wf}}}}
	now := time.Unix(100, 0)
	locked := func(failures, lockedAt, next uint32) *pb.ExecutionState {
		return &pb.ExecutionState{ExecutionId: "E_x", Ffqn: "t:w/w.f", Queue: "w", ComponentType: pb.ComponentType_COMPONENT_TYPE_WORKFLOW,
			Status: pb.Status_STATUS_LOCKED, LockExpiresAt: now.Add(-time.Millisecond).UnixNano(), LockedAtVersion: lockedAt,
			NextVersion: next, IntermittentFailures: failures, Retry: wf.Config.retryConfig(nil)}
	}
	cases := []struct {
		name string
		st   *pb.ExecutionState
		want string
	}{
		{"first timeout", locked(0, 1, 2), "temporarily_timed_out lock expired after 300ms"},
		{"last retry", locked(1, 3, 4), "temporarily_timed_out lock expired after 300ms"},
		{"no retries left", locked(2, 5, 6), `finished {"execution_failure":{"kind":"timed_out","reason":"attempt 3 timed out: lock expired after 300ms; no retries left (max_retries 2)"}}`},
		{"progress is not a timeout", locked(2, 5, 8), "unlocked lock expired after the run made progress"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tx, err := e.expireTx(c.st, now, false)
			if err != nil || tx == nil {
				t.Fatalf("expireTx: %v, %v", tx, err)
			}
			var got string
			switch k := tx.Appends[0].Events[0].Kind.(type) {
			case *pb.Event_TemporarilyTimedOut:
				got = "temporarily_timed_out " + k.TemporarilyTimedOut.Reason
			case *pb.Event_Finished:
				got = "finished " + string(k.Finished.Result)
			case *pb.Event_Unlocked:
				got = "unlocked " + k.Unlocked.Reason
			}
			if got != c.want {
				t.Fatalf("got %s\nwant %s", got, c.want)
			}
		})
	}
}

// TestExpireActivityLockCountsInTheBudget: an activity attempt whose lock expired is a
// failure for its function's retry budget, like one that ended in an error: once the
// budget is exhausted (action skip) the timeout finishes the execution, naming it.
func TestExpireActivityLockCountsInTheBudget(t *testing.T) {
	act := &Component{Config: ComponentConfig{Name: "a", Type: ActivityWasm, LockExpiry: time.Second, MaxRetries: 5}}
	act.budget = retrybudget.New(RetryBudget{MaxFailureShare: 0.5, Window: time.Minute, MinAttempts: 2, Action: RetryBudgetSkip})
	e := &Engine{reg: &registry{byFFQN: map[string]Function{"t:a/a.f": {Component: act}}}}
	now := time.Unix(100, 0)
	st := &pb.ExecutionState{ExecutionId: "E_x", Ffqn: "t:a/a.f", Queue: "a", ComponentType: pb.ComponentType_COMPONENT_TYPE_ACTIVITY_WASM,
		Status: pb.Status_STATUS_LOCKED, LockExpiresAt: now.Add(-time.Millisecond).UnixNano(), NextVersion: 2, Retry: act.Config.retryConfig(nil)}
	tx, err := e.expireTx(st, now, false)
	if err != nil || tx.Appends[0].Events[0].GetTemporarilyTimedOut() == nil {
		t.Fatalf("the first timeout: %v %v, want retried (1 attempt: too few to judge)", tx, err)
	}
	tx, err = e.expireTx(st, now, false)
	f := tx.Appends[0].Events[0].GetFinished()
	if err != nil || f == nil || !strings.Contains(f.Reason, "retry budget exhausted: 2 of the 2 attempts of t:a/a.f") {
		t.Fatalf("the second timeout: %v %v, want finished with the budget as the reason", tx, err)
	}
}
