package wasmhost

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/tetratelabs/wazero/experimental"

	"github.com/obelisk-go/obelisk/wasmhost/internal/linmem"
)

// Memory limits.
//
// wazero caps memories per runtime (Config.MemoryLimitPages), but components of one
// runtime need limits of their own. So every memory of a module with a limit is made
// through limitAllocator, which refuses to grow it past the limit: memory.grow then
// returns -1, as at a declared maximum, and a Go guest fails with "fatal error: out of
// memory". The instance records that the limit was hit, so that the trap says so.
//
// Memory budgets.
//
// An instance may also be counted in a budget shared with other instances
// (Instance.CountMemoryIn, a node-wide one in the engine): the bytes its memory holds,
// not its limit. CountMemoryIn reserves what the instance holds, and each memory.grow of
// a run reserves what it adds before the memory grows, as long as the budget makes it
// wait (at most until the run's context ends). If the budget refuses, memory.grow returns
// -1 and the trap wraps ErrMemoryBudget: the budget, not the module, was short. The
// run's end, or Close, releases it all. Instances kept ready in pools or reset for reuse
// are in no budget: they belong to no run. So every memory is made through
// limitAllocator, with a limit or not.

// ErrMemoryLimit is in the chain of the [*TrapError] of a guest that failed after its
// memory reached the module's limit ([MemoryLimitPages]).
var ErrMemoryLimit = errors.New("memory limit reached")

// ErrMemoryBudget is in the chain of the error of [Instance.CountMemoryIn], or of the [*TrapError]
// of a run, that could not reserve memory from its [MemoryBudget] before its context
// ended. It is the shared budget that was short, not the guest that misbehaved: the same
// run may succeed once other instances give memory back.
var ErrMemoryBudget = errors.New("guest memory budget exhausted")

// MemoryBudget is guest memory shared by instances (see [Instance.CountMemoryIn]). Its
// methods are called from the goroutines that instantiate and run instances, and may
// be called concurrently.
type MemoryBudget interface {
	// Grow reserves n more bytes, waiting until the budget has room or ctx ends, and
	// reports whether it reserved them.
	Grow(ctx context.Context, n uint64) bool
	// Release gives back n bytes reserved by Grow.
	Release(n uint64)
}

// CompileOption configures a module at [Runtime.Compile].
type CompileOption func(*compileOptions)

type compileOptions struct {
	memoryLimitPages uint32
	preload          bool
}

// MemoryLimitPages caps the linear memory of every instance of the module at pages
// (64 KiB each); 0 means the runtime's cap ([Config.MemoryLimitPages]). A module whose
// declared minimum is larger is refused; a guest that grows its memory past it fails
// with a [*TrapError] wrapping [ErrMemoryLimit] ("memory limit of N MiB reached").
func MemoryLimitPages(pages uint32) CompileOption {
	return func(o *compileOptions) { o.memoryLimitPages = pages }
}

// Preload says that the module is about to be used (unfinished executions need it):
// its code stays loaded after Compile, rather than being unloaded and loaded again by
// its first instance (load.go), and its workflow snapshot is made, or read from the
// cache dir, in the background at once, so that the first instance, or the first
// resume of a parked workflow, does not wait for either.
func Preload() CompileOption {
	return func(o *compileOptions) { o.preload = true }
}

// checkMemoryLimit records the module's declared minimum memory (MemoryMin must answer
// after the code is unloaded, see load.go) and refuses a module whose minimum is over
// its limit: no instance of it could start.
func (m *Module) checkMemoryLimit() error {
	mem, ok := m.compiled.ExportedMemories()[exportMemory]
	if !ok {
		return nil // checkABI says so
	}
	m.minPages = mem.Min()
	if m.limitPages != 0 && m.minPages > m.limitPages {
		return fmt.Errorf("declares a minimum memory of %s, over its memory limit of %s",
			pagesSize(m.minPages), pagesSize(m.limitPages))
	}
	return nil
}

// MemoryMin returns the declared minimum of the module's memory, in bytes: what every
// instance of it holds at least.
func (m *Module) MemoryMin() uint64 { return uint64(m.minPages) * wasmPage }

// pagesSize writes a number of wasm pages as a size: "256 MiB", or "1088 KiB" when
// not a whole number of MiB.
func pagesSize(pages uint32) string { return bytesSize(uint64(pages) * wasmPage) }

