package events

import (
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// BenchmarkWriteIndexes measures the index writes of one commit's state change (pending
// to locked, as every lock does), for an execution without a deadline and with one:
// the deadline index is on every commit's path, and must cost nothing to executions
// that have no deadline.
func BenchmarkWriteIndexes(b *testing.B) {
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem()})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	for _, deadline := range []int64{0, 5000} {
		name := "deadline=none"
		if deadline != 0 {
			name = "deadline=set"
		}
		b.Run(name, func(b *testing.B) {
			old := &pb.ExecutionState{ExecutionId: "E_01KBENCH", Ffqn: "testing:a/b.c", Queue: "q", Status: pb.Status_STATUS_PENDING_AT, PendingAt: 100, Deadline: deadline}
			st := CloneState(old)
			st.Status, st.PendingAt, st.LockExpiresAt = pb.Status_STATUS_LOCKED, 0, 1000
			batch := db.NewBatch()
			defer batch.Close()
			b.ReportAllocs()
			for b.Loop() {
				writeIndexes(batch, old, st, nil)
				batch.Reset()
			}
		})
	}
}
