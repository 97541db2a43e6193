package events_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// BenchmarkCommit measures synced commits with 1 to 256 concurrent committers, each
// appending history events to its own workflow execution (one event per Tx, as a workflow
// run does). With one committer every commit pays a full sync; with many, the writer
// groups the waiting Txs into one batch and one sync. It reports commits/s and txs/group
// (how many Txs shared a sync on average); the nosync runs show the cost without the
// sync.
func BenchmarkCommit(b *testing.B) {
	for _, nosync := range []bool{false, true} {
		for _, committers := range []int{1, 4, 16, 64, 256} {
			name := fmt.Sprintf("synced/committers=%d", committers)
			if nosync {
				name = fmt.Sprintf("nosync/committers=%d", committers)
			}
			b.Run(name, func(b *testing.B) { benchCommit(b, committers, nosync) })
		}
	}
}

func benchCommit(b *testing.B, committers int, nosync bool) {
	ctx := context.Background()
	var groups atomic.Int64
	s := openStore(b, b.TempDir(), events.Options{NoSync: nosync, OnCommit: func([]*pb.ExecutionState) { groups.Add(1) }})
	ids := make([]string, committers)
	for c := range committers {
		ids[c] = fmt.Sprintf("E_bench%d", c)
		mustCommit(b, s, appendTx(ids[c], 0, "", createdEv("testing:bench/ifc.fn", "q", 1, 1), lockedEv("R1", 2, 1<<62)))
	}
	groups.Store(0)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, committers)
	b.ResetTimer()
	for c := range committers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := uint32(2)
			for next.Add(1) <= int64(b.N) {
				if _, err := s.Commit(ctx, appendTx(ids[c], v, "R1", persistEv(3))); err != nil {
					errs <- err
					return
				}
				v++
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
	if g := groups.Load(); g > 0 {
		b.ReportMetric(float64(b.N)/float64(g), "txs/group")
	}
}
