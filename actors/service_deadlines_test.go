package actors

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	"github.com/obelisk-go/obelisk/wasmhost/wit"
)

func TestInheritDeadline(t *testing.T) {
	for _, c := range []struct{ own, parent, want int64 }{
		{0, 0, 0}, {0, 5, 5}, {7, 0, 7}, {7, 5, 5}, {3, 5, 3},
	} {
		if got := inheritDeadline(c.own, c.parent); got != c.want {
			t.Errorf("inheritDeadline(%d, %d) = %d, want %d", c.own, c.parent, got, c.want)
		}
	}
}

// TestDeadlineStopsOpenExecutions: once its deadline passes, the deadlines service stops
// an open activity at once and a workflow through its cancellation (also a paused one),
// all finishing deadline_exceeded; an execution whose deadline has not come is left alone.
func TestDeadlineStopsOpenExecutions(t *testing.T) {
	e := newTestEngine(t)
	ctx := context.Background()
	now := time.Now()
	create := func(typ pb.ComponentType, deadline time.Time) string {
		t.Helper()
		id := events.NewExecutionID(time.Now())
		tx := createdTx(id, now)
		c := tx.Appends[0].Events[0].GetCreated()
		c.ComponentType, c.Deadline = typ, deadline.UnixNano()
		if _, err := e.change(ctx, id, func(*pb.ExecutionState) (*events.Tx, error) { return tx, nil }); err != nil {
			t.Fatal(err)
		}
		return id
	}
	// Queue "none" is served by no executor: they stay pending until their deadline.
	activity := create(pb.ComponentType_COMPONENT_TYPE_ACTIVITY_WASM, now.Add(200*time.Millisecond))
	workflow := create(pb.ComponentType_COMPONENT_TYPE_WORKFLOW, now.Add(200*time.Millisecond))
	paused := create(pb.ComponentType_COMPONENT_TYPE_WORKFLOW, now.Add(200*time.Millisecond))
	if err := e.Pause(ctx, paused); err != nil {
		t.Fatal(err)
	}
	later := create(pb.ComponentType_COMPONENT_TYPE_ACTIVITY_WASM, now.Add(time.Hour))
	for _, id := range []string{activity, workflow, paused} {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		st, err := e.WaitFinished(wctx, id)
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		r, err := events.ParseResult(st.Result)
		if err != nil || r.Failure == nil || r.Failure.Kind != events.FailureDeadlineExceeded || !strings.HasPrefix(r.Failure.Reason, "deadline ") {
			t.Fatalf("%s: result %s, want deadline_exceeded", id, st.Result)
		}
	}
	evs, err := e.store.Events(ctx, workflow, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if c := evs[1].GetCancelRequested(); c == nil || !c.DeadlineExceeded {
		t.Fatalf("workflow's event 1: %v, want cancel_requested with deadline_exceeded", evs[1])
	}
	if st, _ := e.State(ctx, later); st.Status == pb.Status_STATUS_FINISHED {
		t.Fatalf("an execution whose deadline is an hour away finished: %s", st.Result)
	}
	// Cancelled before its deadline: cancelled, not deadline_exceeded.
	if out, err := e.Cancel(ctx, later); err != nil || out != Cancelled {
		t.Fatalf("cancel: %v %v", out, err)
	}
	if st, _ := e.State(ctx, later); !strings.Contains(string(st.Result), `"kind":"cancelled"`) {
		t.Fatalf("cancelled before its deadline: %s", st.Result)
	}
}

// TestNoRetryPastDeadline: an attempt that timed out or failed at or past the deadline
// is not retried: the activity finishes deadline_exceeded. Before the deadline it is
// retried as usual, and an ok result past it is kept.
func TestNoRetryPastDeadline(t *testing.T) {
	act := &Component{Config: ComponentConfig{Name: "a", Type: ActivityWasm, LockExpiry: time.Second, MaxRetries: 5}}
	e := &Engine{reg: &registry{byFFQN: map[string]Function{"t:a/a.f": {Component: act}}}}
	now := time.Unix(100, 0)
	st := func(deadline time.Time) *pb.ExecutionState {
		return &pb.ExecutionState{ExecutionId: "E_x", Ffqn: "t:a/a.f", Queue: "a", ComponentType: pb.ComponentType_COMPONENT_TYPE_ACTIVITY_WASM,
			Status: pb.Status_STATUS_LOCKED, LockExpiresAt: now.Add(time.Second).UnixNano(), NextVersion: 2, Retry: act.Config.retryConfig(nil),
			Deadline: deadline.UnixNano()}
	}
	cut := &timeoutError{reason: "activity cut at the execution's deadline", err: context.DeadlineExceeded}
	kind := func(tx *events.Tx) string {
		switch k := tx.Appends[0].Events[0].Kind.(type) {
		case *pb.Event_TemporarilyTimedOut:
			return "retried"
		case *pb.Event_Finished:
			r, _ := events.ParseResult(k.Finished.Result)
			if r.Failure != nil {
				return string(r.Failure.Kind)
			}
			return "finished"
		}
		return "other"
	}
	if got := kind(e.activityOutcomeTx(st(now), Function{Component: act}, nil, cut, now)); got != "deadline_exceeded" {
		t.Fatalf("cut at the deadline: %s, want deadline_exceeded", got)
	}
	if got := kind(e.activityOutcomeTx(st(now.Add(time.Minute)), Function{Component: act}, nil, cut, now)); got != "retried" {
		t.Fatalf("a timeout before the deadline: %s, want retried", got)
	}
	if got := kind(e.activityOutcomeTx(st(now.Add(-time.Second)), Function{Component: act}, []byte(`{"ok":1}`), nil, now)); got != "finished" {
		t.Fatalf("ok past the deadline: %s, want finished", got)
	}
	// The lock expiry path (timer service) decides alike.
	expired := st(now.Add(-time.Millisecond))
	expired.LockExpiresAt = now.Add(-time.Millisecond).UnixNano()
	tx, err := e.expireTx(expired, now, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := kind(e.noRetryPastDeadline(expired, tx, now)); got != "deadline_exceeded" {
		t.Fatalf("lock expired past the deadline: %s, want deadline_exceeded", got)
	}
}

// TestAttemptBoundByDeadline: an attempt ends at the earliest of its lock, its
// max_duration and the execution's deadline.
func TestAttemptBoundByDeadline(t *testing.T) {
	now := time.Now()
	c := &Component{Config: ComponentConfig{Name: "a", Type: ActivityWasm, LockExpiry: time.Minute, MaxDuration: 30 * time.Second}}
	e := &Engine{}
	e.keepalives = newKeepalives(e)
	st := &pb.ExecutionState{ExecutionId: "E_x", LockExpiresAt: now.Add(time.Minute).UnixNano(), Deadline: now.Add(100 * time.Millisecond).UnixNano()}
	a := e.beginAttempt(context.Background(), c, st, "R")
	defer a.d.stop()
	if got := a.bound(time.Unix(0, st.LockExpiresAt)); !got.Equal(time.Unix(0, st.Deadline)) {
		t.Fatalf("bound %v, want the deadline %v", got, time.Unix(0, st.Deadline))
	}
	select {
	case <-a.ctx.Done():
	case <-time.After(20 * time.Second): // max_duration is 30s away, the lock a minute
		t.Fatal("the attempt's context did not end at the deadline")
	}
	if err := e.explain(a, context.Canceled); !strings.Contains(err.Error(), "activity cut at the execution's deadline") {
		t.Fatalf("explain: %v", err)
	}
}

// TestDeadlineEndsEarly: a workflow stopped by its deadline did not return, so a shadow
// replay that stops where its history ends reproduces it (as for a cancellation).
func TestDeadlineEndsEarly(t *testing.T) {
	st := &pb.ExecutionState{Deadline: time.Unix(5, 0).UnixNano()}
	if !endedEarly(deadlineResult(st)) {
		t.Fatal("a deadline_exceeded result is not one recorded without the workflow returning")
	}
	if endedEarly([]byte(`{"ok":1}`)) {
		t.Fatal("an ok result ended early")
	}
}

// TestCheckDeadline: a deadline beyond MaxDeadline (which would wrap past what Unix
// nanoseconds hold, into the past) or before 1970 is refused, naming the limit.
func TestCheckDeadline(t *testing.T) {
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		at   time.Time
		want string // "" when accepted
	}{
		{time.Time{}, ""},
		{now.Add(time.Hour), ""},
		{now.Add(-time.Hour), ""}, // past: it finishes at once, as asked
		{now.Add(MaxDeadline), ""},
		{now.Add(2500000 * time.Hour), "more than 100 years from now, the limit"},
		{time.Unix(0, 0), "before 1970"},
	} {
		err := checkDeadline(c.at, now)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%v: %v, want accepted", c.at, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%v: %v, want %q", c.at, err, c.want)
		}
	}
}

