package wasmhost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestTailWriterKeepsFirstFatalLine: the line saying why a Go guest died is kept however
// much is written after it, and whichever pieces it was written in.
func TestTailWriterKeepsFirstFatalLine(t *testing.T) {
	w := &tailWriter{}
	for _, piece := range []string{"runtime: out of memory: cannot allocate 1048576-byte block\n", "fatal error: ", "out of memory", "\n"} {
		w.Write([]byte(piece))
	}
	for i := range 300 {
		fmt.Fprintf(w, "goroutine %d gp=0x1 m=nil [running]:\nruntime.throw({0x1, 0x2})\n\t/usr/local/go/src/runtime/mgc.go:1695 +0x28\n", i)
	}
	w.Write([]byte("fatal error: a later one\n"))
	tail := w.String()
	if got := tellingLine(tail); got != "fatal error: out of memory" {
		t.Errorf("tellingLine = %q, want the first fatal line", got)
	}
	if !strings.HasSuffix(tail, "fatal error: a later one\n") {
		t.Errorf("the tail is not kept: ends %q", tail[max(0, len(tail)-40):])
	}
	w.reset([]byte("init\n"))
	if got := w.String(); got != "init\n" {
		t.Errorf("after reset: %q", got)
	}
}

// compileLimited compiles the test guest on the shared runtime with a memory limit.
func compileLimited(t *testing.T, pages uint32) *Module {
	t.Helper()
	ctx := context.Background()
	m, err := testRT.Compile(ctx, fmt.Sprintf("guest-%dp", pages), guestWasm, MemoryLimitPages(pages))
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	t.Cleanup(func() { m.Close(ctx) })
	return m
}

func runOn(t *testing.T, m *Module, cfg InstanceConfig, fn, params string) ([]byte, error) {
	t.Helper()
	ctx := context.Background()
	inst, err := m.Instantiate(ctx, cfg)
	if err != nil {
		t.Fatalf("Instantiate: %v", err)
	}
	defer inst.Close(ctx)
	return inst.Run(ctx, RunInput{FFQN: "test:guest/api." + fn, Params: []byte(params), ExecutionID: "E_TEST", Attempt: 1})
}

// TestGuestOutOfMemory: a guest allocating until its memory cannot grow fails with a
// trap naming the limit and the Go runtime's "fatal error: out of memory"; one
// allocating less than the limit runs, in the same module, before and after.
func TestGuestOutOfMemory(t *testing.T) {
	m := compileLimited(t, 1024) // 64 MiB
	for _, cfg := range []InstanceConfig{{Kind: KindActivity}, wfConfig(1)} {
		t.Run(cfg.Kind.String(), func(t *testing.T) {
			if out, err := runOn(t, m, cfg, "alloc", "[16]"); err != nil || string(out) != `{"ok":16}` {
				t.Fatalf("alloc 16 MiB = %s, %v", out, err)
			}
			out, err := runOn(t, m, cfg, "alloc", "[-1]")
			var trap *TrapError
			if !errors.As(err, &trap) {
				t.Fatalf("alloc until failure = %s, %v; want a *TrapError", out, err)
			}
			for _, want := range []string{"memory limit of 64 MiB reached", "fatal error: out of memory"} {
				if !strings.Contains(trap.Message, want) {
					t.Errorf("trap message %q lacks %q", trap.Message, want)
				}
			}
			t.Logf("trap: %s (stderr %d bytes)", trap.Message, len(trap.Stderr))
			if !errors.Is(err, ErrMemoryLimit) {
				t.Errorf("%v does not wrap ErrMemoryLimit", err)
			}
			if out, err := runOn(t, m, cfg, "alloc", "[16]"); err != nil || string(out) != `{"ok":16}` {
				t.Fatalf("alloc 16 MiB after the failure = %s, %v", out, err)
			}
		})
	}
}

