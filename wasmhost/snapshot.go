package wasmhost

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"

	"github.com/obelisk-go/obelisk/wasmhost/internal/linmem"
	"github.com/obelisk-go/obelisk/wasmhost/internal/wasmbin"
)

// Workflow snapshots.
//
// A workflow's _initialize does not depend on the execution (see
// Module.Instantiate): every workflow instance of a module is, once
// initialised, in the same state. So instead of running _initialize (~1.2 ms
// for a Go guest, after ~1 ms of instantiation mostly spent copying data
// segments) for every instance, wasmhost initialises one instance, captures
// its state, and makes the others by restoring it:
//
//   - the state of an instance is its linear memory, its mutable globals (a
//     Go guest keeps its stack pointer in one), its tables (not captured:
//     see below) and what the host keeps for it (the deterministic clock and
//     random source, the tail of stderr, a host_call response waiting for
//     host_take, the WASI file descriptor table);
//   - the module is rewritten (wasmbin.SnapshotVariant) into a variant that
//     exports its mutable globals, so that they can be read and set, and has
//     no data segments and no start function, which a restored instance must
//     not apply or run again. Runtime.Compile compiles the variant instead of
//     the module whenever it can (Module.variant): plain instances are made
//     from it too, by writing the data segments and calling the start
//     function and _initialize themselves, so one compilation serves every
//     path. A module compiled as it is gets no snapshot;
//   - the snapshot is made from an instance of the variant to which the host
//     applies the data segments and calls the start function and
//     _initialize itself, exactly as instantiating the original would, in
//     the usual workflow environment. It is made twice and both must be
//     identical: a module whose initialisation is not deterministic is not
//     snapshotted;
//   - restoring is instantiating the variant, growing its memory to the
//     snapshot's size and setting the globals and the host-side state. On
//     Linux the memory is mapped copy-on-write from a sealed memory file
//     holding the snapshot (linmem.Image): nothing is copied up front, the
//     pages a run only reads stay shared by all instances, and a page is
//     copied when the guest first writes it. Elsewhere (or for memories
//     under 2 MiB) the snapshot's non-zero 4 KiB pages are copied.
//
// What is not captured must not change during _initialize:
//
//   - tables: a module could store function references with table.set or
//     grow a table while it initialises. Go, C and Rust toolchains do not:
//     their tables are filled by element segments, which a restored
//     instance applies like any instance. (Not checked.)
//   - the WASI file descriptor table and open files: every WASI function
//     that could change them (fd_close, fd_renumber, fd_fdstat_set_flags,
//     path_open, ...) is watched while the snapshot is made, and a call that
//     succeeds there prevents the snapshot. (Go's runtime asks for
//     non-blocking stdio, which wasmhost's stdio refuses: no change.)
//
// Anything that prevents a snapshot, or makes a restore fail, falls back to
// initialising instances afresh, with a log record: the snapshot is an
// optimisation, never a reason for Instantiate to fail.

// snapshotExportPrefix starts the names of the exports the variant adds.
const snapshotExportPrefix = "obelisk-snapshot:"

// snapshotPage is the granularity at which a snapshot stores memory: only
// pages with a non-zero byte are stored and copied.
const snapshotPage = 4 << 10

