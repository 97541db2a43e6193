package actors

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/actors/internal/retrybudget"
	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	"github.com/obelisk-go/obelisk/wasmhost"
	"github.com/obelisk-go/obelisk/wasmhost/wit"
)

// TestActivityOutcome: what an attempt's outcome becomes, with retries left and without.
func TestActivityOutcome(t *testing.T) {
	files := []wit.File{{Path: "flaky.wit", Text: `package testing:flaky;
interface flaky {
  variant error { permanent-failure(string), transient(string) }
  fail-permanently: func() -> result<_, error>;
}`}}
	resolve, err := wit.Parse(files)
	if err != nil {
		t.Fatal(err)
	}
	fn := Function{Fn: resolve.Exports()[0]}
	e := &Engine{}
	trap := &wasmhost.TrapError{Message: "wasm error: unreachable: panic: boom"}
	cases := []struct {
		name     string
		out      string
		runErr   error
		failures uint32 // so far; max_retries is 2
		want     string // event kind, and for finished the result
	}{
		{"ok", `{"ok":null}`, nil, 0, `finished {"ok":null}`},
		{"transient err, retries left", `{"err":{"transient":"x"}}`, nil, 0, "temporarily_failed"},
		{"transient err, no retries left", `{"err":{"transient":"x"}}`, nil, 2, `finished {"err":{"transient":"x"}}`},
		{"permanent err is final at once", `{"err":{"permanent_failure":"x"}}`, nil, 0, `finished {"err":{"permanent_failure":"x"}}`},
		{"trap, retries left", "", trap, 1, "temporarily_failed"},
		{"trap, no retries left", "", trap, 2, `finished {"execution_failure":{"kind":"uncategorized","reason":"guest trapped: wasm error: unreachable: panic: boom"}}`},
		{"timeout, retries left", "", fmt.Errorf("%w: %w", errTimedOut, errors.New("deadline")), 0, "temporarily_timed_out"},
		{"timeout, no retries left", "", fmt.Errorf("%w: %w", errTimedOut, errors.New("deadline")), 2, `finished {"execution_failure":{"kind":"timed_out","reason":"activity exceeded its lock expiry"}}`},
		{"invalid output", `{"maybe":1}`, nil, 2, "finished"},
		// The node's memory budget was short, not the guest at fault: retried, not counted.
		{"memory budget, no retries left", "", fmt.Errorf("%w: %w", errTimedOut, &wasmhost.TrapError{Err: wasmhost.ErrMemoryBudget}), 2, "unlocked"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := &pb.ExecutionState{ExecutionId: "E_x", NextVersion: 2, Status: pb.Status_STATUS_LOCKED, IntermittentFailures: c.failures,
				Retry: &pb.RetryConfig{MaxRetries: 2, RetryExpBackoff: int64(time.Millisecond)}}
			tx := e.activityOutcomeTx(st, fn, []byte(c.out), c.runErr, time.Unix(100, 0))
			ev := tx.Appends[0].Events[0]
			got := events.EventKind(ev)
			if f := ev.GetFinished(); f != nil && c.want != "finished" {
				got += " " + string(f.Result)
			}
			if got != c.want {
				t.Fatalf("got %s, want %s", got, c.want)
			}
			if tt := ev.GetTemporarilyTimedOut(); tt != nil && tt.Reason == "" {
				t.Fatal("a timeout without a reason: the status could not say why it is retried")
			}
			if tf := ev.GetTemporarilyFailed(); tf != nil && tf.BackoffExpiresAt != time.Unix(100, 0).Add(time.Millisecond<<c.failures).UnixNano() {
				t.Fatalf("backoff ends at %d", tf.BackoffExpiresAt)
			}
			if u := ev.GetUnlocked(); u != nil {
				if u.UnlockedAt != time.Unix(100, 0).Add(time.Millisecond).UnixNano() || u.Reason == "" {
					t.Fatalf("unlocked until %d (want the first retry's delay), reason %q", u.UnlockedAt, u.Reason)
				}
				next, err := events.Fold(st.ExecutionId, st, st.NextVersion, ev)
				if err != nil || next.IntermittentFailures != c.failures || next.Status != pb.Status_STATUS_PENDING_AT {
					t.Fatalf("folded: %v, %v; want pending, the failures not counted", next, err)
				}
			}
		})
	}
}

// TestActivityOutcomeRetryBudget: while most recent attempts of a function failed, its
// retry budget skips the retries (finished with the last error and the budget as the
// reason) or holds them for the window; successes bring it back.
func TestActivityOutcomeRetryBudget(t *testing.T) {
	files := []wit.File{{Path: "flaky.wit", Text: `package testing:flaky;
interface flaky {
  fail-until: func(attempts: u32) -> result<u32, string>;
}`}}
	resolve, err := wit.Parse(files)
	if err != nil {
		t.Fatal(err)
	}
	e := &Engine{}
	now := time.Unix(1000, 0)
	transient := []byte(`{"err":"down"}`)
	for _, action := range []retrybudget.Action{RetryBudgetSkip, RetryBudgetWait} {
		t.Run(string(action), func(t *testing.T) {
			c := &Component{Config: ComponentConfig{Name: "flaky"}}
			c.budget = retrybudget.New(RetryBudget{MaxFailureShare: 0.5, Window: time.Minute, MinAttempts: 4, Action: action})
			fn := Function{Fn: resolve.Exports()[0], Component: c}
			outcome := func(out []byte) *pb.Event {
				st := &pb.ExecutionState{ExecutionId: "E_x", Ffqn: fn.Fn.FFQN(), NextVersion: 2, Status: pb.Status_STATUS_LOCKED,
					Retry: &pb.RetryConfig{MaxRetries: 5, RetryExpBackoff: int64(time.Millisecond)}}
				return e.activityOutcomeTx(st, fn, out, nil, now).Appends[0].Events[0]
			}
			// Three failures: too few attempts to judge, retried as usual.
			for range 3 {
				if tf := outcome(transient).GetTemporarilyFailed(); tf == nil || tf.BackoffExpiresAt != now.Add(time.Millisecond).UnixNano() {
					t.Fatalf("an early failure: %v, want retried after 1ms", tf)
				}
			}
			ev := outcome(transient)
			switch action {
			case RetryBudgetSkip:
				f := ev.GetFinished()
				if f == nil || string(f.Result) != string(transient) || !strings.Contains(f.Reason, "retry budget exhausted: 4 of the 4 attempts of testing:flaky/flaky.fail-until in the last 1m0s failed") {
					t.Fatalf("the 4th failure: %v, want finished with the error and the budget as the reason", ev)
				}
			case RetryBudgetWait:
				tf := ev.GetTemporarilyFailed()
				if tf == nil || tf.BackoffExpiresAt < now.Add(time.Minute).UnixNano() || tf.BackoffExpiresAt >= now.Add(2*time.Minute).UnixNano() ||
					!strings.Contains(tf.Reason, "retry budget exhausted") {
					t.Fatalf("the 4th failure: %v, want retried after one to two windows, saying why", ev)
				}
			}
			// Successes bring the share down: with the next failure, 5 of 11 failed.
			for range 6 {
				if outcome([]byte(`{"ok":1}`)).GetFinished() == nil {
					t.Fatal("ok not finished")
				}
			}
			if tf := outcome(transient).GetTemporarilyFailed(); tf == nil || tf.BackoffExpiresAt != now.Add(time.Millisecond).UnixNano() {
				t.Fatalf("5 of 11 failed: %v, want retried as usual", tf)
			}
		})
	}
}
