package actors

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// newReplayEngine runs fibo, sleep, fibo-workflow, fibo-workflow-v2 (the newest
// exporter of fibo-workflow's functions) and sleep-workflow.
func newReplayEngine(t *testing.T) *Engine {
	t.Helper()
	ctx := context.Background()
	wf := func(name string) ComponentConfig {
		return ComponentConfig{Name: name, Type: Workflow, Path: builtComponent(t, name), LockExpiry: time.Minute, MaxConcurrency: 4, BlockingStrategy: Interrupt}
	}
	act := func(name string) ComponentConfig {
		return ComponentConfig{Name: name, Type: ActivityWasm, Path: builtComponent(t, name), LockExpiry: time.Minute, MaxConcurrency: 4}
	}
	e, err := New(ctx, Config{DataDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Components: []ComponentConfig{act("fibo"), act("sleep"), wf("fibo-workflow"), wf("fibo-workflow-v2"), wf("sleep-workflow")}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(ctx) })
	return e
}

// TestReplay: shadow replays on one engine (compiling the components is most of the
// time).
func TestReplay(t *testing.T) {
	e := newReplayEngine(t)
	t.Run("finished", func(t *testing.T) { testReplayFinished(t, e) })
	t.Run("unfinished", func(t *testing.T) { testReplayUnfinishedNext(t, e) })
	t.Run("refuses", func(t *testing.T) { testReplayRefuses(t, e) })
	t.Run("file", func(t *testing.T) { testReplayFile(t, e) })
	t.Run("upgrade", func(t *testing.T) { testUpgrade(t, e) })
	t.Run("fork identity", func(t *testing.T) { testForkIdentity(t, e) })
	t.Run("steps then return", func(t *testing.T) { testReplayStepsThenReturn(t, e) })
	t.Run("memory budget", func(t *testing.T) { testReplayMemoryBudget(t, e) })
}

// A replay's instance counts in the guest memory budget, as a run's: with the whole
// budget held, a replay waits for room (here until its context ends), and it runs once
// the room is there, giving it back after.
func testReplayMemoryBudget(t *testing.T, e *Engine) {
	ctx := context.Background()
	id := submitFinished(t, e, "testing:fibo-workflow/workflow.fibow", "[3, 1]", "fibo-workflow")
	hog, err := e.memory.Admit(ctx, e.cfg.MemoryBudget-e.memory.Stats().Used)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, time.Second)
	_, err = e.Replay(short, id, ReplayTarget{})
	cancel()
	if err == nil || !strings.Contains(err.Error(), "guest memory") {
		hog.Close()
		t.Fatalf("replay with the budget held: %v, want it to wait for guest memory", err)
	}
	hog.Close()
	used := e.memory.Stats().Used
	if rep, err := e.Replay(ctx, id, ReplayTarget{}); err != nil || !rep.OK {
		t.Fatalf("replay with room: %+v (%v)", rep, err)
	}
	if after := e.memory.Stats().Used; after != used {
		t.Errorf("guest memory used: %d before the replay, %d after", used, after)
	}
}

