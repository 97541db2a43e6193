package actors

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/events"
	"github.com/obelisk-go/obelisk/metrics"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// A tree is deleted by retention only once its last descendant finished (and
// finished_after passed since), even though its root finished long before; a panic in
// the middle of a retention pass restarts the service, which deletes the tree all the
// same.
func TestRetentionWaitsForTheLastDescendant(t *testing.T) {
	ctx := context.Background()
	m := metrics.New()
	hook, passesAfter := panicOnce("retention", "delete")
	e, err := New(ctx, Config{DataDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: m, testHook: hook,
		RetentionFinishedAfter: 100 * time.Millisecond, retentionNow: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(ctx) })
	finish := func(id string) {
		mustChange(t, e, id, func(st *pb.ExecutionState) (*events.Tx, error) {
			return e.finishTx(st, []byte(`{"ok":null}`), time.Now()), nil
		})
	}
	wf, children := workflowWithRequests(t, e, 2, nil, false)
	finish(children[0])
	finish(wf)
	// Passes run every second (the safety tick): let a few see the finished root.
	time.Sleep(2500 * time.Millisecond)
	for _, id := range append([]string{wf}, children...) {
		if _, err := e.State(ctx, id); err != nil {
			t.Fatalf("%s deleted while %s had not finished: %v", id, children[1], err)
		}
	}
	if trees, err := e.RetentionDue(ctx, 10); err != nil || len(trees) != 0 {
		t.Fatalf("due with a child unfinished: %v %v", trees, err)
	}
	finish(children[1])
	for _, id := range append([]string{wf}, children...) {
		eventually(t, id+" deleted", func() bool {
			_, err := e.State(ctx, id)
			return errors.Is(err, events.ErrNotFound)
		})
	}
	if got := restarts(t, m, "retention"); got != 1 {
		t.Errorf("restarts of retention = %v, want 1", got)
	}
	eventually(t, "a pass after the restart", func() bool { return passesAfter.Load() >= 1 })
	if e.Err() != nil {
		t.Fatalf("engine failed: %v", e.Err())
	}
}

// Engine.Delete refuses a child and an unfinished tree, and deletes a finished one.
func TestEngineDelete(t *testing.T) {
	ctx := context.Background()
	e := newHookedEngine(t, nil, nil)
	wf, children := workflowWithRequests(t, e, 1, nil, false)
	var fp *FailedPreconditionError
	if _, err := e.Delete(ctx, wf); !errors.As(err, &fp) {
		t.Fatalf("delete of an unfinished tree: %v", err)
	}
	if _, err := e.Delete(ctx, children[0]); !errors.As(err, &fp) {
		t.Fatalf("delete of a child: %v", err)
	}
	var nf *NotFoundError
	if _, err := e.Delete(ctx, events.NewExecutionID(time.Now())); !errors.As(err, &nf) {
		t.Fatalf("delete of an unknown execution: %v", err)
	}
	for _, id := range []string{children[0], wf} {
		mustChange(t, e, id, func(st *pb.ExecutionState) (*events.Tx, error) {
			return e.finishTx(st, []byte(`{"ok":null}`), time.Now()), nil
		})
	}
	if _, err := e.RetentionDue(ctx, 10); !errors.As(err, &fp) {
		t.Fatalf("retention due with retention off: %v", err)
	}
	d, err := e.Delete(ctx, wf)
	if err != nil || d.Executions != 2 {
		t.Fatalf("delete of a finished tree: %+v %v", d, err)
	}
	if _, err := e.State(ctx, children[0]); !errors.Is(err, events.ErrNotFound) {
		t.Fatalf("the child after its tree's deletion: %v", err)
	}
}

// A component's override applies by its name, also when it is served from a shared
// queue: the trees are indexed by the root's component ID, which never names the queue.
func TestRetentionOverrideByComponentNotQueue(t *testing.T) {
	r := newRetention(nil, Config{RetentionFinishedAfter: time.Hour, Components: []ComponentConfig{
		{Name: "wf", Type: Workflow, Queue: "batch", RetentionFinishedAfter: time.Minute},
		{Name: "batch", Type: ActivityWasm},
	}})
	for id, want := range map[string]time.Duration{
		"workflow:wf:sha256:00":         time.Minute,
		"activity_wasm:batch:sha256:00": time.Hour, // the queue's name is not an override
	} {
		if got := r.after(id); got != want {
			t.Errorf("after(%s) = %v, want %v", id, got, want)
		}
	}
}
