package wasmhost

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero/api"
)

// Reusing instances.
//
// Making an instance is mostly wazero's work, not the guest's: for a Go guest, filling
// the function table from the element segments (~6,000 references, ~160 KiB allocated)
// is most of a restore. But an instance restored from a snapshot differs from the
// snapshot only in what a run changed: its memory, its mutable globals and the host
// state its WASI functions read. Its tables, its code and its imports are the same in
// every instance. So when a run of a restored instance ends normally, the instance is
// reset instead of closed: its memory gets the snapshot's image back (linmem.Image.Reset
// copies it over the pages the run wrote, and keeps them for the next run to write
// without faults), its globals are set from the snapshot, its host
// state goes back to the snapshot's (an activity's generators get fresh random state
// again), and the wazero module is handed, in a new Instance, to the module's free list,
// from which newInstance takes before it restores.
//
// Not reused: instances whose memory grew (a reset keeps the size), whose run failed
// (a trap may leave the guest anywhere, and an abort or a kill ends the run early),
// instances not mapped from an image, and any when the free list is full.

// instEnv is the part of an instance that its WASI functions read: they are bound when
// the wazero module is instantiated, and move with it when it is reused.
type instEnv struct {
	// runDone is the Done channel of the current run's context (activities): a guest
	// sleeping in poll_oneoff wakes when it closes, so that a lock expiry kills a
	// sleeping activity on time instead of when its sleep ends.
	runDone atomic.Pointer[<-chan struct{}]
	// monoBase, monoStart: a restored activity's monotonic clock continues from the
	// snapshot's last reading (monoBase) in real time since monoStart, so that it
	// never runs backwards from what the guest runtime saw while initialising.
	monoBase  int64
	monoStart time.Time
	// memoryLimitHit: the guest tried to grow its memory past the module's limit
	// (memory.go).
	memoryLimitHit atomic.Bool
	// budget: what the instance holds of its memory budget (memory.go); budgetRefused:
	// the memory size (bytes) a growth to which the budget refused, 0 if none.
	budget        memoryCharge
	budgetRefused atomic.Uint64
	// mem is the instance's linear memory (nil until it is made), which closeModule
	// releases.
	mem *limitedMemory
}

// maxFree bounds the reset instances a module keeps per kind: each holds its wazero
// module (and an address-space reservation), but no memory pages.
const maxFree = 64

// reuse resets the instance, whose run has just ended normally, to its snapshot's
// state and puts its wazero module, in a new Instance, on the module's free list. It
// reports false when the instance cannot be reused: the caller closes it.
func (i *Instance) reuse() bool {
	m, s := i.module, i.snap
	if s == nil || s.image == nil || i.linMem == nil || m.rt.noReuse || m.ctx.Err() != nil || i.resumed != nil {
		return false
	}
	free := m.freeFor(i.kind)
	if len(free) == cap(free) {
		return false
	}
	mem := i.mod.Memory()
	if mem == nil || mem.Size() != s.pages*wasmPage || !s.image.Reset(i.linMem) {
		return false
	}
	if !setGlobals(i.mod, s.globals) {
		return false
	}
	n := &Instance{
		module: m, mod: i.mod, alloc: i.alloc, run: i.run, kind: i.kind, restored: true, reused: true,
		logger: m.rt.logger, env: i.env, stdout: i.stdout, stderr: i.stderr, clock: i.clock, rand: i.rand,
		snap: s, linMem: i.linMem, kept: slices.Clone(s.kept),
	}
	n.env.runDone.Store(nil)
	// A guest may carry on after a memory.grow failed: the next run starts afresh.
	n.env.memoryLimitHit.Store(false)
	n.env.budgetRefused.Store(0)
	n.stdout.set(nil)
	n.stderr.set(nil)
	n.stderr.reset(s.stderr)
	switch i.kind {
	case KindActivity:
		n.env.monoStart = time.Now()
		if reseedGenerators(mem, s.generators) != nil {
			return false
		}
	case KindWorkflow:
		n.clock.next = s.clock
		src := new(rand.ChaCha8)
		if src.UnmarshalBinary(s.rand) != nil {
			return false
		}
		n.rand.src = src
	}
	select {
	case free <- n:
		return true
	default:
		return false
	}
}

// setGlobals sets the mutable globals of a module instance of the variant.
func setGlobals(mod api.Module, globals []globalValue) bool {
	for _, g := range globals {
		mg, ok := mod.ExportedGlobal(g.export).(api.MutableGlobal)
		if !ok {
			return false
		}
		mg.Set(g.value)
	}
	return true
}

// freeFor returns the module's free list of reset instances of a kind.
func (m *Module) freeFor(kind Kind) chan *Instance {
	if kind == KindWorkflow {
		return m.freeWorkflows
	}
	return m.freeActivities
}

// takeFree returns a reset instance of the kind, or nil.
func (m *Module) takeFree(kind Kind) *Instance {
	select {
	case inst := <-m.freeFor(kind):
		return inst
	default:
		return nil
	}
}

// drainFree closes the reset instances (Module.Close).
func (m *Module) drainFree() {
	for _, free := range []chan *Instance{m.freeWorkflows, m.freeActivities} {
		for {
			select {
			case inst := <-free:
				_ = inst.closeModule(context.Background())
				continue
			default:
			}
			break
		}
	}
}
