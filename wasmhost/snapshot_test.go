package wasmhost

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/obelisk-go/obelisk/wasmhost/internal/wasmbin"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
)

// mustSnapshot waits for the module's workflow snapshot.
func mustSnapshot(t testing.TB, m *Module) *snapshot {
	t.Helper()
	s, err := m.waitSnapshot(context.Background())
	if s == nil {
		t.Fatalf("module %q has no workflow snapshot: %v (state %v)", m.name, err, m.snap.state.Load())
	}
	return s
}

// runRecord is everything observable about one run.
type runRecord struct {
	out            string
	err            string
	stdout, stderr string
	hostCalls      []string // op and request of every handler call
	logs           []string // records of the instance's logger
}

// recordRun instantiates m with cfg (Handler answering test ops and
// recording them, writers and logger recording), runs fn and returns what it
// observed. wantRestored says whether the instance must come from the
// module's snapshot.
func recordRun(t *testing.T, m *Module, cfg InstanceConfig, in RunInput, handler HostHandlerFunc, wantRestored bool) runRecord {
	t.Helper()
	ctx := context.Background()
	var rec runRecord
	var stdout, stderr bytes.Buffer
	logs := &captureHandler{}
	cfg.Stdout, cfg.Stderr, cfg.Logger = &stdout, &stderr, slog.New(logs)
	cfg.Handler = HostHandlerFunc(func(ctx context.Context, op string, req []byte) ([]byte, error) {
		rec.hostCalls = append(rec.hostCalls, op+" "+string(req))
		return handler(ctx, op, req)
	})
	inst, err := m.Instantiate(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// For an activity, "restored" means started from the activity image.
	if got := inst.restored || inst.fromImage; got != wantRestored {
		t.Fatalf("%v instance restored from a snapshot or image: %v, want %v", cfg.Kind, got, wantRestored)
	}
	out, err := inst.Run(ctx, in)
	rec.out = string(out)
	if err != nil {
		rec.err = err.Error()
		var trap *TrapError
		if errors.As(err, &trap) {
			rec.err += "\nstderr tail: " + trap.Stderr
		}
	}
	rec.stdout, rec.stderr = stdout.String(), stderr.String()
	for _, r := range logs.records {
		rec.logs = append(rec.logs, fmt.Sprintf("%v %s %v", r.Level, r.Message, r.Time.IsZero()))
	}
	return rec
}

func compareRuns(t *testing.T, fresh, snap *Module, cfg InstanceConfig, in RunInput, handler HostHandlerFunc) runRecord {
	t.Helper()
	a := recordRun(t, fresh, cfg, in, handler, false)
	b := recordRun(t, snap, cfg, in, handler, true)
	if fmt.Sprintf("%#v", a) != fmt.Sprintf("%#v", b) {
		t.Errorf("%s%s: fresh and restored instances differ:\nfresh    %#v\nrestored %#v", in.FFQN, in.Params, a, b)
	}
	return a
}

// workflowCases are functions of the test guest, with parameters, whose runs the
// equivalence tests compare: time, randomness, sleeps, traps, exits, output and every
// kind of host call.
func workflowCases() []struct{ fn, params string } {
	return []struct{ fn, params string }{
		{"time", "[30]"},
		{"init", ""},
		{"sleep", "[1500]"},
		{"input", `[1,"x"]`},
		{"env", ""},
		{"stdout", ""},
		{"panic", ""},
		{"exit", "[4]"},
		{"hostcall", `[{"op":"echo","value":{"n":1}}]`},
		{"hostcall", `[{"op":"big","size":5000}]`},
		{"hostcall", `[{"op":"log","level":"info","message":"from the guest"}]`},
		{"hostcall", `[{"op":"fail"}]`},
		{"take_protocol", `[{"op":"echo","value":[1,2,3]}]`},
		{"take_empty", ""},
		{"hostcall_loop", `[{"op":"nothing"},20]`},
	}
}

// TestSnapshotSameAsFresh runs the same functions on instances that ran
// _initialize and on instances restored from the snapshot, and compares
// everything a run shows: output, error, stdout, stderr (also the tail kept
// from _initialize), host calls and log records.
func TestSnapshotSameAsFresh(t *testing.T) {
	fresh := freshWorkflowModule(t)
	s := mustSnapshot(t, testGuest)
	t.Logf("snapshot: %d pages, %d bytes in %d chunks, %d globals, made in %v", s.pages, s.size, len(s.chunks), len(s.globals), s.took)

	handler := opHandler(t)
	cases := workflowCases()
	clocks := []time.Time{
		time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		time.Unix(1, 0), // the init clock's start: the clock goes on from where _initialize left it
	}
	for _, c := range cases {
		for _, seed := range []uint64{1, 99} {
			for _, clock := range clocks {
				cfg := InstanceConfig{Kind: KindWorkflow, Seed: seed, ClockStart: clock}
				in := RunInput{FFQN: "test:guest/api." + c.fn, ExecutionID: "E_SNAP", Attempt: 1}
				if c.params != "" {
					in.Params = json.RawMessage(c.params)
				}
				rec := compareRuns(t, fresh, testGuest, cfg, in, handler)
				if c.fn == "time" && seed == 1 && clock == clocks[0] && !strings.Contains(rec.out, `"wall":1735787045000`) {
					t.Errorf("time: %s does not start at ClockStart", rec.out)
				}
			}
		}
	}
}

// TestSnapshotPooled checks that the pool hands out restored workflow
// instances, and activity instances that ran _initialize.
func TestSnapshotPooled(t *testing.T) {
	ctx := context.Background()
	_, m := newTestRuntime(t, Config{PoolSize: 2})
	mustSnapshot(t, m)
	for kind, cfg := range map[Kind]InstanceConfig{KindWorkflow: wfConfig(5), KindActivity: {Kind: KindActivity}} {
		inst, err := m.Instantiate(ctx, cfg) // starts the pool
		if err != nil {
			t.Fatal(err)
		}
		inst.Close(ctx)
		waitFull(t, m.poolFor(kind))
		for range 3 {
			inst, err := m.Instantiate(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if !inst.restored {
				t.Errorf("%v instance not restored from the snapshot", kind)
			}
			out, err := inst.Run(ctx, RunInput{FFQN: "x.echo", Params: []byte(`[7]`)})
			if err != nil || string(out) != `{"ok":7}` {
				t.Errorf("%v: %s %v", kind, out, err)
			}
		}
	}
}

// TestActivitiesRestoredReseeded: activity instances are restored from the snapshot
// with the guest runtime's random generators reseeded (reseed.go): what they draw from
// math/rand at run time differs between instances, their clock is the real one, and
// what _initialize computed is the snapshot's (computed once per module, like a
// Wizer-initialised module).
func TestActivitiesRestoredReseeded(t *testing.T) {
	s := mustSnapshot(t, testGuest)
	if !s.activityOK || len(s.generators) == 0 {
		t.Fatalf("the test guest's snapshot does not restore activities (generators %v)", s.generators)
	}
	if len(s.generators) != 2 {
		t.Errorf("found %d generators, want the Go runtime's two (globalRand and m0's)", len(s.generators))
	}
	draws := map[uint64]bool{}
	var inits []string
	for range 3 {
		inst, err := testGuest.Instantiate(context.Background(), InstanceConfig{Kind: KindActivity})
		if err != nil {
			t.Fatal(err)
		}
		if !inst.restored {
			t.Fatal("activity instance not restored from the snapshot")
		}
		out, err := inst.Run(context.Background(), RunInput{FFQN: "x.time", Params: json.RawMessage("[4]")})
		if err != nil {
			t.Fatal(err)
		}
		var res struct {
			Ok []struct {
				Wall int64  `json:"wall"`
				Mono int64  `json:"mono"`
				Math uint64 `json:"math"`
			} `json:"ok"`
		}
		if err := json.Unmarshal(out, &res); err != nil || len(res.Ok) != 4 {
			t.Fatalf("time: %s %v", out, err)
		}
		for _, d := range res.Ok {
			if draws[d.Math] {
				t.Fatalf("two activity instances drew the same math/rand value %d", d.Math)
			}
			draws[d.Math] = true
			if since := time.Since(time.Unix(0, d.Wall)); since < 0 || since > time.Minute {
				t.Errorf("activity wall clock %v is not now", time.Unix(0, d.Wall))
			}
			if d.Mono < 0 {
				t.Errorf("monotonic time ran backwards: %d", d.Mono)
			}
		}
		inst, err = testGuest.Instantiate(context.Background(), InstanceConfig{Kind: KindActivity})
		if err != nil {
			t.Fatal(err)
		}
		out, err = inst.Run(context.Background(), RunInput{FFQN: "x.init"})
		if err != nil {
			t.Fatal(err)
		}
		inits = append(inits, string(out))
	}
	if inits[0] != inits[1] || inits[1] != inits[2] {
		t.Errorf("what _initialize computed differs between restored instances: %q", inits)
	}
}

// TestActivitySnapshotsDisabled: with DisableActivitySnapshots, every activity
// instance initialises afresh, with its own random state.
func TestActivitySnapshotsDisabled(t *testing.T) {
	ctx := context.Background()
	rt, err := NewRuntime(ctx, Config{CacheDir: cacheDir, Logger: slog.New(slog.DiscardHandler), DisableActivitySnapshots: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	m, err := rt.Compile(ctx, "guest", guestWasm)
	if err != nil {
		t.Fatal(err)
	}
	mustSnapshot(t, m) // workflows still have it
	seen := map[string]bool{}
	for range 3 {
		inst, err := m.Instantiate(ctx, InstanceConfig{Kind: KindActivity})
		if err != nil {
			t.Fatal(err)
		}
		if inst.restored {
			t.Fatal("activity instance restored despite DisableActivitySnapshots")
		}
		out, err := inst.Run(ctx, RunInput{FFQN: "x.init"})
		if err != nil {
			t.Fatal(err)
		}
		if seen[string(out)] {
			t.Errorf("two activity instances initialised the same: %s", out)
		}
		seen[string(out)] = true
	}
}

// mustActivityImage waits for the module's activity image: nil where there
// are no images.
func mustActivityImage(t testing.TB, m *Module) *activityImage {
	t.Helper()
	a, err := m.waitActivityImage(context.Background())
	if a == nil && m.rt.alloc != nil {
		t.Fatalf("module %q has no activity image: %v (state %v)", m.name, err, m.act.state.Load())
	}
	return a
}

// TestActivityImageSameAsFresh runs the deterministic functions of the test
// guest on activity instances made from the original module and from the
// activity image, and compares everything a run shows.
func TestActivityImageSameAsFresh(t *testing.T) {
	ctx := context.Background()
	fresh := originalModule(t)
	if a, _ := fresh.waitActivityImage(ctx); a != nil {
		t.Fatal("activity image despite noActivityImages")
	}
	// The image is what activities start from when they are not restored from the
	// snapshot.
	imgRT, err := NewRuntime(ctx, Config{CacheDir: cacheDir, Logger: slog.New(slog.DiscardHandler), DisableActivitySnapshots: true})
	if err != nil {
		t.Fatal(err)
	}
	defer imgRT.Close(ctx)
	imaged, err := imgRT.Compile(ctx, "guest", guestWasm)
	if err != nil {
		t.Fatal(err)
	}
	if mustActivityImage(t, imaged) == nil {
		t.Skip("no activity images on this platform")
	}
	handler := opHandler(t)
	cases := []struct{ fn, params string }{
		{"input", `[1,"x"]`},
		{"env", ""},
		{"stdout", ""},
		{"panic", ""},
		{"exit", "[4]"},
		{"echo", "[7]"},
		{"hostcall", `[{"op":"echo","value":{"n":1}}]`},
		{"hostcall", `[{"op":"big","size":5000}]`},
		{"hostcall", `[{"op":"log","level":"info","message":"from the guest"}]`},
		{"hostcall", `[{"op":"fail"}]`},
		{"take_protocol", `[{"op":"echo","value":[1,2,3]}]`},
		{"take_empty", ""},
		{"hostcall_loop", `[{"op":"nothing"},20]`},
	}
	for _, c := range cases {
		in := RunInput{FFQN: "test:guest/api." + c.fn, ExecutionID: "E_ACT", Attempt: 2}
		if c.params != "" {
			in.Params = json.RawMessage(c.params)
		}
		compareRuns(t, fresh, imaged, InstanceConfig{Kind: KindActivity}, in, handler)
		// And restored from the snapshot (reseeded): the same, too.
		mustSnapshot(t, testGuest)
		compareRuns(t, fresh, testGuest, InstanceConfig{Kind: KindActivity}, in, handler)
	}
}

// TestActivityImageFallback checks that activities of modules without an image are made
// the plain way. (An image is instantiated from the module's own compiled code, so it
// cannot fail to instantiate where the module would not.)
func TestActivityImageFallback(t *testing.T) {
	ctx := context.Background()
	_, m := newTestRuntime(t, Config{})
	small, err := m.rt.Compile(ctx, "small", handModule(`{"ok":1}`).encode())
	if err != nil {
		t.Fatal(err)
	}
	if a, err := small.waitActivityImage(ctx); a != nil || err != nil {
		t.Errorf("small module: image %v, %v", a, err)
	}
	if out := string(mustRunModule(t, small, InstanceConfig{Kind: KindActivity}, "d", "")); out != `{"ok":1}` {
		t.Errorf("Run = %s", out)
	}
}

// TestSnapshotConcurrent restores instances from many goroutines at once.
func TestSnapshotConcurrent(t *testing.T) {
	mustSnapshot(t, testGuest)
	want := string(mustRun(t, wfConfig(3), "time", "[5]"))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 5 {
				out, err := runGuest(context.Background(), t, wfConfig(3), "time", "[5]")
				if err != nil || string(out) != want {
					t.Errorf("%s %v, want %s", out, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestSnapshotFiboWorkflow compares fresh and restored instances of the real
// SDK guest test/components/fibo-workflow.
func TestSnapshotFiboWorkflow(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the fibo-workflow component")
	}
	ctx := context.Background()
	wasm := buildComponent(t, "fibo-workflow")
	compile := func(cfg Config) *Module {
		cfg.CacheDir, cfg.Logger = cacheDir, slog.New(slog.DiscardHandler)
		rt, err := NewRuntime(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rt.Close(ctx) })
		m, err := rt.Compile(ctx, "fibo-workflow", wasm)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	fresh, snap := compile(Config{DisableWorkflowSnapshots: true}), compile(Config{})
	s := mustSnapshot(t, snap)
	t.Logf("fibo-workflow snapshot: %d pages, %d bytes in %d chunks, %d globals, made in %v", s.pages, s.size, len(s.chunks), len(s.globals), s.took)

	child := 0
	handler := HostHandlerFunc(func(ctx context.Context, op string, req []byte) ([]byte, error) {
		if op != "call" {
			return nil, &HostError{Kind: abi.KindUnsupportedOp, Message: op}
		}
		child++
		if child%3 == 0 {
			return []byte(`{"execution_failure":{"kind":"timed_out","reason":"lock expired"}}`), nil
		}
		return []byte(`{"ok":55}`), nil
	})
	for _, c := range []struct{ fn, params string }{
		{"fibow", "[10,3]"},
		{"fiboa", "[10,2]"},
		{"fiboa", "[10,3]"}, // the third call fails
		{"nope", "[]"},
		{"fibow", `["x"]`},
	} {
		for _, seed := range []uint64{1, 2} {
			child = 0
			cfg := InstanceConfig{Kind: KindWorkflow, Seed: seed, ClockStart: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)}
			in := RunInput{FFQN: "testing:fibo-workflow/workflow." + c.fn, Params: json.RawMessage(c.params), ExecutionID: "E_FIBO", Attempt: 1}
			a := recordRun(t, fresh, cfg, in, handler, false)
			child = 0
			b := recordRun(t, snap, cfg, in, handler, true)
			if fmt.Sprintf("%#v", a) != fmt.Sprintf("%#v", b) {
				t.Errorf("%s%s: fresh and restored instances differ:\nfresh    %#v\nrestored %#v", c.fn, c.params, a, b)
			}
			if c.fn == "fiboa" && c.params == "[10,2]" && a.out != `{"ok":110}` {
				t.Errorf("fiboa(10, 2) = %s %s", a.out, a.err)
			}
		}
	}
}

// buildComponent builds test/components/<name> for wasip1 as a reactor, or
// skips the test when it does not build.
func buildComponent(t testing.TB, name string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), name+".wasm")
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-buildmode=c-shared", "-o", out, "./test/components/"+name)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		// The component and the SDK are not this package's: a change in
		// progress there must not fail wasmhost's tests.
		t.Skipf("building %s failed (SDK or component being changed?): %v\n%s", name, err, stderr.String())
	}
	wasm, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return wasm
}

// TestSnapshotFallback checks that modules that cannot be snapshotted, or
// whose snapshot cannot be restored, still make working workflow instances.
func TestSnapshotFallback(t *testing.T) {
	ctx := context.Background()
	logs := &captureHandler{}
	rt, err := NewRuntime(ctx, Config{Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	fdClose := wimport{"wasi_snapshot_preview1", "fd_close", []byte{i32}, []byte{i32}}
	cases := []struct {
		name   string
		mod    wmod
		reason string
	}{
		{"export name clash", func() wmod {
			m := handModule(`{"ok":1}`)
			m.funcs[snapshotExportPrefix+"mine"] = wfunc{}
			return m
		}(), "clashes"},
		{"_initialize closes stdin", func() wmod {
			m := handModule(`{"ok":1}`)
			m.imports = []wimport{fdClose}
			m.funcs["_initialize"] = wfunc{body: []byte{0x41, 0x00, 0x10, 0x00, 0x1a}} // drop(fd_close(0))
			return m
		}(), "changed the WASI state with [fd_close]"},
		{"_initialize traps", func() wmod {
			m := handModule(`{"ok":1}`)
			m.funcs["_initialize"] = wfunc{body: []byte{0x00}} // unreachable
			return m
		}(), "unreachable"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := rt.Compile(ctx, c.name, c.mod.encode())
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close(ctx)
			if s, err := m.waitSnapshot(ctx); s != nil || err != nil {
				t.Fatalf("snapshot %v, %v; want none", s, err)
			}
			if st := m.snap.state.Load(); st != snapshotFailed {
				t.Errorf("state %v", st)
			}
			var logged bool
			logs.mu.Lock()
			for _, r := range logs.records {
				r.Attrs(func(a slog.Attr) bool {
					if a.Value.String() == c.name {
						logged = true
					}
					if (a.Key == "reason" || a.Key == "err") && logged && !strings.Contains(a.Value.String(), c.reason) {
						t.Errorf("logged %s %q, want it to mention %q", a.Key, a.Value, c.reason)
					}
					return true
				})
			}
			logs.mu.Unlock()
			if !logged {
				t.Error("the fallback was not logged")
			}
			inst, err := m.Instantiate(ctx, wfConfig(1))
			if c.name == "_initialize traps" {
				if err == nil {
					t.Error("Instantiate of a module whose _initialize traps succeeded")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if inst.restored {
				t.Error("instance restored without a snapshot")
			}
			if out, err := inst.Run(ctx, RunInput{FFQN: "a:b/c.d"}); err != nil || string(out) != `{"ok":1}` {
				t.Errorf("Run = %s, %v", out, err)
			}
		})
	}

	t.Run("restore fails", func(t *testing.T) {
		_, m := newTestRuntime(t, Config{})
		s := mustSnapshot(t, m)
		broken := *s
		broken.globals = append([]globalValue{{export: "no such global"}}, s.globals...)
		m.snap.ready.Store(&broken)
		if out := string(mustRunModule(t, m, wfConfig(1), "echo", "[3]")); out != `{"ok":3}` {
			t.Errorf("Run = %s", out)
		}
	})
}

func mustRunModule(t testing.TB, m *Module, cfg InstanceConfig, fn, params string) []byte {
	t.Helper()
	ctx := context.Background()
	inst, err := m.Instantiate(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	out, err := inst.Run(ctx, RunInput{FFQN: "x." + fn, Params: []byte(params)})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestGoInitWASICalls lists the WASI functions the Go test guest's
// _initialize calls, with a listener on every one, and checks that those
// wasmhost lets through unwatched (wasiStateless) plus the watched ones that
// failed are all it calls: a Go release whose runtime starts, say, closing or
// renumbering descriptors while it initialises would be caught here (and, in
// production, by the watch, at the cost of the snapshot).
func TestGoInitWASICalls(t *testing.T) {
	ctx := context.Background()
	// The binary Compile compiles, from the shared on-disk cache.
	merged, _, _, err := wasmbin.MergeData(guestWasm, mergeDataMaxGap)
	if err != nil {
		t.Fatal(err)
	}
	cache, err := wazero.NewCompilationCacheWithDir(cacheDir)
	if err != nil {
		t.Fatal(err)
	}
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCompilationCache(cache).WithCloseOnContextDone(true))
	defer r.Close(ctx)
	calls := map[string]int{}
	var failed []string
	lf := experimental.FunctionListenerFactoryFunc(func(def api.FunctionDefinition) experimental.FunctionListener {
		return experimental.FunctionListenerFunc(func(ctx context.Context, mod api.Module, def api.FunctionDefinition, params []uint64, _ experimental.StackIterator) {
			calls[def.Name()]++
		})
	})
	if _, err := wasi_snapshot_preview1.Instantiate(experimental.WithFunctionListenerFactory(ctx, lf), r); err != nil {
		t.Fatal(err)
	}
	noop := func(_ context.Context, _ api.Module, stack []uint64) { stack[0] = 0 }
	if _, err := r.NewHostModuleBuilder(HostModuleName).
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(noop), []api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32}).Export(importHostCall).
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(noop), []api.ValueType{i32, i32}, []api.ValueType{i32}).Export(importHostTake).
		Instantiate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := instantiateNoopLogging(ctx, r); err != nil {
		t.Fatal(err)
	}
	c := &detClock{next: initClockStart}
	if _, err := r.InstantiateWithConfig(ctx, merged, wazero.NewModuleConfig().WithStartFunctions(exportInit).
		WithWalltime(c.walltime, clockResolution).WithNanotime(c.nanotime, clockResolution).
		WithRandSource(&detRand{src: newChaCha8(initSeed, initSeedDomain)})); err != nil {
		t.Fatal(err)
	}
	t.Logf("WASI calls of _initialize: %v", calls)
	for name := range calls {
		if !wasiStateless[name] && name != "fd_fdstat_set_flags" {
			failed = append(failed, name)
		}
	}
	if len(failed) > 0 {
		t.Errorf("the Go guest's _initialize calls watched WASI functions %v: check that they change no state (the snapshot test would fail if they succeeded)", failed)
	}
}

// TestSnapshotHostState checks the host-side state a snapshot carries
// besides the clock: what _initialize wrote to stderr (kept for
// TrapError.Stderr) and a host_call response it left for host_take.
func TestSnapshotHostState(t *testing.T) {
	ctx := context.Background()
	const iovs, text, req = 2048, 2048 + 16, 2048 + 32
	logReq := `{"op":"log","level":"debug","message":"x"}`
	data := []byte{text & 0xff, text >> 8, 0, 0, 13, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	data = append(data, "init says hi\n\x00\x00\x00"...)
	data = append(data, logReq...)
	var initBody []byte
	for _, v := range []int64{2, iovs, 1, 4000} {
		initBody = append(append(initBody, 0x41), sleb(v)...)
	}
	initBody = append(initBody, 0x10, 0x00, 0x1a) // drop(fd_write(2, iovs, 1, &n))
	for _, v := range []int64{req, int64(len(logReq)), 0, 0} {
		initBody = append(append(initBody, 0x41), sleb(v)...)
	}
	initBody = append(initBody, 0x10, 0x01, 0x1a) // drop(host_call(req, len, 0, 0)): the response is kept
	// run returns (5000 << 32) | host_take(5000, 64): the kept response.
	takeBody := append([]byte{0x42}, sleb(5000<<32)...)
	takeBody = append(append(takeBody, 0x41), sleb(5000)...)
	takeBody = append(append(takeBody, 0x41), sleb(64)...)
	takeBody = append(takeBody, 0x10, 0x02, 0xad, 0x84)
	mod := func(runBody []byte) []byte {
		m := handModule("")
		m.data = data
		m.imports = []wimport{
			{"wasi_snapshot_preview1", "fd_write", []byte{i32, i32, i32, i32}, []byte{i32}},
			{HostModuleName, importHostCall, []byte{i32, i32, i32, i32}, []byte{i32}},
			{HostModuleName, importHostTake, []byte{i32, i32}, []byte{i32}},
		}
		m.funcs["_initialize"] = wfunc{body: initBody}
		m.funcs["obelisk_v1_run"] = wfunc{params: []byte{i32, i32}, results: []byte{i64}, body: runBody}
		return m.encode()
	}
	compile := func(noSnapshots bool, name string, wasm []byte) *Module {
		rt, err := NewRuntime(ctx, Config{Logger: slog.New(slog.DiscardHandler), DisableWorkflowSnapshots: noSnapshots})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rt.Close(ctx) })
		m, err := rt.Compile(ctx, name, wasm)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	in := RunInput{FFQN: "a:b/c.d", ExecutionID: "E_HAND", Attempt: 1}
	for _, c := range []struct {
		name    string
		runBody []byte
		want    string
	}{
		{"kept response", takeBody, `{"ok":null}`},
		{"stderr tail", []byte{0x00}, "init says hi"},
	} {
		t.Run(c.name, func(t *testing.T) {
			wasm := mod(c.runBody)
			fresh, snap := compile(true, c.name, wasm), compile(false, c.name, wasm)
			s := mustSnapshot(t, snap)
			if c.name == "kept response" && string(s.kept) != `{"ok":null}` || c.name == "stderr tail" && string(s.stderr) != "init says hi\n" {
				t.Errorf("snapshot kept %q, stderr %q", s.kept, s.stderr)
			}
			rec := compareRuns(t, fresh, snap, wfConfig(1), in, opHandler(t))
			if !strings.Contains(rec.out+rec.err, c.want) {
				t.Errorf("run: %#v, want %q in the output or error", rec, c.want)
			}
		})
	}
}

// TestReuseSameAsRestored: an instance reset after a run and reused (reuse.go) behaves
// exactly like one freshly restored from the snapshot, run after run, for workflows;
// reused activity instances still draw their own random values.
func TestReuseSameAsRestored(t *testing.T) {
	ctx := context.Background()
	newModule := func(noReuse bool) *Module {
		rt, err := NewRuntime(ctx, Config{CacheDir: cacheDir, Logger: slog.New(slog.DiscardHandler), DisableInstanceReuse: noReuse})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rt.Close(ctx) })
		m, err := rt.Compile(ctx, "guest", guestWasm)
		if err != nil {
			t.Fatal(err)
		}
		if s := mustSnapshot(t, m); s.image == nil {
			t.Skip("no memory images on this platform: nothing is reused")
		}
		return m
	}
	restored, reusing := newModule(true), newModule(false)
	handler := opHandler(t)
	cases := []struct{ fn, params string }{
		{"time", "[30]"},
		{"init", ""},
		{"input", `[1,"x"]`},
		{"env", ""},
		{"stdout", ""},
		{"hostcall", `[{"op":"echo","value":{"n":1}}]`},
		{"hostcall", `[{"op":"big","size":5000}]`},
		{"take_protocol", `[{"op":"echo","value":[1,2,3]}]`},
		{"hostcall_loop", `[{"op":"nothing"},20]`},
		{"sleep", "[1500]"},
	}
	reused := 0
	for round := range 3 {
		for _, c := range cases {
			cfg := InstanceConfig{Kind: KindWorkflow, Seed: uint64(round), ClockStart: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
			in := RunInput{FFQN: "test:guest/api." + c.fn, ExecutionID: "E_REUSE", Attempt: 1}
			if c.params != "" {
				in.Params = json.RawMessage(c.params)
			}
			if inst := reusing.takeFree(KindWorkflow); inst != nil {
				reused++
				reusing.freeFor(KindWorkflow) <- inst // back, for recordRun to take
			}
			a := recordRun(t, restored, cfg, in, handler, true)
			b := recordRun(t, reusing, cfg, in, handler, true)
			if fmt.Sprintf("%#v", a) != fmt.Sprintf("%#v", b) {
				t.Errorf("round %d, %s%s: restored and reused instances differ:\nrestored %#v\nreused   %#v", round, c.fn, c.params, a, b)
			}
		}
	}
	if reused == 0 {
		t.Fatal("no instance was reused")
	}
	// A run that fails is not reused.
	before := len(reusing.freeFor(KindWorkflow))
	recordRun(t, reusing, wfConfig(1), RunInput{FFQN: "test:guest/api.panic"}, handler, true)
	if after := len(reusing.freeFor(KindWorkflow)); after > before {
		t.Errorf("an instance whose run trapped was reused (%d -> %d free)", before, after)
	}
	// Reused activity instances draw their own random values.
	draws := map[string]bool{}
	for range 6 {
		inst, err := reusing.Instantiate(ctx, InstanceConfig{Kind: KindActivity})
		if err != nil {
			t.Fatal(err)
		}
		out, err := inst.Run(ctx, RunInput{FFQN: "x.time", Params: json.RawMessage("[1]")})
		if err != nil {
			t.Fatal(err)
		}
		var res struct {
			Ok []struct {
				Math uint64 `json:"math"`
			} `json:"ok"`
		}
		if err := json.Unmarshal(out, &res); err != nil || len(res.Ok) != 1 {
			t.Fatalf("time: %s %v", out, err)
		}
		key := fmt.Sprint(res.Ok[0].Math)
		if draws[key] {
			t.Fatalf("two activity runs drew the same math/rand value %s", key)
		}
		draws[key] = true
	}
	if len(reusing.freeFor(KindActivity)) == 0 {
		t.Error("no activity instance was reused")
	}
}

// TestVariantPlainSameAsOriginal: a module compiled as its snapshot variant makes its
// plain instances (before its snapshot is ready, or with snapshots off) by writing the
// data segments and calling _initialize itself; they must behave exactly like instances
// of the module as it is.
func TestVariantPlainSameAsOriginal(t *testing.T) {
	ctx := context.Background()
	original := originalModule(t)
	rt, err := NewRuntime(ctx, Config{CacheDir: cacheDir, Logger: slog.New(slog.DiscardHandler),
		DisableWorkflowSnapshots: true, DisableActivitySnapshots: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	variant, err := rt.Compile(ctx, "guest", guestWasm)
	if err != nil {
		t.Fatal(err)
	}
	if variant.variant == nil {
		t.Skip("no memory images on this platform: the module is compiled as it is")
	}
	rt.noActivityImages = true // activities too take the plain path
	handler := opHandler(t)
	for _, cfg := range []InstanceConfig{wfConfig(7), {Kind: KindActivity}} {
		for _, c := range workflowCases() {
			if cfg.Kind == KindActivity && (c.fn == "time" || c.fn == "init" || c.fn == "sleep") {
				continue // real clock, randomness and sleep
			}
			in := RunInput{FFQN: "test:guest/api." + c.fn, ExecutionID: "E_VAR", Attempt: 1}
			if c.params != "" {
				in.Params = json.RawMessage(c.params)
			}
			a := recordRun(t, original, cfg, in, handler, false)
			b := recordRun(t, variant, cfg, in, handler, false)
			if fmt.Sprintf("%#v", a) != fmt.Sprintf("%#v", b) {
				t.Errorf("%v %s%s: the module and its variant differ:\nmodule  %#v\nvariant %#v", cfg.Kind, in.FFQN, in.Params, a, b)
			}
		}
	}
}

// Two initialisations with other random bytes may leave addresses in globals (Go's
// return registers hold the last pointers returned, and the maps' random seed moves the
// heap's layout): activities may still restore from the snapshot. A global that differs
// by a value that is no address in the memory may be random state, and they may not.
func TestActivityCompatibleGlobals(t *testing.T) {
	const pages = 88 // fibo-webhook's, whose global.4 (RET1) differed so
	g := func(values ...uint64) []globalValue {
		var gs []globalValue
		for i, v := range values {
			gs = append(gs, globalValue{export: fmt.Sprintf("obelisk-snapshot:global.%d", i), value: v})
		}
		return gs
	}
	for _, c := range []struct {
		name    string
		a, b    []globalValue
		refused string
	}{
		{"equal", g(5365720, 0), g(5365720, 0), ""},
		{"addresses differ", g(5365720, 5301120), g(5365720, 5300960), ""},
		{"random value", g(5365720, 0x9e3779b97f4a7c15), g(5365720, 0x1234567890abcdef), "global obelisk-snapshot:global.1 depends on random_get"},
		{"address and beyond the memory", g(5365720), g(pages * wasmPage), "global obelisk-snapshot:global.0 depends on random_get"},
		{"a global more", g(1), g(1, 2), "the globals depend on random_get"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := &snapshot{pages: pages, globals: c.a}
			b := &snapshot{pages: pages, globals: c.b}
			got := a.activityCompatible(b)
			if c.refused == "" && got != "" || c.refused != "" && !strings.Contains(got, c.refused) {
				t.Fatalf("activityCompatible = %q, want %q", got, c.refused)
			}
		})
	}
}
