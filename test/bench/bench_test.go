// Package bench measures the real server: sequential workflow→activity round trips,
// throughput of many concurrent workflows, and the instance start of a Go guest.
// Run with `make bench`; record the figures in docs/benchmarks.md.
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/test/harness"
	"github.com/obelisk-go/obelisk/wasmhost"
)

func TestMain(m *testing.M) { harness.Main(m) }

// submitAll submits n executions of ffqn with params, 64 at a time, as clients of a
// busy server would, and returns their IDs.
func submitAll(s *harness.Server, n int, ffqn, params string) []string {
	return submitAllParams(s, n, ffqn, func(int) string { return params })
}

// submitAllParams is submitAll with the params of the i-th execution params(i).
func submitAllParams(s *harness.Server, n int, ffqn string, params func(i int) string) []string {
	ids := make([]string, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ids[i] = s.Submit(ffqn, params(i))
		}()
	}
	wg.Wait()
	return ids
}

// BenchmarkFiboaSequential: one workflow calls the fibo activity 1,000 times in sequence;
// the metric is the latency of one workflow→activity→workflow round trip, from the times
// the workflow recorded its consecutive calls. Measured once the modules' snapshots are
// ready.
func BenchmarkFiboaSequential(b *testing.B) {
	for _, strategy := range []string{"await", "interrupt"} {
		b.Run(strategy, func(b *testing.B) {
			s := harness.Start(b, harness.Options{BlockingStrategy: strategy})
			const iterations = 1000
			warm := s.Submit("testing:fibo-workflow/workflow.fiboa", "[1, 10]")
			harness.JSONEq(b, s.Result(warm, time.Minute), `{"ok":10}`)
			waitPrepared(b, s, "fibo", "fibo_workflow")
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				id := s.Submit("testing:fibo-workflow/workflow.fiboa", fmt.Sprintf("[1, %d]", iterations))
				harness.JSONEq(b, s.Result(id, 10*time.Minute), fmt.Sprintf(`{"ok":%d}`, iterations))
				total := time.Since(start)
				_, gaps := harness.CallGaps(s, id)
				slices.Sort(gaps)
				b.ReportMetric(float64(gaps[len(gaps)/2].Microseconds())/1000, "p50-ms/call")
				b.ReportMetric(float64(gaps[len(gaps)*99/100].Microseconds())/1000, "p99-ms/call")
				b.ReportMetric(float64(total.Milliseconds())/iterations, "mean-ms/call")
			}
		})
	}
}

// BenchmarkThroughput: 2,000 fiboa(1, 3) workflows submitted at once (each calls the
// activity three times); the metrics are completed workflows per second, the server's
// peak RSS and PSS during the run (sampled from smaps_rollup) and its VmHWM (the peak RSS
// since it started), and the server's CPU time per workflow (steadier than wall time on
// a shared machine), the bytes its Go runtime allocated per workflow and its GC cycles
// (neither depends on the load). cold is the first 2,000 on a server just started: the modules prepare their
// snapshots (~3 s of compiling) on first use, while the load runs on the plain path.
// warm is the next 2,000, once the snapshots are ready: the steady state of a server.
func BenchmarkThroughput(b *testing.B) {
	// OBELISK_BENCH_TOML appends settings (e.g. a [store] section) to compare them.
	benchThroughput(b, os.Getenv("OBELISK_BENCH_TOML"), nil)
}

// benchThroughput is BenchmarkThroughput on a server whose config has deployment
// appended; report, if set, reports more metrics at the end of each run of n workflows.
func benchThroughput(b *testing.B, deployment string, report func(b *testing.B, n int)) {
	const n = 2000
	s := harness.Start(b, harness.Options{Deployment: deployment})
	run := func(b *testing.B) {
		for range b.N {
			mem := s.SampleMemory()
			cpu0, _ := s.CPUTime()
			alloc0, gc0 := goRuntime(s)
			start := time.Now()
			ids := submitAll(s, n, "testing:fibo-workflow/workflow.fiboa", "[1, 3]")
			for _, id := range ids {
				if r := s.Result(id, 10*time.Minute); r != `{"ok":3}` {
					b.Fatalf("%s: %s", id, r)
				}
			}
			elapsed := time.Since(start)
			b.ReportMetric(float64(n)/elapsed.Seconds(), "workflows/s")
			if cpu1, err := s.CPUTime(); err == nil {
				b.ReportMetric(float64((cpu1-cpu0).Microseconds())/1000/n, "server-cpu-ms/workflow")
			}
			alloc1, gc1 := goRuntime(s)
			b.ReportMetric((alloc1-alloc0)/1024/n, "server-alloc-KiB/workflow")
			b.ReportMetric(gc1-gc0, "server-gc-cycles")
			reportPeakRSS(b, s)
			reportPeakMemory(b, mem)
			if report != nil {
				report(b, n)
			}
		}
	}
	b.Run("cold", run)
	waitPrepared(b, s, "fibo", "fibo_workflow")
	// The warm phase starts on a quiet server: the cold phase's flushes and compactions
	// (and a benchmark's own wait after it, as the tracing one's for its spans) would
	// otherwise fall in one variant's warm phase and not in another's.
	waitQuiet(s)
	b.Run("warm", run)
}