// snapshot is the state of an initialised workflow instance of a module.
// It is immutable once made, and shared by every instance restored from it.
type snapshot struct {
	// image holds the snapshot's memory for restored memories to map
	// copy-on-write (linmem.Image); nil where that is not supported: the
	// chunks are then copied into every restored memory.
	image *linmem.Image
	// alloc makes the memories of restored instances: from image, or with
	// room for the snapshot's size from the start (so that growing to it
	// copies nothing); nil on platforms without linmem.
	alloc experimental.MemoryAllocator

	pages   uint32        // memory size, in 64 KiB pages
	chunks  []memoryChunk // the non-zero parts of memory; nil when in image
	globals []globalValue // the mutable globals
	clock   int64         // detClock.next after _initialize
	rand    []byte        // the marshalled ChaCha8 of detRand after _initialize
	stderr  []byte        // the tail of stderr kept after _initialize
	kept    []byte        // a response waiting for host_take after _initialize
	took    time.Duration // making it (both initialisations)
	// load and init split took: waiting for the module's code, and the initialisations
	// (two, or three for activities, each instantiating the variant and running the
	// start function, _initialize and the warm-up).
	load, init time.Duration
	size       int // bytes in chunks
	// generators are the offsets of the guest runtime's random generators, which an
	// activity instance restored from the snapshot reseeds (see reseed.go); nil
	// when activities cannot be restored from it (activityOK false).
	generators []uint32
	activityOK bool
	// mem is the whole memory, kept only while the snapshot is made.
	mem []byte
	// digest is the sha256 of the memory: a parked image records the digest of the
	// memory it is a diff against (parked.go).
	digest [32]byte
}

// memoryChunk is a run of memory pages, at least one byte of each non-zero.
type memoryChunk struct {
	offset uint32
	data   []byte
}

type globalValue struct {
	export string
	value  uint64
}

// snapshotState is how far a module's workflow snapshot is.
type snapshotState = int32

const (
	snapshotNone      snapshotState = iota // not asked for yet
	snapshotPreparing                      // being made in the background
	snapshotReady                          // made: workflow instances are restored from it
	snapshotFailed                         // cannot be made: workflow instances initialise afresh
)

// workflowSnapshot returns the module's snapshot, or nil when there is none
// (yet): the first call starts making it in the background.
func (m *Module) workflowSnapshot() *snapshot {
	return m.snap.get(m.ctx, !m.rt.noSnapshots || !m.rt.noActivitySnapshots, m.prepareSnapshot)
}

// waitSnapshot starts making the snapshot if needed and waits until it is
// made or has failed; nil means workflow instances initialise afresh.
func (m *Module) waitSnapshot(ctx context.Context) (*snapshot, error) {
	return m.snap.wait(ctx, m.workflowSnapshot)
}

// prepareSnapshot makes the snapshot, publishes it, and logs the outcome.
func (m *Module) prepareSnapshot() {
	s, keep, err := m.makeSnapshot(m.ctx)
	if err != nil {
		m.snap.finish(nil, nil, nil)
		if m.ctx.Err() != nil {
			return // the module or runtime closed meanwhile
		}
		msg := "wasmhost: no snapshot for workflow instances; they initialise afresh"
		if errors.Is(err, wasmbin.ErrUnsupported) || errors.Is(err, errNotSnapshottable) {
			m.rt.logger.Info(msg, "module", m.name, "reason", err)
		} else {
			m.rt.logger.Warn(msg, "module", m.name, "err", err)
		}
		return
	}
	closed := func() bool { return m.ctx.Err() != nil }
	discard := func(*snapshot) {} // nothing of its own to release: images close when collected
	if m.snap.finish(s, closed, discard) {
		m.rt.logger.Info("wasmhost: instances are now restored from a snapshot", "module", m.name,
			"workflows", !m.rt.noSnapshots, "activities", s.activityOK && !m.rt.noActivitySnapshots, "generators", len(s.generators),
			"pages", s.pages, "bytes", s.size, "globals", len(s.globals), "mapped", s.image != nil, "took", s.took,
			"load", s.load.Round(time.Microsecond), "init", s.init.Round(time.Microsecond), "kept", keep == nil)
		if s.activityOK && !m.rt.noActivitySnapshots {
			m.act.skip() // activities restore from the snapshot: no image needed
		}
		// After publishing it: nothing waits for the disk. As a call of the runtime's, so
		// that closing it waits for the file (a closed runtime keeps nothing).
		if keep != nil {
			if _, _, done, err := m.rt.enter(context.Background()); err == nil {
				keep()
				done()
			}
		}
	}
}

