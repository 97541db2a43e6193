package actors

import (
	"context"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/events"
)

// TestEagerLockRules: the commit creating an activity or workflow locks it only when its
// executor in this process has a free slot and no due executions wait for one, and only
// executions due now; a lock given up releases the slot.
func TestEagerLockRules(t *testing.T) {
	e := newTestEngine(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	comp := &Component{Config: ComponentConfig{Name: "q", Type: ActivityWasm, LockExpiry: time.Second}, ID: "activity_wasm:q:sha256:00"}
	x := newExecutor(e, comp)
	x.slots = make(chan struct{}, 2)
	x.ctx = ctx
	e.executors["q"] = x
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
	wf := &Component{Config: ComponentConfig{Name: "w", Type: Workflow, LockExpiry: time.Second, MaxRetries: 3}, ID: "workflow:w:sha256:00"}
	xw := newExecutor(e, wf)
	xw.ctx = ctx
	e.executors["w"] = xw
	tx = child("E_7", now)
	c := tx.Appends[0].Events[0].GetCreated()
	c.Queue, c.ComponentId = "w", wf.ID
	if runs := e.eagerLock(tx, now); len(runs) != 1 || !locked(tx) || tx.Appends[0].Events[1].GetLocked().GetRetry().GetMaxRetries() != 3 ||
		tx.Appends[0].Events[1].GetLocked().GetRetry().GetUnlimitedRetries() {
		t.Errorf("workflow: %d runs, events %v", len(runs), tx.Appends[0].Events)
	} else {
		runs[0].release()
	}
	e.executors["w"].comp.Config.Type = ActivityStub
	tx = child("E_8", now)
	c = tx.Appends[0].Events[0].GetCreated()
	c.Queue, c.ComponentId = "w", wf.ID
	if len(e.eagerLock(tx, now)) != 0 || locked(tx) {
		t.Error("a stub's execution was locked")
	}
}
