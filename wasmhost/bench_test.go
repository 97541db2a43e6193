package wasmhost

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestCompilationCache(t *testing.T) {
	ctx := context.Background()
	entries, err := os.ReadDir(cacheDir)
	if err != nil || len(entries) == 0 {
		t.Fatalf("compilation cache %s is empty: %v", cacheDir, err)
	}
	// A restarted server: a new runtime on the same cache directory.
	rt, err := NewRuntime(ctx, Config{CacheDir: cacheDir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	start := time.Now()
	m, err := rt.Compile(ctx, "guest", guestWasm)
	if err != nil {
		t.Fatal(err)
	}
	cached := time.Since(start)
	t.Logf("compile: cold %v, from the on-disk cache %v", coldCompile.Round(time.Millisecond), cached.Round(time.Millisecond))
	inst, err := m.Instantiate(ctx, InstanceConfig{Kind: KindActivity})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := inst.Run(ctx, RunInput{FFQN: "x.echo", Params: []byte(`[1]`)}); err != nil || string(out) != `{"ok":1}` {
		t.Fatalf("Run from cached code: %s %v", out, err)
	}
	if coldCompile > 200*time.Millisecond && cached > coldCompile/2 {
		t.Errorf("cached compile %v is not much faster than cold %v", cached, coldCompile)
	}
}

// BenchmarkCompile measures compiling the Go test guest (3.8 MB) cold and
// from the on-disk compilation cache, each time in a new runtime (a
// restarted server).
func BenchmarkCompile(b *testing.B) {
	ctx := context.Background()
	for _, cached := range []bool{false, true} {
		b.Run(fmt.Sprintf("cached=%v", cached), func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				dir := cacheDir
				if !cached {
					dir = filepath.Join(b.TempDir(), "cache")
				}
				rt, err := NewRuntime(ctx, Config{CacheDir: dir, Logger: slog.New(slog.DiscardHandler)})
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if _, err := rt.Compile(ctx, "guest", guestWasm); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				rt.Close(ctx)
				b.StartTimer()
			}
		})
	}
}

// BenchmarkInstantiate measures Instantiate plus Close of the Go test guest:
// activity (memory mapped from the activity image), activity-noimage (data
// segments copied, as on platforms without memory images) and
// workflow-fresh include _initialize, workflow-snapshot restores
// the module's workflow snapshot instead (memory mapped copy-on-write), and
// workflow-snapshot-copy restores it copying its memory (as on platforms
// without memory images). cpu-ns/op is the process's CPU time per instance
// (GC and kernel included).
func BenchmarkInstantiate(b *testing.B) {
	ctx := context.Background()
	fresh := freshWorkflowModule(b)
	mustSnapshot(b, testGuest)
	rt, err := NewRuntime(ctx, Config{CacheDir: cacheDir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close(ctx)
	rt.noImages = true
	copying, err := rt.Compile(ctx, "guest", guestWasm)
	if err != nil {
		b.Fatal(err)
	}
	mustSnapshot(b, copying)
	mustActivityImage(b, testGuest)
	for _, c := range []struct {
		name string
		m    *Module
		cfg  InstanceConfig
	}{
		{"activity", testGuest, InstanceConfig{Kind: KindActivity}},
		{"activity-noimage", copying, InstanceConfig{Kind: KindActivity}},
		{"workflow-fresh", fresh, wfConfig(1)},
		{"workflow-snapshot", testGuest, wfConfig(1)},
		{"workflow-snapshot-copy", copying, wfConfig(1)},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			before := getUsage()
			for b.Loop() {
				inst, err := c.m.Instantiate(ctx, c.cfg)
				if err != nil {
					b.Fatal(err)
				}
				inst.Close(ctx)
			}
			reportUsage(b, before)
		})
	}
	// The latency of Instantiate + Close when the pool has an instance ready
	// (the timer stops while the pool refills).
	b.Run("pooled", func(b *testing.B) {
		rt, err := NewRuntime(ctx, Config{CacheDir: cacheDir, Logger: slog.New(slog.DiscardHandler), PoolSize: 1})
		if err != nil {
			b.Fatal(err)
		}
		defer rt.Close(ctx)
		m, err := rt.Compile(ctx, "guest", guestWasm)
		if err != nil {
			b.Fatal(err)
		}
		cfg := wfConfig(1)
		inst, err := m.Instantiate(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		inst.Close(ctx)
		p := m.poolFor(KindWorkflow)
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			waitFull(b, p)
			b.StartTimer()
			inst, err := m.Instantiate(ctx, cfg)
			if err != nil {
				b.Fatal(err)
			}
			inst.Close(ctx)
		}
	})
	b.Run("hand-made", func(b *testing.B) {
		m, err := testRT.Compile(ctx, "hand", handModule(`{"ok":1}`).encode())
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			inst, err := m.Instantiate(ctx, InstanceConfig{Kind: KindActivity})
			if err != nil {
				b.Fatal(err)
			}
			inst.Close(ctx)
		}
	})
}

