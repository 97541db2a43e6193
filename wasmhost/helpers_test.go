package wasmhost

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

// Shared across the tests and benchmarks of one run: the guest is built once
// and compiled once.
var (
	guestWasm   []byte
	testRT      *Runtime
	testGuest   *Module
	testTmpDir  string
	cacheDir    string
	coldCompile time.Duration
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	flag.Parse()
	var err error
	testTmpDir, err = os.MkdirTemp("", "wasmhost-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(testTmpDir)
	start := time.Now()
	guestWasm, err = buildGuest(testTmpDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	buildTime := time.Since(start)

	ctx := context.Background()
	cacheDir = filepath.Join(testTmpDir, "cache")
	testRT, err = NewRuntime(ctx, Config{CacheDir: cacheDir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer testRT.Close(ctx)
	start = time.Now()
	testGuest, err = testRT.Compile(ctx, "guest", guestWasm)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	coldCompile = time.Since(start)
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "guest: %d bytes, built in %v, compiled (cold) in %v\n",
			len(guestWasm), buildTime.Round(time.Millisecond), coldCompile.Round(time.Millisecond))
	}
	return m.Run()
}

// buildGuest builds testdata/guest for wasip1 as a reactor.
func buildGuest(dir string) ([]byte, error) {
	out := filepath.Join(dir, "guest.wasm")
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-buildmode=c-shared", "-o", out, ".")
	cmd.Dir = filepath.Join("testdata", "guest")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("building test guest: %v\n%s", err, stderr.String())
	}
	return os.ReadFile(out)
}

// wfConfig is a workflow configuration with a fixed clock and seed.
func wfConfig(seed uint64) InstanceConfig {
	return InstanceConfig{Kind: KindWorkflow, Seed: seed, ClockStart: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
}

// runGuest instantiates the shared guest and runs fn (the last FFQN segment) with params.
func runGuest(ctx context.Context, t testing.TB, cfg InstanceConfig, fn string, params string) ([]byte, error) {
	t.Helper()
	// ctx bounds the run only, so that a short timeout is not spent
	// instantiating (slow under the race detector).
	inst, err := testGuest.Instantiate(context.WithoutCancel(ctx), cfg)
	if err != nil {
		t.Fatalf("Instantiate: %v", err)
	}
	defer inst.Close(ctx)
	var p []byte
	if params != "" {
		p = []byte(params)
	}
	return inst.Run(ctx, RunInput{FFQN: "test:guest/api." + fn, Params: p, ExecutionID: "E_TEST", Attempt: 1})
}

func mustRun(t testing.TB, cfg InstanceConfig, fn string, params string) []byte {
	t.Helper()
	out, err := runGuest(context.Background(), t, cfg, fn, params)
	if err != nil {
		t.Fatalf("Run %s: %v", fn, err)
	}
	return out
}

// captureHandler is a slog.Handler keeping the records it gets.
type captureHandler struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *captureHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *captureHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Clone())
	return nil
}
func (h *captureHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *captureHandler) WithGroup(string) slog.Handler      { return h }

// --- a tiny WebAssembly encoder for hand-made modules ---

type wfunc struct {
	params, results []byte // value types: 0x7f i32, 0x7e i64
	body            []byte // instructions without the final end
}

type wimport struct {
	module, name    string
	params, results []byte
}

type wmod struct {
	imports []wimport
	funcs   map[string]wfunc // exported functions by name
	memory  bool
	data    []byte // placed at offset 2048
	custom  map[string][]byte
}

func uleb(v uint64) []byte {
	var b []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}

