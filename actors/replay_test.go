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