// errNotSnapshottable marks reasons inherent to the module (as opposed to
// failures) for which it gets no snapshot.
var errNotSnapshottable = errors.New("module cannot be snapshotted")

// makeSnapshot reads the snapshot kept from an earlier process (snapfile.go) or, when
// there is none that can be used, initialises two instances of the variant and checks
// that they ended in the same state; keep then writes it for the next process (nil when
// it was read).
func (m *Module) makeSnapshot(ctx context.Context) (s *snapshot, keep func(), err error) {
	start := time.Now()
	if m.variant == nil {
		return nil, nil, m.noVariant
	}
	if s = m.readSnapshot(); s == nil {
		v, err := m.loadedVariant(ctx)
		if err != nil {
			return nil, nil, err
		}
		loadedAt := time.Now()
		if s, err = m.captureTwice(ctx, v); err != nil {
			return nil, nil, err
		}
		s.load, s.init = loadedAt.Sub(start), time.Since(loadedAt)
		made := *s // with its chunks, which an image takes over below
		keep = func() { m.writeSnapshot(&made) }
	} else if m.rt.alloc != nil {
		s.alloc = sizedAllocator{base: m.rt.alloc, min: uint64(s.pages) * wasmPage}
	}
	if m.rt.alloc != nil && !m.rt.noImages && uint64(s.pages)*wasmPage >= minImageSize {
		chunks := make([]linmem.Chunk, len(s.chunks))
		for i, c := range s.chunks {
			chunks[i] = linmem.Chunk{Offset: uint64(c.offset), Data: c.data}
		}
		img, err := linmem.NewImage(uint64(s.pages)*wasmPage, chunks)
		if err != nil {
			m.rt.logger.Debug("wasmhost: no memory image for the snapshot; restored memories are copied", "module", m.name, "err", err)
		} else {
			// The image is never closed explicitly: restores in progress may
			// still map it when the module closes. Its file is closed by
			// the garbage collector once nothing refers to it.
			s.image, s.alloc = img, img.Allocator()
			s.chunks = nil // in the image now
		}
	}
	s.took = time.Since(start)
	return s, keep, nil
}

// minImageSize is the smallest memory mapped from an image rather than
// copied: below it, the mapping costs more than the copy.
const minImageSize = 2 << 20

func (m *Module) captureTwice(ctx context.Context, v *wasmbin.Variant) (*snapshot, error) {
	a, err := m.capture(ctx, v, initSeed)
	if err != nil {
		return nil, err
	}
	b, err := m.capture(ctx, v, initSeed)
	if err != nil {
		return nil, err
	}
	if diff := a.diff(b); diff != "" {
		return nil, fmt.Errorf("%w: _initialize is not deterministic: two runs differ in %s", errNotSnapshottable, diff)
	}
	if !m.rt.noActivitySnapshots {
		// A third run with other random bytes finds the random generators that an
		// activity instance must reseed (reseed.go).
		if c, err := m.capture(ctx, v, initSeed+1); err != nil {
			m.rt.logger.Debug("wasmhost: no activity instances from the snapshot", "module", m.name, "err", err)
		} else if reason := a.activityCompatible(c); reason != "" {
			m.rt.logger.Info("wasmhost: no activity instances from the snapshot", "module", m.name, "reason", reason)
		} else if a.generators, err = findGenerators(a.mem, c.mem); err != nil {
			m.rt.logger.Info("wasmhost: no activity instances from the snapshot", "module", m.name, "reason", err)
		} else {
			a.activityOK = true
		}
	}
	a.digest = sha256.Sum256(a.mem) // what parked images are diffed against (parked.go)
	a.mem = nil
	return a, nil
}