// TestGuestOutOfMemoryRuntimeCap: under the runtime's cap alone (no module limit), the
// trap names the Go runtime's fatal error rather than the last line of its traceback.
func TestGuestOutOfMemoryRuntimeCap(t *testing.T) {
	ctx := context.Background()
	rt, err := NewRuntime(ctx, Config{CacheDir: filepath.Join(testTmpDir, "cache-capped"), Logger: slog.New(slog.DiscardHandler), MemoryLimitPages: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	m, err := rt.Compile(ctx, "guest", guestWasm)
	if err != nil {
		t.Fatal(err)
	}
	out, err := runOn(t, m, InstanceConfig{Kind: KindActivity}, "alloc", "[-1]")
	var trap *TrapError
	if !errors.As(err, &trap) {
		t.Fatalf("alloc until failure = %s, %v; want a *TrapError", out, err)
	}
	if !strings.Contains(trap.Message, "fatal error: out of memory") {
		t.Errorf("trap message %q lacks the fatal error", trap.Message)
	}
	if errors.Is(err, ErrMemoryLimit) {
		t.Errorf("%v wraps ErrMemoryLimit without a module limit", err)
	}
}

// TestMemoryLimitBelowMinimum: a module whose declared minimum memory is over its limit
// is refused when compiled, naming both.
func TestMemoryLimitBelowMinimum(t *testing.T) {
	_, err := testRT.Compile(context.Background(), "tiny", guestWasm, MemoryLimitPages(1))
	if err == nil || !strings.Contains(err.Error(), "over its memory limit of 64 KiB") || !strings.Contains(err.Error(), `"tiny"`) {
		t.Fatalf("Compile = %v, want a refusal naming the minimum and the limit", err)
	}
}

// TestMemoryLimitOnReusedInstances: instances of a module with a memory limit are reset
// and reused like any other (the limit wraps the memory, reuse resets what it wraps), and
// a reused one is still held to the limit.
func TestMemoryLimitOnReusedInstances(t *testing.T) {
	m := compileLimited(t, 1024) // 64 MiB
	if s := mustSnapshot(t, m); s.image == nil {
		t.Skip("no memory images on this platform: nothing is reused")
	}
	for range 2 {
		if out, err := runOn(t, m, wfConfig(1), "echo", "[1]"); err != nil || string(out) != `{"ok":1}` {
			t.Fatalf("echo = %s, %v", out, err)
		}
	}
	inst := m.takeFree(KindWorkflow)
	if inst == nil {
		t.Fatal("no instance was reused")
	}
	m.freeFor(KindWorkflow) <- inst // for the next Instantiate
	_, err := runOn(t, m, wfConfig(1), "alloc", "[-1]")
	if !errors.Is(err, ErrMemoryLimit) || !strings.Contains(err.Error(), "memory limit of 64 MiB reached") {
		t.Fatalf("alloc until failure on a reused instance = %v, want the memory limit", err)
	}
}

// testBudget is a MemoryBudget of size bytes that counts waiting growths.
type testBudget struct {
	mu      sync.Mutex
	size    uint64
	used    uint64
	waiting int
	changed chan struct{} // closed (and replaced) when size or used changes
}

func newTestBudget(size uint64) *testBudget {
	return &testBudget{size: size, changed: make(chan struct{})}
}

func (b *testBudget) Grow(ctx context.Context, n uint64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.used+n > b.size {
		ch := b.changed
		b.waiting++
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		}
		b.mu.Lock()
		b.waiting--
		if ctx.Err() != nil {
			return false
		}
	}
	b.used += n
	b.signal()
	return true
}

func (b *testBudget) Release(n uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	b.signal()
}

// resize sets the budget's size.
func (b *testBudget) resize(size uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.size = size
	b.signal()
}

func (b *testBudget) signal() {
	close(b.changed)
	b.changed = make(chan struct{})
}

func (b *testBudget) state() (used uint64, waiting int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used, b.waiting
}

// TestMemoryBudgetGrowWaits: an instance counted in a budget reserves its memory's size
// when it is handed out; a growth of its memory past the budget waits, and the run
// proceeds when there is room; the end of the run releases everything, whether the
// instance is closed or reset for reuse.
func TestMemoryBudgetGrowWaits(t *testing.T) {
	m := compileLimited(t, 1024) // 64 MiB
	ctx := context.Background()
	for _, cfg := range []InstanceConfig{{Kind: KindActivity}, wfConfig(1)} {
		t.Run(cfg.Kind.String(), func(t *testing.T) {
			for round := range 2 { // the second one may be a reused instance
				b := newTestBudget(1 << 40)
				inst, err := m.Instantiate(ctx, cfg)
				if err != nil {
					t.Fatal(err)
				}
				if err := inst.CountMemoryIn(ctx, b); err != nil {
					t.Fatal(err)
				}
				initial, _ := b.state()
				if initial == 0 || initial != inst.MemorySize() {
					t.Fatalf("round %d: instantiating reserved %d bytes, the memory holds %d", round, initial, inst.MemorySize())
				}
				b.resize(initial) // no room to grow
				type result struct {
					out []byte
					err error
				}
				done := make(chan result, 1)
				go func() {
					out, err := inst.Run(ctx, RunInput{FFQN: "test:guest/api.alloc", Params: []byte("[16]"), ExecutionID: "E_TEST", Attempt: 1})
					done <- result{out, err}
				}()
				waitUntil(t, func() bool { _, w := b.state(); return w == 1 })
				select {
				case r := <-done:
					t.Fatalf("round %d: the run ended while its growth waited: %s, %v", round, r.out, r.err)
				case <-time.After(50 * time.Millisecond):
				}
				b.resize(initial + 32<<20)
				if r := <-done; r.err != nil || string(r.out) != `{"ok":16}` {
					t.Fatalf("round %d: alloc 16 MiB = %s, %v", round, r.out, r.err)
				}
				if used, _ := b.state(); used != 0 {
					t.Fatalf("round %d: %d bytes still reserved after the run", round, used)
				}
			}
		})
	}
}

// TestMemoryBudgetGrowFails: a growth that finds no room before the run's context ends
// fails the run with a trap that blames the budget (ErrMemoryBudget), not the module's
// limit, and releases what the instance held; an instance that cannot reserve its own
// size before CountMemoryIn's context ends is in no budget.
func TestMemoryBudgetGrowFails(t *testing.T) {
	m := compileLimited(t, 1024) // 64 MiB
	ctx := context.Background()
	for _, cfg := range []InstanceConfig{{Kind: KindActivity}, wfConfig(1)} {
		t.Run(cfg.Kind.String(), func(t *testing.T) {
			b := newTestBudget(1 << 40)
			inst, err := m.Instantiate(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := inst.CountMemoryIn(ctx, b); err != nil {
				t.Fatal(err)
			}
			initial, _ := b.state()
			b.resize(initial)
			runCtx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			defer cancel()
			out, err := inst.Run(runCtx, RunInput{FFQN: "test:guest/api.alloc", Params: []byte("[16]"), ExecutionID: "E_TEST", Attempt: 1})
			var trap *TrapError
			if !errors.As(err, &trap) || !errors.Is(err, ErrMemoryBudget) || errors.Is(err, ErrMemoryLimit) {
				t.Fatalf("alloc with no room = %s, %v; want a *TrapError wrapping ErrMemoryBudget only", out, err)
			}
			if !strings.Contains(trap.Message, "guest memory budget") || strings.Contains(trap.Message, "memory limit") {
				t.Errorf("trap message %q does not blame the budget alone", trap.Message)
			}
			t.Logf("trap: %s", trap.Message)
			if used, _ := b.state(); used != 0 {
				t.Fatalf("%d bytes still reserved after the run", used)
			}

			// No room for the instance itself.
			b.resize(initial - 1)
			short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			defer cancel()
			inst, err = m.Instantiate(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer inst.Close(ctx)
			if err := inst.CountMemoryIn(short, b); !errors.Is(err, ErrMemoryBudget) || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("CountMemoryIn with no room = %v, want ErrMemoryBudget and the deadline", err)
			}
			if used, _ := b.state(); used != 0 {
				t.Fatalf("%d bytes reserved by a failed CountMemoryIn", used)
			}
		})
	}
}

// TestMemoryBudgetClose: closing an instance that never ran releases its memory.
func TestMemoryBudgetClose(t *testing.T) {
	m := compileLimited(t, 1024)
	b := newTestBudget(1 << 40)
	inst, err := m.Instantiate(context.Background(), InstanceConfig{Kind: KindActivity})
	if err != nil {
		t.Fatal(err)
	}
	if err := inst.CountMemoryIn(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if used, _ := b.state(); used == 0 {
		t.Fatal("the instance reserved nothing")
	}
	inst.Close(context.Background())
	if used, _ := b.state(); used != 0 {
		t.Fatalf("%d bytes still reserved after Close", used)
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 30s")
		}
	}
}

// A run whose context ends while the guest waits in a host call must not leave the
// instance's linear memory mapped: wazero marks such a module closed and leaves its
// memory to the guest's next step, which a failing host call never takes (the leak
// held ~280 instance memories after 4,000 workflows of the throughput benchmark).
func TestMemoryReleasedAfterCloseInHostCall(t *testing.T) {
	ctx := context.Background()
	for i := range 20 {
		entered := make(chan struct{})
		inst, err := testGuest.Instantiate(ctx, InstanceConfig{Kind: KindWorkflow, ClockStart: time.Unix(1, 0),
			Handler: HostHandlerFunc(func(ctx context.Context, op string, req []byte) ([]byte, error) {
				close(entered)
				<-ctx.Done()
				// Give wazero's watcher of the context time to mark the module closed.
				time.Sleep(5 * time.Millisecond)
				return nil, ctx.Err()
			})})
		if err != nil {
			t.Fatal(err)
		}
		go func() { <-entered; inst.Close(ctx) }()
		if _, err := inst.Run(ctx, RunInput{FFQN: "x.hostcall", Params: []byte(`[{"op":"join_next"}]`)}); !errors.Is(err, ErrInstanceClosed) {
			t.Fatalf("run %d: Run = %v, want ErrInstanceClosed", i, err)
		}
		if m := inst.env.mem; m == nil || !m.freed {
			t.Fatalf("run %d: the instance's memory was not released after Close in a host call", i)
		}
	}
}
