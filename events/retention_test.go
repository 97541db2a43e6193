package events

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
)

// White-box tests of retention (retention.go): a crash is simulated by running the
// deletion's first steps alone, then closing and reopening the store.

func rHistory(at int64, h *pb.HistoryEvent) *pb.Event {
	return &pb.Event{CreatedAt: at, Kind: &pb.Event_History{History: h}}
}

func rFinished(at int64) *pb.Event {
	return &pb.Event{CreatedAt: at, Kind: &pb.Event_Finished{Finished: &pb.Finished{Result: []byte(`{"ok":1}`)}}}
}

func rChildCreated(parent string, at int64) *pb.Event {
	ev := gCreated(at)
	ev.GetCreated().ParentId, ev.GetCreated().ParentJoinSetId = parent, "g:1"
	return ev
}

// rTree creates a workflow root with one child (pending in queue q until it finishes)
// and one answered delay, the root with one log line and the child with two, and returns
// the root's and the child's IDs. finish: the child and the root finish (at `at`, the child
// at at+1).
func rTree(t testing.TB, s *PebbleStore, at int64, finish bool) (root, child string) {
	t.Helper()
	root = NewExecutionID(time.Unix(0, at))
	child = ChildExecutionID(root, "g:1", 1)
	delay := DelayID(root, "g:1", 2)
	gCommit(t, s, gAppend(root, 0, gCreated(at), gLocked("R", at), rHistory(at, &pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinSetCreate{JoinSetCreate: &pb.JoinSetCreate{JoinSetId: "g:1"}}})))
	gCommit(t, s, &Tx{Appends: []Append{
		{ExecutionID: root, ExpectedVersion: 3, RunID: "R", Events: []*pb.Event{
			rHistory(at, &pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinSetRequest{JoinSetRequest: &pb.JoinSetRequest{JoinSetId: "g:1", Request: &pb.JoinSetRequest_Child{Child: &pb.ChildExecutionRequest{ChildExecutionId: child}}}}}),
			rHistory(at, &pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinSetRequest{JoinSetRequest: &pb.JoinSetRequest{JoinSetId: "g:1", Request: &pb.JoinSetRequest_Delay{Delay: &pb.DelayRequest{DelayId: delay, ExpiresAt: at + 5}}}}}),
		}},
		{ExecutionID: child, Events: []*pb.Event{rChildCreated(root, at)}},
	}, Logs: []LogAppend{
		{ExecutionID: root, Lines: []LogLine{{Time: at, Level: abi.LogInfo, Attempt: 1, RunID: "R", Message: "root"}}},
		{ExecutionID: child, Lines: []LogLine{{Time: at, Level: abi.LogWarn, Attempt: 1, Message: "child"}, {Time: at, Level: abi.LogInfo, Attempt: 1, Message: "child 2"}}},
	}, Snapshots: []SnapshotPut{
		{ExecutionID: root, Entry: SnapshotEntry{Position: 2, Prefix: []byte("p"), ComponentID: "c"}, Blob: []byte("root memory " + root)},
		{ExecutionID: child, Entry: SnapshotEntry{Position: 0, ComponentID: "c"}, Blob: []byte("child memory " + child)},
	}})
	gCommit(t, s, &Tx{Responses: []ResponseAppend{{ExecutionID: root, Response: &pb.Response{CreatedAt: at, JoinSetId: "g:1", Kind: &pb.Response_Delay{Delay: &pb.DelayFinished{DelayId: delay}}}}}})
	if !finish {
		return root, child
	}
	gCommit(t, s, &Tx{
		Appends:   []Append{{ExecutionID: child, ExpectedVersion: 1, Events: []*pb.Event{rFinished(at + 1)}}},
		Responses: []ResponseAppend{{ExecutionID: root, Response: &pb.Response{CreatedAt: at + 1, JoinSetId: "g:1", Kind: &pb.Response_Child{Child: &pb.ChildFinished{ChildExecutionId: child, Result: []byte(`{"ok":1}`)}}}}},
	})
	gCommit(t, s, gAppend(root, 5, rFinished(at)))
	return root, child
}