func sleb(v int64) []byte {
	var b []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func wname(s string) []byte { return append(uleb(uint64(len(s))), s...) }

func wvec(items [][]byte) []byte {
	out := uleb(uint64(len(items)))
	for _, it := range items {
		out = append(out, it...)
	}
	return out
}

func wsection(id byte, content []byte) []byte {
	return append(append([]byte{id}, uleb(uint64(len(content)))...), content...)
}

func (m wmod) encode() []byte {
	out := []byte("\x00asm\x01\x00\x00\x00")
	var types, imports, funcs, exports, codes [][]byte
	typ := func(params, results []byte) uint64 {
		t := append([]byte{0x60}, uleb(uint64(len(params)))...)
		t = append(t, params...)
		t = append(t, uleb(uint64(len(results)))...)
		t = append(t, results...)
		types = append(types, t)
		return uint64(len(types) - 1)
	}
	for _, im := range m.imports {
		ti := typ(im.params, im.results)
		e := append(wname(im.module), wname(im.name)...)
		imports = append(imports, append(append(e, 0x00), uleb(ti)...))
	}
	names := make([]string, 0, len(m.funcs))
	for n := range m.funcs {
		names = append(names, n)
	}
	slices.Sort(names)
	for i, n := range names {
		f := m.funcs[n]
		funcs = append(funcs, uleb(typ(f.params, f.results)))
		exports = append(exports, append(append(wname(n), 0x00), uleb(uint64(len(m.imports)+i))...))
		body := append([]byte{0x00}, f.body...) // no locals
		body = append(body, 0x0b)
		codes = append(codes, append(uleb(uint64(len(body))), body...))
	}
	if m.memory {
		exports = append(exports, append(wname("memory"), 0x02, 0x00))
	}
	out = append(out, wsection(1, wvec(types))...)
	if len(imports) > 0 {
		out = append(out, wsection(2, wvec(imports))...)
	}
	out = append(out, wsection(3, wvec(funcs))...)
	if m.memory {
		out = append(out, wsection(5, wvec([][]byte{{0x00, 0x01}}))...)
	}
	out = append(out, wsection(7, wvec(exports))...)
	out = append(out, wsection(10, wvec(codes))...)
	if len(m.data) > 0 {
		seg := append([]byte{0x00, 0x41}, sleb(2048)...)
		seg = append(seg, 0x0b)
		seg = append(seg, uleb(uint64(len(m.data)))...)
		seg = append(seg, m.data...)
		out = append(out, wsection(11, wvec([][]byte{seg}))...)
	}
	for name, payload := range m.custom {
		out = append(out, wsection(0, append(wname(name), payload...))...)
	}
	return out
}

const (
	i32 = 0x7f
	i64 = 0x7e
)

// handModule is a minimal module implementing the ABI without a language
// runtime: obelisk_v1_run returns the constant output.
func handModule(output string) wmod {
	packed := int64(2048)<<32 | int64(len(output))
	return wmod{
		memory: true,
		data:   []byte(output),
		funcs: map[string]wfunc{
			"_initialize":      {},
			"obelisk_v1_alloc": {params: []byte{i32}, results: []byte{i32}, body: append([]byte{0x41}, sleb(8192)...)},
			"obelisk_v1_run":   {params: []byte{i32, i32}, results: []byte{i64}, body: append([]byte{0x42}, sleb(packed)...)},
		},
	}
}

// freshWorkflowModule compiles the test guest in a runtime of its own that
// makes no workflow snapshots: every workflow instance runs _initialize.
func freshWorkflowModule(t testing.TB) *Module {
	t.Helper()
	return originalModule(t)
}

// originalModule compiles the test guest as it is, not as its snapshot variant: with
// snapshots and images off, every instance instantiates it and runs _initialize, as
// wazero does. It is the reference the other ways of making instances are compared with.
func originalModule(t testing.TB) *Module {
	t.Helper()
	ctx := context.Background()
	rt, err := NewRuntime(ctx, Config{CacheDir: cacheDir, Logger: slog.New(slog.DiscardHandler),
		DisableWorkflowSnapshots: true, DisableActivitySnapshots: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(ctx) })
	rt.noActivityImages = true
	m, err := rt.Compile(ctx, "guest", guestWasm)
	if err != nil {
		t.Fatal(err)
	}
	if m.variant != nil {
		t.Fatal("compiled as the snapshot variant with snapshots and images off")
	}
	return m
}

// reportUsage reports the CPU time (user + system, GC and kernel included),
// the system time and the minor page faults per op since before.
func reportUsage(b *testing.B, before usage) {
	after := getUsage()
	n := float64(b.N)
	b.ReportMetric(float64(after.user+after.sys-before.user-before.sys)/n, "cpu-ns/op")
	b.ReportMetric(float64(after.sys-before.sys)/n, "sys-ns/op")
	b.ReportMetric(float64(after.faults-before.faults)/n, "faults/op")
}
