package replicated_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/events"
)

// BenchmarkCommit: commits/s and the p50/p99 of one commit, by committers at once,
// through a three-server R3 cluster (one replicated store per server, committers spread
// over them) against the Pebble store alone (synced, as a single node runs). Each
// committer runs workflow trees (treeTxs: 5 commits each, touching one or two streams).
func BenchmarkCommit(b *testing.B) {
	const trees = 200 // per iteration, 1,000 commits
	for _, committers := range []int{1, 32} {
		b.Run(fmt.Sprintf("pebble/committers=%d", committers), func(b *testing.B) {
			s, err := events.Open(b.TempDir(), events.Options{Logger: quiet()})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			benchCommits(b, []events.Store{s}, committers, trees)
		})
		b.Run(fmt.Sprintf("r3/committers=%d", committers), func(b *testing.B) {
			c := startCluster(b, 3)
			var stores []events.Store
			for i := range 3 {
				stores = append(stores, c.open(b, i, "BENCH", b.TempDir()))
			}
			benchCommits(b, stores, committers, trees)
		})
	}
}

func benchCommits(b *testing.B, stores []events.Store, committers, trees int) {
	ctx := context.Background()
	var mu sync.Mutex
	var lat []time.Duration
	b.ResetTimer()
	start := time.Now()
	for n := range b.N {
		var wg sync.WaitGroup
		next := make(chan int, trees)
		for i := range trees {
			next <- i
		}
		close(next)
		for w := range committers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := stores[w%len(stores)]
				var mine []time.Duration
				for i := range next {
					for _, tx := range treeTxs(fmt.Sprintf("E_%d_%d", n, i)) {
						t0 := time.Now()
						if _, err := s.Commit(ctx, tx); err != nil {
							b.Error(err)
							return
						}
						mine = append(mine, time.Since(t0))
					}
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			}()
		}
		wg.Wait()
	}
	took := time.Since(start)
	b.StopTimer()
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(len(lat))/took.Seconds(), "commits/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
