package wasmhost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/obelisk-go/obelisk/wasmhost/internal/linmem"
	"github.com/obelisk-go/obelisk/wasmhost/internal/wasmbin"
	"github.com/obelisk-go/obelisk/wasmhost/wit"
	"github.com/obelisk-go/obelisk/wasmstore"
)

// Names fixed by guest ABI v1 (docs/abi.md).
const (
	// HostModuleName is the import module of the host functions.
	HostModuleName = "obelisk_v1"

	wasiModuleName = wasi_snapshot_preview1.ModuleName
	exportMemory   = "memory"
	exportInit     = "_initialize"
	// exportWarmup, optional: called once after _initialize when a snapshot is made,
	// so that what a guest builds on first use (caches of its language runtime) is
	// in the snapshot rather than built again by every restored instance.
	exportWarmup   = "obelisk_v1_warmup"
	exportAlloc    = "obelisk_v1_alloc"
	exportRun      = "obelisk_v1_run"
	importHostCall = "host_call"
	importHostTake = "host_take"
	// importRequestBodyRead copies bytes of the request body of a webhook instance
	// into guest memory as they are: bulk bytes would cost a guest far more to decode
	// from a JSON response (base64) than to copy.
	importRequestBodyRead = "request_body_read"
)

// snapshotVariant rewrites a module into its snapshot variant (wasmbin.SnapshotVariant),
// resumable in obelisk_v1_run blocked in host_call (parked.go).
func snapshotVariant(wasm []byte) (*wasmbin.Variant, error) {
	return wasmbin.SnapshotVariant(wasm, snapshotExportPrefix,
		wasmbin.ResumeCall{Export: exportRun, Module: HostModuleName, Name: importHostCall})
}

// mergeDataMaxGap is the largest run of zeros MergeData fills in to join two
// data segments: copying 4 KiB costs less than a segment.
const mergeDataMaxGap = 4096

// Config configures a [Runtime].
type Config struct {
	// CacheDir is the directory of wazero's on-disk compilation cache, so that
	// a restarted server compiles a known module from disk in tens of
	// milliseconds instead of a second. "" keeps compiled code in memory only.
	CacheDir string
	// Logger receives the guests' log op records and wasmhost's own records.
	// nil means slog.Default().
	Logger *slog.Logger
	// MemoryLimitPages caps the linear memory of every instance, in 64 KiB
	// pages. 0 means wazero's default (65536 pages = 4 GiB).
	MemoryLimitPages uint32
	// CompilationWorkers is the number of goroutines compiling one module.
	// 0 means GOMAXPROCS.
	CompilationWorkers int
	// PoolSize is how many initialised instances to keep ready per module
	// and kind, made in the background from the first Instantiate of that
	// kind on, so that Instantiate usually returns in microseconds instead of
	// milliseconds. Each costs the memory of an idle instance (~4 MiB for a
	// Go guest; far less for a workflow instance restored from a snapshot,
	// whose memory is shared until written). 0 disables pooling.
	PoolSize int
	// DisableWorkflowSnapshots makes every workflow instance run _initialize,
	// as activity instances do. By default, the first workflow Instantiate
	// of a module starts making (in the background) a snapshot of an
	// initialised workflow instance, from which later workflow instances are
	// restored in a tenth of the time, sharing the snapshot's memory until
	// they write to it. That costs, per module used by workflows, a second
	// compilation (in the background; ~15 MB of machine code for a Go guest,
	// cached on disk like the first) and the snapshot (~2 MiB); and every
	// module keeps its binary until its first workflow Instantiate (and, on
	// Linux, its first activity Instantiate, which makes the activity
	// memory image from the same variant whatever this says). The
	// behaviour of instances is the same either way: this is an escape hatch
	// and a baseline for measurements.
	DisableWorkflowSnapshots bool
	// DisableActivitySnapshots makes every activity instance run _initialize (from
	// the activity memory image where there is one). By default activity instances
	// are restored from the same snapshot as workflow instances, with the guest
	// runtime's random generators reseeded (see reseed.go), when the module's
	// initialisation allows it. An escape hatch and a baseline, like
	// DisableWorkflowSnapshots.
	DisableActivitySnapshots bool
	// DisableInstanceReuse closes every instance after its run. By default an
	// instance restored from a snapshot whose run ended normally is reset to the
	// snapshot and reused (see reuse.go), which skips wazero's instantiation.
	DisableInstanceReuse bool
}

