package bench

import (
	"context"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
	"github.com/obelisk-go/obelisk/test/harness"
)

// BenchmarkBackpressure: 16 clients submit executions of the sleep activity (200 ms, 4
// at a time: the queue drains about 20 per second) as fast as the API answers, for 60 s
// (OBELISK_BENCH_BACKPRESSURE_SECONDS shortens it), into a queue with max_pending = 100;
// meanwhile one client asks GetStatus of an execution over and over. Nearly every
// submission is refused with resource_exhausted. The metrics are the submissions
// accepted and refused per second, the server's peak RSS during the flood, and the
// GetStatus latency (p50, p99) while it lasts: what a refusal costs the server, and
// whether reads stay fast while it refuses.
func BenchmarkBackpressure(b *testing.B) {
	const clients, fn = 16, "testing:sleep/sleep.sleep"
	duration := 60 * time.Second
	if v := os.Getenv("OBELISK_BENCH_BACKPRESSURE_SECONDS"); v != "" {
		d, err := time.ParseDuration(v + "s")
		if err != nil {
			b.Fatalf("OBELISK_BENCH_BACKPRESSURE_SECONDS=%q: %v", v, err)
		}
		duration = d
	}
	s := harness.Start(b, harness.Options{ExtraTOML: map[string]string{
		"sleep": "exec.lock_expiry = \"60s\"\nexec.max_concurrency = 4\nexec.max_pending = 100\n",
	}})
	ctx := context.Background()
	probe := s.Submit(fn, "[1]")
	s.Result(probe, time.Minute)
	for range b.N {
		var accepted, refused atomic.Int64
		var failed atomic.Value
		var statuses []time.Duration
		var wg sync.WaitGroup
		stopMem := s.SampleMemory()
		start := time.Now()
		deadline := start.Add(duration)
		for range clients {
			wg.Go(func() {
				for time.Now().Before(deadline) {
					_, err := s.Exec.Submit(ctx, connect.NewRequest(&pb.SubmitRequest{Ffqn: fn, ParamsJson: "[200]"}))
					switch {
					case err == nil:
						accepted.Add(1)
					case connect.CodeOf(err) == connect.CodeResourceExhausted:
						refused.Add(1)
					default:
						failed.Store(err)
						return
					}
				}
			})
		}
		wg.Go(func() {
			for time.Now().Before(deadline) {
				t0 := time.Now()
				stream, err := s.Exec.GetStatus(ctx, connect.NewRequest(&pb.GetStatusRequest{ExecutionId: probe}))
				if err == nil {
					for stream.Receive() {
					}
					err = stream.Err()
					stream.Close()
				}
				if err != nil {
					failed.Store(err)
					return
				}
				statuses = append(statuses, time.Since(t0))
			}
		})
		wg.Wait()
		elapsed := time.Since(start)
		reportPeakMemory(b, stopMem)
		if err, _ := failed.Load().(error); err != nil {
			b.Fatal(err)
		}
		if len(statuses) == 0 {
			b.Fatal("no GetStatus answered")
		}
		slices.Sort(statuses)
		b.ReportMetric(float64(accepted.Load())/elapsed.Seconds(), "accepted/s")
		b.ReportMetric(float64(refused.Load())/elapsed.Seconds(), "refused/s")
		b.ReportMetric(float64(statuses[len(statuses)/2].Microseconds())/1000, "getstatus-p50-ms")
		b.ReportMetric(float64(statuses[len(statuses)*99/100].Microseconds())/1000, "getstatus-p99-ms")
	}
}
