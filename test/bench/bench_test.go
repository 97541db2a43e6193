// Package bench measures the real server: sequential workflow→activity round trips,
// throughput of many concurrent workflows, and the instance start of a Go guest.
// Run with `make bench`; record the figures in docs/benchmarks.md.
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/test/harness"
	"github.com/obelisk-go/obelisk/wasmhost"
)

func TestMain(m *testing.M) { harness.Main(m) }

// BenchmarkFiboaSequential: one workflow calls the fibo activity 1,000 times in sequence;
// the metric is the latency of one workflow→activity→workflow round trip, from the times
// the workflow recorded its consecutive calls.
func BenchmarkFiboaSequential(b *testing.B) {
	for _, strategy := range []string{"await", "interrupt"} {
		b.Run(strategy, func(b *testing.B) {
			s := harness.Start(b, harness.Options{BlockingStrategy: strategy})
			const iterations = 1000
			for range b.N {
				start := time.Now()
				id := s.Submit("testing:fibo-workflow/workflow.fiboa", fmt.Sprintf("[1, %d]", iterations))
				harness.JSONEq(b, s.Result(id, 10*time.Minute), fmt.Sprintf(`{"ok":%d}`, iterations))
				total := time.Since(start)
				var calls []time.Time
				for _, e := range s.Events(id) {
					if e.Kind == "history.join_set_create" {
						t, _ := time.Parse(time.RFC3339Nano, e.CreatedAt)
						calls = append(calls, t)
					}
				}
				var gaps []time.Duration
				for i := 1; i < len(calls); i++ {
					gaps = append(gaps, calls[i].Sub(calls[i-1]))
				}
				slices.Sort(gaps)
				b.ReportMetric(float64(gaps[len(gaps)/2].Microseconds())/1000, "p50-ms/call")
				b.ReportMetric(float64(gaps[len(gaps)*99/100].Microseconds())/1000, "p99-ms/call")
				b.ReportMetric(float64(total.Milliseconds())/iterations, "mean-ms/call")
			}
		})
	}
}

// BenchmarkThroughput: 2,000 fiboa(1, 3) workflows submitted at once (each calls the
// activity three times); the metrics are completed workflows per second and the server's
// peak RSS.
func BenchmarkThroughput(b *testing.B) {
	const n = 2000
	s := harness.Start(b, harness.Options{})
	for range b.N {
		start := time.Now()
		ids := make([]string, n)
		var wg sync.WaitGroup
		sem := make(chan struct{}, 64)
		for i := range ids {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				ids[i] = s.Submit("testing:fibo-workflow/workflow.fiboa", "[1, 3]")
			}()
		}
		wg.Wait()
		for _, id := range ids {
			if r := s.Result(id, 10*time.Minute); r != `{"ok":3}` {
				b.Fatalf("%s: %s", id, r)
			}
		}
		elapsed := time.Since(start)
		b.ReportMetric(float64(n)/elapsed.Seconds(), "workflows/s")
		rss, err := s.PeakRSS()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(rss)/(1<<20), "peak-RSS-MiB")
	}
}

// BenchmarkInstanceStart: instantiate (with _initialize) and close a Go guest, the fibo
// activity, as the engine does for every attempt and every replay.
func BenchmarkInstanceStart(b *testing.B) {
	ctx := context.Background()
	wasm, err := os.ReadFile(filepath.Join(harness.ComponentsDir(), "fibo.wasm"))
	if err != nil {
		b.Fatal(err)
	}
	rt, err := wasmhost.NewRuntime(ctx, wasmhost.Config{CacheDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close(ctx)
	mod, err := rt.Compile(ctx, "fibo", wasm)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		inst, err := mod.Instantiate(ctx, wasmhost.InstanceConfig{Kind: wasmhost.KindActivity})
		if err != nil {
			b.Fatal(err)
		}
		inst.Close(ctx)
	}
}

// BenchmarkActivityRun: instantiate and run fibo(10) once.
func BenchmarkActivityRun(b *testing.B) {
	ctx := context.Background()
	wasm, err := os.ReadFile(filepath.Join(harness.ComponentsDir(), "fibo.wasm"))
	if err != nil {
		b.Fatal(err)
	}
	rt, err := wasmhost.NewRuntime(ctx, wasmhost.Config{CacheDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close(ctx)
	mod, err := rt.Compile(ctx, "fibo", wasm)
	if err != nil {
		b.Fatal(err)
	}
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
		inst.Close(ctx)
	}
}