// BenchmarkRunEcho measures one Run of echo on a fresh instance
// (instantiation excluded, Run's own close included). The guest decodes its
// input with encoding/json, whose first use in a fresh Go runtime builds its
// type caches: most of the time is that.
func BenchmarkRunEcho(b *testing.B) { benchmarkRun(b, "echo") }

// BenchmarkRunNoop is BenchmarkRunEcho for a function that returns a
// constant without decoding its input: the host's share of a run.
func BenchmarkRunNoop(b *testing.B) { benchmarkRun(b, "noop") }

func benchmarkRun(b *testing.B, fn string) {
	ctx := context.Background()
	in := RunInput{FFQN: "test:guest/api." + fn, Params: []byte(`[{"n":42,"s":"hello"}]`), ExecutionID: "E_BENCH", Attempt: 1}
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		inst, err := testGuest.Instantiate(ctx, wfConfig(1))
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := inst.Run(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHostCall measures one host_call round trip from the guest: request
// copied out, op found, handler called, response written into the guest's
// buffer. The guest loops over b.N calls inside one Run.
func BenchmarkHostCall(b *testing.B) {
	ctx := context.Background()
	cases := []struct {
		name, req string
	}{
		{"handler", `{"op":"echo","value":{"id":"E_01J","n":42}}`},
		{"handler-null", `{"op":"nothing"}`},
		{"log-disabled", `{"op":"log","level":"debug","message":"hello"}`},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			cfg := wfConfig(1)
			cfg.Handler = opHandler(b)
			cfg.Logger = slog.New(slog.DiscardHandler)
			inst, err := testGuest.Instantiate(ctx, cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			out, err := inst.Run(ctx, RunInput{FFQN: "x.hostcall_loop", Params: []byte(fmt.Sprintf(`[%s,%d]`, c.req, b.N))})
			if err != nil || string(out) != fmt.Sprintf(`{"ok":%d}`, b.N) {
				b.Fatalf("%s %v", out, err)
			}
		})
	}
}

// BenchmarkWorkflowRun measures a whole run of the SDK guest
// test/components/fibo-workflow, fiboa(10, 3): Instantiate, three call host
// calls answered at once, the result, Close; with every instance running
// _initialize (fresh) and restored from the snapshot (copying its memory, or
// mapping it copy-on-write: faults/op are then mostly the pages the run
// writes).
func BenchmarkWorkflowRun(b *testing.B) {
	ctx := context.Background()
	wasm := buildComponent(b, "fibo-workflow")
	handler := HostHandlerFunc(func(ctx context.Context, op string, req []byte) ([]byte, error) {
		return []byte(`{"ok":55}`), nil
	})
	for _, mode := range []string{"fresh", "snapshot-copy", "snapshot"} {
		b.Run(mode, func(b *testing.B) {
			rt, err := NewRuntime(ctx, Config{CacheDir: cacheDir, Logger: slog.New(slog.DiscardHandler), DisableWorkflowSnapshots: mode == "fresh"})
			if err != nil {
				b.Fatal(err)
			}
			defer rt.Close(ctx)
			rt.noImages = mode == "snapshot-copy"
			m, err := rt.Compile(ctx, "fibo-workflow", wasm)
			if err != nil {
				b.Fatal(err)
			}
			if mode != "fresh" {
				mustSnapshot(b, m)
			}
			cfg := InstanceConfig{Kind: KindWorkflow, Seed: 1, ClockStart: time.Unix(1_700_000_000, 0), Handler: handler}
			in := RunInput{FFQN: "testing:fibo-workflow/workflow.fiboa", Params: []byte(`[10,3]`), ExecutionID: "E_BENCH", Attempt: 1}
			b.ReportAllocs()
			before := getUsage()
			for b.Loop() {
				inst, err := m.Instantiate(ctx, cfg)
				if err != nil {
					b.Fatal(err)
				}
				if out, err := inst.Run(ctx, in); err != nil || string(out) != `{"ok":165}` {
					b.Fatalf("%s %v", out, err)
				}
			}
			reportUsage(b, before)
		})
	}
}

// BenchmarkIdleInstanceMemory: the resident memory one idle instance of the Go test
// guest costs, and one parked in a host call (as a workflow waiting in memory for a
// child is): 100 instances are made (and, for "parked", each is run until it blocks in
// a host call) and held; the metric is the growth of the process's RSS divided by 100.
// activity and workflow are restored from the snapshot (memory mapped copy-on-write),
// activity-plain runs _initialize in every instance.
func BenchmarkIdleInstanceMemory(b *testing.B) {
	ctx := context.Background()
	for _, mode := range []string{"activity", "activity-plain", "workflow"} {
		for _, called := range []bool{false, true} {
			name := mode
			if called {
				name += "/parked"
			}
			b.Run(name, func(b *testing.B) {
				rt, err := NewRuntime(ctx, Config{CacheDir: cacheDir, Logger: slog.New(slog.DiscardHandler), DisableActivitySnapshots: mode == "activity-plain"})
				if err != nil {
					b.Fatal(err)
				}
				defer rt.Close(ctx)
				m, err := rt.Compile(ctx, "guest", guestWasm)
				if err != nil {
					b.Fatal(err)
				}
				mustSnapshot(b, m)
				cfg := InstanceConfig{Kind: KindActivity}
				if mode == "workflow" {
					cfg = wfConfig(1)
				}
				for b.Loop() {
					const n = 100
					runtime.GC()
					before := rss(b)
					insts := make([]*Instance, 0, n)
					release := make(chan struct{})
					parked := make(chan struct{}, n)
					done := make(chan struct{}, n)
					cfg.Handler = HostHandlerFunc(func(ctx context.Context, op string, req []byte) ([]byte, error) {
						parked <- struct{}{}
						<-release
						return []byte(`null`), nil
					})
					for range n {
						inst, err := m.Instantiate(ctx, cfg)
						if err != nil {
							b.Fatal(err)
						}
						if called {
							go func() {
								inst.Run(ctx, RunInput{FFQN: "x.hostcall", Params: []byte(`[{"op":"wait"}]`)})
								done <- struct{}{}
							}()
							<-parked
						}
						insts = append(insts, inst)
					}
					runtime.GC()
					b.ReportMetric(float64(rss(b)-before)/n/(1<<20), "MiB/instance")
					close(release)
					for _, inst := range insts {
						if called {
							<-done
						} else {
							inst.Close(ctx)
						}
					}
				}
			})
		}
	}
}

func rss(b *testing.B) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Skip("no /proc/self/status")
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(rest), "%d", &kb)
			return kb << 10
		}
	}
	b.Skip("no VmRSS")
	return 0
}

