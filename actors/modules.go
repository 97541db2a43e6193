package actors

import (
	"context"
	"fmt"
	"sync"

	"github.com/obelisk-go/obelisk/wasmhost"
)

// compiler compiles a component's module: a runtime of the engine's own
// (runtimeCompiler), or Modules, which compiles each module once for every engine.
type compiler interface {
	compile(ctx context.Context, name, digest string, wasm []byte, limitPages uint32) (*wasmhost.Module, error)
}

type runtimeCompiler struct{ rt *wasmhost.Runtime }

func (r runtimeCompiler) compile(ctx context.Context, name, _ string, wasm []byte, limitPages uint32) (*wasmhost.Module, error) {
	return r.rt.Compile(ctx, name, wasm, wasmhost.MemoryLimitPages(limitPages))
}

// preloading compiles, with wasmhost.Preload, the modules of the components that
// unfinished executions are pinned to (by ID): after a restart, the first of them to run
// (a parked workflow resumed from its snapshot, say) does not wait for the module's code
// to be loaded a second time and its workflow snapshot to be made.
type preloading struct {
	runtimeCompiler
	ids map[string]bool
}

func (p preloading) compile(ctx context.Context, name, digest string, wasm []byte, limitPages uint32) (*wasmhost.Module, error) {
	if !p.ids[componentID(Workflow, name, digest)] && !p.ids[componentID(ActivityWasm, name, digest)] {
		return p.runtimeCompiler.compile(ctx, name, digest, wasm, limitPages)
	}
	return p.rt.Compile(ctx, name, wasm, wasmhost.MemoryLimitPages(limitPages), wasmhost.Preload())
}

// runtimeConfig is the wasm runtime of an engine configured by cfg (whose CacheDir is set).
func runtimeConfig(cfg Config) wasmhost.Config {
	return wasmhost.Config{
		CacheDir: cfg.CacheDir, Logger: cfg.Logger,
		// A few ready instances per module and kind take instantiation off the path of
		// a run; every Go guest instance costs 4-6 MiB, so the pool stays small.
		// Memory is capped per component (ComponentConfig.MemoryLimit), not here.
		PoolSize:                 2,
		DisableWorkflowSnapshots: cfg.DisableWorkflowSnapshots,
		DisableActivitySnapshots: cfg.DisableActivitySnapshots,
		DisableInstanceReuse:     cfg.DisableInstanceReuse,
	}
}

// Modules is a wasm runtime and the modules compiled on it, shared by the engines that
// a process runs one after another (Config.Modules). A module is compiled (or loaded
// from the compilation cache) by the first engine that deploys it and reused by the
// later ones: modules and their instances belong to no engine (an instance is
// configured for each run), so an engine closed, or crashed, leaves them usable.
type Modules struct {
	rt *wasmhost.Runtime
	mu sync.Mutex
	m  map[modulesKey]*wasmhost.Module
}

type modulesKey struct {
	name, digest string
	limitPages   uint32
}

// NewModules starts the wasm runtime that engines configured as cfg (but for their
// data directory) would each start for themselves; cfg.CacheDir must be set.
func NewModules(ctx context.Context, cfg Config) (*Modules, error) {
	if cfg.CacheDir == "" {
		return nil, fmt.Errorf("shared modules: no compilation cache directory")
	}
	rt, err := wasmhost.NewRuntime(ctx, runtimeConfig(cfg))
	if err != nil {
		return nil, fmt.Errorf("start wasm runtime: %w", err)
	}
	return &Modules{rt: rt, m: map[modulesKey]*wasmhost.Module{}}, nil
}

// Close releases the runtime and every module, after the last engine using them has
// been closed.
func (m *Modules) Close(ctx context.Context) error { return m.rt.Close(ctx) }

// Len returns the number of modules compiled on the runtime, which keeps them all until
// Close: a process that deploys ever more components bounds them by replacing it.
func (m *Modules) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.m)
}

func (m *Modules) runtime() *wasmhost.Runtime {
	if m == nil {
		return nil
	}
	return m.rt
}

func (m *Modules) compile(ctx context.Context, name, digest string, wasm []byte, limitPages uint32) (*wasmhost.Module, error) {
	k := modulesKey{name, digest, limitPages}
	m.mu.Lock()
	mod := m.m[k]
	m.mu.Unlock()
	if mod != nil {
		return mod, nil
	}
	mod, err := m.rt.Compile(ctx, name, wasm, wasmhost.MemoryLimitPages(limitPages))
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if prev := m.m[k]; prev != nil { // compiled meanwhile by another engine
		mod.Close(ctx)
		return prev, nil
	}
	m.m[k] = mod
	return mod, nil
}
