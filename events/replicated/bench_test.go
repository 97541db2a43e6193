package replicated_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/events"
)

// BenchmarkCommit: commits/s and the p50/p99 of one commit, by committers at once,
// through a three-server R3 cluster (one replicated store per server, committers spread
// over them) against the Pebble store alone (synced, as a single node runs). Each
// committer runs workflow trees (treeTxs: 5 commits each, touching one or two streams).
//
// On a shared box the rate says more about the other processes than about the store:
// cpu-ms/commit (the process's CPU time, all nodes' work included, per commit) is the
// figure that does not depend on the load, and runq/wall (how long its threads waited
// for a CPU while runnable, over the run's wall time; Linux only) says how starved it
// was. Session 10 found the "idle" process of session 9 was such a wait, not a stage of
// the commit: docs/benchmarks.md.
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
	cpu0, runq0 := cpuTime(), runqWait()
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
	cpu, runq := cpuTime()-cpu0, runqWait()-runq0
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(len(lat))/took.Seconds(), "commits/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(len(lat)), "cpu-ms/commit")
	if runq > 0 {
		b.ReportMetric(runq.Seconds()/took.Seconds(), "runq/wall")
	}
}

// cpuTime is the process's CPU time so far, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runqWait is how long the process's live threads have waited for a CPU while runnable
// (Linux's schedstat; 0 elsewhere). Threads that ended are not counted.
func runqWait() time.Duration {
	files, _ := filepath.Glob("/proc/self/task/*/schedstat")
	var sum time.Duration
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread ended
		}
		var run, wait int64
		if _, err := fmt.Sscan(string(b), &run, &wait); err == nil {
			sum += time.Duration(wait)
		}
	}
	return sum
}
