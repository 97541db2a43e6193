package actors

import (
	"context"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/actors/internal/membudget"
)

// TestMemoryBudgetReclaimsParked: with the budget held by parked workflow instances (a
// parent and its child workflow, both waiting), a reservation that does not fit evicts
// the oldest parked instances whose memory covers it, and only those; a running
// instance is never evicted; an instance parked while reservations wait is evicted at
// once; an evicted instance's memory is counted as coming back until it is released, so
// that nothing more is evicted for the same need.
func TestMemoryBudgetReclaimsParked(t *testing.T) {
	ctx := context.Background()
	const size = 100
	res := newResident(64)
	b := membudget.New(3*size, res.reclaim)
	parent, child, running := instance(t, b, size), instance(t, b, size), instance(t, b, size)
	wParent := res.park("parent", "wf", parent)
	b.Parked() // nobody waits: nothing is evicted
	wChild := res.park("child", "wf", child)
	b.Parked()
	for _, w := range []*waiter{wParent, wChild} {
		if isClosed(w.evicted) {
			t.Fatalf("%s evicted while nobody waited", w.id)
		}
	}

	// The grandchild (half a parent) waits: the oldest parked, the parent, goes.
	grandchild := make(chan *membudget.Account, 1)
	go func() { a, _ := b.Admit(ctx, size/2); grandchild <- a }()
	waitFor(t, func() bool { return isClosed(wParent.evicted) })
	if isClosed(wChild.evicted) {
		t.Fatal("the child was evicted too, though the parent's memory covers the need")
	}
	// The running instance grows: the parent's memory is coming back but covers only
	// the grandchild, so the child goes as well.
	grown := make(chan bool, 1)
	go func() { grown <- running.Grow(ctx, size) }()
	waitFor(t, func() bool { return isClosed(wChild.evicted) })
	if r := b.Stats().Reclaiming; r != 2*size {
		t.Errorf("reclaiming %d, want %d", r, 2*size)
	}

	// The evicted instances close and give their memory back: the growth goes first.
	if res.leave(wParent) || res.leave(wChild) {
		t.Fatal("an evicted waiter left as if it were not evicted")
	}
	parent.Close()
	if !<-grown {
		t.Fatal("the growth was not granted")
	}
	child.Close()
	g := <-grandchild
	if s := b.Stats(); s.Reclaiming != 0 || s.Used != 2*size+size/2 {
		t.Errorf("after the evicted instances closed: reclaiming %d, used %d", s.Reclaiming, s.Used)
	}

	// Nothing parked: a waiter just waits (the running instance is never evicted) ...
	third := make(chan *membudget.Account, 1)
	go func() { a, _ := b.Admit(ctx, size); third <- a }()
	waitFor(t, func() bool { return b.Stats().Waiting == 1 })
	// ... until an instance parks: it is evicted at once for the waiter.
	wRunning := res.park("running", "wf", running)
	b.Parked()
	if !isClosed(wRunning.evicted) {
		t.Fatal("an instance parked while a reservation waited was not evicted")
	}
	running.Close()
	(<-third).Close()
	g.Close()
	if n := b.Stats().Waiting; n != 0 || res.count() != 0 {
		t.Fatalf("at the end: %d waiters, %d parked", n, res.count())
	}
	if s := b.Stats(); s.Used != 0 || s.Reclaiming != 0 {
		t.Fatalf("at the end: used %d, reclaiming %d", s.Used, s.Reclaiming)
	}
}

// instance returns the account of an instance of n bytes, admitted and made as the
// executors do.
func instance(t *testing.T, b *membudget.Budget, n uint64) *membudget.Account {
	t.Helper()
	a, err := b.Admit(context.Background(), n)
	if err != nil || !a.Grow(context.Background(), n) {
		t.Fatalf("admit and charge %d: %v", n, err)
	}
	return a
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
