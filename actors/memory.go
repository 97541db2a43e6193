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
	"sync/atomic"
)

// Guest memory.
//
// Every component's instances have a memory limit (ComponentConfig.MemoryLimit, enforced
// by wasmhost), and the live instances of the node's activities, workflows and webhook
// endpoints share a budget (Config.MemoryBudget) that counts what each one's linear
// memory holds, not its limit: a Go guest holds 4-6 MiB, its limit is 256 MiB by default.
//
//   - Admission. Before an activity or a workflow is locked (or dispatched eagerly), its
//     executor reserves the most the component's last run held (Component.
//     memoryEstimate; its starting size before any run ended), waiting in the pending
//     queue until there is room: waiting for memory is not an attempt. Webhook requests
//     reserve the same way, bounded by their timeout. The instance then charges its
//     actual size and growths to that reservation first (wasmhost
//     Instance.CountMemoryIn). Reserving the last peak rather than the starting size
//     makes a component whose runs grow large wait before it starts, instead of
//     starting many runs that then wait for (or give way to) one another mid-run.
//   - Growth. Each memory.grow of a run beyond its reservation reserves what it adds
//     before the memory grows. Growths are served before admissions: a run that holds a
//     lock is not made to wait for executions that have not started.
//   - Eviction. Whenever reservations wait, the budget evicts workflow instances parked in
//     memory (resident.go), least recently parked first, until what they hold covers the
//     waiters. A parked instance only waits, maybe for the very child that waits for
//     memory, and an evicted workflow is replayed when its response arrives.
//   - Failure. Only the oldest run's growth waits for room (until its run's context
//     ends: the lock expires, the execution is cancelled); a younger run's growth that
//     finds no room gives way at once, and so does a younger one waiting when an older
//     one must wait (memoryBudget.wait). Waiting runs would otherwise hold memory while
//     they wait for one another, each until its lock expired; this way memory flows to
//     the oldest run, which finishes. A run whose growth fails stops (memory.grow fails,
//     the trap wraps wasmhost.ErrMemoryBudget). That is the node's shortage, not the
//     guest's fault: the execution is unlocked and retried after its retry_exp_backoff,
//     and the attempt does not count against max_retries (memoryRetryTx); meanwhile its
//     component's reservation has grown to what the run reached (admitRun).
//   - Release. An instance's memory leaves the budget when its run ends or it is closed.
//
// Not counted: instances kept ready in pools or reset for reuse (they belong to no run;
// each holds its initial memory, a few MiB, and they are few: wasmhost bounds them).
//
// Counting limits instead, as a first attempt did, reserved 256 MiB for a workflow
// parked with 5 MiB: 64 of them overflowed a 12 GiB budget, every park evicted, and
// 2,000 concurrent fiboa(1, 3) fell from 571 to 130 workflows/s (docs/RATIONALE.md).

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
// number of wasm pages, and an activity or workflow whose limit is over the budget (an
// instance growing to its limit would wait for room that can never be).
func checkMemory(budget uint64, cfgs []ComponentConfig) error {
	for _, c := range cfgs {
		limit := c.memoryLimit()
		if limit%wasmPage != 0 {
			return fmt.Errorf("component %q: memory limit of %d bytes is not a multiple of 64 KiB (a wasm page)", c.Name, limit)
		}
		if limit > maxMemoryLimit {
			return fmt.Errorf("component %q: memory limit of %s is over the 4 GiB a wasm32 memory can address", c.Name, sizeString(limit))
		}
		if (c.Type == ActivityWasm || c.Type == Workflow) && limit > budget {
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

// errGiveWay: a growth refused so that an older run can have the memory (see wait and
// breakDeadlock).
var errGiveWay = errors.New("refused: an older run needs the guest memory")

// memoryBudget is a weighted semaphore of bytes of guest memory, held through
// memoryAccounts. A waiting growth (at most one: the oldest run's) is served first, then
// waiting admissions in order of arrival, so that a large request is not starved by a
// stream of small ones.
type memoryBudget struct {
	mu   sync.Mutex
	size uint64
	used uint64
	// reclaiming: the part of used held by evicted instances that have not closed yet.
	reclaiming uint64
	// holding: the accounts that hold memory (held > 0).
	holding    int
	seq        uint64    // of the last account admitted
	grows      list.List // of *memoryWaiter: at most one, the oldest run's growth
	admissions list.List // of *memoryWaiter, oldest first
	// reclaim evicts parked workflow instances, least recently parked first, until what
	// their accounts hold adds up to need bytes or there are none left, marks those
	// accounts reclaimed and returns their sum. It is called with mu held; nil: nothing
	// can be reclaimed.
	reclaim func(need uint64) uint64
}

type memoryWaiter struct {
	a       *memoryAccount
	n       uint64
	refused bool          // set before ready is closed: not granted (breakDeadlock)
	ready   chan struct{} // closed when granted or refused
}

func newMemoryBudget(size uint64) *memoryBudget {
	return &memoryBudget{size: size}
}

// memoryAccount is the memory one run holds in the budget: an admission reserved
// before its instance is made (credit), then what the instance charges through it as
// wasmhost.MemoryBudget (its size, then each growth), from the credit first. What is
// left of the credit stays reserved until the run ends.
type memoryAccount struct {
	b   *memoryBudget
	seq uint64 // order of admission: the lower, the older the run
	// Guarded by b.mu: held is everything reserved and not released, credit included;
	// credit is the part reserved ahead and not charged yet; reclaimed is the part of
	// held counted in b.reclaiming since the instance was evicted; peak is the most the
	// instance has held (charged).
	held, credit, reclaimed, peak uint64
	// peakTo, if set, receives peak when the account is closed (Component.lastPeak).
	peakTo *atomic.Uint64
}

// admitRun reserves the guest memory of a run of c before its instance is made: the
// most the last run held (memoryEstimate), so that a component whose runs grow large
// waits for room before it starts, rather than starting and then waiting (or giving way)
// in the middle of its run.
func (e *Engine) admitRun(ctx context.Context, c *Component) (*memoryAccount, error) {
	a, err := e.memory.admit(ctx, c.memoryEstimate())
	if err != nil {
		return nil, err
	}
	a.peakTo = &c.lastPeak
	return a, nil
}

// tryAdmitRun is admitRun if the memory is free now and nobody waits; else it returns nil.
func (e *Engine) tryAdmitRun(c *Component) *memoryAccount {
	a := e.memory.tryAdmit(c.memoryEstimate())
	if a != nil {
		a.peakTo = &c.lastPeak
	}
	return a
}

// admit reserves n bytes for a new run, waiting behind the growths and the earlier
// admissions until they are free or ctx ends.
func (b *memoryBudget) admit(ctx context.Context, n uint64) (*memoryAccount, error) {
	if n > b.size {
		return nil, fmt.Errorf("reserve %s of guest memory: %w (%s)", sizeString(n), errOverBudget, sizeString(b.size))
	}
	a := &memoryAccount{b: b}
	if err := b.wait(ctx, &b.admissions, a, n); err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.seq++
	a.seq, a.credit = b.seq, n
	b.mu.Unlock()
	return a, nil
}

// tryAdmit reserves n bytes for a new run if they are free now and nobody waits, and
// returns nil otherwise.
func (b *memoryBudget) tryAdmit(n uint64) *memoryAccount {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.grows.Len() > 0 || b.admissions.Len() > 0 || b.used+n > b.size {
		return nil
	}
	b.seq++
	a := &memoryAccount{b: b, seq: b.seq, credit: n}
	b.take(a, n)
	return a
}

// wait reserves n bytes for a, at once if q and every queue served before it are empty
// and they fit, else by waiting in q until granted, refused (errGiveWay) or ctx ends.
func (b *memoryBudget) wait(ctx context.Context, q *list.List, a *memoryAccount, n uint64) error {
	b.mu.Lock()
	if b.grows.Len() == 0 && (q == &b.grows || b.admissions.Len() == 0) && b.used+n <= b.size {
		b.take(a, n)
		b.mu.Unlock()
		return nil
	}
	if q == &b.grows {
		// Growths wait one at a time, the oldest run's: a younger run gives way at once
		// rather than hold memory while it waits, and an older one makes the younger
		// waiting one give way. Memory then flows to the oldest run, which finishes
		// within its lock instead of every run waiting its lock away.
		if front := q.Front(); front != nil {
			if front.Value.(*memoryWaiter).a.seq < a.seq {
				b.mu.Unlock()
				return errGiveWay
			}
			b.refuse(q.Remove(front).(*memoryWaiter))
		}
	}
	w := &memoryWaiter{a: a, n: n, ready: make(chan struct{})}
	elem := q.PushBack(w)
	b.shortage()
	b.mu.Unlock()
	select {
	case <-w.ready:
		if w.refused {
			return errGiveWay
		}
		return nil
	case <-ctx.Done():
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-w.ready:
		if !w.refused { // granted meanwhile: give it back
			b.give(a, n)
		}
	default:
		q.Remove(elem)
	}
	b.grant() // whoever waited behind it may fit now
	return ctx.Err()
}

// Grow reserves n more bytes for the account's instance (wasmhost.MemoryBudget): from
// its credit first, then from the budget, waiting as a growth until ctx ends.
func (a *memoryAccount) Grow(ctx context.Context, n uint64) bool {
	b := a.b
	b.mu.Lock()
	fromCredit := min(a.credit, n)
	a.credit -= fromCredit
	b.mu.Unlock()
	if n -= fromCredit; n > 0 && (n > b.size || b.wait(ctx, &b.grows, a, n) != nil) {
		b.mu.Lock()
		a.credit += fromCredit
		b.mu.Unlock()
		return false
	}
	b.mu.Lock()
	a.peak = max(a.peak, a.held-a.credit)
	b.mu.Unlock()
	return true
}

// Release gives back n bytes charged by Grow (wasmhost.MemoryBudget).
func (a *memoryAccount) Release(n uint64) {
	b := a.b
	b.mu.Lock()
	defer b.mu.Unlock()
	b.give(a, min(n, a.held-a.credit))
	b.grant()
}

// close gives back everything the account still holds, once its run is over and its
// instance closed (nil: no account).
func (a *memoryAccount) close() {
	if a == nil {
		return
	}
	b := a.b
	b.mu.Lock()
	defer b.mu.Unlock()
	a.credit = 0
	b.give(a, a.held)
	b.grant()
	if a.peakTo != nil && a.peak > 0 {
		// The last run's peak, but a larger one before it fades over a few runs only:
		// a run cut short (cancelled, refused memory) says little about the next.
		// Concurrent closes may lose one another's update: it is an estimate.
		a.peakTo.Store(max(a.peak, a.peakTo.Load()/2))
	}
}

// take adds n bytes to what a holds. Called with mu held.
func (b *memoryBudget) take(a *memoryAccount, n uint64) {
	if a.held == 0 && n > 0 {
		b.holding++
	}
	a.held += n
	b.used += n
}

// give takes n bytes off what a holds. Called with mu held.
func (b *memoryBudget) give(a *memoryAccount, n uint64) {
	if n == 0 {
		return
	}
	a.held -= n
	b.used -= n
	if a.held == 0 {
		b.holding--
	}
	if r := min(n, a.reclaimed); r > 0 {
		a.reclaimed -= r
		b.reclaiming -= r
	}
}

// inUse returns the bytes reserved now.
func (b *memoryBudget) inUse() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// parked tells the budget that a workflow instance was parked in memory: if
// reservations wait, it may be reclaimed at once.
func (b *memoryBudget) parked() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.shortage()
}

// grant hands the free memory to the waiters, growths first, in order, as far as it
// goes, and deals with the shortage for the others.
func (b *memoryBudget) grant() {
	for _, q := range []*list.List{&b.grows, &b.admissions} {
		for e := q.Front(); e != nil; e = q.Front() {
			w := e.Value.(*memoryWaiter)
			if b.used+w.n > b.size {
				b.shortage()
				return
			}
			b.take(w.a, w.n)
			q.Remove(e)
			close(w.ready)
		}
	}
}

// shortage: reservations wait. Parked workflow instances are evicted for them
// (reclaimForWaiters), and a growth nobody can make room for is refused
// (breakDeadlock). Called with mu held.
func (b *memoryBudget) shortage() {
	b.reclaimForWaiters()
	b.breakDeadlock()
}

// reclaimForWaiters evicts parked workflow instances whose memory, with what is already
// coming back, covers what the waiters need. A parked instance only waits (for a child,
// a delay), maybe for one of these very waiters: keeping it in memory could deadlock,
// and an evicted workflow is replayed when its response comes. Called with mu held.
func (b *memoryBudget) reclaimForWaiters() {
	if b.reclaim == nil || b.grows.Len()+b.admissions.Len() == 0 {
		return
	}
	var need uint64
	for _, q := range []*list.List{&b.grows, &b.admissions} {
		for e := q.Front(); e != nil; e = e.Next() {
			need += e.Value.(*memoryWaiter).n
		}
	}
	if coming := b.size - b.used + b.reclaiming; need > coming {
		b.reclaiming += b.reclaim(need - coming)
	}
}

// breakDeadlock refuses the waiting growth when it does not fit, no evicted memory is
// coming back, and no other instance holds memory: it can only be over the budget by
// itself (a webhook endpoint's limit is not checked against the budget), and nobody
// would ever give memory back. Called with mu held.
func (b *memoryBudget) breakDeadlock() {
	front := b.grows.Front()
	if front == nil || b.reclaiming > 0 || b.used+front.Value.(*memoryWaiter).n <= b.size {
		return
	}
	if w := front.Value.(*memoryWaiter); b.holding <= 1 && w.a.held > 0 || b.holding == 0 {
		b.refuse(b.grows.Remove(front).(*memoryWaiter))
	}
}

// refuse ends a wait without granting it. Called with mu held.
func (b *memoryBudget) refuse(w *memoryWaiter) {
	w.refused = true
	close(w.ready)
}
