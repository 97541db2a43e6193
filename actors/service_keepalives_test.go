package actors

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/events"
	"github.com/obelisk-go/obelisk/metrics"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// lockedAttempt creates an activity execution of a component configured by cfg, locks it
// for a run of this process and returns the attempt begun for that run.
func lockedAttempt(t *testing.T, e *Engine, cfg ComponentConfig) (*attempt, string) {
	t.Helper()
	ctx := context.Background()
	cfg.Name, cfg.Type = "q", ActivityWasm
	comp := &Component{Config: cfg, ID: "activity_wasm:q:sha256:00"}
	x := newExecutor(e, comp)
	e.executors[comp.ID] = x // not started: nothing but this test locks its executions
	id := events.NewExecutionID(time.Now())
	tx := createdTx(id, time.Now())
	tx.Appends[0].Events[0].GetCreated().Queue = "q"
	if _, err := e.change(ctx, id, func(*pb.ExecutionState) (*events.Tx, error) { return tx, nil }); err != nil {
		t.Fatal(err)
	}
	runID := events.NewRunID(time.Now())
	e.runs.add(runID) // a live run: the timer service leaves its lock alone until it expires
	t.Cleanup(func() { e.runs.remove(runID) })
	st, err := e.change(ctx, id, func(st *pb.ExecutionState) (*events.Tx, error) {
		return appendTx(st, "", x.lockedEvent(runID, time.Now(), nil)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	a := e.beginAttempt(ctx, comp, st, runID)
	t.Cleanup(func() { e.endAttempt(a) })
	return a, id
}

// waitDone waits for the attempt's context to end and returns how long after start.
func waitDone(t *testing.T, a *attempt, start time.Time) time.Duration {
	t.Helper()
	select {
	case <-a.ctx.Done():
		return time.Since(start)
	case <-time.After(30 * time.Second):
		t.Fatal("the attempt was not ended")
		return 0
	}
}

func countLocked(t *testing.T, e *Engine, id string) int {
	t.Helper()
	evs, err := e.store.Events(context.Background(), id, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ev := range evs {
		if ev.GetLocked() != nil {
			n++
		}
	}
	return n
}

// A kept-alive attempt outlives its lock expiry many times over: its lock is renewed by
// the same run, never further than lock_expiry ahead, and its context stays alive.
func TestKeepaliveRenewsLock(t *testing.T) {
	e := newTestEngine(t)
	// Renewed every 500ms: a loaded machine may hold a renewal up by a second and
	// still not lose the lock.
	const expiry = 1500 * time.Millisecond
	a, id := lockedAttempt(t, e, ComponentConfig{LockExpiry: expiry, KeepAlive: true})
	time.Sleep(3 * expiry)
	if err := a.ctx.Err(); err != nil {
		t.Fatalf("the attempt was ended after %v: %v", 3*expiry, err)
	}
	before := time.Now()
	st, err := e.store.State(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != pb.Status_STATUS_LOCKED || st.RunId != a.runID {
		t.Fatalf("state %v, want locked by %s", st.Status, a.runID)
	}
	if left := time.Unix(0, st.LockExpiresAt).Sub(before); left <= 0 || left > expiry {
		t.Fatalf("the lock expires in %v: want within (0, %v]", left, expiry)
	}
	if n := countLocked(t, e, id); n < 4 {
		t.Fatalf("%d locked events: want the lock and at least 3 renewals", n)
	}
	if got := e.explain(a, nil); got != nil {
		t.Fatalf("explain(nil) = %v", got)
	}
}

// Without keepalive the lock is taken once and ends the attempt.
func TestNoKeepaliveEndsAtLockExpiry(t *testing.T) {
	e := newTestEngine(t)
	const expiry = 300 * time.Millisecond
	start := time.Now()
	a, id := lockedAttempt(t, e, ComponentConfig{LockExpiry: expiry})
	if took := waitDone(t, a, start); took < expiry-10*time.Millisecond {
		t.Fatalf("ended after %v, before the lock expired", took)
	}
	if n := countLocked(t, e, id); n != 1 {
		t.Fatalf("%d locked events: want the lock alone", n)
	}
	var te *timeoutError
	if err := e.explain(a, errors.New("deadline")); !errors.As(err, &te) || !errors.Is(err, errTimedOut) || te.reason != "activity exceeded its lock expiry" {
		t.Fatalf("explain = %v", err)
	}
}

// max_duration ends a kept-alive attempt although its lock is renewed, and one without
// keepalive before its lock expires; the timeout says max_duration.
func TestMaxDuration(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  ComponentConfig
	}{
		{"kept alive", ComponentConfig{LockExpiry: 1500 * time.Millisecond, KeepAlive: true, MaxDuration: 3 * time.Second}},
		{"not kept alive", ComponentConfig{LockExpiry: time.Minute, MaxDuration: 3 * time.Second}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newTestEngine(t)
			start := time.Now()
			a, _ := lockedAttempt(t, e, c.cfg)
			took := waitDone(t, a, start)
			if took < c.cfg.MaxDuration-10*time.Millisecond || took > 20*time.Second {
				t.Fatalf("ended after %v, want about max_duration (%v)", took, c.cfg.MaxDuration)
			}
			err := e.explain(a, errors.New("deadline"))
			if !errors.Is(err, errTimedOut) || !strings.Contains(err.Error(), "activity exceeded its max_duration of 3s") {
				t.Fatalf("explain = %v", err)
			}
		})
	}
}

// A renewal that finds the lock gone (here the execution was cancelled, which finishes
// it) kills the attempt: the run no longer holds the execution.
func TestKeepaliveLostLockKills(t *testing.T) {
	e := newTestEngine(t)
	a, id := lockedAttempt(t, e, ComponentConfig{LockExpiry: 3 * time.Second, KeepAlive: true})
	if _, err := e.Cancel(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	// The next renewal is due lock_expiry/3 = 1s after the attempt began, well before
	// the lock would have ended it.
	waitDone(t, a, time.Now())
	var te *timeoutError
	if err := e.explain(a, errors.New("deadline")); !errors.As(err, &te) || te.reason != "activity lost its lock" {
		t.Fatalf("explain = %v", err)
	}
	if n := countLocked(t, e, id); n != 1 {
		t.Fatalf("%d locked events: the lost lock was renewed", n)
	}
}

// A panic in the keepalive service restarts it; the attempts it was keeping alive are
// still renewed afterwards (they live outside the service's actor).
func TestKeepalivesRestartMidPass(t *testing.T) {
	m := metrics.New()
	var armed, panicked atomic.Bool
	e := newHookedEngine(t, m, func(service, step string) {
		if service == "keepalives" && step == "pass" && armed.Load() && panicked.CompareAndSwap(false, true) {
			panic("injected by the test")
		}
	})
	const expiry = 1500 * time.Millisecond
	a, id := lockedAttempt(t, e, ComponentConfig{LockExpiry: expiry, KeepAlive: true})
	armed.Store(true)
	time.Sleep(3 * expiry)
	if !panicked.Load() {
		t.Fatal("the keepalive service made no pass while an attempt was kept alive")
	}
	if err := a.ctx.Err(); err != nil {
		t.Fatalf("the attempt was ended after the restart: %v", err)
	}
	if n := restarts(t, m, "keepalives"); n != 1 {
		t.Fatalf("%v restarts of keepalives, want 1", n)
	}
	if n := countLocked(t, e, id); n < 4 {
		t.Fatalf("%d locked events: want the lock and at least 3 renewals", n)
	}
}
