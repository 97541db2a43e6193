package actors

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestMemoryBudget: admissions are granted while they fit, then in order of arrival; a
// waiter that gives up lets the next in; tryAdmit never jumps the queue.
func TestMemoryBudget(t *testing.T) {
	ctx := context.Background()
	b := newMemoryBudget(300)
	a1, err := b.admit(ctx, 128)
	if err != nil {
		t.Fatal(err)
	}
	a2 := b.tryAdmit(128)
	if a2 == nil {
		t.Fatal("tryAdmit(128) with 172 free failed")
	}
	if b.tryAdmit(128) != nil {
		t.Fatal("tryAdmit(128) with 44 free succeeded")
	}
	big, small := make(chan error, 1), make(chan *memoryAccount, 1)
	bigCtx, giveUp := context.WithCancel(ctx)
	go func() { _, err := b.admit(bigCtx, 200); big <- err }()
	waitFor(t, func() bool { return waiting(b) == 1 })
	go func() { a, _ := b.admit(ctx, 40); small <- a }() // fits now, but waits behind big
	waitFor(t, func() bool { return waiting(b) == 2 })
	if b.tryAdmit(1) != nil {
		t.Fatal("tryAdmit jumped the queue")
	}
	giveUp()
	if err := <-big; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled admit = %v", err)
	}
	a3 := <-small // granted when big left the queue
	if a3 == nil {
		t.Fatal("the small admission was not granted")
	}
	for _, a := range []*memoryAccount{a1, a2, a3, nil} {
		a.close()
	}
	if b.inUse() != 0 || waiting(b) != 0 {
		t.Fatalf("after closing everything: used %d, %d waiters", b.inUse(), waiting(b))
	}
	if _, err := b.admit(ctx, 301); !errors.Is(err, errOverBudget) {
		t.Fatalf("admit over the budget = %v", err)
	}
}

