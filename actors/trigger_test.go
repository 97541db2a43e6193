package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
	"github.com/obelisk-go/obelisk/wasmhost"
)

// TestTriggerBackoff: the delay doubles from the first one, stops at the cap, and the
// jitter takes off at most half of it.
func TestTriggerBackoff(t *testing.T) {
	first, max := time.Second, 5*time.Minute
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second,
		32 * time.Second, 64 * time.Second, 128 * time.Second, 256 * time.Second, max, max}
	for i, w := range want {
		n := i + 1
		if got := triggerBackoff(first, max, n, 0); got != w {
			t.Errorf("restart %d without jitter: %v, want %v", n, got, w)
		}
		if got := triggerBackoff(first, max, n, 0.999999); got <= w/2 || got > w/2+time.Millisecond {
			t.Errorf("restart %d with the most jitter: %v, want just over %v", n, got, w/2)
		}
		if got := triggerBackoff(first, max, n, 0.5); got != w-w/4 {
			t.Errorf("restart %d with half the jitter: %v, want %v", n, got, w-w/4)
		}
	}
	if got := triggerBackoff(first, max, 1000, 0); got != max {
		t.Errorf("restart 1000: %v, want the cap %v (no overflow)", got, max)
	}
	if got := triggerBackoff(10*time.Minute, max, 1, 0); got != max {
		t.Errorf("a first delay over the cap: %v, want the cap %v", got, max)
	}
}

// TestTriggerBackoffResets: a run that lasted the cap or longer starts the doubling
// afresh; shorter runs keep doubling it.
func TestTriggerBackoffResets(t *testing.T) {
	tr := &trigger{c: &Component{Config: ComponentConfig{RestartBackoff: 10 * time.Millisecond, RestartBackoffMax: time.Second}}}
	first, max := tr.backoffs()
	var delays []time.Duration
	for _, ran := range []time.Duration{0, time.Millisecond, 500 * time.Millisecond, time.Second, 0, 2 * time.Second} {
		delays = append(delays, tr.restartDelay(ran, 0))
	}
	want := []time.Duration{first, 2 * first, 4 * first, first, 2 * first, first}
	for i := range want {
		if delays[i] != want[i] {
			t.Fatalf("delays %v, want %v (max %v)", delays, want, max)
		}
	}
}

// TestTriggerBackoffDefaults: a trigger without backoff settings gets 1 s and 5 min.
func TestTriggerBackoffDefaults(t *testing.T) {
	first, max := (&trigger{c: &Component{}}).backoffs()
	if first != time.Second || max != 5*time.Minute {
		t.Errorf("defaults %v, %v", first, max)
	}
}

// TestTriggerExportsNothing: a module whose WIT exports functions is no trigger.
func TestTriggerExportsNothing(t *testing.T) {
	ctx := context.Background()
	_, err := New(ctx, Config{DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler),
		Components: []ComponentConfig{{Name: "t", Type: Trigger, Path: builtComponent(t, "fibo")}}})
	const want = `component "t": a trigger exports no functions (the host runs obelisk:trigger/main.run), but its WIT exports testing:fibo/fibo.fibo`
	if err == nil || err.Error() != want {
		t.Fatalf("New = %v, want %q", err, want)
	}
}

// TestCallIDOnlyForTriggers: a workflow's or a webhook endpoint's call makes a child,
// whose ID derives from its parent's: an execution_id is refused, not ignored.
func TestCallIDOnlyForTriggers(t *testing.T) {
	req := []byte(`{"op":"call","ffqn":"testing:fibo/fibo.fibo","params":[1],"execution_id":"E_01KBX8Z9W1V7N0Q2M3R4S5T6V7"}`)
	for who, call := range map[string]func(context.Context, []byte) ([]byte, error){
		"workflow":         (&workflowRun{}).call,
		"webhook endpoint": (&webhookRun{}).call,
	} {
		_, err := call(context.Background(), req)
		var he *wasmhost.HostError
		if !errors.As(err, &he) || he.Kind != abi.KindBadRequest || !strings.Contains(he.Message, "execution_id is for triggers: a "+who+"'s call") {
			t.Errorf("%s: %v", who, err)
		}
	}
}