// Runtime owns one wazero runtime (the optimising compiler where supported)
// with its compilation cache and the host modules every guest imports
// (wasi_snapshot_preview1 and obelisk_v1), instantiated once. It is safe for
// concurrent use. Close it to release everything compiled and instantiated
// through it.
type Runtime struct {
	rt       wazero.Runtime
	alloc    experimental.MemoryAllocator // nil: wazero's Go-heap memories
	cache    wazero.CompilationCache
	cacheDir string // Config.CacheDir
	logger   *slog.Logger
	workers  int
	poolSize int
	// noSnapshots: Config.DisableWorkflowSnapshots.
	noSnapshots bool
	// noActivitySnapshots: Config.DisableActivitySnapshots.
	noActivitySnapshots bool
	// noReuse: Config.DisableInstanceReuse.
	noReuse bool
	// noImages makes snapshots copy their memory into restored instances
	// instead of mapping it copy-on-write (for tests and measurements).
	noImages bool
	// noActivityImages makes activity instances instantiate the original
	// module instead of starting from a memory image (for tests and
	// measurements).
	noActivityImages bool
	// build names the running build (buildIdentity), part of the key of every kept
	// workflow snapshot (snapfile.go).
	build string
	// limitPages is Config.MemoryLimitPages, also part of that key.
	limitPages uint32
	// wasiFuncs are the functions wasi_snapshot_preview1 exports, to check imports against.
	wasiFuncs map[string]api.FunctionDefinition

	// Close cancels closing, which stops every Instantiate and Run in
	// progress, and waits for them (active) before closing wazero: guest
	// memory must not be released under running guest code.
	mu      sync.Mutex
	closed  bool
	active  sync.WaitGroup
	closing context.Context
	cancel  context.CancelCauseFunc
}

// NewRuntime creates a Runtime. The caller must Close it.
func NewRuntime(ctx context.Context, cfg Config) (*Runtime, error) {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	var cache wazero.CompilationCache
	if cfg.CacheDir != "" {
		c, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("wasmhost: opening compilation cache %q: %w", cfg.CacheDir, err)
		}
		cache = c
	} else {
		cache = wazero.NewCompilationCache()
	}
	rcfg := wazero.NewRuntimeConfig().
		WithCompilationCache(cache).
		WithCloseOnContextDone(true)
	if cfg.MemoryLimitPages > 0 {
		rcfg = rcfg.WithMemoryLimitPages(cfg.MemoryLimitPages)
	}
	r := &Runtime{
		rt:       wazero.NewRuntimeWithConfig(ctx, rcfg),
		cache:    cache,
		cacheDir: cfg.CacheDir,
		logger:   logger,
		workers:  cfg.CompilationWorkers,
		poolSize: cfg.PoolSize,
		alloc:    linmem.Allocator(),

		noSnapshots:         cfg.DisableWorkflowSnapshots,
		noActivitySnapshots: cfg.DisableActivitySnapshots,
		noReuse:             cfg.DisableInstanceReuse,
	}
	if cfg.CacheDir != "" {
		r.build, r.limitPages = buildIdentity(), cfg.MemoryLimitPages
	}
	r.closing, r.cancel = context.WithCancelCause(context.Background())
	if r.workers <= 0 {
		r.workers = runtime.GOMAXPROCS(0)
	}
	if err := r.init(ctx); err != nil {
		return nil, errors.Join(err, r.Close(ctx))
	}
	return r, nil
}

func (r *Runtime) init(ctx context.Context) error {
	// The listeners watch, while workflow snapshots are made, the WASI
	// functions that could change an instance's WASI state (see wasiWatch).
	wasi, err := wasi_snapshot_preview1.Instantiate(experimental.WithFunctionListenerFactory(ctx, wasiWatch{}), r.rt)
	if err != nil {
		return fmt.Errorf("wasmhost: instantiating %s: %w", wasiModuleName, err)
	}
	wasiMod, ok := wasi.(api.Module)
	if !ok {
		wasiMod = r.rt.Module(wasiModuleName)
	}
	r.wasiFuncs = wasiMod.ExportedFunctionDefinitions()

	i32 := api.ValueTypeI32
	_, err = r.rt.NewHostModuleBuilder(HostModuleName).
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(r.hostCall), []api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32}).
		WithParameterNames("req_ptr", "req_len", "out_ptr", "out_cap").
		WithResultNames("len").
		Export(importHostCall).
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(r.hostTake), []api.ValueType{i32, i32}, []api.ValueType{i32}).
		WithParameterNames("out_ptr", "out_cap").
		WithResultNames("len").
		Export(importHostTake).
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(r.requestBodyRead), []api.ValueType{api.ValueTypeI64, i32, i32}, []api.ValueType{i32}).
		WithParameterNames("offset", "out_ptr", "out_cap").
		WithResultNames("len").
		Export(importRequestBodyRead).
		Instantiate(ctx)
	if err != nil {
		return fmt.Errorf("wasmhost: instantiating host module %s: %w", HostModuleName, err)
	}
	_, err = r.rt.NewHostModuleBuilder(LoggingModuleName).
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(r.wasiLog), []api.ValueType{i32, i32, i32, i32, i32}, nil).
		WithParameterNames("level", "context_ptr", "context_len", "message_ptr", "message_len").
		Export(importLog).
		Instantiate(ctx)
	if err != nil {
		return fmt.Errorf("wasmhost: instantiating host module %s: %w", LoggingModuleName, err)
	}
	return nil
}

