package bench

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/test/harness"
)

// BenchmarkKV measures the built-in key-value store (obelisk:kv/store):
//   - workflow: a workflow sets 500 keys in sequence, then gets them; each call is a
//     child execution (recorded, replayable). p50/p99 of one call, from the times the
//     workflow recorded its consecutive calls.
//   - activity: an activity sets 1,000 keys in sequence, then gets them, directly (the
//     kv host op); p50/p99 of one operation as the guest timed it, and operations/s.
//   - throughput: 2,000 sets submitted at once as top-level executions by clients;
//     completed sets per second.
func BenchmarkKV(b *testing.B) {
	activity := harness.BuildComponent(b, "test/e2e/testdata/kv-activity")
	s := harness.Start(b, harness.Options{
		ExtraWorkflows: map[string]string{"kv_workflow": "test/e2e/testdata/kv-workflow"},
		Deployment:     fmt.Sprintf("[[activity_wasm]]\nname = \"kv_activity\"\nlocation.path = %q\n", activity),
	})
	// Warm both modules up (snapshots prepared on first use).
	harness.JSONEq(b, s.Result(s.Submit("testing:kv-workflow/workflow.set-get", `["warm",5]`), time.Minute), `{"ok":5}`)
	s.Result(s.Submit("testing:kv-activity/activity.bench", `["warm",5]`), time.Minute)
	waitPrepared(b, s, "kv_workflow", "kv_activity")

	b.Run("workflow", func(b *testing.B) {
		const n = 500
		for i := range b.N {
			id := s.Submit("testing:kv-workflow/workflow.set-get", fmt.Sprintf(`["wf%d",%d]`, i, n))
			harness.JSONEq(b, s.Result(id, 10*time.Minute), fmt.Sprintf(`{"ok":%d}`, n))
			calls, gaps := harness.CallGaps(s, id)
			if len(calls) != 2*n {
				b.Fatalf("%d calls recorded, want %d", len(calls), 2*n)
			}
			// gaps[i] is call i's round trip: the sets are calls 0..n-1, the gets n..2n-1
			// (the last get has no next call to end its gap).
			set, get := slices.Clone(gaps[:n]), slices.Clone(gaps[n:])
			slices.Sort(set)
			slices.Sort(get)
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
			b.ReportMetric(ms(set[len(set)/2]), "set-p50-ms")
			b.ReportMetric(ms(set[len(set)*99/100]), "set-p99-ms")
			b.ReportMetric(ms(get[len(get)/2]), "get-p50-ms")
			b.ReportMetric(ms(get[len(get)*99/100]), "get-p99-ms")
		}
	})
	b.Run("activity", func(b *testing.B) {
		for i := range b.N {
			id := s.Submit("testing:kv-activity/activity.bench", fmt.Sprintf(`["act%d",1000]`, i))
			var res struct {
				OK string `json:"ok"`
			}
			if err := json.Unmarshal([]byte(s.Result(id, 10*time.Minute)), &res); err != nil || res.OK == "" {
				b.Fatalf("bench result: %v", err)
			}
			var m map[string]float64
			if err := json.Unmarshal([]byte(res.OK), &m); err != nil {
				b.Fatal(err)
			}
			for _, k := range []string{"set_p50_us", "set_p99_us", "get_p50_us", "get_p99_us"} {
				b.ReportMetric(m[k]/1000, strings.ReplaceAll(k[:len(k)-3], "_", "-")+"-ms")
			}
			b.ReportMetric(m["ops_per_s"], "ops/s")
		}
	})
	b.Run("throughput", func(b *testing.B) {
		const n = 2000
		for i := range b.N {
			start := time.Now()
			ids := submitAllParams(s, n, "obelisk:kv/store.set", func(j int) string { return fmt.Sprintf(`["tp%d","k%d","v"]`, i, j) })
			for _, id := range ids {
				if r := s.Result(id, 10*time.Minute); r != `{"ok":null}` {
					b.Fatalf("%s: %s", id, r)
				}
			}
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "sets/s")
		}
	})
}
