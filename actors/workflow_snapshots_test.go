package actors

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// logCounter counts the engine's log records by message.
type logCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *logCounter) Enabled(context.Context, slog.Level) bool { return true }
func (c *logCounter) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[r.Message]++
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" {
			c.n[r.Message+": "+a.Value.String()]++
		}
		return true
	})
	return nil
}
func (c *logCounter) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *logCounter) WithGroup(string) slog.Handler      { return c }
func (c *logCounter) count(msg string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[msg]
}

// snapshotEngine runs fibo-workflow (interrupt strategy: every wait drops the instance)
// and fibo, with snapshots every snapshotEvery history events.
// cacheDir is the compilation cache the test's engines share.
func snapshotEngine(t *testing.T, cacheDir string, snapshotEvery int) (*Engine, *logCounter) {
	t.Helper()
	ctx := context.Background()
	logs := &logCounter{n: map[string]int{}}
	e, err := New(ctx, Config{
		DataDir: t.TempDir(), CacheDir: cacheDir, Logger: slog.New(logs), SnapshotEvery: snapshotEvery,
		Components: []ComponentConfig{
			{Name: "fibo", Type: ActivityWasm, Path: builtComponent(t, "fibo"), MaxRetries: 1, RetryExpBackoff: time.Millisecond, LockExpiry: time.Minute, MaxConcurrency: 4},
			{Name: "fibo_workflow", Type: Workflow, Path: builtComponent(t, "fibo-workflow"), LockExpiry: time.Minute, MaxConcurrency: 4, BlockingStrategy: Interrupt},
			{Name: "sleep", Type: ActivityWasm, Path: builtComponent(t, "sleep"), MaxRetries: 1, RetryExpBackoff: time.Millisecond, LockExpiry: time.Minute, MaxConcurrency: 4},
			{Name: "sleep_workflow", Type: Workflow, Path: builtComponent(t, "sleep-workflow"), LockExpiry: time.Minute, MaxConcurrency: 4, BlockingStrategy: Interrupt},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(ctx) })
	return e, logs
}

// runToEnd submits ffqn(params) and returns its result and its history events (as
// recorded, without the run-dependent JoinNext lease).
func runToEnd(t *testing.T, e *Engine, ffqn, params string) ([]byte, []*pb.HistoryEvent) {
	t.Helper()
	ctx := context.Background()
	id, _, err := e.Submit(ctx, "", ffqn, []byte(params))
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	st, err := e.WaitFinished(wctx, id)
	if err != nil {
		t.Fatalf("%s not finished: %v", id, err)
	}
	evs, err := e.store.Events(ctx, id, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var hist []*pb.HistoryEvent
	for _, ev := range evs {
		if h := ev.GetHistory(); h != nil {
			h = proto.CloneOf(h)
			if jn := h.GetJoinNext(); jn != nil {
				jn.RunExpiresAt = 0
			}
			hist = append(hist, h)
		}
	}
	return st.GetResult(), hist
}

// TestWorkflowSnapshots runs the snapshot tests on one engine (compiling its components
// is most of their time).
func TestWorkflowSnapshots(t *testing.T) {
	e, logs := snapshotEngine(t, t.TempDir(), 1)
	t.Run("ResumeEqualsReplay", func(t *testing.T) { testResumeEqualsReplay(t, e, logs) })
	t.Run("CorruptIgnored", func(t *testing.T) { testCorruptSnapshotIgnored(t, e, logs) })
	t.Run("UnusableHoldsNothingBack", func(t *testing.T) { testUnusableSnapshotHoldsNothingBack(t, e) })
}

// testUnusableSnapshotHoldsNothingBack: a run that finds no snapshot it can use (here
// the only one was taken on another component) replays, and may snapshot at its first
// chance: the unusable one does not make it wait for snapshot_every more events.
func testUnusableSnapshotHoldsNothingBack(t *testing.T, e *Engine) {
	ctx := context.Background()
	id, _, err := e.Submit(ctx, "", "testing:sleep-workflow/workflow.sleep-then-call", []byte("[3600000, 10]"))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Cancel(ctx, id)
	var en events.SnapshotEntry
	eventually(t, "a snapshot at the sleep", func() bool {
		es, err := e.store.Snapshots(ctx, id)
		if err != nil || len(es) == 0 {
			return false
		}
		en = es[0]
		return true
	})
	checkRunFromVersion(t, e, id)
	blob, err := e.store.SnapshotBlob(ctx, id, en)
	if err != nil {
		t.Fatal(err)
	}
	en.ComponentID = "workflow:other:sha256:00"
	if _, err := e.store.Commit(ctx, &events.Tx{Snapshots: []events.SnapshotPut{{ExecutionID: id, Entry: en, Blob: blob}}}); err != nil {
		t.Fatal(err)
	}
	st, err := e.store.State(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	r, inst, err := e.resumeFromSnapshot(ctx, e.reg.byID[st.ComponentId], st, "check", nil)
	if err != nil || inst != nil {
		t.Fatalf("resume: instance %v, %v; want a replay", inst, err)
	}
	if r.snapshotAt != 0 {
		t.Fatalf("the replaying run snapshots only %d history events after the unusable snapshot's position %d", r.snapshotAt, en.Position)
	}
}

// testResumeEqualsReplay: a workflow whose every wait drops its instance, resumed from
// a snapshot at every wait, records the same history and result as one replayed from
// the start every time; and it was resumed, not replayed.
func testResumeEqualsReplay(t *testing.T, e *Engine, logs *logCounter) {
	const ffqn, params = "testing:fibo-workflow/workflow.fiboa", "[10, 6]"
	e.cfg.SnapshotEvery = -1
	wantResult, wantHist := runToEnd(t, e, ffqn, params)
	e.cfg.SnapshotEvery = 1
	storedBefore, resumedBefore := logs.count("workflow: snapshot stored"), logs.count("workflow: resumed from a snapshot")
	gotResult, gotHist := runToEnd(t, e, ffqn, params)
	if string(gotResult) != string(wantResult) {
		t.Fatalf("result %s resumed from snapshots, %s replayed", gotResult, wantResult)
	}
	if len(gotHist) != len(wantHist) {
		t.Fatalf("%d history events resumed from snapshots, %d replayed", len(gotHist), len(wantHist))
	}
	for i := range gotHist {
		// Child IDs derive from the parent's ID: compare what does not.
		g, w := describe(gotHist[i]), describe(wantHist[i])
		if strings.Fields(g)[0] != strings.Fields(w)[0] || (gotHist[i].GetJoinNext() != nil) != (wantHist[i].GetJoinNext() != nil) {
			t.Fatalf("history event %d: %s resumed, %s replayed", i, g, w)
		}
	}
	// The first waits may come before the module's snapshot, which a parked snapshot
	// needs, is made; every snapshot stored is resumed from.
	stored := logs.count("workflow: snapshot stored") - storedBefore
	resumedFrom := logs.count("workflow: resumed from a snapshot") - resumedBefore
	if stored < 2 || resumedFrom != stored {
		t.Fatalf("%d snapshots stored, %d runs resumed from one; want at least 2, all resumed from; log: %v", stored, resumedFrom, logs.n)
	}
	// Finished, it keeps none: they went with its last commit.
	if es, err := e.store.Snapshots(context.Background(), lastID(t, e, ffqn)); err != nil || len(es) != 0 {
		t.Fatalf("snapshots of the finished execution: %+v %v, want none", es, err)
	}
}

// lastID returns the ID of the newest execution of ffqn.
func lastID(t *testing.T, e *Engine, ffqn string) string {
	t.Helper()
	page, err := e.store.List(context.Background(), events.ListFilter{FFQNPrefix: ffqn, TopLevelOnly: true, Limit: 1})
	if err != nil || len(page.States) == 0 {
		t.Fatalf("list %s: %v %v", ffqn, page, err)
	}
	return page.States[0].ExecutionId
}

// checkRunFromVersion: a run made for resuming from execution id's newest snapshot reads
// the stream from the snapshot's version only, and its history lines up with the stored
// one: nothing before the snapshot's position, the stored events from it on.
func checkRunFromVersion(t *testing.T, e *Engine, id string) {
	t.Helper()
	ctx := context.Background()
	es, err := e.store.Snapshots(ctx, id)
	if err != nil || len(es) == 0 || es[0].Version == 0 || !es[0].Current {
		t.Fatalf("snapshots of %s: %+v %v, want a current one with a version", id, es, err)
	}
	st, err := e.store.State(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	r, err := e.runFromVersion(ctx, e.reg.byID[st.ComponentId], st, "check", nil, es[0])
	if err != nil {
		t.Fatal(err)
	}
	want := storedHistory(t, e, id)
	if len(r.history) != len(want) || r.created == nil || r.createdAt == 0 {
		t.Fatalf("run from version %d: %d history events (want %d), created %v at %d", es[0].Version, len(r.history), len(want), r.created, r.createdAt)
	}
	for i, h := range r.history {
		if i < int(es[0].Position) && h != nil || i >= int(es[0].Position) && !proto.Equal(h, want[i]) {
			t.Fatalf("history event %d of the run from position %d: %v, stored %v", i, es[0].Position, h, want[i])
		}
	}
}

// testCorruptSnapshotIgnored: a snapshot whose blob does not decode, of another
// component, or whose history prefix changed is logged and skipped; the run replays and
// the workflow ends as it would have, its log lines stored once. A snapshot stored as
// before snapshots had a version (checked by the digest of the whole history prefix) is
// still resumed from when its prefix fits ("legacy"), skipped when not ("prefix"). (A
// versioned snapshot whose event changed: TestSnapshotVersionLink, in events.)
func testCorruptSnapshotIgnored(t *testing.T, e *Engine, logs *logCounter) {
	ctx := context.Background()
	const ffqn, params = "testing:sleep-workflow/workflow.sleep-then-call", "[1500, 10]"
	reason := map[string]string{"blob": "resume", "component": "taken on another component", "prefix": "the history up to it changed"}
	for _, bad := range []string{"blob", "component", "prefix", "legacy", "none"} {
		t.Run(bad, func(t *testing.T) {
			resumedBefore := logs.count("workflow: resumed from a snapshot")
			skippedBefore := logs.count("workflow: snapshot not used: " + reason[bad])
			id, _, err := e.Submit(ctx, "", ffqn, []byte(params))
			if err != nil {
				t.Fatal(err)
			}
			// The sleep's wait is snapshotted; replace the snapshot before it ends.
			var en events.SnapshotEntry
			eventually(t, "a snapshot at the sleep", func() bool {
				es, err := e.store.Snapshots(ctx, id)
				if err != nil || len(es) == 0 {
					return false
				}
				en = es[0]
				return true
			})
			blob, err := e.store.SnapshotBlob(ctx, id, en)
			if err != nil {
				t.Fatal(err)
			}
			switch bad {
			case "blob":
				blob = blob[:len(blob)-100] // the image is truncated
			case "component":
				en.ComponentID = "workflow:other:sha256:00"
			case "prefix", "legacy":
				en.Version, en.Prefix = 0, []byte("another history")
				if bad == "legacy" {
					en.Prefix = historyDigest(storedHistory(t, e, id)[:en.Position])
				}
			}
			if _, err := e.store.Commit(ctx, &events.Tx{Snapshots: []events.SnapshotPut{{ExecutionID: id, Entry: en, Blob: blob}}}); err != nil {
				t.Fatal(err)
			}
			wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
			defer cancel()
			st, err := e.WaitFinished(wctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if string(st.GetResult()) != `{"ok":55}` {
				t.Fatalf("result %s, want fibo(10) = 55", st.GetResult())
			}
			page, err := e.store.Logs(ctx, id, 0, 0)
			if err != nil || len(page.Lines) != 3 {
				t.Fatalf("log lines %+v %v, want the 3 the workflow logs, once each", page.Lines, err)
			}
			resumed := logs.count("workflow: resumed from a snapshot") - resumedBefore
			skipped := logs.count("workflow: snapshot not used: "+reason[bad]) - skippedBefore
			fits := bad == "none" || bad == "legacy"
			if fits && resumed == 0 || !fits && skipped != 1 {
				t.Fatalf("%d runs resumed from a snapshot, %d skipped one; log: %v", resumed, skipped, logs.n)
			}
		})
	}
}

// storedHistory returns the history events of execution id as stored.
func storedHistory(t *testing.T, e *Engine, id string) []*pb.HistoryEvent {
	t.Helper()
	evs, err := e.store.Events(context.Background(), id, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var h []*pb.HistoryEvent
	for _, ev := range evs {
		if x := ev.GetHistory(); x != nil {
			h = append(h, x)
		}
	}
	return h
}

// TestEvictionDoesNotWaitForTheSnapshotCommit: a workflow instance parked in memory and
// evicted is captured, and leaves (its lease released) while its snapshot is still being
// committed: the eviction waits for the capture only. The snapshot is stored after.
func TestEvictionDoesNotWaitForTheSnapshotCommit(t *testing.T) {
	ctx := context.Background()
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	e, err := New(ctx, Config{
		DataDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), SnapshotEvery: 1,
		Components: []ComponentConfig{
			{Name: "fibo", Type: ActivityWasm, Path: builtComponent(t, "fibo"), LockExpiry: time.Minute, MaxConcurrency: 4},
			{Name: "sleep", Type: ActivityWasm, Path: builtComponent(t, "sleep"), LockExpiry: time.Minute, MaxConcurrency: 4},
			{Name: "sleep_workflow", Type: Workflow, Path: builtComponent(t, "sleep-workflow"), LockExpiry: time.Minute, MaxConcurrency: 4, BlockingStrategy: Await},
		},
		testHook: func(service, _ string) {
			if service == "snapshots" {
				select {
				case entered <- struct{}{}:
				default:
				}
				<-release
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	defer close(release)
	id, _, err := e.Submit(ctx, "", "testing:sleep-workflow/workflow.sleep-activity", []byte("[3600000]"))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Cancel(ctx, id)
	eventually(t, "the workflow parked in memory", func() bool { return e.resident.count() == 1 })
	if !e.resident.evictIdle("sleep_workflow", 0) {
		t.Fatal("nothing evicted")
	}
	select {
	case <-entered:
	case <-time.After(time.Minute):
		t.Fatal("no snapshot taken at the eviction")
	}
	eventually(t, "the evicted run's lease released while its snapshot commits", func() bool {
		evs, err := e.store.Events(ctx, id, 0, 0)
		return err == nil && evs[len(evs)-1].GetUnlocked().GetReason() == "evicted from memory while waiting"
	})
	release <- struct{}{}
	eventually(t, "the snapshot stored", func() bool {
		es, err := e.store.Snapshots(ctx, id)
		return err == nil && len(es) == 1
	})
}