// Close releases the runtime, every module compiled by it and every instance
// still open. Instantiate and Run calls in progress are stopped and return
// [ErrRuntimeClosed]; Close waits for them. The on-disk compilation cache
// stays.
func (r *Runtime) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	r.cancel(ErrRuntimeClosed)
	r.active.Wait()
	err := r.rt.Close(ctx)
	if cerr := r.cache.Close(ctx); cerr != nil {
		err = errors.Join(err, cerr)
	}
	if err != nil {
		return fmt.Errorf("wasmhost: closing runtime: %w", err)
	}
	return nil
}

// Compile compiles (or loads from the compilation cache) a guest module and
// checks that it has the shape guest ABI v1 requires: exported memory,
// _initialize, obelisk_v1_alloc and obelisk_v1_run with the right signatures,
// and no imports other than wasi_snapshot_preview1 functions and the
// obelisk_v1 host functions. name is used in logs and errors only.
//
// Each module compiled is logged (at Info: a cold start compiling Go guests takes
// seconds per module, and must not look like a hang), with whether its code came from
// the on-disk compilation cache. With a cache, the code is then unloaded (unless
// [Preload]) until the module's first instance (load.go), from a copy of wasm written into the cache dir (or
// from wasm itself, kept, if the copy could not be written: the caller must not modify
// it).
func (r *Runtime) Compile(ctx context.Context, name string, wasm []byte, opts ...CompileOption) (*Module, error) {
	started := time.Now()
	cachedBefore := r.cachedFiles()
	var o compileOptions
	for _, opt := range opts {
		opt(&o)
	}
	// Go modules carry tens of thousands of data segments, each with a fixed
	// cost at every instantiation; merge them first (same memory contents).
	original := wasm
	merged, stats, ok, err := wasmbin.MergeData(wasm, mergeDataMaxGap)
	if err != nil {
		return nil, fmt.Errorf("wasmhost: compiling module %q: %w", name, err)
	}
	if ok {
		r.logger.Debug("wasmhost: merged data segments", "module", name,
			"before", stats.SegmentsBefore, "after", stats.SegmentsAfter, "bytes", stats.Bytes)
		wasm = merged
	}
	ctx, _, done, err := r.enter(ctx)
	if err != nil {
		return nil, fmt.Errorf("wasmhost: compiling module %q: %w", name, err)
	}
	defer done()
	ctx = experimental.WithCompilationWorkers(ctx, r.workers)
	// Compile the snapshot variant in place of the module when anything will restore
	// from a snapshot or map an image: every path can instantiate it (see
	// Module.variant), and one compilation instead of two halves what a module's
	// first use costs and the compiled code it keeps.
	var variant *wasmbin.Variant
	noVariant := errors.New("snapshots and memory images are off")
	if !r.noSnapshots || !r.noActivitySnapshots || (r.alloc != nil && !r.noImages && !r.noActivityImages) {
		if variant, noVariant = snapshotVariant(wasm); noVariant != nil {
			r.logger.Debug("wasmhost: no snapshot variant; compiling the module as it is", "module", name, "reason", noVariant)
		}
	}
	var compiled wazero.CompiledModule
	var variantErr error
	if variant != nil {
		if compiled, variantErr = r.rt.CompileModule(ctx, variant.Wasm); variantErr != nil {
			variant, noVariant = nil, fmt.Errorf("compiling the snapshot variant: %w", variantErr)
		} else {
			variant.Wasm = nil
			variant.Data = ownSegments(variant.Data) // they point into wasm
		}
	}
	if variant == nil {
		if compiled, err = r.rt.CompileModule(ctx, wasm); err != nil {
			return nil, fmt.Errorf("wasmhost: compiling module %q: %w", name, err)
		}
		if variantErr != nil { // the module compiles, its variant did not: a bug of the rewrite
			r.logger.Warn("wasmhost: compiling the snapshot variant failed; compiled the module as it is", "module", name, "err", variantErr)
		}
	}
	if err := r.checkABI(compiled); err != nil {
		return nil, errors.Join(fmt.Errorf("wasmhost: module %q: %w", name, err), compiled.Close(ctx))
	}
	m := &Module{rt: r, name: name, compiled: compiled, variant: variant, noVariant: noVariant,
		limitPages:    o.memoryLimitPages,
		freeWorkflows: make(chan *Instance, maxFree), freeActivities: make(chan *Instance, maxFree)}
	if err := m.checkMemoryLimit(); err != nil {
		return nil, errors.Join(fmt.Errorf("wasmhost: module %q: %w", name, err), compiled.Close(ctx))
	}
	m.ctx, m.cancel = context.WithCancel(r.closing)
	m.wit, m.witErr = wit.ExtractFromWasm(original)
	attrs := []any{"module", name, "bytes", len(original), "took", time.Since(started).Round(time.Millisecond)}
	if cachedBefore != nil {
		attrs = append(attrs, "from_cache", !r.cacheGrewSince(cachedBefore))
	}
	if o.preload {
		attrs = append(attrs, "preload", true)
	}
	r.logger.Info("wasmhost: compiled module", attrs...)
	if o.preload {
		if r.cacheDir != "" {
			m.digest = wasmstore.Digest(original) // names its kept snapshot
		}
		m.workflowSnapshot() // starts making (or reading) it
		return m, nil
	}
	if err := m.unloadCode(ctx, original); err != nil {
		return nil, fmt.Errorf("wasmhost: module %q: unloading its code until first use: %w", name, err)
	}
	return m, nil
}