// withAllocator returns ctx with the allocator of inst's memory: base (nil: the
// platform's default) under the module's limit and counted in inst's budget. record, if
// set, receives the memory base made (for instance reuse, which resets it).
func (m *Module) withAllocator(ctx context.Context, base experimental.MemoryAllocator, inst *Instance, record *experimental.LinearMemory) context.Context {
	if base == nil {
		base = linmem.HeapAllocator()
	}
	return experimental.WithMemoryAllocator(ctx, limitAllocator{
		base: base, limit: uint64(m.limitPages) * wasmPage, env: inst.env, record: record})
}

// limitAllocator makes memories with base that do not grow past limit bytes (0: no
// limit) and whose growth is counted in env's budget.
type limitAllocator struct {
	base   experimental.MemoryAllocator
	limit  uint64
	env    *instEnv
	record *experimental.LinearMemory
}

func (a limitAllocator) Allocate(capBytes, maxBytes uint64) experimental.LinearMemory {
	if a.limit > 0 {
		// No more address space than the limit (the mmap allocator reserves maxBytes).
		maxBytes = min(maxBytes, a.limit)
		capBytes = min(capBytes, maxBytes)
	}
	mem := a.base.Allocate(capBytes, maxBytes)
	if a.record != nil {
		*a.record = mem
	}
	lm := &limitedMemory{LinearMemory: mem, limit: a.limit, env: a.env}
	a.env.mem = lm
	return lm
}

// limitedMemory refuses to grow past limit, and reserves what a growth adds from the
// instance's budget first.
type limitedMemory struct {
	experimental.LinearMemory
	limit uint64
	env   *instEnv
	size  uint64 // bytes, as last reallocated; only the guest's goroutine changes it
	freed bool   // Free ran; only the goroutine that closes the module sets it
}

// Free releases the memory once, however often it is called: by wazero when it closes
// the module, and by Instance.closeModule after it (see there).
func (l *limitedMemory) Free() {
	if !l.freed {
		l.freed = true
		l.LinearMemory.Free()
	}
}

func (l *limitedMemory) Reallocate(size uint64) []byte {
	if l.limit > 0 && size > l.limit {
		l.env.memoryLimitHit.Store(true)
		return nil // memory.grow returns -1
	}
	var added uint64
	if size > l.size {
		added = size - l.size
		if !l.env.budget.grow(added) {
			l.env.budgetRefused.Store(size)
			return nil
		}
	}
	buf := l.LinearMemory.Reallocate(size)
	if buf == nil {
		l.env.budget.release(added)
		return nil
	}
	l.size = size
	return buf
}

// memoryCharge is what an instance holds of its budget (Instance.CountMemoryIn). It
// lives in the instance's instEnv, which its memory's limitedMemory points to.
type memoryCharge struct {
	mu     sync.Mutex
	budget MemoryBudget    // nil: the instance is in none
	ctx    context.Context // bounds a wait for memory: the run's
	held   uint64
}

// bind counts the instance, whose memory holds size bytes, in budget, waiting for them
// until ctx ends.
func (c *memoryCharge) bind(ctx context.Context, budget MemoryBudget, size uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !budget.Grow(ctx, size) {
		if cause := context.Cause(ctx); cause != nil {
			return fmt.Errorf("reserve the instance's %s of memory: %w: %w", bytesSize(size), ErrMemoryBudget, cause)
		}
		return fmt.Errorf("reserve the instance's %s of memory: %w", bytesSize(size), ErrMemoryBudget)
	}
	c.budget, c.ctx, c.held = budget, ctx, size
	return nil
}

// during makes ctx, the context of a run, bound the waits of the memory's growths.
func (c *memoryCharge) during(ctx context.Context) {
	c.mu.Lock()
	c.ctx = ctx
	c.mu.Unlock()
}

// grow reserves n more bytes, if the instance is in a budget. The lock is held during
// the wait: only the guest's goroutine grows, and nothing else needs it meanwhile (a
// Close during the run cancels ctx, and Run releases after the guest stopped).
func (c *memoryCharge) grow(n uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.budget == nil {
		return true
	}
	if !c.budget.Grow(c.ctx, n) {
		return false
	}
	c.held += n
	return true
}

// release gives back n bytes reserved by grow.
func (c *memoryCharge) release(n uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.budget == nil || n == 0 {
		return
	}
	c.budget.Release(n)
	c.held -= n
}

// unbind releases everything the instance holds and takes it out of its budget.
func (c *memoryCharge) unbind() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.budget != nil && c.held > 0 {
		c.budget.Release(c.held)
	}
	c.budget, c.ctx, c.held = nil, nil, 0
}

// bytesSize writes a size in bytes in the largest binary unit (MiB, KiB) that divides it.
func bytesSize(b uint64) string {
	switch {
	case b%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", b>>20)
	case b%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", b>>10)
	}
	return fmt.Sprintf("%d bytes", b)
}
