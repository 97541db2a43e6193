//go:build cluster

package cluster_test

import (
	"sync"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/test/harness"
)

// BenchmarkClusterFiboa: 2,000 concurrent fiboa(1,3) submitted across three nodes on
// this box, each awaited on the node it was submitted to (issue 14's floor: 300
// workflows/s). servers-cpu-ms/workflow sums the three processes' CPU, the figure the
// box's load does not move.
//
//	make build && OBELISK_BIN=$PWD/bin/obelisk OBELISK_COMPONENTS=$PWD/build/components \
//	  go test -tags cluster -count=1 -run '^$' -bench ClusterFiboa -benchtime 1x ./test/cluster/
func BenchmarkClusterFiboa(b *testing.B) {
	const n, submitters = 2000, 32
	nodes := harness.StartConfigs(b, nodeConfigs(b)...)
	// Warm every node's instances first: the figure is of a running cluster.
	for i := range 30 {
		nodes[i%3].Result(nodes[i%3].Submit("testing:fibo-workflow/workflow.fiboa", "[1, 3]"), 5*time.Minute)
	}
	b.ResetTimer()
	for range b.N {
		var cpu0 time.Duration
		for _, s := range nodes {
			c, _ := s.CPUTime()
			cpu0 += c
		}
		start := time.Now()
		next := make(chan int, n)
		for i := range n {
			next <- i
		}
		close(next)
		var wg sync.WaitGroup
		ids := make([]string, n)
		for range submitters {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					ids[i] = nodes[i%3].Submit("testing:fibo-workflow/workflow.fiboa", "[1, 3]")
				}
			}()
		}
		wg.Wait()
		for i, id := range ids {
			if r := nodes[i%3].Result(id, 10*time.Minute); r != `{"ok":3}` {
				b.Fatalf("%s: %s", id, r)
			}
		}
		took := time.Since(start)
		var cpu1 time.Duration
		for _, s := range nodes {
			c, _ := s.CPUTime()
			cpu1 += c
		}
		b.ReportMetric(float64(n)/took.Seconds(), "workflows/s")
		b.ReportMetric(float64((cpu1-cpu0).Microseconds())/1000/n, "servers-cpu-ms/workflow")
	}
}
