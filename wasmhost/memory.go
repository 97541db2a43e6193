package wasmhost

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

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

// ErrMemoryLimit is in the chain of the [*TrapError] of a guest that failed after its
// memory reached the module's limit ([MemoryLimitPages]).
var ErrMemoryLimit = errors.New("memory limit reached")

// CompileOption configures a module at [Runtime.Compile].
type CompileOption func(*compileOptions)

type compileOptions struct {
	memoryLimitPages uint32
}

// MemoryLimitPages caps the linear memory of every instance of the module at pages
// (64 KiB each); 0 means the runtime's cap ([Config.MemoryLimitPages]). A module whose
// declared minimum is larger is refused; a guest that grows its memory past it fails
// with a [*TrapError] wrapping [ErrMemoryLimit] ("memory limit of N MiB reached").
func MemoryLimitPages(pages uint32) CompileOption {
	return func(o *compileOptions) { o.memoryLimitPages = pages }
}

// checkMemoryLimit refuses a module whose declared minimum memory is over its limit:
// no instance of it could start.
func (m *Module) checkMemoryLimit() error {
	if m.limitPages == 0 {
		return nil
	}
	mem, ok := m.compiled.ExportedMemories()[exportMemory]
	if !ok {
		return nil // checkABI says so
	}
	if min := mem.Min(); min > m.limitPages {
		return fmt.Errorf("declares a minimum memory of %s, over its memory limit of %s",
			pagesSize(min), pagesSize(m.limitPages))
	}
	return nil
}

// pagesSize writes a number of wasm pages as a size: "256 MiB", or "1088 KiB" when
// not a whole number of MiB.
func pagesSize(pages uint32) string {
	b := uint64(pages) * wasmPage
	if b%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", b>>20)
	}
	return fmt.Sprintf("%d KiB", b>>10)
}

// withAllocator returns ctx with the allocator of inst's memory: base (nil: the
// platform's default) under the module's limit. record, if set, receives the memory
// base made (for instance reuse, which resets it).
func (m *Module) withAllocator(ctx context.Context, base experimental.MemoryAllocator, inst *Instance, record *experimental.LinearMemory) context.Context {
	if m.limitPages == 0 && record == nil {
		if base == nil {
			return ctx
		}
		return experimental.WithMemoryAllocator(ctx, base)
	}
	if base == nil {
		base = linmem.HeapAllocator()
	}
	return experimental.WithMemoryAllocator(ctx, limitAllocator{
		base: base, limit: uint64(m.limitPages) * wasmPage, hit: &inst.env.memoryLimitHit, record: record})
}

// limitAllocator makes memories with base that do not grow past limit bytes (0: no
// limit) and sets hit when a guest tries to.
type limitAllocator struct {
	base   experimental.MemoryAllocator
	limit  uint64
	hit    *atomic.Bool
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
	if a.limit == 0 {
		return mem
	}
	return &limitedMemory{LinearMemory: mem, limit: a.limit, hit: a.hit}
}

// limitedMemory refuses to grow past limit.
type limitedMemory struct {
	experimental.LinearMemory
	limit uint64
	hit   *atomic.Bool
}

func (l *limitedMemory) Reallocate(size uint64) []byte {
	if size > l.limit {
		l.hit.Store(true)
		return nil // memory.grow returns -1
	}
	return l.LinearMemory.Reallocate(size)
}
