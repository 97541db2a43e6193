package wasmhost

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"

	"github.com/obelisk-go/obelisk/wasmhost/internal/wasmbin"
	"github.com/obelisk-go/obelisk/wasmstore"
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
// code stays loaded from the start.
//
// Nor does an unused module keep its bytes (3-11 MB a Go guest, 36 MB for the 7 idle
// modules of the benchmarks' deployment, doubled by the GC's headroom): Compile writes a
// copy of them into the cache dir, named by their SHA-256, and the first instance reads
// that copy back and checks the digest. Not the component's own file, which may have been
// replaced meanwhile: what runs must be what Compile checked. If the copy cannot be
// written, the bytes stay in memory as before; if it is gone or changed when it is read,
// the module's instances fail with an error naming the file.
//
// The code is reloaded from the same bytes Compile compiled (the module merged and
// rewritten into its variant exactly as then: both are deterministic), so the cache
// entry Compile wrote is the one read, and what runs is what Compile checked.

// errModuleClosed is the error of an instance asked of a closed module.
var errModuleClosed = errors.New("module closed")

// modulesDir is the folder of the cache dir holding the modules' bytes: a wasmstore
// (content-addressed, each read checked against its digest).
const modulesDir = "modules"

// unloadCode releases m's code after Compile, keeping what it takes to load it again:
// a copy of wasm (the module as given to Compile) on disk, or wasm itself if the copy
// cannot be written.
func (m *Module) unloadCode(ctx context.Context, wasm []byte) error {
	if m.rt.cacheDir == "" {
		return nil
	}
	read := func() ([]byte, error) { return wasm, nil }
	store, err := wasmstore.Open(filepath.Join(m.rt.cacheDir, modulesDir))
	var digest string
	if err == nil {
		digest, err = store.Put(wasm)
	}
	if err != nil {
		m.rt.logger.Warn("wasmhost: keeping the module's bytes in memory until its first use", "module", m.name, "err", err)
		digest = wasmstore.Digest(wasm)
	} else {
		read = func() ([]byte, error) { return store.Get(digest) }
	}
	m.digest = digest
	variant := m.variant != nil
	m.reload = func(ctx context.Context) (loaded, error) {
		var l loaded
		started := time.Now()
		code, err := read()
		if err != nil {
			return l, err
		}
		l.read = time.Since(started)
		started = time.Now()
		merged, _, ok, err := wasmbin.MergeData(code, mergeDataMaxGap)
		if err != nil {
			return l, err
		}
		if ok {
			code = merged
		}
		if variant {
			v, err := snapshotVariant(code)
			if err != nil {
				return l, fmt.Errorf("rewriting the snapshot variant: %w", err)
			}
			code, l.data = v.Wasm, ownSegments(v.Data)
		}
		l.rewrite = time.Since(started)
		started = time.Now()
		l.compiled, err = m.rt.rt.CompileModule(experimental.WithCompilationWorkers(ctx, m.rt.workers), code)
		l.compile = time.Since(started)
		return l, err
	}
	// The variant's data segments (what its plain instances and its snapshot start
	// from: a few MB a Go guest) go with the code and come back with it.
	if variant {
		m.variant.Data = nil
	}
	err = m.compiled.Close(ctx)
	m.compiled = nil
	return err
}

// loaded is what Module.reload loads, with how long each step took (logged: they are
// what a module's first instance after a restart waits for).
type loaded struct {
	compiled wazero.CompiledModule
	data     []wasmbin.Segment // the variant's data segments; nil without a variant
	// read: the module's bytes from the cache dir; rewrite: merging data segments and
	// rewriting the variant; compile: wazero's CompileModule (decoding and validating the
	// module, then the compiled code from the on-disk cache).
	read, rewrite, compile time.Duration
}

// loadedVariant returns a copy of the module's snapshot variant with its data segments,
// loading the module's code (and with it the segments) first if need be.
func (m *Module) loadedVariant(ctx context.Context) (*wasmbin.Variant, error) {
	if m.variant == nil {
		return nil, m.noVariant
	}
	if _, err := m.code(ctx); err != nil {
		return nil, err
	}
	m.codeMu.Lock()
	defer m.codeMu.Unlock()
	v := *m.variant
	return &v, nil
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
	l, err := m.reload(ctx)
	if err != nil {
		return nil, fmt.Errorf("wasmhost: loading the code of module %q: %w", m.name, err)
	}
	if m.variant != nil {
		m.variant.Data = l.data
	}
	m.compiled, m.reload = l.compiled, nil // the module's bytes go with it: the code stays now
	m.rt.logger.Info("wasmhost: loaded module on first use", "module", m.name, "took", time.Since(started).Round(time.Millisecond),
		"read", l.read.Round(time.Microsecond), "rewrite", l.rewrite.Round(time.Microsecond), "compile", l.compile.Round(time.Microsecond))
	return l.compiled, nil
}