// TestMemoryBudgetGrowth: an instance charges its size and growths to its account (as
// wasmhost does through Instance.CountMemoryIn): from the credit admitted for it first,
// the rest from the budget. A growth that does not fit waits, is served before
// admissions that came first, and proceeds when another instance releases; one whose
// context ends fails and holds nothing more. The account's peak is handed on when it
// closes.
func TestMemoryBudgetGrowth(t *testing.T) {
	ctx := context.Background()
	b := newMemoryBudget(100)
	a, err := b.admit(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	var peak atomic.Uint64
	a.peakTo = &peak
	if !a.Grow(ctx, 6) || b.inUse() != 10 || a.credit != 4 { // the instance's size
		t.Fatalf("Grow within the credit: used %d, credit %d; want 10, 4", b.inUse(), a.credit)
	}
	if !a.Grow(ctx, 6) || b.inUse() != 12 || a.credit != 0 || a.held != 12 {
		t.Fatalf("Grow past the credit: used %d, held %d, credit %d; want 12, 12, 0", b.inUse(), a.held, a.credit)
	}
	other := instance(t, b, 80)
	if !a.Grow(ctx, 8) { // 100 in use: full
		t.Fatal("Grow that fits failed")
	}

	// A new run waits for room; then a growth comes, and goes first.
	admitted := make(chan *memoryAccount, 1)
	go func() { n, _ := b.admit(ctx, 5); admitted <- n }()
	waitFor(t, func() bool { return waiting(b) == 1 })
	grown := make(chan bool, 1)
	go func() { grown <- a.Grow(ctx, 10) }()
	waitFor(t, func() bool { return waiting(b) == 2 })
	other.Release(12) // room for the growth, not for both
	if !<-grown {
		t.Fatal("the waiting growth was not granted when memory was released")
	}
	select {
	case <-admitted:
		t.Fatal("the admission was granted before the growth, or with no room")
	default:
	}
	other.close()
	n := <-admitted
	if b.inUse() != 30+5 {
		t.Fatalf("used %d, want 35", b.inUse())
	}

	// A growth that can never fit before its context ends fails, and changes nothing.
	hog, err := b.admit(ctx, 65)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if a.Grow(short, 1) {
		t.Fatal("Grow on a full budget succeeded")
	}
	if b.inUse() != 100 || a.held != 30 || waiting(b) != 0 {
		t.Fatalf("after a failed Grow: used %d, held %d, %d waiting; want 100, 30, 0", b.inUse(), a.held, waiting(b))
	}
	a.Release(30) // the instance closed
	a.close()
	n.close()
	hog.close()
	if b.inUse() != 0 {
		t.Fatalf("after closing everything: used %d", b.inUse())
	}
	if peak.Load() != 30 {
		t.Errorf("peak handed on %d, want 30", peak.Load())
	}
}

// TestMemoryBudgetYoungerGivesWay: only the oldest run's growth waits for room. A younger
// run's growth that finds none fails at once, and a younger one waiting fails when an
// older one must wait; what they give back goes to the oldest. A growth that no other
// holder could ever make room for fails at once too.
func TestMemoryBudgetYoungerGivesWay(t *testing.T) {
	ctx := context.Background()
	b := newMemoryBudget(95)
	a1, a2, a3 := instance(t, b, 30), instance(t, b, 30), instance(t, b, 30)
	grown2 := make(chan bool, 1)
	go func() { grown2 <- a2.Grow(ctx, 20) }()
	waitFor(t, func() bool { return waiting(b) == 1 })
	select {
	case g := <-grown2:
		t.Fatalf("the only growth ended (%v) while other runs held memory", g)
	case <-time.After(20 * time.Millisecond):
	}
	grown1 := make(chan bool, 1)
	go func() { grown1 <- a1.Grow(ctx, 20) }() // older: a2 gives way
	select {
	case g := <-grown2:
		if g {
			t.Fatal("the younger waiting growth was granted")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the younger waiting growth did not give way to the older one")
	}
	if a3.Grow(ctx, 20) { // younger than the waiting one: fails at once
		t.Fatal("a younger run's growth was granted while an older one waited")
	}
	a2.Release(30) // its guest failed, its instance closed
	a2.close()
	if !<-grown1 {
		t.Fatal("the oldest run's growth was refused")
	}
	a1.close()
	a3.close()
	if n := b.inUse(); n != 0 {
		t.Fatalf("used %d after closing everything", n)
	}

	// The only holder grows past what the budget could ever give it.
	alone := instance(t, b, 80)
	if alone.Grow(ctx, 20) {
		t.Fatal("a growth past the budget was granted")
	}
	alone.close()
}

// TestMemoryBudgetReclaimsParked: with the budget held by parked workflow instances (a
// parent and its child workflow, both waiting), a reservation that does not fit evicts
// the oldest parked instances whose memory covers it, and only those; a running
// instance is never evicted; an instance parked while reservations wait is evicted at
// once; an evicted instance's memory is counted as coming back until it is released, so
// that nothing more is evicted for the same need.
func TestMemoryBudgetReclaimsParked(t *testing.T) {
	ctx := context.Background()
	const size = 100
	b := newMemoryBudget(3 * size)
	res := newResident(64)
	b.reclaim = res.reclaim
	parent, child, running := instance(t, b, size), instance(t, b, size), instance(t, b, size)
	wParent := res.park("parent", "wf", parent)
	b.parked() // nobody waits: nothing is evicted
	wChild := res.park("child", "wf", child)
	b.parked()
	for _, w := range []*waiter{wParent, wChild} {
		if isClosed(w.evicted) {
			t.Fatalf("%s evicted while nobody waited", w.id)
		}
	}

	// The grandchild (half a parent) waits: the oldest parked, the parent, goes.
	grandchild := make(chan *memoryAccount, 1)
	go func() { a, _ := b.admit(ctx, size/2); grandchild <- a }()
	waitFor(t, func() bool { return isClosed(wParent.evicted) })
	if isClosed(wChild.evicted) {
		t.Fatal("the child was evicted too, though the parent's memory covers the need")
	}
	// The running instance grows: the parent's memory is coming back but covers only
	// the grandchild, so the child goes as well.
	grown := make(chan bool, 1)
	go func() { grown <- running.Grow(ctx, size) }()
	waitFor(t, func() bool { return isClosed(wChild.evicted) })
	b.mu.Lock()
	if b.reclaiming != 2*size {
		t.Errorf("reclaiming %d, want %d", b.reclaiming, 2*size)
	}
	b.mu.Unlock()

	// The evicted instances close and give their memory back: the growth goes first.
	if res.leave(wParent) || res.leave(wChild) {
		t.Fatal("an evicted waiter left as if it were not evicted")
	}
	parent.close()
	if !<-grown {
		t.Fatal("the growth was not granted")
	}
	child.close()
	g := <-grandchild
	b.mu.Lock()
	if b.reclaiming != 0 || b.used != 2*size+size/2 {
		t.Errorf("after the evicted instances closed: reclaiming %d, used %d", b.reclaiming, b.used)
	}
	b.mu.Unlock()

	// Nothing parked: a waiter just waits (the running instance is never evicted) ...
	third := make(chan *memoryAccount, 1)
	go func() { a, _ := b.admit(ctx, size); third <- a }()
	waitFor(t, func() bool { return waiting(b) == 1 })
	// ... until an instance parks: it is evicted at once for the waiter.
	wRunning := res.park("running", "wf", running)
	b.parked()
	if !isClosed(wRunning.evicted) {
		t.Fatal("an instance parked while a reservation waited was not evicted")
	}
	running.close()
	(<-third).close()
	g.close()
	if n := waiting(b); n != 0 || res.count() != 0 {
		t.Fatalf("at the end: %d waiters, %d parked", n, res.count())
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used != 0 || b.reclaiming != 0 {
		t.Fatalf("at the end: used %d, reclaiming %d", b.used, b.reclaiming)
	}
}

// instance returns the account of an instance of n bytes, admitted and made as the
// executors do.
func instance(t *testing.T, b *memoryBudget, n uint64) *memoryAccount {
	t.Helper()
	a, err := b.admit(context.Background(), n)
	if err != nil || !a.Grow(context.Background(), n) {
		t.Fatalf("admit and charge %d: %v", n, err)
	}
	return a
}

// waiting returns the number of reservations waiting in b.
func waiting(b *memoryBudget) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.grows.Len() + b.admissions.Len()
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
	}
}

func TestCheckMemory(t *testing.T) {
	for _, tc := range []struct {
		c    ComponentConfig
		want string
	}{
		{ComponentConfig{Name: "a", Type: ActivityWasm}, ""},
		{ComponentConfig{Name: "a", Type: ActivityWasm, MemoryLimit: 1 << 30}, `component "a": memory limit of 1 GiB is over the guest memory budget of 512 MiB`},
		{ComponentConfig{Name: "w", Type: Workflow, MemoryLimit: 1 << 30}, `component "w": memory limit of 1 GiB is over the guest memory budget of 512 MiB`},
		{ComponentConfig{Name: "h", Type: WebhookEndpoint, MemoryLimit: 1 << 30}, ""}, // a request's wait ends with its timeout
		{ComponentConfig{Name: "a", Type: ActivityWasm, MemoryLimit: 100000}, "not a multiple of 64 KiB"},
		{ComponentConfig{Name: "w", Type: Workflow, MemoryLimit: 8 << 30}, "over the 4 GiB"},
	} {
		err := checkMemory(512<<20, []ComponentConfig{tc.c})
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("checkMemory(%+v) = %v, want %q", tc.c, err, tc.want)
		}
	}
}
