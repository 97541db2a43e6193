package events

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// TestSnapshotsDroppedWhenFinished: the commit that finishes a workflow execution drops
// its snapshots, blobs included, and not its children's (whose IDs extend its own); a
// snapshot of a finished execution is not stored, while the rest of its Tx is.
func TestSnapshotsDroppedWhenFinished(t *testing.T) {
	ctx := context.Background()
	s := gOpen(t, t.TempDir())
	workflow := func(at int64) *pb.Event {
		ev := gCreated(at)
		ev.GetCreated().ComponentType = pb.ComponentType_COMPONENT_TYPE_WORKFLOW
		return ev
	}
	id := NewExecutionID(time.Unix(0, 100))
	child := id + ".o:1-c_1"
	gCommit(t, s, gAppend(id, 0, workflow(100)))
	gCommit(t, s, gAppend(child, 0, workflow(100)))
	put := func(id string, pos uint32) SnapshotPut {
		return SnapshotPut{ExecutionID: id, Entry: SnapshotEntry{Position: pos, Prefix: []byte{1}, ComponentID: "comp"}, Blob: []byte("memory of " + id)}
	}
	gCommit(t, s, &Tx{Snapshots: []SnapshotPut{put(id, 10), put(id, 20), put(child, 10)}})
	es, err := s.Snapshots(ctx, id)
	if err != nil || len(es) != 2 {
		t.Fatalf("snapshots before the finish: %+v %v", es, err)
	}

	gCommit(t, s, gAppend(id, 1, rFinished(101)))
	if got, err := s.Snapshots(ctx, id); err != nil || len(got) != 0 {
		t.Fatalf("snapshots of the finished execution: %+v %v, want none", got, err)
	}
	for _, e := range es {
		if _, err := s.SnapshotBlob(ctx, id, e); !errors.Is(err, ErrNotFound) {
			t.Errorf("blob at %d of the finished execution: %v, want ErrNotFound", e.Position, err)
		}
	}
	if got, err := s.Snapshots(ctx, child); err != nil || len(got) != 1 {
		t.Fatalf("snapshots of the unfinished child: %+v %v, want its one", got, err)
	}

	// A run's snapshot committed after its execution finished is not stored; the rest
	// of its Tx is.
	gCommit(t, s, &Tx{Snapshots: []SnapshotPut{put(id, 30), put(child, 20)}})
	if got, err := s.Snapshots(ctx, id); err != nil || len(got) != 0 {
		t.Fatalf("snapshots after a late put: %+v %v, want none", got, err)
	}
	if got, err := s.Snapshots(ctx, child); err != nil || len(got) != 2 {
		t.Fatalf("snapshots of the child after the Tx with the late put: %+v %v, want 2", got, err)
	}
}

// TestSnapshotsPutAndFinishedInOneGroup: a snapshot put by a Tx of the writer's group
// (still only in the batch) is dropped by a later Tx of the same group finishing its
// workflow, blob included.
func TestSnapshotsPutAndFinishedInOneGroup(t *testing.T) {
	ctx := context.Background()
	s := gOpen(t, t.TempDir())
	id := NewExecutionID(time.Unix(0, 100))
	created := gCreated(100)
	created.GetCreated().ComponentType = pb.ComponentType_COMPONENT_TYPE_WORKFLOW
	gCommit(t, s, gAppend(id, 0, created))
	snap := &Tx{Snapshots: []SnapshotPut{{ExecutionID: id, Entry: SnapshotEntry{Position: 10, Prefix: []byte{1}, ComponentID: "comp"}, Blob: []byte("memory")}}}
	for i, err := range group(s, snap, gAppend(id, 1, rFinished(101))) {
		if err != nil {
			t.Fatalf("tx %d: %v", i, err)
		}
	}
	if got, err := s.Snapshots(ctx, id); err != nil || len(got) != 0 {
		t.Fatalf("snapshots of the finished execution: %+v %v, want none", got, err)
	}
	e := snap.Snapshots[0].Entry
	e.Digest = snap.Snapshots[0].digest
	if _, err := s.SnapshotBlob(ctx, id, e); !errors.Is(err, ErrNotFound) {
		t.Fatalf("blob of the finished execution: %v, want ErrNotFound", err)
	}
}

// BenchmarkFinishedSnapshotOps measures what the commit finishing a workflow execution
// adds: looking for its snapshots (here none, the common case: snapshot_every is 1,000
// history events), in a store of 1,000 workflow executions.
func BenchmarkFinishedSnapshotOps(b *testing.B) {
	s := gOpen(b, b.TempDir())
	var ids []string
	for i := range 1000 {
		id := NewExecutionID(time.Unix(0, int64(100+i)))
		ids = append(ids, id)
		gCommit(b, s, gAppend(id, 0, gCreated(100), gLocked("Run_1", 101), gPersist(102)))
	}
	b.ResetTimer()
	for i := range b.N {
		if _, err := (&groupState{s: s}).finishedSnapshotOps(ids[i%len(ids)]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSnapshotCommit measures the synced commit of one workflow snapshot of 5 MiB
// (a Go guest's memory): what an evicted instance no longer waits for before it leaves
// (actors: snapshotBeforeEviction commits in the background).
func BenchmarkSnapshotCommit(b *testing.B) {
	s, err := Open(b.TempDir(), Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	id := NewExecutionID(time.Unix(0, 100))
	gCommit(b, s, gAppend(id, 0, gCreated(100)))
	blob := make([]byte, 5<<20)
	b.ResetTimer()
	for i := range b.N {
		blob[0], blob[1] = byte(i), byte(i>>8) // another digest each time
		gCommit(b, s, &Tx{Snapshots: []SnapshotPut{{ExecutionID: id, Entry: SnapshotEntry{Position: uint32(i + 1), Prefix: []byte{1}, ComponentID: "comp"}, Blob: blob}}})
	}
}
