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

// A run of the old code that locks the workflow between the move's check of its run
// and the move's commit is stopped too: the commit, conditioned on the version the
// check saw, is refused, and the move checks again.
func TestMoveToComponentStopsARunThatLockedAfterTheCheck(t *testing.T) {
	e, wf1, wf2 := moveEngine(t)
	ctx := context.Background()
	id := create(t, e, wf1)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	locks := 0
	e.cfg.testHook = func(service, step string) {
		if service != "move" || locks > 0 {
			return
		}
		locks++
		// A run registers before it locks (run.go), then commits its lock.
		e.active.add(id, cancel)
		now := time.Now().Add(time.Second)
		if _, err := e.store.Commit(ctx, &events.Tx{Appends: []events.Append{{ExecutionID: id, ExpectedVersion: 1,
			Events: []*pb.Event{lockedEvent("Exr_X", wf1, "Run_1", now, now.Add(time.Hour), nil)}}}}); err != nil {
			t.Error(err)
		}
	}
	if err := e.MoveToComponent(ctx, id, "wf2", "api"); err != nil {
		t.Fatal(err)
	}
	if runCtx.Err() == nil {
		t.Fatal("the run of the old code that locked after the check was not stopped")
	}
	st, _ := e.State(ctx, id)
	if st.ComponentId != wf2.ID || st.LockExpiresAt != 0 {
		t.Fatalf("after the move: %s component %s lock %d", events.StatusName(st.Status), st.ComponentId, st.LockExpiresAt)
	}
}

// forkOriginal records a workflow execution of wf on the store (no run: its queue is
// served by nothing) that made two direct calls: the first answered, the second's child
// created and still running. It returns the execution's ID and the second child's.
//
//	v0 created, v1 locked, v2-v4 call 1 (o:1-run), response, v5 locked, v6-v8 call 2
func forkOriginal(t *testing.T, e *Engine, wf *Component) (id, child2 string) {
	t.Helper()
	ctx := context.Background()
	t0 := time.Now().Add(-time.Hour)
	at := func(d int) int64 { return t0.Add(time.Duration(d) * time.Millisecond).UnixNano() }
	id = events.NewExecutionID(t0)
	created := createdEvent(t0, wf, "testing:wf/wf.run", []byte("[1]"), "", "")
	created.GetCreated().Queue = "none"
	hist := func(d int, h *pb.HistoryEvent) *pb.Event {
		return &pb.Event{CreatedAt: at(d), Kind: &pb.Event_History{History: h}}
	}
	call := func(d, n int) (string, []*pb.Event) {
		js, child, want := directCall(id, n, "testing:fibo/fibo.fibo", []byte("[1]"))
		want[2].GetJoinNext().RunExpiresAt = at(d)
		var evs []*pb.Event
		for _, h := range want {
			evs = append(evs, hist(d, h))
		}
		_ = js
		return child, evs
	}
	child1, call1 := call(2, 1)
	child2, call2 := call(5, 2)
	commit := func(tx *events.Tx) {
		t.Helper()
		if _, err := e.store.Commit(ctx, tx); err != nil {
			t.Fatal(err)
		}
	}
	commit(&events.Tx{Appends: []events.Append{{ExecutionID: id, Events: append([]*pb.Event{created,
		lockedEvent("Exr_X", wf, "Run_1", time.Unix(0, at(1)), t0.Add(2*time.Hour), nil)}, call1...)}}})
	commit(&events.Tx{Responses: []events.ResponseAppend{{ExecutionID: id, Response: &pb.Response{CreatedAt: at(3), JoinSetId: "o:1-fibo",
		Kind: &pb.Response_Child{Child: &pb.ChildFinished{ChildExecutionId: child1, Result: []byte(`{"ok":1}`)}}}}}})
	childCreated := createdEvent(time.Unix(0, at(5)), wf, "testing:wf/wf.run", []byte("[1]"), id, "o:2-fibo")
	childCreated.GetCreated().Queue = "none"
	commit(&events.Tx{Appends: []events.Append{
		{ExecutionID: id, ExpectedVersion: 5, Events: append([]*pb.Event{lockedEvent("Exr_X", wf, "Run_2", time.Unix(0, at(4)), t0.Add(2*time.Hour), nil)}, call2...)},
		{ExecutionID: child2, Events: []*pb.Event{childCreated}},
	}})
	return id, child2
}

