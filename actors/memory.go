package actors

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Guest memory.
//
// Every component's instances have a memory limit (ComponentConfig.MemoryLimit, enforced
// by wasmhost), and the activity attempts of the node share a budget
// (Config.MemoryBudget): before an attempt is locked, its executor reserves the
// component's whole limit from the budget, waiting (the execution stays pending) until
// there is room, and gives it back when the attempt's instance is closed or reset for
// reuse. So budget / limit attempts run at once, whatever they actually use: a
// reservation guarantees that a guest can grow to its limit without taking the node
// past its budget. An eagerly dispatched activity takes its reservation when it is
// created, or is not dispatched eagerly.
//
// Not counted: workflow instances (a parent parked with a reservation while its children
// wait for one would deadlock; their memory is bounded by the limit × max_concurrency
// and the resident bound), webhook instances, and idle instances kept ready in pools or
// reset for reuse (each holds its initial memory only, a few MiB for a Go guest: a
// grown instance is never reused).

// Defaults of the guest memory settings.
const (
	// DefaultMemoryLimit is a component's memory limit when its config gives none.
	DefaultMemoryLimit = 256 << 20
	// minDefaultMemoryBudget is the least default budget: half the machine's memory,
	// but at least this.
	minDefaultMemoryBudget = 2 << 30
	// wasmPage is the unit of a memory limit.
	wasmPage = 64 << 10
	// maxMemoryLimit is the most a wasm32 memory can hold.
	maxMemoryLimit = 4 << 30
)

// memoryLimit returns the component's memory limit in bytes.
func (c *ComponentConfig) memoryLimit() uint64 {
	if c.MemoryLimit == 0 {
		return DefaultMemoryLimit
	}
	return c.MemoryLimit
}

// checkMemory refuses memory settings that cannot work: a limit that is not a whole
// number of wasm pages, and an activity whose limit is over the budget (it would wait
// for ever).
func checkMemory(budget uint64, cfgs []ComponentConfig) error {
	for _, c := range cfgs {
		limit := c.memoryLimit()
		if limit%wasmPage != 0 {
			return fmt.Errorf("component %q: memory limit of %d bytes is not a multiple of 64 KiB (a wasm page)", c.Name, limit)
		}
		if limit > maxMemoryLimit {
			return fmt.Errorf("component %q: memory limit of %s is over the 4 GiB a wasm32 memory can address", c.Name, sizeString(limit))
		}
		if c.Type == ActivityWasm && limit > budget {
			return fmt.Errorf("component %q: memory limit of %s is over the guest memory budget of %s", c.Name, sizeString(limit), sizeString(budget))
		}
	}
	return nil
}

// defaultMemoryBudget is half the machine's memory, at least minDefaultMemoryBudget.
func defaultMemoryBudget() uint64 {
	return max(minDefaultMemoryBudget, machineMemory()/2)
}

// machineMemory returns MemTotal of /proc/meminfo, or 0 where there is none.
func machineMemory() uint64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// sizeString writes a size in bytes in the largest binary unit that divides it.
func sizeString(n uint64) string {
	for _, u := range []struct {
		shift uint
		name  string
	}{{30, "GiB"}, {20, "MiB"}, {10, "KiB"}} {
		if n >= 1<<u.shift && n%(1<<u.shift) == 0 {
			return fmt.Sprintf("%d %s", n>>u.shift, u.name)
		}
	}
	return fmt.Sprintf("%d bytes", n)
}

// errOverBudget: a reservation larger than the whole budget, which could never be granted.
var errOverBudget = errors.New("more than the whole guest memory budget")

// memoryBudget is a weighted semaphore of bytes of guest memory. Reservations are granted
// first come, first served, so that a large one is not starved by a stream of small
// ones.
type memoryBudget struct {
	mu      sync.Mutex
	size    uint64
	used    uint64
	waiters list.List // of *memoryWaiter, oldest first
}

type memoryWaiter struct {
	n     uint64
	ready chan struct{} // closed when granted
}

func newMemoryBudget(size uint64) *memoryBudget {
	return &memoryBudget{size: size}
}

// acquire reserves n bytes, waiting until they are free or ctx ends.
func (b *memoryBudget) acquire(ctx context.Context, n uint64) error {
	if n > b.size {
		return fmt.Errorf("reserve %s of guest memory: %w (%s)", sizeString(n), errOverBudget, sizeString(b.size))
	}
	b.mu.Lock()
	if b.waiters.Len() == 0 && b.used+n <= b.size {
		b.used += n
		b.mu.Unlock()
		return nil
	}
	w := &memoryWaiter{n: n, ready: make(chan struct{})}
	elem := b.waiters.PushBack(w)
	b.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-w.ready: // granted meanwhile: give it back
		b.used -= n
	default:
		b.waiters.Remove(elem)
	}
	b.grant() // whoever waited behind it may fit now
	return ctx.Err()
}

// tryAcquire reserves n bytes if they are free now and nobody waits.
func (b *memoryBudget) tryAcquire(n uint64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.waiters.Len() > 0 || b.used+n > b.size {
		return false
	}
	b.used += n
	return true
}

// release gives back n bytes reserved by acquire or tryAcquire.
func (b *memoryBudget) release(n uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	b.grant()
}

// grant hands the free memory to the waiters, in order, as far as it goes.
func (b *memoryBudget) grant() {
	for e := b.waiters.Front(); e != nil; e = b.waiters.Front() {
		w := e.Value.(*memoryWaiter)
		if b.used+w.n > b.size {
			return
		}
		b.used += w.n
		b.waiters.Remove(e)
		close(w.ready)
	}
}
