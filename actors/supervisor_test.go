package actors

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/events"
	"github.com/obelisk-go/obelisk/metrics"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// newHookedEngine starts an engine (no components) whose services call hook at the steps
// of their passes, reporting to m.
func newHookedEngine(t *testing.T, m *metrics.Metrics, hook func(service, step string)) *Engine {
	t.Helper()
	ctx := context.Background()
	e, err := New(ctx, Config{DataDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: m, testHook: hook})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(ctx) })
	return e
}

// panicOnce returns a hook that panics the first time service reaches step, and a
// counter of the times the service started a pass after that.
func panicOnce(service, step string) (func(string, string), *atomic.Int32) {
	var panicked atomic.Bool
	var passesAfter atomic.Int32
	return func(s, st string) {
		if s != service {
			return
		}
		if st == "pass" && panicked.Load() {
			passesAfter.Add(1)
		}
		if st == step && panicked.CompareAndSwap(false, true) {
			panic("injected by the test")
		}
	}, &passesAfter
}

// restarts reads obelisk_supervisor_restarts_total{service}.
func restarts(t *testing.T, m *metrics.Metrics, service string) float64 {
	t.Helper()
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "obelisk_supervisor_restarts_total" {
			continue
		}
		for _, x := range f.GetMetric() {
			for _, l := range x.GetLabel() {
				if l.GetName() == "service" && l.GetValue() == service {
					return x.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// countEvents counts the events of id for which is returns true.
func countEvents(t *testing.T, e *Engine, id string, is func(*pb.Event) bool) int {
	t.Helper()
	evs, err := e.store.Events(context.Background(), id, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ev := range evs {
		if is(ev) {
			n++
		}
	}
	return n
}

func mustChange(t *testing.T, e *Engine, id string, decide func(st *pb.ExecutionState) (*events.Tx, error)) *pb.ExecutionState {
	t.Helper()
	st, err := e.change(context.Background(), id, decide)
	if err != nil {
		t.Fatalf("change %s: %v", id, err)
	}
	return st
}

// lockedBy appends a Locked event of run to st.
func lockedBy(st *pb.ExecutionState, run string, expires time.Time, retry *pb.RetryConfig) *events.Tx {
	return appendTx(st, "", &pb.Event{CreatedAt: time.Now().UnixNano(), Kind: &pb.Event_Locked{Locked: &pb.Locked{
		ExecutorId: "Exr_test", RunId: run, LockExpiresAt: expires.UnixNano(), Retry: retry}}})
}

// A panic in the timer service in the middle of a pass (after it expired one of two
// locks) restarts it; each expired lock still times out exactly once, and the engine
// goes on serving.
func TestTimerServiceRestartsMidPass(t *testing.T) {
	m := metrics.New()
	hook, passesAfter := panicOnce("timers", "expired")
	e := newHookedEngine(t, m, hook)
	ctx := context.Background()
	expires := time.Now().Add(300 * time.Millisecond)
	retry := &pb.RetryConfig{MaxRetries: 3, RetryExpBackoff: int64(time.Hour)} // stays pending after the timeout
	var ids []string
	for range 2 {
		id := events.NewExecutionID(time.Now())
		mustChange(t, e, id, func(*pb.ExecutionState) (*events.Tx, error) { return createdTx(id, time.Now()), nil })
		mustChange(t, e, id, func(st *pb.ExecutionState) (*events.Tx, error) { return lockedBy(st, "Run_dead", expires, retry), nil })
		ids = append(ids, id)
	}
	for _, id := range ids {
		eventually(t, id+" timed out", func() bool {
			st, err := e.State(ctx, id)
			return err == nil && st.Status == pb.Status_STATUS_PENDING_AT
		})
	}
	// Passes of the restarted service find nothing more to do.
	eventually(t, "two passes after the restart", func() bool { return passesAfter.Load() >= 2 })
	for _, id := range ids {
		timeouts := countEvents(t, e, id, func(ev *pb.Event) bool { return ev.GetTemporarilyTimedOut() != nil })
		finished := countEvents(t, e, id, func(ev *pb.Event) bool { return ev.GetFinished() != nil })
		if timeouts != 1 || finished != 0 {
			t.Errorf("%s: %d temporarily_timed_out and %d finished events, want 1 and 0", id, timeouts, finished)
		}
		if st, _ := e.State(ctx, id); st.IntermittentFailures != 1 {
			t.Errorf("%s: %d intermittent failures, want 1", id, st.IntermittentFailures)
		}
	}
	if got := restarts(t, m, "timers"); got != 1 {
		t.Errorf("restarts of timers = %v, want 1", got)
	}
	if e.Err() != nil {
		t.Fatalf("engine failed: %v", e.Err())
	}
	// A lock taken after the restart expires too: the service is alive, not just restarted.
	id := events.NewExecutionID(time.Now())
	mustChange(t, e, id, func(*pb.ExecutionState) (*events.Tx, error) { return createdTx(id, time.Now()), nil })
	mustChange(t, e, id, func(st *pb.ExecutionState) (*events.Tx, error) {
		return lockedBy(st, "Run_dead2", time.Now().Add(100*time.Millisecond), retry), nil
	})
	eventually(t, "the lock taken after the restart to expire", func() bool {
		st, err := e.State(ctx, id)
		return err == nil && st.Status == pb.Status_STATUS_PENDING_AT && st.IntermittentFailures == 1
	})
}

// workflowWithRequests creates a workflow execution whose run (holding the lock for an
// hour) wrote join set g with n children (created with it) and the given delays (their
// IDs are set), then, if unlock, let the lock go. It returns the workflow and its
// children.
func workflowWithRequests(t *testing.T, e *Engine, n int, delays []*pb.DelayRequest, unlock bool) (string, []string) {
	t.Helper()
	id := events.NewExecutionID(time.Now())
	var children []string
	for i := range n {
		children = append(children, events.ChildExecutionID(id, "g", i+1))
	}
	now := time.Now()
	mustChange(t, e, id, func(*pb.ExecutionState) (*events.Tx, error) {
		tx := createdTx(id, now)
		tx.Appends[0].Events[0].GetCreated().ComponentType = pb.ComponentType_COMPONENT_TYPE_WORKFLOW
		return tx, nil
	})
	mustChange(t, e, id, func(st *pb.ExecutionState) (*events.Tx, error) {
		return lockedBy(st, "Run_wf", now.Add(time.Hour), nil), nil
	})
	mustChange(t, e, id, func(st *pb.ExecutionState) (*events.Tx, error) {
		hist := func(h *pb.HistoryEvent) *pb.Event {
			return &pb.Event{CreatedAt: time.Now().UnixNano(), Kind: &pb.Event_History{History: h}}
		}
		evs := []*pb.Event{hist(&pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinSetCreate{JoinSetCreate: &pb.JoinSetCreate{JoinSetId: "g"}}})}
		tx := appendTx(st, "Run_wf")
		for _, c := range children {
			evs = append(evs, hist(&pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinSetRequest{JoinSetRequest: &pb.JoinSetRequest{JoinSetId: "g",
				Request: &pb.JoinSetRequest_Child{Child: &pb.ChildExecutionRequest{ChildExecutionId: c, Ffqn: "a:b/c.d"}}}}}))
			child := createdTx(c, time.Now()).Appends[0]
			child.Events[0].GetCreated().ParentId, child.Events[0].GetCreated().ParentJoinSetId = id, "g"
			tx.Appends = append(tx.Appends, child)
		}
		for _, d := range delays {
			d.DelayId = events.DelayID(id, "g", len(evs)) // requests are numbered from 1
			evs = append(evs, hist(&pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinSetRequest{JoinSetRequest: &pb.JoinSetRequest{JoinSetId: "g",
				Request: &pb.JoinSetRequest_Delay{Delay: d}}}}))
		}
		if unlock {
			evs = append(evs, &pb.Event{CreatedAt: time.Now().UnixNano(), Kind: &pb.Event_Unlocked{Unlocked: &pb.Unlocked{UnlockedAt: time.Now().UnixNano(), Reason: "test"}}})
		}
		tx.Appends[0].Events = evs
		return tx, nil
	})
	return id, children
}

// A panic in the delay timer after it answered the due delays restarts it; each delay
// is answered exactly once.
func TestDelayTimerRestartsMidPass(t *testing.T) {
	m := metrics.New()
	hook, passesAfter := panicOnce("delays", "answered")
	e := newHookedEngine(t, m, hook)
	ctx := context.Background()
	at := time.Now().Add(300 * time.Millisecond).UnixNano()
	delays := []*pb.DelayRequest{{ExpiresAt: at}, {ExpiresAt: at}}
	wf, _ := workflowWithRequests(t, e, 0, delays, false)
	e.delays.notify(at) // as the workflow run does after its commit
	answers := func() map[string]int {
		resps, err := e.store.Responses(ctx, wf, 0)
		if err != nil {
			t.Fatal(err)
		}
		n := map[string]int{}
		for _, r := range resps {
			n[r.GetDelay().GetDelayId()]++
		}
		return n
	}
	eventually(t, "both delays answered", func() bool { return len(answers()) == 2 })
	eventually(t, "two passes after the restart", func() bool { return passesAfter.Load() >= 2 })
	for _, d := range delays {
		if n := answers()[d.DelayId]; n != 1 {
			t.Errorf("delay %s answered %d times, want 1", d.DelayId, n)
		}
		if _, waiting, err := e.store.DelayExpiry(ctx, d.DelayId); err != nil || waiting {
			t.Errorf("delay %s still waiting (%v)", d.DelayId, err)
		}
	}
	if got := restarts(t, m, "delays"); got != 1 {
		t.Errorf("restarts of delays = %v, want 1", got)
	}
}

// A panic in the canceller after it cancelled the first child of one of two workflows
// being cancelled restarts it; both cancellations still complete (the one the crashed
// pass had not reached yet too), every execution finishing once.
func TestCancellerRestartsMidPass(t *testing.T) {
	m := metrics.New()
	crash, _ := panicOnce("canceller", "request cancelled")
	gate := make(chan struct{})
	var opened atomic.Bool
	open := func() {
		if opened.CompareAndSwap(false, true) {
			close(gate)
		}
	}
	e := newHookedEngine(t, m, func(service, step string) {
		if service == "canceller" && step == "pass" {
			<-gate // one pass for both cancellations
		}
		crash(service, step)
	})
	t.Cleanup(open) // before the engine's Close, which waits for the pass
	ctx := context.Background()
	var all []string
	var wfs []string
	for range 2 {
		wf, children := workflowWithRequests(t, e, 2, nil, true)
		if out, err := e.Cancel(ctx, wf); err != nil || out != CancelRequested {
			t.Fatalf("cancel: %v %v", out, err)
		}
		wfs = append(wfs, wf)
		all = append(append(all, children...), wf)
	}
	open()
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for _, wf := range wfs {
		st, err := e.WaitFinished(wctx, wf)
		if err != nil {
			t.Fatalf("the cancellation of %s did not complete: %v", wf, err)
		}
		if r, err := events.ParseResult(st.Result); err != nil || r.Failure == nil || r.Failure.Kind != events.FailureCancelled {
			t.Fatalf("workflow result %s, want the cancelled failure", st.Result)
		}
		resps, err := e.store.Responses(ctx, wf, 0)
		if err != nil || len(resps) != 2 {
			t.Fatalf("%d responses (%v), want 2", len(resps), err)
		}
	}
	for _, id := range all {
		if n := countEvents(t, e, id, func(ev *pb.Event) bool { return ev.GetFinished() != nil }); n != 1 {
			t.Errorf("%s finished %d times, want 1", id, n)
		}
	}
	if got := restarts(t, m, "canceller"); got != 1 {
		t.Errorf("restarts of canceller = %v, want 1", got)
	}
}

// A panic in an executor's pass, after it started the first of several due executions,
// restarts the executor: every execution runs exactly once (one lock, one result).
func TestExecutorRestartsMidPass(t *testing.T) {
	m := metrics.New()
	crash, _ := panicOnce("executor:fibo", "started")
	gate := make(chan struct{})
	var opened atomic.Bool
	open := func() {
		if opened.CompareAndSwap(false, true) {
			close(gate)
		}
	}
	ctx := context.Background()
	e, err := New(ctx, Config{
		DataDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: m,
		Components: []ComponentConfig{{Name: "fibo", Type: ActivityWasm, Path: builtComponent(t, "fibo"), LockExpiry: time.Minute, MaxConcurrency: 10}},
		testHook: func(service, step string) {
			if service == "executor:fibo" && step == "pass" {
				<-gate // one pass for every execution
			}
			crash(service, step)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(ctx) })
	t.Cleanup(open) // before Close, which waits for the pass
	fn := e.reg.byFFQN["testing:fibo/fibo.fibo"]
	var ids []string
	for range 5 {
		id := events.NewExecutionID(time.Now())
		// Created pending, not locked at creation (as Submit's eager dispatch would):
		// the executor's pass has to lock them.
		mustChange(t, e, id, func(*pb.ExecutionState) (*events.Tx, error) {
			return &events.Tx{Appends: []events.Append{{ExecutionID: id, Events: []*pb.Event{createdEvent(time.Now(), fn.Component, fn.Fn.FFQN(), []byte("[10]"), "", "")}}}}, nil
		})
		ids = append(ids, id)
	}
	open()
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for _, id := range ids {
		st, err := e.WaitFinished(wctx, id)
		if err != nil {
			t.Fatalf("%s did not finish: %v", id, err)
		}
		if string(st.Result) != `{"ok":55}` {
			t.Errorf("%s: result %s", id, st.Result)
		}
		if n := countEvents(t, e, id, func(ev *pb.Event) bool { return ev.GetLocked() != nil }); n != 1 {
			t.Errorf("%s locked %d times, want 1", id, n)
		}
	}
	if got := restarts(t, m, "executor:fibo"); got != 1 {
		t.Errorf("restarts of executor:fibo = %v, want 1", got)
	}
}

// A service that keeps failing is not restarted for ever: at the policy's limit the
// engine fail-stops with an error naming it, as on a store failure.
func TestServiceFailingTooOftenStopsTheEngine(t *testing.T) {
	m := metrics.New()
	e := newHookedEngine(t, m, func(service, step string) {
		if service == "timers" && step == "pass" {
			panic("injected by the test")
		}
	})
	ctx := context.Background()
	id := events.NewExecutionID(time.Now())
	followed := make(chan error, 1)
	mustChange(t, e, id, func(*pb.ExecutionState) (*events.Tx, error) { return createdTx(id, time.Now()), nil })
	go func() {
		_, err := e.Follow(ctx, id, func(st *pb.ExecutionState) bool { return st.Status == pb.Status_STATUS_FINISHED })
		followed <- err
	}()
	select {
	case <-e.Failed():
	case <-time.After(time.Minute):
		t.Fatal("the engine did not stop")
	}
	var sf *ServiceFailedError
	policy := defaultRestarts()
	if !errors.As(e.Err(), &sf) || sf.Service != "timers" || sf.Failures != policy.MaxFailures || !strings.Contains(sf.Reason, "injected by the test") {
		t.Fatalf("Err() = %v, want the timers' failure after %d panics", e.Err(), policy.MaxFailures)
	}
	if !strings.Contains(e.Err().Error(), `"timers" failed 5 times`) {
		t.Errorf("message %q does not say which service failed how often", e.Err())
	}
	if got := restarts(t, m, "timers"); got != float64(policy.MaxFailures-1) {
		t.Errorf("restarts of timers = %v, want %d", got, policy.MaxFailures-1)
	}
	select {
	case err := <-followed:
		if !errors.As(err, &sf) {
			t.Errorf("Follow ended with %v, want the service failure", err)
		}
	case <-time.After(time.Minute):
		t.Error("Follow still waits on a stopped engine")
	}
	select {
	case <-e.servicesStopped:
	case <-time.After(time.Minute):
		t.Fatal("the services still run after the engine stopped")
	}
	// Nothing stored was lost: the store still answers.
	if st, err := e.State(ctx, id); err != nil || st.Status != pb.Status_STATUS_PENDING_AT {
		t.Fatalf("state after the stop: %v %v", st, err)
	}
}