// A fork copies the history up to its version, with the responses that had arrived,
// renamed into its own tree, records its origin, is listed by its original, and goes
// on on the component asked for. Points inside a call, past the history, or whose
// children have not finished are refused, naming why.
func TestFork(t *testing.T) {
	e, _, wf2 := moveEngine(t)
	ctx := context.Background()
	id, child2 := forkOriginal(t, e, wf2)
	var ia *InvalidArgumentError
	for at, want := range map[uint32]string{
		0:  "fork at 1 or later",
		3:  "inside the call recorded by versions 2..4 (join set o:1-fibo): fork at 2 or 5",
		10: "beyond the history",
		9:  "child " + child2 + ", requested before version 9, has not finished",
	} {
		if _, err := e.Fork(ctx, id, at, ForkOptions{}); !errors.As(err, &ia) || !strings.Contains(err.Error(), want) {
			t.Errorf("fork at %d: %v, want an invalid argument with %q", at, err, want)
		}
	}
	if _, err := e.Fork(ctx, id, 5, ForkOptions{Component: "wf3"}); !errors.As(err, &ia) {
		t.Errorf("fork onto another signature: %v", err)
	}
	if _, err := e.Fork(ctx, events.NewExecutionID(time.Now()), 1, ForkOptions{}); !errors.As(err, new(*NotFoundError)) {
		t.Errorf("fork of an unknown execution: %v", err)
	}

	fork, err := e.Fork(ctx, id, 5, ForkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := e.State(ctx, fork)
	if st.ForkedFrom != id || st.ForkedAtVersion != 5 || st.NextVersion != 5 || st.ResponseCount != 1 || st.ComponentId != wf2.ID || !events.Runnable(st) {
		t.Fatalf("fork at 5: %v", st)
	}
	rs, _ := e.store.Responses(ctx, fork, 0)
	if len(rs) != 1 || rs[0].GetChild().ChildExecutionId != events.ChildExecutionID(fork, "o:1-fibo", 1) || rs[0].AtVersion != 5 {
		t.Fatalf("the fork's responses: %v", rs)
	}
	evs, _ := e.store.Events(ctx, fork, 3, 1)
	if c := evs[0].GetHistory().GetJoinSetRequest().GetChild(); c.GetChildExecutionId() != events.ChildExecutionID(fork, "o:1-fibo", 1) {
		t.Fatalf("the fork's child request: %v", evs[0])
	}

	// Once the second child finished (after the fork point), a fork past its request
	// gets its result after the copied history; the original is cancelled on request.
	if _, err := e.store.Commit(ctx, e.finishTx(mustState(t, e, child2), []byte(`{"ok":1}`), time.Now())); err != nil {
		t.Fatal(err)
	}
	// The original paused at version 9: a fork after it is not paused.
	if err := e.Pause(ctx, id); err != nil {
		t.Fatal(err)
	}
	fork2, err := e.Fork(ctx, id, 10, ForkOptions{Component: "wf2", CancelOriginal: true})
	if err != nil {
		t.Fatal(err)
	}
	st, _ = e.State(ctx, fork2)
	if st.NextVersion != 11 || st.ResponseCount != 2 || st.Paused || !events.Runnable(st) {
		t.Fatalf("fork at 10: %v", st)
	}
	// Forked where the original's run held the lock: the fork's first own event
	// releases it.
	fork3, err := e.Fork(ctx, id, 2, ForkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	evs, _ = e.store.Events(ctx, fork3, 2, 0)
	if len(evs) != 1 || !strings.Contains(evs[0].GetUnlocked().GetReason(), "forked from "+id+" at version 2") || !events.Runnable(mustState(t, e, fork3)) {
		t.Fatalf("the fork's own events: %v", evs)
	}
	if forks, err := e.store.Forks(ctx, id); err != nil || len(forks) != 3 {
		t.Fatalf("forks of the original: %v %v", forks, err)
	}
	if st := mustState(t, e, id); !st.CancelRequested {
		t.Fatal("the original was not cancelled")
	}
}

func mustState(t *testing.T, e *Engine, id string) *pb.ExecutionState {
	t.Helper()
	st, err := e.State(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestForkAdmission: a fork is a new top-level execution asked for from outside: beyond
// max_pending it is refused, as a submission is, and nothing is created.
func TestForkAdmission(t *testing.T) {
	e, _, wf2 := moveEngine(t)
	ctx := context.Background()
	id, _ := forkOriginal(t, e, wf2) // its second child waits in the queue
	e.pending = &pendingLimit{max: 1}
	_, err := e.Fork(ctx, id, 1, ForkOptions{})
	var full *ResourceExhaustedError
	if !errors.As(err, &full) || !full.Server {
		t.Fatalf("fork past the server's max_pending: %v, want refused", err)
	}
	if forks, err := e.store.Forks(ctx, id); err != nil || len(forks) != 0 {
		t.Errorf("forks after the refusal: %v, %v; want none", forks, err)
	}
	e.pending = &pendingLimit{max: 2}
	if _, err := e.Fork(ctx, id, 1, ForkOptions{}); err != nil {
		t.Errorf("fork with room: %v", err)
	}
}