// cachedFiles lists the files of the on-disk compilation cache (nil without one).
// wazero keeps one file per compiled module, named by a hash of the module and the
// CPU's features, in a folder per wazero version and platform; it writes one when it
// compiles and only reads it on a hit. So a compilation that adds no file came from the
// cache. (With modules compiled at once, a file added by another compilation meanwhile
// makes a hit look like a miss; not the other way round.)
func (r *Runtime) cachedFiles() map[string]bool {
	if r.cacheDir == "" {
		return nil
	}
	files := map[string]bool{}
	dirs, _ := os.ReadDir(r.cacheDir) // none yet: an empty cache
	for _, d := range dirs {
		if !d.IsDir() || d.Name() == modulesDir || d.Name() == snapshotsDir { // the modules' bytes (load.go) and snapshots (snapfile.go), not code
			continue
		}
		entries, _ := os.ReadDir(filepath.Join(r.cacheDir, d.Name()))
		for _, e := range entries {
			if !strings.HasSuffix(e.Name(), ".tmp") { // being written
				files[filepath.Join(d.Name(), e.Name())] = true
			}
		}
	}
	return files
}

// cacheGrewSince reports whether the compilation cache has a file not in before.
func (r *Runtime) cacheGrewSince(before map[string]bool) bool {
	for f := range r.cachedFiles() {
		if !before[f] {
			return true
		}
	}
	return false
}

// ownSegments copies data segments into one allocation of their own.
func ownSegments(segs []wasmbin.Segment) []wasmbin.Segment {
	total := 0
	for _, d := range segs {
		total += len(d.Data)
	}
	backing := make([]byte, 0, total)
	out := make([]wasmbin.Segment, len(segs))
	for i, d := range segs {
		at := len(backing)
		backing = append(backing, d.Data...)
		out[i] = wasmbin.Segment{Offset: d.Offset, Data: backing[at:len(backing):len(backing)]}
	}
	return out
}

// enter registers a Compile, Instantiate or Run in progress and returns its context:
// ctx, also cancelled (cause ErrRuntimeClosed) when the runtime closes, and
// (cause ErrInstanceClosed) by the returned cancel function. done must be
// called when the call has finished with the guest.
func (r *Runtime) enter(ctx context.Context) (callCtx context.Context, cancel context.CancelCauseFunc, done func(), err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, nil, nil, ErrRuntimeClosed
	}
	r.active.Add(1)
	callCtx, cancel = context.WithCancelCause(ctx)
	stop := context.AfterFunc(r.closing, func() { cancel(ErrRuntimeClosed) })
	return callCtx, cancel, func() {
		stop()
		cancel(nil)
		r.active.Done()
	}, nil
}