// activityCompatible says why a snapshot initialised with other random bytes (o)
// differs from s in more than memory contents, addresses held in globals and the number
// of clock reads, or "": a module whose initialisation depends on randomness in other
// ways does not restore activities from its snapshot. (How often the Go runtime reads the
// clock while it initialises depends on its random state; an activity's clock is the
// real one anyway.)
//
// A global that holds an address in both runs is part of the memory's layout, which the
// random seed of the maps made during _initialize moves about (see reseed.go): Go's
// return registers (RET0-RET3) are left holding the last pointers returned, and the
// snapshot's globals are consistent with its own memory. A global that differs by any
// other value could be random state of the guest's own, shared by every instance.
func (s *snapshot) activityCompatible(o *snapshot) string {
	switch {
	case s.pages != o.pages:
		return "the memory size depends on random_get"
	case len(s.globals) != len(o.globals):
		return "the globals depend on random_get"
	case !bytes.Equal(s.stderr, o.stderr):
		return "stderr depends on random_get"
	case !bytes.Equal(s.kept, o.kept):
		return "a host_call depends on random_get"
	}
	size := uint64(s.pages) * wasmPage
	for i, g := range s.globals {
		if h := o.globals[i]; g != h && (g.export != h.export || g.value >= size || h.value >= size) {
			return fmt.Sprintf("global %s depends on random_get (%#x or %#x, not an address in the memory)", g.export, g.value, h.value)
		}
	}
	return ""
}