// TestRecordAttemptAfterDeadline: when the deadline service's commit lands before the
// attempt's outcome, the attempt is recorded as deadline_exceeded, not lock_lost.
func TestRecordAttemptAfterDeadline(t *testing.T) {
	ctx := context.Background()
	e, err := New(ctx, Config{DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler),
		Components: []ComponentConfig{{Name: "fibo", Type: ActivityWasm, Path: builtComponent(t, "fibo"),
			RequiredLabels: []string{"gpu"}, LockExpiry: time.Minute}}}) // not run here: the test locks it
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	const fibo = "testing:fibo/fibo.fibo"
	id, _, err := e.Submit(ctx, "", fibo, []byte("[1]"), WithDeadline(time.Now().Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	fn, err := e.reg.route(nil, fibo, "")
	if err != nil {
		t.Fatal(err)
	}
	const runID = "run-1"
	now := time.Now()
	if _, err := e.change(ctx, id, func(st *pb.ExecutionState) (*events.Tx, error) {
		return appendTx(st, "", lockedEvent(e.executor, fn.Component, runID, now, now.Add(time.Minute), st.Retry)), nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.change(ctx, id, func(st *pb.ExecutionState) (*events.Tx, error) {
		return e.finishTx(st, deadlineResult(st), now), nil // as the deadline service does
	}); err != nil {
		t.Fatal(err)
	}
	if got := e.recordAttempt(ctx, id, runID, fn, []byte("[1]"), []byte(`{"ok":1}`), nil, nil); got != "deadline_exceeded" {
		t.Errorf("outcome %q, want deadline_exceeded", got)
	}
	if got := e.recordAttempt(ctx, id, "another-run", fn, []byte("[1]"), []byte(`{"ok":1}`), nil, nil); got != "lock_lost" {
		t.Errorf("another run's outcome %q, want lock_lost", got)
	}
}

// TestDeadlineNotifiedOnce: the commits of an execution whose deadline stays open ask
// the deadline service for no pass: the pass that found the deadline waits for it.
func TestDeadlineNotifiedOnce(t *testing.T) {
	var passes atomic.Int32
	e := newHookedEngine(t, nil, func(service, step string) {
		if service == "deadlines" && step == "pass" {
			passes.Add(1)
		}
	})
	id := events.NewExecutionID(time.Now())
	mustChange(t, e, id, func(*pb.ExecutionState) (*events.Tx, error) {
		tx := createdTx(id, time.Now())
		tx.Appends[0].Events[0].GetCreated().Deadline = time.Now().Add(time.Hour).UnixNano()
		return tx, nil
	})
	settled := func() int32 {
		n := passes.Load()
		for {
			time.Sleep(200 * time.Millisecond)
			m := passes.Load()
			if m == n {
				return n
			}
			n = m
		}
	}
	before := settled()
	for i := range 6 {
		mustChange(t, e, id, func(st *pb.ExecutionState) (*events.Tx, error) {
			ev := &pb.Event{CreatedAt: time.Now().UnixNano(), Kind: &pb.Event_Paused{Paused: &pb.Paused{}}}
			if i%2 == 1 {
				ev.Kind = &pb.Event_Unpaused{Unpaused: &pb.Unpaused{}}
			}
			return appendTx(st, "", ev), nil
		})
	}
	if after := settled(); after != before {
		t.Errorf("%d passes of the deadline service after 6 commits of an open deadline, want none", after-before)
	}
}

// TestErrPastDeadlineKept: an attempt that returns a transient err at or past the
// deadline is not retried and finishes deadline_exceeded, but the err value it returned
// is kept in the Finished event (returned), with why it was not retried (reason).
func TestErrPastDeadlineKept(t *testing.T) {
	resolve, err := wit.Parse([]wit.File{{Path: "flaky.wit", Text: `package testing:flaky;
interface flaky {
  variant error { permanent-failure(string), transient(string) }
  fail-permanently: func() -> result<_, error>;
}`}})
	if err != nil {
		t.Fatal(err)
	}
	act := &Component{Config: ComponentConfig{Name: "a", Type: ActivityWasm, LockExpiry: time.Second, MaxRetries: 5}}
	fn := Function{Fn: resolve.Exports()[0], Component: act}
	e := &Engine{reg: &registry{byFFQN: map[string]Function{"t:a/a.f": fn}}}
	now := time.Unix(100, 0)
	st := &pb.ExecutionState{ExecutionId: "E_x", Ffqn: "t:a/a.f", Queue: "a", ComponentType: pb.ComponentType_COMPONENT_TYPE_ACTIVITY_WASM,
		Status: pb.Status_STATUS_LOCKED, LockExpiresAt: now.Add(time.Second).UnixNano(), NextVersion: 2, Retry: act.Config.retryConfig(nil),
		Deadline: now.Add(-time.Millisecond).UnixNano()}
	tx := e.activityOutcomeTx(st, fn, []byte(`{"err":{"transient":"try later"}}`), nil, now)
	f := tx.Appends[0].Events[0].GetFinished()
	if f == nil {
		t.Fatalf("a transient err past the deadline: %v, want finished", tx.Appends[0].Events[0])
	}
	if r, _ := events.ParseResult(f.Result); r.Failure == nil || r.Failure.Kind != events.FailureDeadlineExceeded {
		t.Fatalf("result %s, want deadline_exceeded", f.Result)
	}
	if string(f.Returned) != `{"err":{"transient":"try later"}}` {
		t.Fatalf("returned %q, want the attempt's err", f.Returned)
	}
	if !strings.HasPrefix(f.Reason, "not retried past the deadline: activity returned an error") {
		t.Fatalf("reason %q", f.Reason)
	}
	// Before the deadline the same err is retried, as usual.
	st.Deadline = now.Add(time.Minute).UnixNano()
	if tx := e.activityOutcomeTx(st, fn, []byte(`{"err":{"transient":"try later"}}`), nil, now); tx.Appends[0].Events[0].GetTemporarilyFailed() == nil {
		t.Fatalf("before the deadline: %v, want a retry", tx.Appends[0].Events[0])
	}
}

// TestWorkflowResultAtDeadline: a workflow's result returned before its deadline is
// recorded even when its commit comes after the deadline; one returned at or past it is
// replaced by deadline_exceeded, what the workflow returned being kept (returned).
func TestWorkflowResultAtDeadline(t *testing.T) {
	e := &Engine{}
	deadline := time.Unix(100, 0)
	st := &pb.ExecutionState{ExecutionId: "E_w", ComponentType: pb.ComponentType_COMPONENT_TYPE_WORKFLOW,
		Status: pb.Status_STATUS_LOCKED, NextVersion: 3, Deadline: deadline.UnixNano()}
	ok := []byte(`{"ok":7}`)
	tx, recorded := e.workflowFinishTx(st, ok, deadline.Add(-time.Millisecond), deadline.Add(time.Millisecond))
	if f := tx.Appends[0].Events[0].GetFinished(); f == nil || string(f.Result) != string(ok) || f.Returned != nil || string(recorded) != string(ok) {
		t.Fatalf("returned before the deadline, committed after: %v (recorded %s), want the result", tx.Appends[0].Events[0], recorded)
	}
	tx, recorded = e.workflowFinishTx(st, ok, deadline, deadline.Add(time.Millisecond))
	f := tx.Appends[0].Events[0].GetFinished()
	if r, _ := events.ParseResult(f.GetResult()); r.Failure == nil || r.Failure.Kind != events.FailureDeadlineExceeded || string(recorded) != string(f.Result) {
		t.Fatalf("returned at the deadline: %v (recorded %s), want deadline_exceeded", tx.Appends[0].Events[0], recorded)
	}
	if string(f.Returned) != string(ok) {
		t.Fatalf("returned %q, want the workflow's result kept", f.Returned)
	}
}
