// Package membudget owns the guest memory budget of a node: a weighted semaphore of
// bytes that the live instances of activities, workflows and webhook endpoints hold
// through accounts, one per run. It decides who gets memory and in what order; the engine
// (package actors, run_memory.go) decides what a run reserves and evicts parked
// workflow instances when asked to reclaim.
//
// An account is admitted with a credit reserved before its instance is made; the
// instance then charges its size and each growth to it (wasmhost.MemoryBudget), from the
// credit first. Growths are served before admissions, and only the oldest run's growth
// waits for room: a younger run's growth that finds none gives way at once (the growth
// fails), and so does a younger one waiting when an older one must wait, so that memory
// flows to the oldest run, which finishes. Whenever reservations wait, the budget asks
// its reclaim function to evict parked workflow instances, least recently parked first,
// until what they hold covers the waiters.
package membudget

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// FormatSize writes a size in bytes in the largest binary unit that divides it
// ("512 MiB", "100000 bytes").
func FormatSize(n uint64) string {
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

// Budget is a weighted semaphore of bytes of guest memory, held through
// Accounts. A waiting growth (at most one: the oldest run's) is served first, then
// waiting admissions in order of arrival, so that a large request is not starved by a
// stream of small ones.
type Budget struct {
	mu   sync.Mutex
	size uint64
	used uint64
	// reclaiming: the part of used held by evicted instances that have not closed yet.
	reclaiming uint64
	// holding: the accounts that hold memory (held > 0).
	holding    int
	seq        uint64    // of the last account admitted
	grows      list.List // of *waiter: at most one, the oldest run's growth
	admissions list.List // of *waiter, oldest first
	// reclaim evicts parked workflow instances, least recently parked first, until what
	// their accounts hold adds up to need bytes or there are none left, marks those
	// accounts reclaimed and returns their sum. It is called with mu held; nil: nothing
	// can be reclaimed.
	reclaim func(need uint64) uint64
}

// waiter is an admission or a growth waiting for room.
type waiter struct {
	a       *Account
	n       uint64
	refused bool          // set before ready is closed: not granted (breakDeadlock)
	ready   chan struct{} // closed when granted or refused
}

// New returns a budget of size bytes. reclaim, if not nil, is called with the budget's
// lock held when reservations wait: it evicts parked workflow instances, least recently
// parked first, until what their accounts hold adds up to need bytes or there are none
// left, marking those accounts reclaimed (Account.Reclaim), and returns their sum.
func New(size uint64, reclaim func(need uint64) uint64) *Budget {
	return &Budget{size: size, reclaim: reclaim}
}

// Account is the memory one run holds in the budget: an admission reserved
// before its instance is made (credit), then what the instance charges through it as
// wasmhost.MemoryBudget (its size, then each growth), from the credit first. What is
// left of the credit stays reserved until the run ends.
type Account struct {
	b   *Budget
	seq uint64 // order of admission: the lower, the older the run
	// Guarded by b.mu: held is everything reserved and not released, credit included;
	// credit is the part reserved ahead and not charged yet; reclaimed is the part of
	// held counted in b.reclaiming since the instance was evicted; peak is the most the
	// instance has held (charged).
	held, credit, reclaimed, peak uint64
	// peakTo, if set, receives peak when the account is closed (SetPeakTo).
	peakTo *atomic.Uint64
}

// Admit reserves n bytes for a new run, waiting behind the growths and the earlier
// admissions until they are free or ctx ends.
func (b *Budget) Admit(ctx context.Context, n uint64) (*Account, error) {
	if n > b.size {
		return nil, fmt.Errorf("reserve %s of guest memory: %w (%s)", FormatSize(n), errOverBudget, FormatSize(b.size))
	}
	a := &Account{b: b}
	if err := b.wait(ctx, &b.admissions, a, n); err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.seq++
	a.seq, a.credit = b.seq, n
	b.mu.Unlock()
	return a, nil
}

// TryAdmit reserves n bytes for a new run if they are free now and nobody waits, and
// returns nil otherwise.
func (b *Budget) TryAdmit(n uint64) *Account {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.grows.Len() > 0 || b.admissions.Len() > 0 || b.used+n > b.size {
		return nil
	}
	b.seq++
	a := &Account{b: b, seq: b.seq, credit: n}
	b.take(a, n)
	return a
}

// wait reserves n bytes for a, at once if q and every queue served before it are empty
// and they fit, else by waiting in q until granted, refused (errGiveWay) or ctx ends.
func (b *Budget) wait(ctx context.Context, q *list.List, a *Account, n uint64) error {
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
			if front.Value.(*waiter).a.seq < a.seq {
				b.mu.Unlock()
				return errGiveWay
			}
			b.refuse(q.Remove(front).(*waiter))
		}
	}
	w := &waiter{a: a, n: n, ready: make(chan struct{})}
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
func (a *Account) Grow(ctx context.Context, n uint64) bool {
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
func (a *Account) Release(n uint64) {
	b := a.b
	b.mu.Lock()
	defer b.mu.Unlock()
	b.give(a, min(n, a.held-a.credit))
	b.grant()
}

// Close gives back everything the account still holds, once its run is over and its
// instance closed (nil: no account).
func (a *Account) Close() {
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

// SetPeakTo has Close hand the most the account's instance held on to peak, as an
// estimate of the next run's need: the peak itself, or half of what peak held if that
// is more, so that a larger peak before it fades over a few runs. Call it before the
// account is used.
func (a *Account) SetPeakTo(peak *atomic.Uint64) {
	a.peakTo = peak
}

// Reclaim marks what the account holds and was not reclaimed yet as reclaimed (coming
// back: its instance was evicted and will close) and returns it. It may only be called
// by the budget's reclaim function, which runs with the budget's lock held.
func (a *Account) Reclaim() uint64 {
	n := a.held - a.reclaimed
	a.reclaimed += n
	return n
}

// take adds n bytes to what a holds. Called with mu held.
func (b *Budget) take(a *Account, n uint64) {
	if a.held == 0 && n > 0 {
		b.holding++
	}
	a.held += n
	b.used += n
}

// give takes n bytes off what a holds. Called with mu held.
func (b *Budget) give(a *Account, n uint64) {
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

// Stats is a budget's state at one moment.
type Stats struct {
	// Used is the bytes reserved, Reclaiming the part of it held by evicted instances
	// that have not closed yet.
	Used, Reclaiming uint64
	// Waiting is the number of reservations (growths and admissions) waiting for room.
	Waiting int
}

// Stats returns the budget's state now.
func (b *Budget) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return Stats{Used: b.used, Reclaiming: b.reclaiming, Waiting: b.grows.Len() + b.admissions.Len()}
}

// Parked tells the budget that a workflow instance was parked in memory: if
// reservations wait, it may be reclaimed at once.
func (b *Budget) Parked() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.shortage()
}

// grant hands the free memory to the waiters, growths first, in order, as far as it
// goes, and deals with the shortage for the others.
func (b *Budget) grant() {
	for _, q := range []*list.List{&b.grows, &b.admissions} {
		for e := q.Front(); e != nil; e = q.Front() {
			w := e.Value.(*waiter)
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
func (b *Budget) shortage() {
	b.reclaimForWaiters()
	b.breakDeadlock()
}

// reclaimForWaiters evicts parked workflow instances whose memory, with what is already
// coming back, covers what the waiters need. A parked instance only waits (for a child,
// a delay), maybe for one of these very waiters: keeping it in memory could deadlock,
// and an evicted workflow is replayed when its response comes. Called with mu held.
func (b *Budget) reclaimForWaiters() {
	if b.reclaim == nil || b.grows.Len()+b.admissions.Len() == 0 {
		return
	}
	var need uint64
	for _, q := range []*list.List{&b.grows, &b.admissions} {
		for e := q.Front(); e != nil; e = e.Next() {
			need += e.Value.(*waiter).n
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
func (b *Budget) breakDeadlock() {
	front := b.grows.Front()
	if front == nil || b.reclaiming > 0 || b.used+front.Value.(*waiter).n <= b.size {
		return
	}
	if w := front.Value.(*waiter); b.holding <= 1 && w.a.held > 0 || b.holding == 0 {
		b.refuse(b.grows.Remove(front).(*waiter))
	}
}

// refuse ends a wait without granting it. Called with mu held.
func (b *Budget) refuse(w *waiter) {
	w.refused = true
	close(w.ready)
}