// capture initialises an instance of the variant as instantiating the
// original would (data segments, start function, _initialize), in the
// workflow environment, and returns its state.
func (m *Module) capture(ctx context.Context, v *wasmbin.Variant, seed uint64) (*snapshot, error) {
	inst := m.newShell(KindWorkflow)
	inst.rand = &detRand{src: newChaCha8(seed, initSeedDomain)}
	ictx, _, done, err := m.rt.enter(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	ictx = withInstance(m.withAllocator(ictx, m.rt.alloc, inst, nil), inst)
	compiled, err := m.code(ictx)
	if err != nil {
		return nil, err
	}
	mod, err := m.rt.rt.InstantiateModule(ictx, compiled, inst.moduleConfig().WithStartFunctions())
	if err != nil {
		return nil, fmt.Errorf("instantiating the snapshot variant: %w", err)
	}
	defer mod.Close(context.Background())
	mem := mod.Memory()
	if mem == nil {
		return nil, fmt.Errorf("%w: no memory", errNotSnapshottable)
	}
	for i, d := range v.Data {
		if !mem.Write(d.Offset, d.Data) {
			return nil, fmt.Errorf("data segment %d [%#x, +%d) is outside memory", i, d.Offset, len(d.Data))
		}
	}
	inst.initializing, inst.watchWASI = true, true
	for _, name := range []string{v.Start, exportInit, exportWarmup} {
		if name == "" {
			continue
		}
		fn := mod.ExportedFunction(name)
		if fn == nil && name == exportWarmup {
			continue // optional
		}
		if fn == nil {
			return nil, fmt.Errorf("the snapshot variant does not export %s", name)
		}
		if _, err := fn.Call(ictx); err != nil {
			return nil, fmt.Errorf("%s: %w", name, inst.classify(ctx, ictx, err))
		}
	}
	inst.initializing, inst.watchWASI = false, false
	if len(inst.wasiChanges) > 0 {
		return nil, fmt.Errorf("%w: _initialize changed the WASI state with %v", errNotSnapshottable, inst.wasiChanges)
	}

	s := &snapshot{clock: inst.clock.next, stderr: []byte(inst.stderr.String()), kept: slices.Clone(inst.kept)}
	if s.rand, err = inst.rand.src.MarshalBinary(); err != nil {
		return nil, err
	}
	for _, g := range v.Globals {
		eg := mod.ExportedGlobal(g.Export)
		if _, ok := eg.(api.MutableGlobal); !ok {
			return nil, fmt.Errorf("the snapshot variant does not export global %d as mutable", g.Index)
		}
		s.globals = append(s.globals, globalValue{export: g.Export, value: eg.Get()})
	}
	size := mem.Size()
	s.pages = size / wasmPage
	buf, _ := mem.Read(0, size)
	s.chunks, s.size = nonZeroChunks(buf)
	s.mem = slices.Clone(buf)
	if m.rt.alloc != nil {
		s.alloc = sizedAllocator{base: m.rt.alloc, min: uint64(size)}
	}
	return s, nil
}

const wasmPage = 64 << 10

var zeroPage [snapshotPage]byte

// nonZeroChunks copies the runs of pages of buf that are not all zeros.
func nonZeroChunks(buf []byte) ([]memoryChunk, int) {
	type run struct{ from, to int }
	var runs []run
	total := 0
	for off := 0; off < len(buf); off += snapshotPage {
		end := min(off+snapshotPage, len(buf))
		if bytes.Equal(buf[off:end], zeroPage[:end-off]) {
			continue
		}
		if n := len(runs); n > 0 && runs[n-1].to == off {
			runs[n-1].to = end
		} else {
			runs = append(runs, run{off, end})
		}
		total += end - off
	}
	// One allocation for all the data: it lives as long as the module.
	backing := make([]byte, 0, total)
	chunks := make([]memoryChunk, len(runs))
	for i, r := range runs {
		at := len(backing)
		backing = append(backing, buf[r.from:r.to]...)
		chunks[i] = memoryChunk{offset: uint32(r.from), data: backing[at:len(backing):len(backing)]}
	}
	return chunks, total
}

// diff names what differs between two snapshots of the same variant, or "".
func (s *snapshot) diff(o *snapshot) string {
	switch {
	case s.pages != o.pages:
		return fmt.Sprintf("memory size (%d and %d pages)", s.pages, o.pages)
	case !slices.EqualFunc(s.chunks, o.chunks, func(a, b memoryChunk) bool {
		return a.offset == b.offset && bytes.Equal(a.data, b.data)
	}):
		return "memory contents"
	case !slices.Equal(s.globals, o.globals):
		return "globals"
	case s.clock != o.clock:
		return "clock reads"
	case !bytes.Equal(s.rand, o.rand):
		return "random reads"
	case !bytes.Equal(s.stderr, o.stderr):
		return "stderr"
	case !bytes.Equal(s.kept, o.kept):
		return "kept host_call response"
	}
	return ""
}

// restore makes an instance from the snapshot: what newInstance makes, without running
// anything in the guest. A workflow instance continues the snapshot's deterministic
// clock and random source; an activity instance gets the real ones and its guest's
// random generators reseeded.
func (m *Module) restore(ctx context.Context, s *snapshot, kind Kind) (*Instance, error) {
	inst := m.newShell(kind)
	if kind == KindActivity {
		inst.env.monoBase, inst.env.monoStart = s.clock, time.Now()
	}
	if kind == KindWorkflow {
		inst.clock.next = s.clock
		src := new(rand.ChaCha8)
		if err := src.UnmarshalBinary(s.rand); err != nil {
			return nil, err
		}
		inst.rand.src = src
	}
	if len(s.stderr) > 0 {
		inst.stderr.reset(s.stderr)
	}
	inst.kept = slices.Clone(s.kept)

	ictx, _, done, err := m.rt.enter(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	if s.alloc != nil {
		ictx = m.withAllocator(ictx, s.alloc, inst, &inst.linMem)
	} else {
		ictx = m.withAllocator(ictx, nil, inst, nil)
	}
	compiled, err := m.code(ictx)
	if err != nil {
		return nil, err
	}
	mod, err := m.rt.rt.InstantiateModule(ictx, compiled, inst.moduleConfig().WithStartFunctions())
	if err != nil {
		return nil, inst.classify(ctx, ictx, err)
	}
	if err := s.apply(mod); err != nil {
		_ = closeWithMemory(context.Background(), mod, inst.env)
		return nil, err
	}
	if kind == KindActivity {
		if err := reseedGenerators(mod.Memory(), s.generators); err != nil {
			_ = closeWithMemory(context.Background(), mod, inst.env)
			return nil, err
		}
	}
	inst.mod = mod
	inst.alloc = mod.ExportedFunction(exportAlloc)
	inst.run = mod.ExportedFunction(exportRun)
	inst.restored = true
	inst.snap = s
	return inst, nil
}

// apply writes the snapshot's memory and globals into a fresh instance of
// the variant.
func (s *snapshot) apply(mod api.Module) error {
	mem := mod.Memory()
	if cur := mem.Size() / wasmPage; cur < s.pages {
		if _, ok := mem.Grow(s.pages - cur); !ok {
			return fmt.Errorf("growing memory from %d to %d pages failed (memory limit?)", cur, s.pages)
		}
	} else if cur > s.pages {
		return fmt.Errorf("fresh memory has %d pages, more than the snapshot's %d", cur, s.pages)
	}
	if s.image == nil {
		buf, ok := mem.Read(0, mem.Size())
		if !ok {
			return errors.New("memory not readable")
		}
		// Fresh memory is zeroed: only the non-zero pages need writing.
		for _, c := range s.chunks {
			copy(buf[c.offset:], c.data)
		}
	} // else the memory is mapped from the image: growing it revealed the contents
	if !setGlobals(mod, s.globals) {
		return errors.New("a global of the snapshot is not exported as mutable")
	}
	return nil
}

// sizedAllocator makes memories with room for at least min bytes from the
// start, so that growing them to the snapshot's size copies nothing (and, on
// Linux, they are mappings outside the Go heap rather than slices).
type sizedAllocator struct {
	base experimental.MemoryAllocator
	min  uint64
}

func (a sizedAllocator) Allocate(capBytes, maxBytes uint64) experimental.LinearMemory {
	return a.base.Allocate(min(max(capBytes, a.min), maxBytes), maxBytes)
}

// wasiStateless are the WASI functions that cannot change an instance's
// WASI state as wasmhost configures it (no files but stdio, whose writers
// are wasmhost's, no sockets, clocks and random source wasmhost's): calls to
// them need no watching while a snapshot is made. The clock, the random
// source and stderr are captured by the snapshot.
var wasiStateless = map[string]bool{
	"args_get": true, "args_sizes_get": true, "environ_get": true, "environ_sizes_get": true,
	"clock_res_get": true, "clock_time_get": true, "random_get": true,
	"fd_fdstat_get": true, "fd_filestat_get": true, "fd_prestat_get": true, "fd_prestat_dir_name": true,
	"path_filestat_get": true, "path_readlink": true,
	"fd_write": true, "poll_oneoff": true, "sched_yield": true, "proc_exit": true, "proc_raise": true,
}

// wasiWatch is the function listener factory the WASI host module is
// instantiated with: it watches the functions not in wasiStateless (rarely
// called: the others, on every hot path, have no listener and cost nothing),
// and records those that succeed while an instance is being initialised for
// a snapshot.
type wasiWatch struct{}

// NewFunctionListener implements experimental.FunctionListenerFactory.
func (wasiWatch) NewFunctionListener(def api.FunctionDefinition) experimental.FunctionListener {
	if wasiStateless[def.Name()] {
		return nil
	}
	return wasiWatcher{}
}

type wasiWatcher struct{}

func (wasiWatcher) Before(context.Context, api.Module, api.FunctionDefinition, []uint64, experimental.StackIterator) {
}

func (wasiWatcher) After(ctx context.Context, _ api.Module, def api.FunctionDefinition, results []uint64) {
	inst := instanceFrom(ctx)
	if inst == nil || !inst.watchWASI {
		return
	}
	// Every watched function returns an errno; one that failed changed nothing.
	if len(results) == 0 || uint32(results[0]) == 0 {
		inst.wasiChanges = append(inst.wasiChanges, def.Name())
	}
}

func (wasiWatcher) Abort(context.Context, api.Module, api.FunctionDefinition, error) {}