// BenchmarkReuse measures what starting an instance costs once instances are reused: the
// reset of an instance whose run has ended (its memory back to the snapshot's image, its
// globals, its host state) plus taking it from the free list. The instance's memory owns
// the pages a real run of echo wrote, as in the engine's steady state.
func BenchmarkReuse(b *testing.B) {
	ctx := context.Background()
	mustSnapshot(b, testGuest)
	for _, cfg := range []InstanceConfig{{Kind: KindActivity}, wfConfig(1)} {
		b.Run(cfg.Kind.String(), func(b *testing.B) {
			testGuest.drainFree()
			inst, err := testGuest.Instantiate(ctx, cfg)
			if err != nil {
				b.Fatal(err)
			}
			if !inst.restored {
				b.Fatal("instance not restored from the snapshot")
			}
			if _, err := inst.Run(ctx, RunInput{FFQN: "test:guest/api.echo", Params: []byte(`[{"n":42,"s":"hello"}]`), ExecutionID: "E_BENCH", Attempt: 1}); err != nil {
				b.Fatal(err)
			}
			before := getUsage()
			for b.Loop() {
				inst := testGuest.takeFree(cfg.Kind)
				if inst == nil {
					b.Fatal("no reset instance on the free list")
				}
				if !inst.reuse() {
					b.Fatal("not reused")
				}
			}
			reportUsage(b, before)
			testGuest.drainFree()
		})
	}
}