// TestTriggerHostIdempotent: a trigger's schedule and call with an execution ID create
// the execution once; the same ID with other parameters is a conflict; a call of an ID
// scheduled before waits for that execution's result.
func TestTriggerHostIdempotent(t *testing.T) {
	ctx := context.Background()
	e, err := New(ctx, Config{DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler),
		Components: []ComponentConfig{{Name: "fibo", Type: ActivityWasm, Path: builtComponent(t, "fibo"),
			RetryExpBackoff: time.Millisecond, LockExpiry: time.Minute, MaxConcurrency: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	h := &triggerHost{e: e, c: &Component{Config: ComponentConfig{Name: "t", Type: Trigger}, routes: map[string]Function{"testing:fibo/fibo.fibo": e.reg.byFFQN["testing:fibo/fibo.fibo"]}}}
	const id = "E_01KBX8Z9W1V7N0Q2M3R4S5T6V7"
	for range 2 {
		out, err := h.HostCall(ctx, abi.OpSchedule, []byte(`{"op":"schedule","ffqn":"testing:fibo/fibo.fibo","params":[10],"execution_id":"E_`+strings.ToLower(id[2:])+`"}`))
		if err != nil || string(out) != `"`+id+`"` {
			t.Fatalf("schedule: %s, %v", out, err)
		}
	}
	waitCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	out, err := h.HostCall(waitCtx, abi.OpCall, []byte(`{"op":"call","ffqn":"testing:fibo/fibo.fibo","params":[10],"execution_id":"`+id+`"}`))
	if err != nil || string(out) != `{"ok":55}` {
		t.Fatalf("call of the scheduled ID: %s, %v", out, err)
	}
	_, err = h.HostCall(ctx, abi.OpSchedule, []byte(`{"op":"schedule","ffqn":"testing:fibo/fibo.fibo","params":[11],"execution_id":"`+id+`"}`))
	var he *wasmhost.HostError
	if !errors.As(err, &he) || he.Kind != abi.KindConflict {
		t.Fatalf("other parameters under the ID: %v, want a conflict", err)
	}
	n := 0
	if err := e.store.LiveStates(ctx, func(*pb.ExecutionState) error { n++; return nil }); err != nil || n != 0 {
		t.Fatalf("%d unfinished executions (%v)", n, err)
	}
	// A call without an ID, of a function the trigger does not import.
	_, err = h.HostCall(ctx, abi.OpCall, []byte(`{"op":"call","ffqn":"obelisk:kv/store.get","params":["b","k"]}`))
	if !errors.As(err, &he) || he.Kind != abi.KindFunctionNotFound {
		t.Fatalf("a call of what the trigger does not import: %v", err)
	}
}

// TestTriggerWaitsForFullQueue: a trigger's submission into a queue at its max_pending
// is not refused but waits, creating nothing, until the queue has room; then it is
// created under the ID the trigger gave. An API submission meanwhile is refused.
func TestTriggerWaitsForFullQueue(t *testing.T) {
	ctx := context.Background()
	e, err := New(ctx, Config{DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler),
		Components: []ComponentConfig{{Name: "fibo", Type: ActivityWasm, Path: builtComponent(t, "fibo"),
			RetryExpBackoff: time.Millisecond, LockExpiry: time.Minute, MaxConcurrency: 1, MaxPending: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	const fibo = "testing:fibo/fibo.fibo"
	// Due in an hour: it waits in the queue and fills it.
	filler, _, err := e.Submit(ctx, "", fibo, []byte("[10]"), dueAt(time.Now().Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	var full *ResourceExhaustedError
	if _, _, err := e.Submit(ctx, "", fibo, []byte("[10]")); !errors.As(err, &full) || full.Queue != "fibo" || full.MaxPending != 1 {
		t.Fatalf("a submission into the full queue: %v, want a ResourceExhaustedError", err)
	}
	h := &triggerHost{e: e, c: &Component{Config: ComponentConfig{Name: "t", Type: Trigger}, routes: map[string]Function{fibo: e.reg.byFFQN[fibo]}}}
	const id = "E_01KBX8Z9W1V7N0Q2M3R4S5T6V8"
	done := make(chan error, 1)
	go func() {
		out, err := h.HostCall(ctx, abi.OpSchedule, []byte(`{"op":"schedule","ffqn":"testing:fibo/fibo.fibo","params":[10],"execution_id":"`+id+`"}`))
		if err == nil && string(out) != `"`+id+`"` {
			err = fmt.Errorf("returned %s", out)
		}
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("the trigger's submission returned (%v) while the queue was full", err)
	case <-time.After(1500 * time.Millisecond):
	}
	if _, err := e.store.State(ctx, id); !errors.Is(err, events.ErrNotFound) {
		t.Fatalf("the waiting submission's execution: %v, want none yet", err)
	}
	if _, err := e.Cancel(ctx, filler); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the trigger's submission still waits after the queue had room")
	}
	waitCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if st, err := e.WaitFinished(waitCtx, id); err != nil || string(st.Result) != `{"ok":55}` {
		t.Fatalf("the trigger's execution: %v, %v", st.GetResult(), err)
	}
}
