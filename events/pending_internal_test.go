package events

import (
	"testing"

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
	var ds []pendingDelta
	for range b.N {
		ds = pendingDeltas(ds[:0], old, st)
		c.apply(ds)
	}
}

// TestPendingDrained: only an execution leaving the pending index to run or finish
// counts as drained (PendingStats.Left); a pause or a move to another queue does not.
func TestPendingDrained(t *testing.T) {
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
		cs.apply(pendingDeltas(nil, nil, pending))
		cs.apply(pendingDeltas(nil, pending, c.st))
		if got := cs.byQueue["q"]; got.Pending != 0 || got.Left != c.left {
			t.Errorf("%s: queue q %+v, want 0 pending, %d left", c.name, *got, c.left)
		}
		if cs.total.Left != c.left {
			t.Errorf("%s: %d left in all, want %d", c.name, cs.total.Left, c.left)
		}
	}
}