// waitQuiet waits until the server used less than 2 % of a core for a second, 30 s at
// most.
func waitQuiet(s *harness.Server) {
	deadline := time.Now().Add(30 * time.Second)
	last, err := s.CPUTime()
	for err == nil && time.Now().Before(deadline) {
		time.Sleep(time.Second)
		now, e := s.CPUTime()
		if e != nil || now-last < 20*time.Millisecond {
			return
		}
		last, err = now, e
	}
}

// goRuntime returns the bytes the server's Go runtime allocated and its GC cycles so
// far: the allocation per workflow does not depend on the machine's load, and it is
// what sets how often the collector runs.
func goRuntime(s *harness.Server) (allocated, cycles float64) {
	m := s.Metrics()
	allocated, _ = m("go_memstats_alloc_bytes_total", nil)
	cycles, _ = m("go_gc_duration_seconds", nil)
	return allocated, cycles
}

// waitPrepared waits until the server has logged that the named modules' instances are
// restored from their snapshots.
func waitPrepared(b *testing.B, s *harness.Server, modules ...string) {
	deadline := time.Now().Add(2 * time.Minute)
	for _, m := range modules {
		for !strings.Contains(s.Log(), "restored from a snapshot\" module="+m+" ") {
			if time.Now().After(deadline) {
				b.Fatalf("module %s has no snapshot after 2 minutes:\n%s", m, s.Log())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// BenchmarkInstanceStart: make and close an instance of a Go guest restored from its
// module's snapshot, as the engine does when no reset instance is free (otherwise it
// reuses one: wasmhost's BenchmarkReuse). ns/op includes the Close; p50-start-ms is the
// median of Instantiate alone. Measured in the steady state, after wasmhost has prepared
// the snapshot.
func BenchmarkInstanceStart(b *testing.B) {
	for _, c := range []struct {
		name string
		kind wasmhost.Kind
	}{{"fibo", wasmhost.KindActivity}, {"fibo-workflow", wasmhost.KindWorkflow}} {
		b.Run(c.name, func(b *testing.B) {
			mod := compiledSteady(b, c.name, c.kind)
			took := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				inst, err := mod.Instantiate(context.Background(), wasmhost.InstanceConfig{Kind: c.kind, ClockStart: time.Now()})
				if err != nil {
					b.Fatal(err)
				}
				took = append(took, time.Since(start))
				inst.Close(context.Background())
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-start-ms")
		})
	}
}

// BenchmarkActivityRun: make an instance and run fibo(10) in it.
func BenchmarkActivityRun(b *testing.B) {
	mod := compiledSteady(b, "fibo", wasmhost.KindActivity)
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		inst, err := mod.Instantiate(ctx, wasmhost.InstanceConfig{Kind: wasmhost.KindActivity})
		if err != nil {
			b.Fatal(err)
		}
		out, err := inst.Run(ctx, wasmhost.RunInput{FFQN: "testing:fibo/fibo.fibo", Params: json.RawMessage("[10]"), ExecutionID: "E_bench", Attempt: 1})
		if err != nil || string(out) != `{"ok":55}` {
			b.Fatalf("%s %v", out, err)
		}
	}
}

// compiledSteady compiles a component and lets wasmhost finish its background
// preparation (activity image, workflow snapshot) before the timer starts.
func compiledSteady(b *testing.B, name string, kind wasmhost.Kind) *wasmhost.Module {
	ctx := context.Background()
	wasm, err := os.ReadFile(filepath.Join(harness.ComponentsDir(), name+".wasm"))
	if err != nil {
		b.Fatal(err)
	}
	rt, err := wasmhost.NewRuntime(ctx, wasmhost.Config{CacheDir: b.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rt.Close(ctx) })
	mod, err := rt.Compile(ctx, name, wasm)
	if err != nil {
		b.Fatal(err)
	}
	inst, err := mod.Instantiate(ctx, wasmhost.InstanceConfig{Kind: kind, ClockStart: time.Now()})
	if err != nil {
		b.Fatal(err)
	}
	inst.Close(ctx)
	time.Sleep(2 * time.Second) // the preparation: ~50 ms (capturing the snapshot three times)
	return mod
}
