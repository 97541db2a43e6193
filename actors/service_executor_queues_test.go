package actors

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// TestQueues: an execution runs from the queue it was submitted to, by the executor
// serving that queue and its component. One of a function its queue's executor does not
// serve waits there without holding up the others, one of a queue served nowhere waits
// too, and both run once a restart serves them.
func TestQueues(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	fibo, sleep := builtComponent(t, "fibo"), builtComponent(t, "sleep")
	start := func(fiboQueue, sleepQueue string) *Engine {
		e, err := New(ctx, Config{
			DataDir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Components: []ComponentConfig{
				{Name: "fibo", Queue: fiboQueue, Type: ActivityWasm, Path: fibo, LockExpiry: time.Minute, MaxConcurrency: 1},
				{Name: "sleep", Queue: sleepQueue, Type: ActivityWasm, Path: sleep, LockExpiry: time.Minute, MaxConcurrency: 1},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	submit := func(e *Engine, ffqn, params, queue string) string {
		id, _, err := e.Submit(ctx, "", ffqn, []byte(params), InQueue(queue))
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	wait := func(e *Engine, id string) *pb.ExecutionState {
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		st, err := e.WaitFinished(wctx, id)
		if err != nil {
			t.Fatalf("%s not finished: %v (state %v)", id, err, st)
		}
		return st
	}
	pendingIn := func(e *Engine, id, queue string) {
		t.Helper()
		st, err := e.State(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if st.Status != pb.Status_STATUS_PENDING_AT || st.Queue != queue {
			t.Errorf("%s: status %v in queue %q, want pending in %q", id, st.Status, st.Queue, queue)
		}
	}

	e := start("", "")
	if _, _, err := e.Submit(ctx, "", "testing:fibo/fibo.fibo", []byte("[1]"), InQueue("no spaces")); !errors.As(err, new(*InvalidArgumentError)) {
		t.Errorf("an invalid queue name: %v", err)
	}
	// sleep's executor serves queue "sleep", fibo's "fibo": a sleep in fibo's queue (first
	// in it) is not fibo's executor's to run, nor to wait behind.
	stray := submit(e, "testing:sleep/sleep.sleep", "[1]", "fibo")
	nowhere := submit(e, "testing:fibo/fibo.fibo", "[10]", "nowhere")
	for range 3 {
		if st := wait(e, submit(e, "testing:fibo/fibo.fibo", "[10]", "")); st.Queue != "fibo" || string(st.Result) != `{"ok":55}` {
			t.Fatalf("fibo in its own queue: %v", st)
		}
	}
	if st := wait(e, submit(e, "testing:fibo/fibo.fibo", "[10]", "fibo")); string(st.Result) != `{"ok":55}` {
		t.Fatalf("fibo in its queue named: %v", st)
	}
	pendingIn(e, stray, "fibo")
	pendingIn(e, nowhere, "nowhere")
	if err := e.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// Restarted with fibo served from "nowhere" and sleep sharing fibo's old queue.
	e = start("nowhere", "fibo")
	defer e.Close(ctx)
	if len(e.queues) != 3 || e.queues["fibo"] == nil || e.queues["fibo"].byFFQN["testing:sleep/sleep.sleep"] == nil || e.queues[KVComponentName] == nil { // and the KV component's
		t.Fatalf("queues after the restart: %v", e.queues)
	}
	if st := wait(e, stray); string(st.Result) != `{"ok":null}` {
		t.Errorf("the sleep pending in fibo's queue: %v", st)
	}
	if st := wait(e, nowhere); string(st.Result) != `{"ok":55}` {
		t.Errorf("the fibo pending in queue nowhere: %v", st)
	}
	if st := wait(e, submit(e, "testing:fibo/fibo.fibo", "[10]", "")); st.Queue != "nowhere" {
		t.Errorf("fibo submitted without a queue went to %q, want its configured queue", st.Queue)
	}
}

// TestCheckQueues: components sharing a queue must agree on its bound, and a queue's
// name must be valid.
func TestCheckQueues(t *testing.T) {
	a := ComponentConfig{Name: "a", Type: ActivityWasm, Queue: "q", MaxConcurrency: 2}
	b := ComponentConfig{Name: "b", Type: Workflow, Queue: "q", MaxConcurrency: 3}
	stub := ComponentConfig{Name: "s", Type: ActivityStub, Queue: "q"}
	if err := checkQueues([]ComponentConfig{a, stub}); err != nil {
		t.Errorf("a stub has no executor: %v", err)
	}
	err := checkQueues([]ComponentConfig{a, b})
	if want := `components "a" and "b" share queue "q" with different max concurrency (2 and 3)`; err == nil || !contains(err.Error(), want) {
		t.Errorf("got %v, want %s", err, want)
	}
	b.MaxConcurrency = 2
	if err := checkQueues([]ComponentConfig{a, b}); err != nil {
		t.Errorf("agreeing: %v", err)
	}
	b.MaxPending = 10
	err = checkQueues([]ComponentConfig{a, b})
	if want := `components "a" and "b" share queue "q" with different max pending (0 and 10)`; err == nil || !contains(err.Error(), want) {
		t.Errorf("got %v, want %s", err, want)
	}
	a.MaxPending = 10
	if err := checkQueues([]ComponentConfig{a, b}); err != nil {
		t.Errorf("agreeing max pending: %v", err)
	}
	bad := ComponentConfig{Name: "x", Type: ActivityWasm, Queue: "a b"}
	if err := checkQueues([]ComponentConfig{bad}); err == nil || !contains(err.Error(), `component "x": queue "a b": want 1 to 255`) {
		t.Errorf("bad name: %v", err)
	}
}
