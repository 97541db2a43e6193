package events

import (
	"bytes"
	"fmt"
	"testing"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// BenchmarkWriterApply measures the writer goroutine's own work for one commit's Tx,
// the fold of one history event into its execution's state and its stored bytes with
// their link (groupState.apply), for an event of a few hundred bytes and one of 4 KiB
// (a persisted value). What Commit does before the Tx reaches the writer, on the
// committer's goroutine, is outside the timing: the writer is the one goroutine every
// commit of the store waits for.
func BenchmarkWriterApply(b *testing.B) {
	for _, size := range []int{0, 4096} {
		b.Run(fmt.Sprintf("value=%d", size), func(b *testing.B) {
			s := gOpen(b, b.TempDir())
			gCommit(b, s, gAppend("E_A", 0, gCreated(1), gLocked("R1", 2)))
			value := bytes.Repeat([]byte{'7'}, size)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				ev := gPersist(3)
				ev.GetHistory().GetPersist().Value = append([]byte("[10]"), value...)
				tx := &Tx{Appends: []Append{{ExecutionID: "E_A", ExpectedVersion: 2, RunID: "R1", Events: []*pb.Event{ev}}}}
				beforeWriter(tx)
				g := &groupState{s: s, orig: map[string]*pb.ExecutionState{}, working: map[string]*pb.ExecutionState{}, dedupe: map[string]bool{}, delays: map[string]int64{}, logs: map[string]LogStats{}, kv: map[string]kvValue{}, snaps: map[string][]SnapshotEntry{}}
				b.StartTimer()
				if _, _, _, err := g.apply(tx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
