package wasmhost

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"testing"
	"time"
)

// newTestRuntime makes a runtime of its own (compiling the guest from the
// shared on-disk cache) and closes it at the end of the test.
func newTestRuntime(t *testing.T, cfg Config) (*Runtime, *Module) {
	t.Helper()
	ctx := context.Background()
	cfg.CacheDir = cacheDir
	cfg.Logger = slog.New(slog.DiscardHandler)
	rt, err := NewRuntime(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(ctx) })
	m, err := rt.Compile(ctx, "guest", guestWasm)
	if err != nil {
		t.Fatal(err)
	}
	return rt, m
}

func waitFull(t testing.TB, p *pool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); len(p.ready) < cap(p.ready); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("pool never filled")
		}
	}
}

func TestPoolSameAsFresh(t *testing.T) {
	ctx := context.Background()
	_, m := newTestRuntime(t, Config{PoolSize: 2})
	run := func(mod *Module, cfg InstanceConfig, fn, params string) string {
		inst, err := mod.Instantiate(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		out, err := inst.Run(ctx, RunInput{FFQN: "x." + fn, Params: []byte(params)})
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	for i := range 5 { // more than the pool holds: some pooled, some fresh
		if i == 0 || i == 3 {
			waitFull(t, m.poolFor(KindWorkflow))
		}
		for _, c := range []struct{ fn, params string }{{"time", "[5]"}, {"init", ""}} {
			if pooled, fresh := run(m, wfConfig(3), c.fn, c.params), run(testGuest, wfConfig(3), c.fn, c.params); pooled != fresh {
				t.Errorf("%s, instance %d: pooled %s\nfresh %s", c.fn, i, pooled, fresh)
			}
		}
	}
	if out := run(m, InstanceConfig{Kind: KindActivity}, "echo", "[1]"); out != `{"ok":1}` {
		t.Errorf("activity: %s", out)
	}
}

func TestPoolHandsOutQuickly(t *testing.T) {
	ctx := context.Background()
	_, m := newTestRuntime(t, Config{PoolSize: 1})
	inst, err := m.Instantiate(ctx, InstanceConfig{Kind: KindActivity}) // starts the pool
	if err != nil {
		t.Fatal(err)
	}
	inst.Close(ctx)
	waitFull(t, m.poolFor(KindActivity))
	start := time.Now()
	inst, err = m.Instantiate(ctx, InstanceConfig{Kind: KindActivity})
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close(ctx)
	t.Logf("pooled Instantiate took %v", took)
	if len(m.poolFor(KindActivity).ready) != 0 {
		t.Error("the instance did not come from the pool")
	}
}

func TestModuleCloseDrainsPool(t *testing.T) {
	ctx := context.Background()
	before := runtime.NumGoroutine()
	_, m := newTestRuntime(t, Config{PoolSize: 2})
	if inst, err := m.Instantiate(ctx, wfConfig(1)); err != nil {
		t.Fatal(err)
	} else {
		inst.Close(ctx)
	}
	p := m.poolFor(KindWorkflow)
	waitFull(t, p)
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); len(p.ready) > 0 || runtime.NumGoroutine() > before; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("pool not drained: %d ready, %d goroutines (was %d)", len(p.ready), runtime.NumGoroutine(), before)
		}
	}
	if m.poolFor(KindWorkflow) != nil {
		t.Error("closed module still pools")
	}
}

func TestRuntimeCloseStopsRuns(t *testing.T) {
	ctx := context.Background()
	rt, m := newTestRuntime(t, Config{PoolSize: 1})
	entered := make(chan struct{})
	type result struct {
		out []byte
		err error
	}
	results := make(chan result, 2)
	// One guest busy in a loop, one blocked in a host call.
	loop, err := m.Instantiate(ctx, InstanceConfig{Kind: KindActivity})
	if err != nil {
		t.Fatal(err)
	}
	blocked, err := m.Instantiate(ctx, InstanceConfig{Kind: KindWorkflow, ClockStart: time.Unix(1, 0),
		Handler: HostHandlerFunc(func(ctx context.Context, op string, req []byte) ([]byte, error) {
			close(entered)
			<-ctx.Done()
			return nil, ctx.Err()
		})})
	if err != nil {
		t.Fatal(err)
	}
	idle, err := m.Instantiate(ctx, InstanceConfig{Kind: KindActivity})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		out, err := loop.Run(ctx, RunInput{FFQN: "x.loop"})
		results <- result{out, err}
	}()
	go func() {
		out, err := blocked.Run(ctx, RunInput{FFQN: "x.hostcall", Params: []byte(`[{"op":"wait"}]`)})
		results <- result{out, err}
	}()
	<-entered
	time.Sleep(50 * time.Millisecond) // let the loop run
	if err := rt.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		r := <-results
		if !errors.Is(r.err, ErrRuntimeClosed) {
			t.Errorf("Run = %s, %v; want ErrRuntimeClosed", r.out, r.err)
		}
	}
	if _, err := idle.Run(ctx, RunInput{FFQN: "x.echo"}); !errors.Is(err, ErrRuntimeClosed) {
		t.Errorf("Run after Runtime.Close = %v", err)
	}
	if _, err := m.Instantiate(ctx, InstanceConfig{Kind: KindActivity}); !errors.Is(err, ErrRuntimeClosed) {
		t.Errorf("Instantiate after Runtime.Close = %v", err)
	}
	idle.Close(ctx)
}
