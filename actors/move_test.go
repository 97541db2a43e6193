package actors

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

const wfWIT = "package testing:wf;\ninterface wf { run: func(n: u8) -> result<u64>; }\nworld any { export wf; }\n"

// moveEngine is a test engine whose registry holds workflows made from WIT alone: wf1
// (retired, with one live execution counted), wf2 (same function), wf3 (same name,
// another signature) and an activity exporting the same function.
func moveEngine(t *testing.T) (e *Engine, wf1, wf2 *Component) {
	t.Helper()
	e = newTestEngine(t)
	wf1, wf2 = witComponent(t, Workflow, "wf1", wfWIT), witComponent(t, Workflow, "wf2", wfWIT)
	wf3 := witComponent(t, Workflow, "wf3", strings.Replace(wfWIT, "n: u8", "n: u32", 1))
	act := witComponent(t, ActivityWasm, "act", strings.Replace(wfWIT, "package testing:wf", "package testing:act", 1))
	act.exports["testing:wf/wf.run"] = act.exports["testing:act/wf.run"]
	reg, err := newRegistry([]*Component{wf2, wf3, act}, []*Component{wf1})
	if err != nil {
		t.Fatal(err)
	}
	e.reg = reg
	e.versions.live[wf1.ID] = 1
	return e, wf1, wf2
}

// create makes a workflow execution of testing:wf/wf.run pinned to c, in queue "none"
// (served by nothing, so no run takes it), and folds the extra events after it.
func create(t *testing.T, e *Engine, c *Component, extra ...*pb.Event) string {
	t.Helper()
	id := events.NewExecutionID(time.Now())
	now := time.Now()
	ev := createdEvent(now, c, "testing:wf/wf.run", []byte("[1]"), "", "")
	ev.GetCreated().Queue = "none"
	if _, err := e.store.Commit(context.Background(), &events.Tx{Appends: []events.Append{{ExecutionID: id, Events: append([]*pb.Event{ev}, extra...)}}}); err != nil {
		t.Fatal(err)
	}
	return id
}

// MoveToComponent records who moved the execution from which component to which, pins
// it (and its queue) to the target, and counts it out of a retired version, which is
// dropped with its last execution.
func TestMoveToComponent(t *testing.T) {
	e, wf1, wf2 := moveEngine(t)
	ctx := context.Background()
	id := create(t, e, wf1)
	if err := e.MoveToComponent(ctx, id, "wf2", "cli"); err != nil {
		t.Fatal(err)
	}
	st, err := e.State(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if st.ComponentId != wf2.ID || st.Queue != "wf2" || st.NextVersion != 2 || !events.Runnable(st) {
		t.Fatalf("after the move: component %s queue %s version %d runnable %v", st.ComponentId, st.Queue, st.NextVersion, events.Runnable(st))
	}
	evs, err := e.store.Events(ctx, id, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	m := evs[0].GetMoved()
	if len(evs) != 1 || m.FromComponentId != wf1.ID || m.ToComponentId != wf2.ID || m.By != "cli" {
		t.Fatalf("recorded %v", evs)
	}
	if !wf1.dropped.Load() {
		t.Fatal("the retired version's last execution left it, but it was not dropped")
	}
	// Again to where it is: nothing is written.
	if err := e.MoveToComponent(ctx, id, wf2.ID, "cli"); err != nil {
		t.Fatal(err)
	}
	if st, _ := e.State(ctx, id); st.NextVersion != 2 {
		t.Fatalf("a move to the same component wrote %d events", st.NextVersion-2)
	}
}

// A move to somewhere the execution cannot run is refused, naming why, and writes
// nothing.
func TestMoveToComponentRefused(t *testing.T) {
	e, wf1, _ := moveEngine(t)
	ctx := context.Background()
	id := create(t, e, wf1)
	var ia *InvalidArgumentError
	var nf *NotFoundError
	var cnf *ComponentNotFoundError
	for _, c := range []struct {
		id, to string
		want   any
		text   string
	}{
		{id, "wf3", &ia, "as func(n: u32)"},
		{id, "act", &ia, "runs on a workflow"},
		{id, wf1.ID, &ia, "retired version"},
		{id, "nope", &cnf, "not found"},
		{events.NewExecutionID(time.Now()), "wf2", &nf, "not found"},
	} {
		err := e.MoveToComponent(ctx, c.id, c.to, "cli")
		if err == nil || !errors.As(err, c.want) || !strings.Contains(err.Error(), c.text) {
			t.Errorf("move to %s: %v, want %T mentioning %q", c.to, err, c.want, c.text)
		}
	}
	if st, _ := e.State(ctx, id); st.NextVersion != 1 || st.ComponentId != wf1.ID {
		t.Fatalf("a refused move changed the execution: version %d component %s", st.NextVersion, st.ComponentId)
	}
}

// A workflow held by a run (running, or parked in memory within its lease) is taken
// from it: the run is stopped, the lock released in the move's commit, so that the next
// run is of the new code.
func TestMoveToComponentStopsTheRun(t *testing.T) {
	e, wf1, wf2 := moveEngine(t)
	ctx := context.Background()
	now := time.Now().Add(time.Second) // after the Created event that create writes
	locked := lockedEvent("Exr_X", wf1, "Run_1", now, now.Add(time.Hour), nil)
	id := create(t, e, wf1, locked)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	e.active.add(id, cancel)
	if err := e.MoveToComponent(ctx, id, "wf2", "api"); err != nil {
		t.Fatal(err)
	}
	if runCtx.Err() == nil {
		t.Fatal("the run of the old code was not stopped")
	}
	st, _ := e.State(ctx, id)
	if st.Status != pb.Status_STATUS_PENDING_AT || st.ComponentId != wf2.ID || st.LockExpiresAt != 0 {
		t.Fatalf("after the move: %s component %s lock %d", events.StatusName(st.Status), st.ComponentId, st.LockExpiresAt)
	}
	evs, _ := e.store.Events(ctx, id, 2, 0)
	if len(evs) != 2 || evs[0].GetUnlocked() == nil || evs[1].GetMoved() == nil {
		t.Fatalf("recorded %v, want unlocked then moved", evs)
	}
}
