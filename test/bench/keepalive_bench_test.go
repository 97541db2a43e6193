package bench

import (
	"fmt"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/test/harness"
)

// BenchmarkKeepalive: 1,000 concurrent 30 s sleeps of the sleep activity with
// exec.keepalive, under a lock expiry far shorter than the sleep (renewed every
// lock_expiry/3). Once they are running (all locked, or at most 15 s after the last was
// submitted) and each was renewed once, a 5 s window is measured from the server's
// /metrics: lock renewals per second, and the server's CPU time (user + system,
// process_cpu_seconds_total) per renewal. That CPU is everything the server did in the
// window (1,000 guests asleep cost next to nothing once started), so it bounds a
// renewal's cost from above. attempts-retried counts the attempts that lost their lock
// (renewals starved while the machine was overloaded), sleeps-failed the sleeps whose
// every attempt did.
//
// The sleeps last 30 s, not 10 s: on a loaded 2-core machine submitting and starting
// 1,000 takes several seconds (submit-s), and 10 s sleeps begun first would end before
// the last began.
func BenchmarkKeepalive(b *testing.B) {
	const n = 1000
	for _, expiry := range []time.Duration{3 * time.Second, 10 * time.Second} {
		b.Run(fmt.Sprintf("lock_expiry=%v", expiry), func(b *testing.B) {
			// Each attempt reserves its memory_limit from the budget: 1,000 at once need
			// a small limit (a sleeping Go guest uses a few MiB) and a budget that
			// admits them all.
			s := harness.Start(b, harness.Options{
				ExtraTOML:  map[string]string{"sleep": fmt.Sprintf("exec.lock_expiry = %q\nexec.keepalive = true\nexec.max_concurrency = %d\nmemory_limit = \"32MiB\"\n", expiry, n)},
				Deployment: "[wasm]\nmemory_budget = \"40GiB\"\n",
			})
			b.ResetTimer()
			ok := map[string]string{"outcome": "ok"}
			for range b.N {
				before := scrape(s)
				submitted := time.Now()
				ids := submitAll(s, n, "testing:sleep/sleep.sleep", "[30000]")
				b.ReportMetric(time.Since(submitted).Seconds(), "submit-s")
				var running float64
				for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
					if running = scrape(s)("obelisk_executions", map[string]string{"status": "locked"}); running >= n {
						break
					}
				}
				b.ReportMetric(running, "running-at-window")
				// Past the start-up (instances made, guests begun) and the first renewal
				// of each: the window sees the steady state.
				time.Sleep(expiry/3 + time.Second)
				from, t0 := scrape(s), time.Now()
				time.Sleep(5 * time.Second)
				to, t1 := scrape(s), time.Now()
				renewals := to("obelisk_activity_lock_renewals_total", ok) - from("obelisk_activity_lock_renewals_total", ok)
				cpu := to("process_cpu_seconds_total", nil) - from("process_cpu_seconds_total", nil)
				if renewals <= 0 {
					b.Fatalf("no renewals in %v", t1.Sub(t0))
				}
				b.ReportMetric(renewals/t1.Sub(t0).Seconds(), "renewals/s")
				b.ReportMetric(cpu/renewals*1e6, "cpu-µs/renewal")
				b.ReportMetric(cpu/t1.Sub(t0).Seconds()*100, "cpu-%")
				failed := 0
				for _, id := range ids {
					if r := s.Result(id, 5*time.Minute); r != `{"ok":null}` {
						failed++
						b.Logf("%s: %s", id, r)
					}
				}
				b.ReportMetric(float64(failed), "sleeps-failed")
				after := scrape(s)
				delta := func(name string, labels map[string]string) float64 { return after(name, labels) - before(name, labels) }
				b.ReportMetric(delta("obelisk_activity_attempts_total", map[string]string{"outcome": "retried_timeout"}), "attempts-retried")
				b.ReportMetric(delta("obelisk_activity_lock_renewals_total", map[string]string{"outcome": "lost"}), "renewals-lost")
				reportPeakRSS(b, s)
			}
		})
	}
}

// scrape reads the server's /metrics once; a series not exported yet reads 0.
func scrape(s *harness.Server) func(name string, labels map[string]string) float64 {
	lookup := s.Metrics()
	return func(name string, labels map[string]string) float64 {
		v, _ := lookup(name, labels)
		return v
	}
}
