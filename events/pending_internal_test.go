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
