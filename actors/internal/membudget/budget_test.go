package membudget

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// TestMemoryBudget: admissions are granted while they fit, then in order of arrival; a
// waiter that gives up lets the next in; TryAdmit never jumps the queue.
func TestMemoryBudget(t *testing.T) {
	ctx := context.Background()
	b := New(300, nil)
	a1, err := b.Admit(ctx, 128)
	if err != nil {
		t.Fatal(err)
	}
	a2 := b.TryAdmit(128)
	if a2 == nil {
		t.Fatal("TryAdmit(128) with 172 free failed")
	}
	if b.TryAdmit(128) != nil {
		t.Fatal("TryAdmit(128) with 44 free succeeded")
	}
	big, small := make(chan error, 1), make(chan *Account, 1)
	bigCtx, giveUp := context.WithCancel(ctx)
	go func() { _, err := b.Admit(bigCtx, 200); big <- err }()
	waitFor(t, func() bool { return waiting(b) == 1 })
	go func() { a, _ := b.Admit(ctx, 40); small <- a }() // fits now, but waits behind big
	waitFor(t, func() bool { return waiting(b) == 2 })
	if b.TryAdmit(1) != nil {
		t.Fatal("TryAdmit jumped the queue")
	}
	giveUp()
	if err := <-big; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled admit = %v", err)
	}
	a3 := <-small // granted when big left the queue
	if a3 == nil {
		t.Fatal("the small admission was not granted")
	}
	for _, a := range []*Account{a1, a2, a3, nil} {
		a.Close()
	}
	if b.Stats().Used != 0 || waiting(b) != 0 {
		t.Fatalf("after closing everything: used %d, %d waiters", b.Stats().Used, waiting(b))
	}
	if _, err := b.Admit(ctx, 301); !errors.Is(err, errOverBudget) {
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
	b := New(100, nil)
	a, err := b.Admit(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	var peak atomic.Uint64
	a.SetPeakTo(&peak)
	if !a.Grow(ctx, 6) || b.Stats().Used != 10 || a.credit != 4 { // the instance's size
		t.Fatalf("Grow within the credit: used %d, credit %d; want 10, 4", b.Stats().Used, a.credit)
	}
	if !a.Grow(ctx, 6) || b.Stats().Used != 12 || a.credit != 0 || a.held != 12 {
		t.Fatalf("Grow past the credit: used %d, held %d, credit %d; want 12, 12, 0", b.Stats().Used, a.held, a.credit)
	}
	other := instance(t, b, 80)
	if !a.Grow(ctx, 8) { // 100 in use: full
		t.Fatal("Grow that fits failed")
	}

	// A new run waits for room; then a growth comes, and goes first.
	admitted := make(chan *Account, 1)
	go func() { n, _ := b.Admit(ctx, 5); admitted <- n }()
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
	other.Close()
	n := <-admitted
	if b.Stats().Used != 30+5 {
		t.Fatalf("used %d, want 35", b.Stats().Used)
	}

	// A growth that can never fit before its context ends fails, and changes nothing.
	hog, err := b.Admit(ctx, 65)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if a.Grow(short, 1) {
		t.Fatal("Grow on a full budget succeeded")
	}
	if b.Stats().Used != 100 || a.held != 30 || waiting(b) != 0 {
		t.Fatalf("after a failed Grow: used %d, held %d, %d waiting; want 100, 30, 0", b.Stats().Used, a.held, waiting(b))
	}
	a.Release(30) // the instance closed
	a.Close()
	n.Close()
	hog.Close()
	if b.Stats().Used != 0 {
		t.Fatalf("after closing everything: used %d", b.Stats().Used)
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
	b := New(95, nil)
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
	a2.Close()
	if !<-grown1 {
		t.Fatal("the oldest run's growth was refused")
	}
	a1.Close()
	a3.Close()
	if n := b.Stats().Used; n != 0 {
		t.Fatalf("used %d after closing everything", n)
	}

	// The only holder grows past what the budget could ever give it.
	alone := instance(t, b, 80)
	if alone.Grow(ctx, 20) {
		t.Fatal("a growth past the budget was granted")
	}
	alone.Close()
}

// instance returns the account of an instance of n bytes, admitted and made as the
// executors do.
func instance(t *testing.T, b *Budget, n uint64) *Account {
	t.Helper()
	a, err := b.Admit(context.Background(), n)
	if err != nil || !a.Grow(context.Background(), n) {
		t.Fatalf("admit and charge %d: %v", n, err)
	}
	return a
}

// waiting returns the number of reservations waiting in b.
func waiting(b *Budget) int {
	return b.Stats().Waiting
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
	}
}