type sig struct{ params, results []api.ValueType }

func (s sig) String() string {
	return fmt.Sprintf("(%s) -> (%s)", typeNames(s.params), typeNames(s.results))
}

func typeNames(ts []api.ValueType) string {
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = api.ValueTypeName(t)
	}
	return strings.Join(names, ", ")
}

func sameSig(def api.FunctionDefinition, want sig) bool {
	return equalTypes(def.ParamTypes(), want.params) && equalTypes(def.ResultTypes(), want.results)
}

func equalTypes(a, b []api.ValueType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// checkABI lists every way the module does not fit guest ABI v1.
func (r *Runtime) checkABI(c wazero.CompiledModule) error {
	i32, i64 := api.ValueTypeI32, api.ValueTypeI64
	wantExports := []struct {
		name string
		sig  sig
	}{
		{exportInit, sig{}},
		{exportAlloc, sig{[]api.ValueType{i32}, []api.ValueType{i32}}},
		{exportRun, sig{[]api.ValueType{i32, i32}, []api.ValueType{i64}}},
	}
	hostImports := map[string]sig{
		importHostCall: {[]api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32}},
		importHostTake: {[]api.ValueType{i32, i32}, []api.ValueType{i32}},
		// Optional: webhook endpoints read their request's body with it.
		importRequestBodyRead: {[]api.ValueType{i64, i32, i32}, []api.ValueType{i32}},
	}

	var problems []string
	if _, ok := c.ExportedMemories()[exportMemory]; !ok {
		problems = append(problems, fmt.Sprintf("missing export: memory %q", exportMemory))
	}
	exports := c.ExportedFunctions()
	for _, w := range wantExports {
		def, ok := exports[w.name]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("missing export: func %s %s", w.name, w.sig))
		case !sameSig(def, w.sig):
			problems = append(problems, fmt.Sprintf("export %s has signature %s, want %s",
				w.name, sig{def.ParamTypes(), def.ResultTypes()}, w.sig))
		}
	}
	for _, def := range c.ImportedFunctions() {
		mod, fn, _ := def.Import()
		got := sig{def.ParamTypes(), def.ResultTypes()}
		switch mod {
		case HostModuleName:
			want, ok := hostImports[fn]
			if !ok {
				problems = append(problems, fmt.Sprintf("unknown import %s.%s (%s offers %s, %s and %s)",
					mod, fn, HostModuleName, importHostCall, importHostTake, importRequestBodyRead))
			} else if !equalTypes(got.params, want.params) || !equalTypes(got.results, want.results) {
				problems = append(problems, fmt.Sprintf("import %s.%s has signature %s, want %s", mod, fn, got, want))
			}
		case LoggingModuleName:
			want := sig{[]api.ValueType{i32, i32, i32, i32, i32}, nil}
			if fn != importLog {
				problems = append(problems, fmt.Sprintf("unknown import %s.%s (%s offers %s)", mod, fn, LoggingModuleName, importLog))
			} else if !equalTypes(got.params, want.params) || !equalTypes(got.results, want.results) {
				problems = append(problems, fmt.Sprintf("import %s.%s has signature %s, want %s", mod, fn, got, want))
			}
		case wasiModuleName:
			want, ok := r.wasiFuncs[fn]
			if !ok {
				problems = append(problems, fmt.Sprintf("unknown import %s.%s", mod, fn))
			} else if !sameSig(want, got) {
				problems = append(problems, fmt.Sprintf("import %s.%s has signature %s, want %s",
					mod, fn, got, sig{want.ParamTypes(), want.ResultTypes()}))
			}
		default:
			problems = append(problems, fmt.Sprintf("import %s.%s from unknown module %q (only %s, %s and %s are provided)",
				mod, fn, mod, wasiModuleName, HostModuleName, LoggingModuleName))
		}
	}
	for _, def := range c.ImportedMemories() {
		mod, name, _ := def.Import()
		problems = append(problems, fmt.Sprintf("imports memory %s.%s (the module must define and export its own)", mod, name))
	}
	if len(problems) == 0 {
		return nil
	}
	sort.Strings(problems)
	return fmt.Errorf("does not implement guest ABI v1: %s", strings.Join(problems, "; "))
}