// treeKeys returns the store's keys that belong to the tree of root (by the IDs they
// hold or point to), for checking that a deletion left nothing.
func treeKeys(t *testing.T, s *PebbleStore, root string) []string {
	t.Helper()
	it, err := s.db.NewIter(&pebble.IterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	ulid := strings.TrimPrefix(root, TopLevelPrefix)
	var out []string
	for it.First(); it.Valid(); it.Next() {
		if bytes.Contains(it.Key(), []byte(ulid)) || (it.Key()[0] == tagGlobal && bytes.Contains(it.Value(), []byte(ulid))) {
			out = append(out, string(it.Key()))
		}
	}
	return out
}

func TestDeleteTrees(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := gOpen(t, dir)
	kept, keptChild := rTree(t, s, 100, true)
	root, child := rTree(t, s, 200, true)
	before := s.LastPosition()
	if n := len(treeKeys(t, s, root)); n == 0 {
		t.Fatal("the tree has no keys before its deletion")
	}
	for id, want := range map[string]uint64{kept: 1, keptChild: 2, root: 1, child: 2} {
		if page, err := s.Logs(ctx, id, 0, 0); err != nil || len(page.Lines) != int(want) || page.Stored != want {
			t.Fatalf("logs of %s before the deletion: %+v %v, want %d lines", id, page, err, want)
		}
	}
	for _, id := range []string{kept, keptChild, root, child} {
		if es, err := s.Snapshots(ctx, id); err != nil || len(es) != 1 {
			t.Fatalf("snapshots of %s before the deletion: %v %v, want 1", id, es, err)
		}
	}
	d, err := s.DeleteTrees(ctx, []string{root})
	if err != nil {
		t.Fatal(err)
	}
	if d.Trees != 1 || d.Executions != 2 || d.Events != 8 || len(d.Refused) != 0 {
		t.Fatalf("deleted %+v, want 1 tree, 2 executions, 8 events", d)
	}
	for _, id := range []string{root, child} {
		if _, err := s.State(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("state of deleted %s: %v", id, err)
		}
		if evs, _ := s.Events(ctx, id, 0, 0); len(evs) != 0 {
			t.Fatalf("%d events of deleted %s", len(evs), id)
		}
		for _, k := range [][]byte{logMetaKey(id), logLineKey(id, 0)} {
			if _, closer, err := s.db.Get(k); !errors.Is(err, pebble.ErrNotFound) {
				if err == nil {
					closer.Close()
				}
				t.Fatalf("log key %q of deleted %s: %v, want not found", k, id, err)
			}
		}
	}
	for _, id := range []string{root, child} {
		if es, err := snapshotEntries(s.db, id); err != nil || len(es) != 0 {
			t.Fatalf("snapshots of deleted %s: %v %v", id, es, err)
		}
	}
	for _, id := range []string{kept, keptChild} {
		es, err := s.Snapshots(ctx, id)
		if err != nil || len(es) != 1 {
			t.Fatalf("snapshots of kept %s after the deletion: %v %v", id, es, err)
		}
		if _, err := s.SnapshotBlob(ctx, id, es[0]); err != nil {
			t.Fatalf("snapshot blob of kept %s after the deletion: %v", id, err)
		}
	}
	// treeKeys also catches the tree's pending (p: queue, due, ID -> function), log
	// (o) and snapshot (n: blobs and index) entries.
	if left := treeKeys(t, s, root); len(left) != 0 {
		t.Fatalf("keys of the deleted tree left: %q", left)
	}
	for id, want := range map[string]uint64{kept: 1, keptChild: 2} {
		if page, err := s.Logs(ctx, id, 0, 0); err != nil || len(page.Lines) != int(want) || page.Stored != want {
			t.Fatalf("logs of kept %s after the deletion: %+v %v, want %d lines", id, page, err, want)
		}
	}
	if page, err := s.List(ctx, ListFilter{Limit: 10}); err != nil || len(page.States) != 2 {
		t.Fatalf("list after deletion: %v %v (want the kept tree's 2 executions)", page.States, err)
	}
	if st, err := s.State(ctx, kept); err != nil || st.Status != pb.Status_STATUS_FINISHED {
		t.Fatalf("kept tree: %v %v", st, err)
	}
	// The deleted tree's positions were the log's last: they stay taken.
	if s.LastPosition() != before {
		t.Fatalf("last position %d after deletion, want %d", s.LastPosition(), before)
	}
	if err := s.CompactDeleted(ctx); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = gOpen(t, dir)
	if s.LastPosition() != before {
		t.Fatalf("last position %d after reopening, want %d: positions would be reused", s.LastPosition(), before)
	}
	other := NewExecutionID(time.Unix(0, 300))
	gCommit(t, s, gAppend(other, 0, gCreated(300)))
	got, _, err := s.EventsFrom(ctx, before, 0)
	if err != nil || len(got) != 1 || got[0].Position != before+1 || got[0].ExecutionID != other {
		t.Fatalf("after reopening, the next event is %v %v, want %s at %d", got, err, other, before+1)
	}
}

func TestDeleteTreesRefuses(t *testing.T) {
	ctx := context.Background()
	s := gOpen(t, t.TempDir())
	running, child := rTree(t, s, 100, false)
	finished, finishedChild := rTree(t, s, 200, true)
	// A finished root whose child has not finished.
	orphanRoot := NewExecutionID(time.Unix(0, 300))
	orphan := ChildExecutionID(orphanRoot, "g:1", 1)
	gCommit(t, s, gAppend(orphanRoot, 0, gCreated(300), gLocked("R", 300), rHistory(300, &pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinSetCreate{JoinSetCreate: &pb.JoinSetCreate{JoinSetId: "g:1"}}})))
	gCommit(t, s, &Tx{Appends: []Append{
		{ExecutionID: orphanRoot, ExpectedVersion: 3, RunID: "R", Events: []*pb.Event{rHistory(300, &pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinSetRequest{JoinSetRequest: &pb.JoinSetRequest{JoinSetId: "g:1", Request: &pb.JoinSetRequest_Child{Child: &pb.ChildExecutionRequest{ChildExecutionId: orphan}}}}})}},
		{ExecutionID: orphan, Events: []*pb.Event{rChildCreated(orphanRoot, 300)}},
	}})
	gCommit(t, s, gAppend(orphanRoot, 4, rFinished(301)))
	unknown := NewExecutionID(time.Unix(0, 400))
	d, err := s.DeleteTrees(ctx, []string{running, finishedChild, orphanRoot, unknown})
	if err != nil {
		t.Fatal(err)
	}
	if d.Trees != 0 {
		t.Fatalf("deleted %+v", d)
	}
	for id, want := range map[string]string{running: "has not finished", finishedChild: "not a top-level execution", orphanRoot: "descendant " + orphan + " has not finished"} {
		if err := d.Refused[id]; !errors.Is(err, ErrNotDeletable) || !strings.Contains(err.Error(), want) {
			t.Errorf("refusal of %s: %v, want %q", id, err, want)
		}
	}
	if err := d.Refused[unknown]; !errors.Is(err, ErrNotFound) {
		t.Errorf("refusal of an unknown execution: %v", err)
	}
	for _, id := range []string{running, child, finished, finishedChild, orphanRoot, orphan} {
		if _, err := s.State(ctx, id); err != nil {
			t.Errorf("%s after refused deletions: %v", id, err)
		}
	}
}

