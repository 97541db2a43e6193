package actors

import (
	"context"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/events"
	"github.com/obelisk-go/obelisk/wasmhost/wit"
)

// TestEagerLockRules: the commit creating an activity or workflow locks it only when its
// executor in this process has a free slot and no due executions wait for one, and only
// executions due now; a lock given up releases the slot.
func TestEagerLockRules(t *testing.T) {
	e := newTestEngine(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	comp := &Component{Config: ComponentConfig{Name: "q", Type: ActivityWasm, LockExpiry: time.Second, MaxConcurrency: 2}, ID: "activity_wasm:q:sha256:00",
		exports: map[string]*wit.Function{"a:b/c.d": {}}}
	x := addExecutor(e, ctx, comp)
	now := time.Now()
	child := func(id string, due time.Time) *events.Tx {
		tx := createdTx(id, now)
		c := tx.Appends[0].Events[0].GetCreated()
		c.Queue, c.ComponentId, c.ScheduledAt = "q", comp.ID, due.UnixNano()
		return tx
	}
	locked := func(tx *events.Tx) bool {
		evs := tx.Appends[0].Events
		return len(evs) == 2 && evs[1].GetLocked() != nil && evs[1].GetLocked().ExecutorId == e.executor
	}

	tx := child("E_1", now)
	runs := e.eagerLock(tx, now)
	if len(runs) != 1 || !locked(tx) || len(x.slots) != 1 {
		t.Fatalf("a due child with a free slot: %d runs, locked %v, %d slots taken", len(runs), locked(tx), len(x.slots))
	}
	if _, ok := x.inflight.Load("E_1"); !ok || !e.runs.has(runs[0].runID) {
		t.Error("the eager run is not registered before the commit")
	}

	if tx := child("E_2", now.Add(time.Minute)); len(e.eagerLock(tx, now)) != 0 || locked(tx) {
		t.Error("a child scheduled for later was locked")
	}

	x.backlog.Store(true)
	if tx := child("E_3", now); len(e.eagerLock(tx, now)) != 0 || locked(tx) {
		t.Error("a child was locked while due executions wait for a slot")
	}
	x.backlog.Store(false)

	if tx := child("E_4", now); len(e.eagerLock(tx, now)) != 1 {
		t.Fatal("second slot not taken")
	} else if tx := child("E_5", now); len(e.eagerLock(tx, now)) != 0 || locked(tx) {
		t.Error("a child was locked with every slot taken")
	}

	runs[0].release()
	if _, ok := x.inflight.Load("E_1"); ok || e.runs.has(runs[0].runID) || len(x.slots) != 1 {
		t.Error("release did not give the slot and the registrations back")
	}

	if tx := createdTx("E_6", now); len(e.eagerLock(tx, now)) != 0 || len(tx.Appends[0].Events) != 1 {
		t.Error("a child of a queue with no executor here was locked")
	}

	// A workflow is locked like an activity, with its component's (bounded) retry policy;
	// a stub never.
	wf := &Component{Config: ComponentConfig{Name: "w", Type: Workflow, LockExpiry: time.Second, MaxRetries: 3}, ID: "workflow:w:sha256:00",
		exports: map[string]*wit.Function{"a:b/c.d": {}}}
	addExecutor(e, ctx, wf)
	tx = child("E_7", now)
	c := tx.Appends[0].Events[0].GetCreated()
	c.Queue, c.ComponentId = "w", wf.ID
	if runs := e.eagerLock(tx, now); len(runs) != 1 || !locked(tx) || tx.Appends[0].Events[1].GetLocked().GetRetry().GetMaxRetries() != 3 ||
		tx.Appends[0].Events[1].GetLocked().GetRetry().GetUnlimitedRetries() {
		t.Errorf("workflow: %d runs, events %v", len(runs), tx.Appends[0].Events)
	} else {
		runs[0].release()
	}
	stub := &Component{Config: ComponentConfig{Name: "s", Type: ActivityStub, LockExpiry: time.Second}, ID: "activity_stub:s:sha256:00",
		exports: map[string]*wit.Function{"a:b/s.d": {}}}
	addExecutor(e, ctx, stub)
	tx = child("E_8", now)
	c = tx.Appends[0].Events[0].GetCreated()
	c.Ffqn, c.Queue, c.ComponentId = "a:b/s.d", "s", stub.ID
	if len(e.eagerLock(tx, now)) != 0 || locked(tx) {
		t.Error("a stub's execution was locked")
	}
}

// addExecutor serves comp in this engine as New would, on its queue (a new one, or the
// one already served here), and readies the queue for eager dispatch with ctx; the
// queue's service is not started.
func addExecutor(e *Engine, ctx context.Context, comp *Component) *executor {
	q := e.queues[comp.Config.QueueName()]
	if q == nil {
		q = newQueue(e, comp.Config.QueueName(), comp.Config.MaxConcurrency)
		q.ctx = ctx
		e.queues[q.id] = q
	}
	x := q.serve(comp)
	e.executors[comp.Config.Name] = x
	return x
}

// TestEagerLockSharedQueue: components that share a queue share its slots, each
// execution is locked for its own component's executor, and an execution is dispatched
// only to the queue it was created in, and only if that queue serves its function.
func TestEagerLockSharedQueue(t *testing.T) {
	e := newTestEngine(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := &Component{Config: ComponentConfig{Name: "a", Queue: "shared", Type: ActivityWasm, LockExpiry: time.Second, MaxConcurrency: 2},
		ID: "activity_wasm:a:sha256:00", exports: map[string]*wit.Function{"t:a/a.f": {}}}
	b := &Component{Config: ComponentConfig{Name: "b", Queue: "shared", Type: Workflow, LockExpiry: 2 * time.Second, MaxConcurrency: 2},
		ID: "workflow:b:sha256:00", exports: map[string]*wit.Function{"t:b/b.f": {}}}
	c := &Component{Config: ComponentConfig{Name: "c", Type: ActivityWasm, LockExpiry: time.Second, MaxConcurrency: 5},
		ID: "activity_wasm:c:sha256:00", exports: map[string]*wit.Function{"t:c/c.f": {}}}
	xa, xb, xc := addExecutor(e, ctx, a), addExecutor(e, ctx, b), addExecutor(e, ctx, c)
	if xa.queue != xb.queue || xa.queue == xc.queue || len(e.queues) != 3 { // and the KV component's
		t.Fatalf("a and b must share one queue, c have its own: %d queues", len(e.queues))
	}
	now := time.Now()
	child := func(id, ffqn, queue string, comp *Component) *events.Tx {
		tx := createdTx(id, now)
		cr := tx.Appends[0].Events[0].GetCreated()
		cr.Ffqn, cr.Queue, cr.ComponentId = ffqn, queue, comp.ID
		return tx
	}
	lockedFor := func(tx *events.Tx, runs []*run) *Component {
		if len(runs) != 1 || len(tx.Appends[0].Events) != 2 {
			return nil
		}
		return runs[0].x.comp
	}

	if tx := child("E_c", "t:c/c.f", "shared", c); len(e.eagerLock(tx, now)) != 0 || len(tx.Appends[0].Events) != 1 {
		t.Error("an execution of a function its queue does not serve was locked")
	}
	if tx := child("E_n", "t:a/a.f", "nowhere", a); len(e.eagerLock(tx, now)) != 0 {
		t.Error("an execution of a queue served nowhere was locked")
	}
	tx := child("E_a", "t:a/a.f", "shared", a)
	runsA := e.eagerLock(tx, now)
	if got := lockedFor(tx, runsA); got != a || tx.Appends[0].Events[1].GetLocked().LockExpiresAt != now.Add(time.Second).UnixNano() {
		t.Fatalf("a's execution: locked for %v", got)
	}
	tx = child("E_b", "t:b/b.f", "shared", b)
	runsB := e.eagerLock(tx, now)
	if got := lockedFor(tx, runsB); got != b || tx.Appends[0].Events[1].GetLocked().LockExpiresAt != now.Add(2*time.Second).UnixNano() {
		t.Fatalf("b's execution: locked for %v", got)
	}
	if tx := child("E_a2", "t:a/a.f", "shared", a); len(e.eagerLock(tx, now)) != 0 {
		t.Error("a third execution was locked in a queue of 2 slots, both taken")
	}
	// c's execution submitted to c's own queue is not held up by the shared queue.
	if tx := child("E_c2", "t:c/c.f", "c", c); lockedFor(tx, e.eagerLock(tx, now)) != c {
		t.Error("c's execution in its own queue was not locked")
	}
	runsA[0].release()
	if tx := child("E_b2", "t:b/b.f", "shared", b); lockedFor(tx, e.eagerLock(tx, now)) != b {
		t.Error("the slot a gave back was not taken by b")
	}
	runsB[0].release()
}
