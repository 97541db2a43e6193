package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
	"github.com/obelisk-go/obelisk/test/harness"
)

// BenchmarkFiboaConcurrent: one workflow submits 1,000 fibo(1) children into one join
// set and then awaits them all; the metrics are the total wall time, children completed
// per second and the server's peak RSS and PSS during the fan-out (and VmHWM), once the modules' snapshots are ready (warm), and
// the wall time of the first fan-out on the new server (cold-total-s), during which they
// are being prepared.
func BenchmarkFiboaConcurrent(b *testing.B) {
	for _, strategy := range []string{"await", "interrupt"} {
		b.Run(strategy, func(b *testing.B) {
			s := harness.Start(b, harness.Options{BlockingStrategy: strategy})
			const children = 1000
			fanOut := func() time.Duration {
				start := time.Now()
				id := s.Submit("testing:fibo-workflow/workflow.fiboa-concurrent", fmt.Sprintf("[1, %d]", children))
				harness.JSONEq(b, s.Result(id, 10*time.Minute), fmt.Sprintf(`{"ok":%d}`, children))
				return time.Since(start)
			}
			cold := fanOut()
			waitPrepared(b, s, "fibo", "fibo_workflow")
			b.ResetTimer()
			for range b.N {
				mem := s.SampleMemory()
				total := fanOut()
				b.ReportMetric(total.Seconds(), "total-s")
				b.ReportMetric(children/total.Seconds(), "children/s")
				b.ReportMetric(cold.Seconds(), "cold-total-s")
				reportPeakRSS(b, s)
				reportPeakMemory(b, mem)
			}
		})
	}
}

// BenchmarkSleepDurable: 1,000 sleep-durable(1000) workflows submitted at once. The
// metrics are the timer precision, from each execution's delay: fire lateness (when the
// delay's response was recorded minus the delay's expires_at) and wake lateness (when
// the workflow finished, having continued after the delay, minus expires_at), at p50 and
// p99; and the server's VmHWM (peak RSS since it started).
func BenchmarkSleepDurable(b *testing.B) {
	const n = 1000
	s := harness.Start(b, harness.Options{})
	b.ResetTimer()
	for range b.N {
		ids := submitAll(s, n, "testing:sleep-workflow/workflow.sleep-durable", "[1000]")
		for _, id := range ids {
			if r := s.Result(id, 10*time.Minute); r != `{"ok":null}` {
				b.Fatalf("%s: %s", id, r)
			}
		}
		b.StopTimer()
		var fire, wake []time.Duration
		for _, id := range ids {
			f, w := sleepLateness(b, s, id)
			fire, wake = append(fire, f), append(wake, w)
		}
		reportPercentiles(b, "fire", fire)
		reportPercentiles(b, "wake", wake)
		reportPeakRSS(b, s)
		b.StartTimer()
	}
}

// sleepLateness returns, for one finished sleep-durable execution, the time from its
// delay's expires_at to the delay's response (fire) and to the finished event (wake).
func sleepLateness(b *testing.B, s *harness.Server, id string) (fire, wake time.Duration) {
	b.Helper()
	var delayID string
	var expires, finished time.Time
	for _, e := range s.Events(id) {
		switch e.Kind {
		case "history.join_set_request":
			var d struct {
				DelayID   string    `json:"delay_id"`
				ExpiresAt time.Time `json:"expires_at"`
			}
			if err := json.Unmarshal([]byte(e.DetailsJson), &d); err != nil {
				b.Fatalf("%s: %s: %v", id, e.DetailsJson, err)
			}
			if d.DelayID != "" {
				delayID, expires = d.DelayID, d.ExpiresAt
			}
		case "finished":
			finished = parseTime(b, e.CreatedAt)
		}
	}
	if delayID == "" || finished.IsZero() {
		b.Fatalf("%s: no delay request or no finished event", id)
	}
	resp, err := s.Exec.ListResponses(context.Background(), connect.NewRequest(&pb.ListResponsesRequest{ExecutionId: id}))
	if err != nil {
		b.Fatalf("responses of %s: %v", id, err)
	}
	var fired time.Time
	for _, r := range resp.Msg.Responses {
		if r.DelayId == delayID {
			fired = parseTime(b, r.CreatedAt)
		}
	}
	if fired.IsZero() {
		b.Fatalf("%s: no response for %s", id, delayID)
	}
	return fired.Sub(expires), finished.Sub(expires)
}

func parseTime(b *testing.B, s string) time.Time {
	b.Helper()
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		b.Fatal(err)
	}
	return t
}

func reportPercentiles(b *testing.B, name string, ds []time.Duration) {
	slices.Sort(ds)
	b.ReportMetric(float64(ds[len(ds)/2].Microseconds())/1000, name+"-p50-ms")
	b.ReportMetric(float64(ds[len(ds)*99/100].Microseconds())/1000, name+"-p99-ms")
}

// reportPeakRSS reports the server's VmHWM: its peak RSS since it started.
func reportPeakRSS(b *testing.B, s *harness.Server) {
	rss, err := s.PeakRSS()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(rss)/(1<<20), "VmHWM-MiB")
}

// reportPeakMemory reports the peaks of the server's RSS and PSS that stop (from
// SampleMemory) returns: those of the measured run.
func reportPeakMemory(b *testing.B, stop func() harness.Memory) {
	m := stop()
	b.ReportMetric(float64(m.RSS)/(1<<20), "peak-RSS-MiB")
	b.ReportMetric(float64(m.PSS)/(1<<20), "peak-PSS-MiB")
}
