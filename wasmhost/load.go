package wasmhost

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"

	"github.com/obelisk-go/obelisk/wasmhost/internal/wasmbin"
)

// A module's compiled code is most of what it costs in memory: a Go guest of 4 MB
// compiles to ~15 MiB of machine code, all resident, plus a few MiB of wazero's decoded
// module on the Go heap. A deployment whose components are not all in use paid that
// for every one of them (9 example modules: 168 MiB of code).
//
// So with an on-disk compilation cache, Compile compiles (or loads) the module, checks
// it, and unloads the code again; the first instance made of the module loads it back
// from the cache (a read, no compiling: ~0.1 s for a Go guest) and it stays loaded until
// the module closes. Without a cache dir reloading would mean compiling again, so the
// code stays loaded from the start. An unused module still holds its bytes (a few MB),
// not its code: reading them again from its file could load a different module than
// the one checked, if the file was replaced meanwhile.
//
// The code is reloaded from the same bytes Compile compiled (the module merged and
// rewritten into its variant exactly as then: both are deterministic), so the cache
// entry Compile wrote is the one read, and what runs is what Compile checked.

// errModuleClosed is the error of an instance asked of a closed module.
var errModuleClosed = errors.New("module closed")

// unloadCode releases m's code after Compile, keeping wasm (the module as given to
// Compile) to load it again.
func (m *Module) unloadCode(ctx context.Context, wasm []byte) error {
	if m.rt.cacheDir == "" {
		return nil
	}
	variant := m.variant != nil
	m.reload = func(ctx context.Context) (wazero.CompiledModule, error) {
		code := wasm
		merged, _, ok, err := wasmbin.MergeData(wasm, mergeDataMaxGap)
		if err != nil {
			return nil, err
		}
		if ok {
			code = merged
		}
		if variant {
			v, err := wasmbin.SnapshotVariant(code, snapshotExportPrefix)
			if err != nil {
				return nil, fmt.Errorf("rewriting the snapshot variant: %w", err)
			}
			code = v.Wasm
		}
		return m.rt.rt.CompileModule(experimental.WithCompilationWorkers(ctx, m.rt.workers), code)
	}
	err := m.compiled.Close(ctx)
	m.compiled = nil
	return err
}

// CodeLoaded reports whether the module's code is in memory, so that its next instance
// is made without loading it first (a caller that has already taken a lock may want to
// leave the first instance to a path that instantiates before locking).
func (m *Module) CodeLoaded() bool {
	m.codeMu.Lock()
	defer m.codeMu.Unlock()
	return m.compiled != nil
}

// code returns the module's compiled code, loading it on first use.
func (m *Module) code(ctx context.Context) (wazero.CompiledModule, error) {
	m.codeMu.Lock()
	defer m.codeMu.Unlock()
	if m.compiled != nil {
		return m.compiled, nil
	}
	if m.reload == nil || m.ctx.Err() != nil {
		return nil, fmt.Errorf("wasmhost: module %q: %w", m.name, errModuleClosed)
	}
	started := time.Now()
	compiled, err := m.reload(ctx)
	if err != nil {
		return nil, fmt.Errorf("wasmhost: loading the code of module %q: %w", m.name, err)
	}
	m.compiled, m.reload = compiled, nil // the module's bytes go with it: the code stays now
	m.rt.logger.Info("wasmhost: loaded module on first use", "module", m.name, "took", time.Since(started).Round(time.Millisecond))
	return compiled, nil
}
