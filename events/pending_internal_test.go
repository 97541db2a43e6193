package events

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// BenchmarkPendingCount: what the pending count adds to a group commit of one
// transaction that moves an execution out of the pending index (a lock), the common
// transition: the deltas of its state and their application under the counts' lock.
// A group commit itself costs tens of microseconds (BenchmarkCommit).
func BenchmarkPendingCount(b *testing.B) {
	c := pendingCounts{byQueue: map[string]*PendingStats{}}
	old := &pb.ExecutionState{ExecutionId: "E_a", Queue: "q", Status: pb.Status_STATUS_PENDING_AT}
	st := &pb.ExecutionState{ExecutionId: "E_a", Queue: "q", Status: pb.Status_STATUS_LOCKED}
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem()})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	batch := db.NewBatch()
	defer batch.Close()
	var ds []pendingDelta
	for range b.N {
		ds = writeIndexes(batch, old, st, ds[:0])
		c.apply(ds)
		batch.Reset()
	}
}

// TestPendingDrained: only an execution leaving the pending index to run or finish
// counts as drained (PendingStats.Left); a pause or a move to another queue does not.
func TestPendingDrained(t *testing.T) {
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	pending := &pb.ExecutionState{ExecutionId: "E_a", Queue: "q", Status: pb.Status_STATUS_PENDING_AT}
	for _, c := range []struct {
		name string
		st   *pb.ExecutionState
		left uint64
	}{
		{"locked", &pb.ExecutionState{ExecutionId: "E_a", Queue: "q", Status: pb.Status_STATUS_LOCKED}, 1},
		{"finished", &pb.ExecutionState{ExecutionId: "E_a", Queue: "q", Status: pb.Status_STATUS_FINISHED}, 1},
		{"paused", &pb.ExecutionState{ExecutionId: "E_a", Queue: "q", Status: pb.Status_STATUS_PENDING_AT, Paused: true}, 0},
		{"moved", &pb.ExecutionState{ExecutionId: "E_a", Queue: "other", Status: pb.Status_STATUS_PENDING_AT}, 0},
	} {
		cs := pendingCounts{byQueue: map[string]*PendingStats{}}
		cs.apply(writeIndexes(db.NewBatch(), nil, pending, nil))
		cs.apply(writeIndexes(db.NewBatch(), pending, c.st, nil))
		if got := cs.byQueue["q"]; got.Pending != 0 || got.Left != c.left {
			t.Errorf("%s: queue q %+v, want 0 pending, %d left", c.name, *got, c.left)
		}
		if cs.total.Left != c.left {
			t.Errorf("%s: %d left in all, want %d", c.name, cs.total.Left, c.left)
		}
	}
}

// TestPendingCountsFollowTheIndex: through random moves of executions between pending
// (in two queues, at several due times), paused, locked and finished, the counts that
// writeIndexes returns always equal the entries it leaves in the pending index.
func TestPendingCountsFollowTheIndex(t *testing.T) {
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	randomState := func(id string) *pb.ExecutionState {
		st := &pb.ExecutionState{ExecutionId: id, Ffqn: "testing:a/b.c", Queue: []string{"q", "r"}[rng.IntN(2)], PendingAt: int64(rng.IntN(3))}
		switch rng.IntN(5) {
		case 0, 1:
			st.Status = pb.Status_STATUS_PENDING_AT
		case 2:
			st.Status, st.Paused = pb.Status_STATUS_PENDING_AT, true
		case 3:
			st.Status, st.LockExpiresAt = pb.Status_STATUS_LOCKED, int64(rng.IntN(3))
		default:
			st.Status = pb.Status_STATUS_FINISHED
		}
		return st
	}
	cs := pendingCounts{byQueue: map[string]*PendingStats{}}
	states := map[string]*pb.ExecutionState{}
	for step := range 2000 {
		id := []string{"E_a", "E_b", "E_c"}[rng.IntN(3)]
		st := randomState(id)
		batch := db.NewBatch()
		cs.apply(writeIndexes(batch, states[id], st, nil))
		if err := batch.Commit(pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		states[id] = st
		for _, q := range []string{"q", "r"} {
			prefix := append(key(tagPending, []byte(q)), 0)
			it, err := db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for it.First(); it.Valid(); it.Next() {
				if !bytes.HasPrefix(it.Key(), prefix) {
					t.Fatalf("key %q outside %q", it.Key(), prefix)
				}
				n++
			}
			_ = it.Close()
			got := 0
			if c := cs.byQueue[q]; c != nil {
				got = c.Pending
			}
			if got != n {
				t.Fatalf("step %d: queue %s counts %d pending, its index holds %d", step, q, got, n)
			}
		}
	}
}