// TestDeleteTreesCrash: a crash after the mark (and part of the point deletions) leaves
// the tree invisible, and the next deletion finishes it.
func TestDeleteTreesCrash(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := gOpen(t, dir)
	root, child := rTree(t, s, 100, true)
	kept, _ := rTree(t, s, 200, true)
	// The first two steps of DeleteTrees, then the crash.
	if err := s.runStep(ctx, false, func(b *pebble.Batch) (func(), error) {
		return nil, b.Set(deletingKey(root), nil, nil)
	}); err != nil {
		t.Fatal(err)
	}
	r := s.newTreeReader()
	_, _, points, err := s.treePoints(r, root)
	r.close()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.runStep(ctx, false, func(b *pebble.Batch) (func(), error) {
		return nil, b.Delete(points[0], nil)
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = gOpen(t, dir)
	for _, id := range []string{root, child} {
		if _, err := s.State(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("state of half-deleted %s: %v", id, err)
		}
		if evs, _ := s.Events(ctx, id, 0, 0); len(evs) != 0 {
			t.Fatalf("%d events of half-deleted %s", len(evs), id)
		}
		if rs, _ := s.Responses(ctx, id, 0); len(rs) != 0 {
			t.Fatalf("%d responses of half-deleted %s", len(rs), id)
		}
		if page, err := s.Logs(ctx, id, 0, 0); err != nil || len(page.Lines) != 0 || page.Total() != 0 {
			t.Fatalf("logs of half-deleted %s: %+v %v, want none", id, page, err)
		}
	}
	if ch, _ := s.Children(ctx, root); len(ch) != 0 {
		t.Fatalf("children of a half-deleted root: %v", ch)
	}
	page, err := s.List(ctx, ListFilter{Limit: 10})
	if err != nil || len(page.States) != 2 {
		t.Fatalf("list with a half-deleted tree: %v %v", page.States, err)
	}
	got, _, err := s.EventsFrom(ctx, 1, 0)
	if err != nil || len(got) != 8 || got[0].ExecutionID != kept || got[0].Skipped != 8 {
		t.Fatalf("the global log with a half-deleted tree: %d events, %v", len(got), err)
	}
	// Nothing may be written into a tree being deleted, not even a new execution.
	if _, err := s.Commit(ctx, gAppend(root, 0, gCreated(500))); !errors.Is(err, ErrNotFound) {
		t.Fatalf("creating an execution in a tree being deleted: %v", err)
	}
	var listed []FinishedTree
	if err := s.FinishedTrees(ctx, func(string) time.Time { return time.Unix(0, 0) }, func(ft FinishedTree) (bool, error) {
		listed = append(listed, ft)
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0].Root != root || !listed[0].Deleting {
		t.Fatalf("FinishedTrees lists %+v, want the interrupted %s", listed, root)
	}
	d, err := s.DeleteTrees(ctx, []string{root})
	if err != nil || d.Executions != 2 {
		t.Fatalf("finishing the deletion: %+v %v", d, err)
	}
	if left := treeKeys(t, s, root); len(left) != 0 {
		t.Fatalf("keys of the deleted tree left: %q", left)
	}
	if _, err := s.Commit(ctx, gAppend(root, 0, gCreated(500))); err != nil {
		t.Fatalf("the ID of a deleted tree is free again: %v", err)
	}
}

func TestFinishedTrees(t *testing.T) {
	ctx := context.Background()
	s := gOpen(t, t.TempDir())
	a, _ := rTree(t, s, 100, true) // root finishes at 100, its child at 101
	b, _ := rTree(t, s, 200, true)
	rTree(t, s, 300, false)
	list := func(cutoff int64) []string {
		t.Helper()
		var out []string
		err := s.FinishedTrees(ctx, func(comp string) time.Time { return time.Unix(0, cutoff) }, func(ft FinishedTree) (bool, error) {
			if ft.Executions != 2 {
				t.Errorf("%s: %d executions", ft.Root, ft.Executions)
			}
			out = append(out, ft.Root)
			return true, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got := list(101); len(got) != 0 {
		t.Fatalf("cutoff 101: %v (the child of %s finished at 101)", got, a)
	}
	if got := list(102); len(got) != 1 || got[0] != a {
		t.Fatalf("cutoff 102: %v, want %s", got, a)
	}
	if got := list(1000); len(got) != 2 || got[0] != a || got[1] != b {
		t.Fatalf("cutoff 1000: %v, want %s %s (not the unfinished tree)", got, a, b)
	}
}

// TestWatchSkipsDeleted: a reader resuming from a deleted position continues at the
// next retained one, told how many positions it skipped.
func TestEventsFromSkipsDeleted(t *testing.T) {
	ctx := context.Background()
	s := gOpen(t, t.TempDir())
	a, _ := rTree(t, s, 100, true)
	first := s.LastPosition()
	b, _ := rTree(t, s, 200, true)
	mid := s.LastPosition()
	c, _ := rTree(t, s, 300, true)
	if _, err := s.DeleteTrees(ctx, []string{b}); err != nil {
		t.Fatal(err)
	}
	got, through, err := s.EventsFrom(ctx, first+3, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 || got[0].Position != mid+1 || got[0].ExecutionID != c || got[0].Skipped != mid-first-2 {
		t.Fatalf("from %d: first %+v, want position %d of %s after %d skipped", first+3, got[0], mid+1, c, mid-first-2)
	}
	if through != s.LastPosition() {
		t.Fatalf("through %d, want %d", through, s.LastPosition())
	}
	// Everything from the position asked is deleted: nothing, but through moves on.
	if _, err := s.DeleteTrees(ctx, []string{c}); err != nil {
		t.Fatal(err)
	}
	got, through, err = s.EventsFrom(ctx, first+1, 0)
	if err != nil || len(got) != 0 || through != s.LastPosition() {
		t.Fatalf("from %d with the rest deleted: %v through %d %v", first+1, got, through, err)
	}
	// Positions keep counting from the last one given.
	last := s.LastPosition()
	d := NewExecutionID(time.Unix(0, 400))
	gCommit(t, s, gAppend(d, 0, gCreated(400)))
	got, _, _ = s.EventsFrom(ctx, 1, 0)
	if n := len(got); got[n-1].Position != last+1 || got[n-1].Skipped != last-first || got[0].ExecutionID != a {
		t.Fatalf("after deletions: %+v", got[n-1])
	}
}

// A store written before the f index existed gets it built at Open, so that its old
// finished trees are deleted too.
func TestFinishedIndexBuiltAtOpen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := gOpen(t, dir)
	root, _ := rTree(t, s, 100, true)
	st, err := s.State(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	// As an older version left it: no f key, no marker.
	if err := s.db.Delete(finishedKey(st.ComponentId, st.FinishedAt, root), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Delete(finishedIndexedKey, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	list := func(s *PebbleStore) []string {
		var out []string
		if err := s.FinishedTrees(ctx, func(string) time.Time { return time.Unix(0, 1000) }, func(ft FinishedTree) (bool, error) {
			out = append(out, ft.Root)
			return true, nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got := list(s); len(got) != 0 {
		t.Fatalf("listed without its f key: %v", got)
	}
	s.Close()
	s = gOpen(t, dir)
	if got := list(s); len(got) != 1 || got[0] != root {
		t.Fatalf("after reopening: %v, want %s", got, root)
	}
}

// TestDeleteTreesCrashInOwnKeys: a crash after the derived keys and some of the tree's
// own keys (its states among them) were deleted leaves the tree hidden, and the next
// deletion finishes it without leaving any key of it, derived or own.
func TestDeleteTreesCrashInOwnKeys(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := gOpen(t, dir)
	root, child := rTree(t, s, 100, true)
	kept, _ := rTree(t, s, 200, true)
	if err := s.runStep(ctx, false, func(b *pebble.Batch) (func(), error) {
		return nil, b.Set(deletingKey(root), nil, nil)
	}); err != nil {
		t.Fatal(err)
	}
	r := s.newTreeReader()
	_, _, derived, err := s.treePoints(r, root)
	r.close()
	if err != nil {
		t.Fatal(err)
	}
	var states [][]byte
	if err := s.scanTree(tagState, root, func(k, _ []byte) error {
		states = append(states, bytes.Clone(k))
		return nil
	}); err != nil || len(states) != 2 {
		t.Fatalf("states of the tree: %d, %v", len(states), err)
	}
	// Steps 2 and the start of 3: every derived key, then the root's state only.
	if err := s.runStep(ctx, false, func(b *pebble.Batch) (func(), error) {
		for _, k := range derived {
			_ = b.Delete(k, nil)
		}
		return nil, b.Delete(states[0], nil)
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = gOpen(t, dir)
	for _, id := range []string{root, child} {
		if _, err := s.State(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("state of half-deleted %s: %v", id, err)
		}
	}
	d, err := s.DeleteTrees(ctx, []string{root})
	if err != nil || d.Trees != 1 {
		t.Fatalf("finishing the deletion: %+v %v", d, err)
	}
	if left := treeKeys(t, s, root); len(left) != 0 {
		t.Fatalf("keys of the deleted tree left: %q", left)
	}
	if _, err := s.State(ctx, kept); err != nil {
		t.Fatalf("the other tree after the deletion: %v", err)
	}
	if s.hidden(root) {
		t.Fatal("the deleted tree is still marked")
	}
}

// BenchmarkDeleteTrees: what a retention pass does with 2,000 finished trees (list them
// 256 at a time, delete each batch), pacing included; executions/s is the pass's rate.
func BenchmarkDeleteTrees(b *testing.B) {
	ctx := context.Background()
	for range b.N {
		b.StopTimer()
		s := gOpen(b, b.TempDir())
		for i := range 2000 {
			rTree(b, s, int64(1000+10*i), true)
		}
		// As in a store that ran a while: the trees' keys in the lower levels, not in
		// the memtable, so that the deletion's tombstones are compacted down onto them.
		if err := s.db.Compact(ctx, []byte{0}, []byte{0xff}, false); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		cpu0 := processCPU(b)
		bg := s.Background()
		executions := 0
		for {
			var roots []string
			if err := s.FinishedTrees(ctx, func(string) time.Time { return time.Unix(1e6, 0) }, func(t FinishedTree) (bool, error) {
				roots = append(roots, t.Root)
				return len(roots) < 256, nil
			}); err != nil {
				b.Fatal(err)
			}
			if len(roots) == 0 {
				break
			}
			d, err := s.DeleteTrees(ctx, roots)
			if err != nil {
				b.Fatal(err)
			}
			executions += d.Executions
		}
		b.ReportMetric(float64(executions)/time.Since(start).Seconds(), "executions/s")
		// CPU, the store's background work included, varies less than wall time on a
		// shared machine.
		b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(executions), "cpu-µs/execution")
		cpu1 := processCPU(b)
		if err := s.CompactDeleted(ctx); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64((processCPU(b) - cpu1).Milliseconds()), "compact-deleted-cpu-ms")
		after := s.Background()
		b.ReportMetric(float64(after.Flushes-bg.Flushes), "flushes")
		b.ReportMetric(float64(after.Compactions-bg.Compactions), "compactions")
		b.ReportMetric(float64(after.CompactedBytes-bg.CompactedBytes)/(1<<20), "compacted-MiB")
		b.StopTimer()
		s.Close()
	}
}

// TestFinishedTreesDeletingAsItLists: a listing whose callback deletes each batch it was
// given (as a retention pass does) lists every tree once, across the reopening of its
// iterators (reopenEvery).
func TestFinishedTreesDeletingAsItLists(t *testing.T) {
	ctx := context.Background()
	s := gOpen(t, t.TempDir())
	const n = reopenEvery + 44
	for i := range n {
		rTree(t, s, int64(1000+10*i), true)
	}
	seen := map[string]bool{}
	var batch []string
	del := func() {
		d, err := s.DeleteTrees(ctx, batch)
		if err != nil || d.Trees != len(batch) {
			t.Fatalf("delete %d trees: %+v %v", len(batch), d, err)
		}
		batch = batch[:0]
	}
	if err := s.FinishedTrees(ctx, func(string) time.Time { return time.Unix(1e6, 0) }, func(ft FinishedTree) (bool, error) {
		if seen[ft.Root] {
			t.Fatalf("%s listed twice", ft.Root)
		}
		seen[ft.Root] = true
		if batch = append(batch, ft.Root); len(batch) == 100 {
			del()
		}
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	del()
	if len(seen) != n {
		t.Fatalf("listed %d trees, want %d", len(seen), n)
	}
	page, err := s.List(ctx, ListFilter{Limit: 10})
	if err != nil || len(page.States) != 0 {
		t.Fatalf("after the pass: %d states left, %v", len(page.States), err)
	}
}

// processCPU returns the CPU time (user and system) this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
