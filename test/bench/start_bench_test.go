package bench

import (
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/test/harness"
)

// BenchmarkServerStart: seconds from starting the server on the example deployment (the
// nine test components) to its API answering, with an empty compilation cache (every
// module compiled: a first start) and again with the cache that start filled.
func BenchmarkServerStart(b *testing.B) {
	var cold, warm time.Duration
	for range b.N {
		start := time.Now()
		s := harness.Start(b, harness.Options{CacheDir: b.TempDir()})
		cold += time.Since(start)
		s.Stop()
		start = time.Now()
		s.Start()
		warm += time.Since(start)
		s.Stop()
	}
	b.ReportMetric(cold.Seconds()/float64(b.N), "s-cold/op")
	b.ReportMetric(warm.Seconds()/float64(b.N), "s-cached/op")
}