// A workflow that, past its history, takes steps and then returns without waiting
// (identity with 0 ms: it creates a join set and returns): the report's next steps end
// with the return, after the steps, and carry the result.
func testReplayStepsThenReturn(t *testing.T, e *Engine) {
	ctx := context.Background()
	c := e.reg.byName["sleep-workflow"]
	ev := createdEvent(time.Now(), c, "testing:sleep-workflow/workflow.identity", []byte("[0]"), "", "")
	ev.GetCreated().Queue = "none" // served by nothing: its history stays the Created event
	id := events.NewExecutionID(time.Now())
	if _, err := e.store.Commit(ctx, &events.Tx{Appends: []events.Append{{ExecutionID: id, Events: []*pb.Event{ev}}}}); err != nil {
		t.Fatal(err)
	}
	rep, err := e.Replay(ctx, id, ReplayTarget{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || len(rep.Next) != 2 || rep.Next[0].Kind != "join_set_create" || rep.Next[1].Kind != "return" ||
		!strings.HasPrefix(string(rep.Result), `{"ok":"`+id+" ") || !strings.Contains(rep.Next[1].Detail, id) {
		t.Fatalf("report %+v", rep)
	}
}

// A fork runs as its root original: the guest sees the original's execution ID and
// random seed, under which the copied prefix was recorded. identity names a join set
// after both, then returns them: its fork (and the fork's fork) replays the prefix
// and returns what the original returned.
func testForkIdentity(t *testing.T, e *Engine) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	id, _, err := e.Submit(ctx, "", "testing:sleep-workflow/workflow.identity", json.RawMessage("[1]"), OfComponent("sleep-workflow"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := e.WaitFinished(ctx, id)
	if err != nil || !strings.HasPrefix(string(st.Result), `{"ok":"`+id+" ") {
		t.Fatalf("original: %v (%v)", st, err)
	}
	want := string(st.Result)
	evs, err := e.store.Events(ctx, id, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	at := uint32(0)
	for v, ev := range evs {
		if strings.HasPrefix(ev.GetHistory().GetJoinSetCreate().GetJoinSetId(), "n:id-") {
			at = uint32(v) + 1
		}
	}
	if at == 0 {
		t.Fatalf("no named join set in %v", evs)
	}
	from := id
	for _, what := range []string{"fork", "fork of the fork"} {
		fork, err := e.Fork(ctx, from, at, ForkOptions{})
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		st, err := e.WaitFinished(ctx, fork)
		if err != nil || string(st.Result) != want {
			t.Fatalf("%s %s: %s (%v), want the original's %s", what, fork, st.GetResult(), err, want)
		}
		fevs, err := e.store.Events(ctx, fork, 0, 1)
		if err != nil || fevs[0].GetCreated().GetSeedId() != id || fevs[0].GetCreated().GetForkedFrom() != from {
			t.Fatalf("%s: created %v (%v): want seed %s, forked from %s", what, fevs, err, id, from)
		}
		rep, err := e.Replay(ctx, fork, ReplayTarget{})
		if err != nil || !rep.OK {
			t.Fatalf("replay of the %s: %+v (%v)", what, rep, err)
		}
		from = fork
	}
}

// Upgrade moves an unfinished execution that replays cleanly on the target (here
// fiboa-concurrent, paused before it ran: the same code in v2), after a dry run that
// moves nothing; it refuses a selection that is not exactly one kind, an unknown
// status, and a target that is not a workflow.
func testUpgrade(t *testing.T, e *Engine) {
	ctx := context.Background()
	id, _, err := e.Submit(ctx, "", "testing:fibo-workflow/workflow.fiboa-concurrent", json.RawMessage("[3, 2]"), OfComponent("fibo-workflow"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Pause(ctx, id); err != nil {
		t.Fatal(err)
	}
	v1 := e.reg.byName["fibo-workflow"].ID
	sel := UpgradeSelection{FromComponent: "fibo-workflow"}
	res, err := e.Upgrade(ctx, sel, UpgradeOptions{Component: "fibo-workflow-v2", DryRun: true, By: "test"})
	if err != nil {
		t.Fatal(err)
	}
	var mine *UpgradeItem
	for i := range res.Items {
		if res.Items[i].ExecutionID == id {
			mine = &res.Items[i]
		}
	}
	if mine == nil || mine.Outcome != UpgradeWouldMove || mine.From != v1 || mine.Report == nil || !mine.Report.OK {
		t.Fatalf("dry run: %+v", res.Items)
	}
	if st, _ := e.State(ctx, id); st.ComponentId != v1 {
		t.Fatalf("a dry run moved %s to %s", id, st.ComponentId)
	}
	res, err = e.Upgrade(ctx, UpgradeSelection{IDs: []string{id}}, UpgradeOptions{Component: "fibo-workflow-v2", By: "test"})
	if err != nil || len(res.Items) != 1 || res.Items[0].Outcome != UpgradeMoved {
		t.Fatalf("upgrade: %+v, %v", res, err)
	}
	if err := e.Unpause(ctx, id); err != nil {
		t.Fatal(err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	st, err := e.WaitFinished(waitCtx, id)
	if err != nil || st.ComponentId != res.To || string(st.Result) != `{"ok":4}` {
		t.Fatalf("after the move: %v (%v)", st, err)
	}
	var ia *InvalidArgumentError
	for _, c := range []struct {
		sel  UpgradeSelection
		to   string
		text string
	}{
		{UpgradeSelection{}, "fibo-workflow-v2", "one of the three"},
		{UpgradeSelection{IDs: []string{id}, FFQN: "x"}, "fibo-workflow-v2", "one of the three"},
		{UpgradeSelection{FFQN: "x", Statuses: []string{"running"}}, "fibo-workflow-v2", `status "running"`},
		{UpgradeSelection{FFQN: "x"}, "fibo", "only workflow executions"},
	} {
		if _, err := e.Upgrade(ctx, c.sel, UpgradeOptions{Component: c.to}); !errors.As(err, &ia) || !strings.Contains(err.Error(), c.text) {
			t.Errorf("upgrade %+v to %s: %v, want an invalid argument mentioning %q", c.sel, c.to, err, c.text)
		}
	}
}

// storeCounts is what a replay must not change: every execution's state, and the
// store's last global position (any committed event moves it).
func storeCounts(t *testing.T, e *Engine) (map[string]string, uint64) {
	t.Helper()
	states := map[string]string{}
	if err := e.store.AllStates(context.Background(), func(st *pb.ExecutionState) error {
		b, _ := json.Marshal(st)
		states[st.ExecutionId] = string(b)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return states, e.store.LastPosition()
}

func submitFinished(t *testing.T, e *Engine, ffqn, params, component string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	id, _, err := e.Submit(ctx, "", ffqn, json.RawMessage(params), OfComponent(component))
	if err != nil {
		t.Fatal(err)
	}
	if st, err := e.WaitFinished(ctx, id); err != nil {
		t.Fatalf("%s not finished: %v (%v)", id, err, st)
	}
	return id
}

// A finished execution replays to its end on its pinned component, returning its
// recorded result; on fibo-workflow-v2, whose fiboa calls fibo(1) first, it diverges
// at its first request, reported with both steps. Nothing is written either way.
func testReplayFinished(t *testing.T, e *Engine) {
	ctx := context.Background()
	id := submitFinished(t, e, "testing:fibo-workflow/workflow.fiboa", "[5, 2]", "fibo-workflow")
	statesBefore, posBefore := storeCounts(t, e)

	rep, err := e.Replay(ctx, id, ReplayTarget{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || !rep.Finished || rep.Divergence != nil || string(rep.Result) != `{"ok":10}` || !sameJSON(rep.Result, rep.RecordedResult) {
		t.Fatalf("replay on the pinned component: %+v", rep)
	}
	if rep.Replayed != rep.HistoryEvents || rep.HistoryEvents != 6 {
		t.Errorf("replayed %d of %d history events, want 6 of 6", rep.Replayed, rep.HistoryEvents)
	}

	rep, err = e.Replay(ctx, id, ReplayTarget{Component: "fibo-workflow-v2"})
	if err != nil {
		t.Fatal(err)
	}
	d := rep.Divergence
	if rep.OK || d == nil || d.Index != 1 || d.Recorded == nil || d.Produced == nil {
		t.Fatalf("replay on v2: %+v (divergence %+v)", rep, d)
	}
	if d.Recorded.Kind != "submit" || d.Recorded.Function != "testing:fibo/fibo.fibo" || string(d.Recorded.Params) != "[5]" ||
		d.Produced.Kind != "submit" || string(d.Produced.Params) != "[1]" || d.Produced.JoinSet != d.Recorded.JoinSet {
		t.Errorf("divergence: recorded %+v, produced %+v", d.Recorded, d.Produced)
	}
	if !strings.Contains(d.Detail, "at history event 1") {
		t.Errorf("detail %q", d.Detail)
	}
	if rep.ComponentID == rep.Pinned {
		t.Errorf("replayed against %s, the pinned component", rep.ComponentID)
	}

	// fibow makes no host call: v2's is the same, and so is its result.
	idw := submitFinished(t, e, "testing:fibo-workflow/workflow.fibow", "[10, 1]", "fibo-workflow")
	if rep, err := e.Replay(ctx, idw, ReplayTarget{Component: "fibo-workflow-v2"}); err != nil || !rep.OK || string(rep.Result) != `{"ok":55}` {
		t.Fatalf("fibow on v2: %+v, %v", rep, err)
	}
	statesAfter, posAfter := storeCounts(t, e)
	delete(statesAfter, idw)
	if posAfter-posBefore != countAll(t, e, idw) || len(statesAfter) != len(statesBefore) {
		t.Errorf("the replays wrote: position %d -> %d, %d states -> %d", posBefore, posAfter, len(statesBefore), len(statesAfter))
	}
	for id, st := range statesBefore {
		if statesAfter[id] != st {
			t.Errorf("state of %s changed by a replay:\n%s\n%s", id, st, statesAfter[id])
		}
	}
}

// countAll is the number of events of execution id.
func countAll(t *testing.T, e *Engine, id string) uint64 {
	t.Helper()
	evs, err := e.store.Events(context.Background(), id, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return uint64(len(evs))
}

// An unfinished execution replays to its end, then reports what it would do next: here
// wait for its durable sleep. The guest's log lines are in the report, and nothing is
// written (not even the lines).
func testReplayUnfinishedNext(t *testing.T, e *Engine) {
	ctx := context.Background()
	id, _, err := e.Submit(ctx, "", "testing:sleep-workflow/workflow.sleep-then-call", json.RawMessage("[3600000, 3]"))
	if err != nil {
		t.Fatal(err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if _, err := e.Follow(waitCtx, id, func(st *pb.ExecutionState) bool { return st.Status == pb.Status_STATUS_BLOCKED_BY_JOIN_SET }); err != nil {
		t.Fatal(err)
	}
	statesBefore, posBefore := storeCounts(t, e)
	rep, err := e.Replay(ctx, id, ReplayTarget{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || rep.Finished || rep.Replayed != rep.HistoryEvents || len(rep.Next) != 1 || rep.Next[0].Kind != "wait" || !strings.Contains(rep.Next[0].JoinSet, "sleep") {
		t.Fatalf("report %+v", rep)
	}
	if len(rep.Logs) != 1 || rep.Logs[0].Message != "sleeping 3600000 ms" || rep.Logs[0].Level != "info" {
		t.Errorf("logs %+v", rep.Logs)
	}
	statesAfter, posAfter := storeCounts(t, e)
	if posAfter != posBefore || len(statesAfter) != len(statesBefore) || statesAfter[id] != statesBefore[id] {
		t.Errorf("the replay wrote: position %d -> %d, state\n%s\n%s", posBefore, posAfter, statesBefore[id], statesAfter[id])
	}
}

// A replay refuses what it cannot do, with invalid_argument errors that say why: an
// activity's execution, a component that does not export the function, and a file
// that is no component; an unknown execution is not found.
func testReplayRefuses(t *testing.T, e *Engine) {
	ctx := context.Background()
	act := submitFinished(t, e, "testing:fibo/fibo.fibo", "[3]", "fibo")
	var ia *InvalidArgumentError
	if _, err := e.Replay(ctx, act, ReplayTarget{}); !errors.As(err, &ia) || !strings.Contains(err.Error(), "only workflow executions can be replayed") {
		t.Errorf("replay of an activity: %v", err)
	}
	wf := submitFinished(t, e, "testing:fibo-workflow/workflow.fibow", "[3, 1]", "fibo-workflow")
	if _, err := e.Replay(ctx, wf, ReplayTarget{Component: "sleep-workflow"}); !errors.As(err, &ia) || !strings.Contains(err.Error(), "does not export testing:fibo-workflow/workflow.fibow") {
		t.Errorf("replay on a component without the function: %v", err)
	}
	if _, err := e.Replay(ctx, wf, ReplayTarget{Component: "nope"}); !errors.As(err, new(*ComponentNotFoundError)) {
		t.Errorf("replay on an unknown component: %v", err)
	}
	if _, err := e.Replay(ctx, wf, ReplayTarget{Wasm: []byte("not wasm"), Source: "x.wasm"}); !errors.As(err, &ia) || !strings.Contains(err.Error(), "x.wasm") {
		t.Errorf("replay on a file that is no component: %v", err)
	}
	if _, err := e.Replay(ctx, "E_01KBZZZZZZZZZZZZZZZZZZZZZZ", ReplayTarget{}); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("replay of an unknown execution: %v", err)
	}
}

// A component file that is not deployed is compiled for the replay only: here v2's
// file, with the same result as the deployed v2.
func testReplayFile(t *testing.T, e *Engine) {
	ctx := context.Background()
	id := submitFinished(t, e, "testing:fibo-workflow/workflow.fiboa", "[4, 1]", "fibo-workflow")
	wasm, err := os.ReadFile(builtComponent(t, "fibo-workflow-v2"))
	if err != nil {
		t.Fatal(err)
	}
	// A copy with a different digest, so that it is not the deployed component: the
	// same code with one more custom section (id 0, size 3: the name "x", one byte).
	wasm = append(wasm, 0, 3, 1, 'x', 0)
	rep, err := e.Replay(ctx, id, ReplayTarget{Wasm: wasm, Source: "v2-copy.wasm"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || rep.Divergence == nil || rep.Divergence.Index != 1 || !strings.HasPrefix(rep.ComponentID, "workflow:fibo-workflow:sha256:") {
		t.Fatalf("report %+v", rep)
	}
	for _, c := range e.reg.components {
		if c.ID == rep.ComponentID {
			t.Fatalf("replayed against the deployed %s, not the file", c.Config.Name)
		}
	}
}
