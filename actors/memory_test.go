package actors

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestMemoryBudget: reservations are granted while they fit, then in order of arrival; a
// waiter that gives up lets the next in; tryAcquire never jumps the queue.
func TestMemoryBudget(t *testing.T) {
	ctx := context.Background()
	b := newMemoryBudget(300)
	r1, err := b.acquire(ctx, 128)
	if err != nil {
		t.Fatal(err)
	}
	r2 := b.tryAcquire(128)
	if r2 == nil {
		t.Fatal("tryAcquire(128) with 172 free failed")
	}
	if b.tryAcquire(128) != nil {
		t.Fatal("tryAcquire(128) with 44 free succeeded")
	}
	big, small := make(chan error, 1), make(chan *reservation, 1)
	bigCtx, giveUp := context.WithCancel(ctx)
	go func() { _, err := b.acquire(bigCtx, 200); big <- err }()
	waitFor(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.waiters.Len() == 1 })
	go func() { r, _ := b.acquire(ctx, 40); small <- r }() // fits now, but waits behind big
	waitFor(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.waiters.Len() == 2 })
	if b.tryAcquire(1) != nil {
		t.Fatal("tryAcquire jumped the queue")
	}
	giveUp()
	if err := <-big; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled acquire = %v", err)
	}
	r3 := <-small // granted when big left the queue
	if r3 == nil {
		t.Fatal("the small acquire was not granted")
	}
	b.release(r1)
	b.release(r2)
	b.release(r3)
	b.release(nil)
	if b.used != 0 || b.waiters.Len() != 0 {
		t.Fatalf("after releasing everything: used %d, %d waiters", b.used, b.waiters.Len())
	}
	if _, err := b.acquire(ctx, 301); !errors.Is(err, errOverBudget) {
		t.Fatalf("acquire over the budget = %v", err)
	}
}

// TestMemoryBudgetReclaimsParked: with the budget held by parked workflow instances (a
// parent and its child workflow, both waiting), a reservation that does not fit evicts
// the oldest parked instances whose memory covers it, and only those; a running
// instance is never evicted; an instance parked while reservations wait is evicted at
// once; an evicted instance's memory is counted as coming back until it is released, so
// that nothing more is evicted for the same need.
func TestMemoryBudgetReclaimsParked(t *testing.T) {
	ctx := context.Background()
	const limit = 100
	b := newMemoryBudget(3 * limit)
	res := newResident(64)
	b.reclaim = res.reclaim
	parent, _ := b.acquire(ctx, limit)
	child, _ := b.acquire(ctx, limit)
	running, _ := b.acquire(ctx, limit)
	wParent := res.park("parent", "wf", parent)
	b.parked() // nobody waits: nothing is evicted
	wChild := res.park("child", "wf", child)
	b.parked()
	for _, w := range []*waiter{wParent, wChild} {
		if isClosed(w.evicted) {
			t.Fatalf("%s evicted while nobody waited", w.id)
		}
	}

	// The grandchild activity (half a limit) waits: the oldest parked, the parent, goes.
	grandchild := make(chan *reservation, 1)
	go func() { r, _ := b.acquire(ctx, limit/2); grandchild <- r }()
	waitFor(t, func() bool { return isClosed(wParent.evicted) })
	if isClosed(wChild.evicted) {
		t.Fatal("the child was evicted too, though the parent's memory covers the need")
	}
	// Another waiter: the parent's memory is coming back but covers only the first, so
	// the child goes as well.
	second := make(chan *reservation, 1)
	go func() { r, _ := b.acquire(ctx, limit); second <- r }()
	waitFor(t, func() bool { return isClosed(wChild.evicted) })
	b.mu.Lock()
	if b.reclaiming != 2*limit {
		t.Errorf("reclaiming %d, want %d", b.reclaiming, 2*limit)
	}
	b.mu.Unlock()

	// The evicted instances close and give their memory back: the waiters get it, in order.
	if res.leave(wParent) || res.leave(wChild) {
		t.Fatal("an evicted waiter left as if it were not evicted")
	}
	b.release(parent)
	g := <-grandchild
	b.release(child)
	s := <-second
	b.mu.Lock()
	if b.reclaiming != 0 || b.used != limit+limit/2+limit {
		t.Errorf("after the evicted instances closed: reclaiming %d, used %d", b.reclaiming, b.used)
	}
	b.mu.Unlock()

	// Nothing parked: a waiter just waits (the running instance is never evicted) ...
	third := make(chan *reservation, 1)
	go func() { r, _ := b.acquire(ctx, limit); third <- r }()
	waitFor(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.waiters.Len() == 1 })
	// ... until an instance parks: it is evicted at once for the waiter.
	wRunning := res.park("running", "wf", running)
	b.parked()
	if !isClosed(wRunning.evicted) {
		t.Fatal("an instance parked while a reservation waited was not evicted")
	}
	b.release(running)
	b.release(<-third)
	b.release(g)
	b.release(s)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used != 0 || b.reclaiming != 0 || b.waiters.Len() != 0 || res.count() != 0 {
		t.Fatalf("at the end: used %d, reclaiming %d, %d waiters, %d parked", b.used, b.reclaiming, b.waiters.Len(), res.count())
	}
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
		{ComponentConfig{Name: "h", Type: WebhookEndpoint, MemoryLimit: 1 << 30}, ""}, // webhooks do not reserve
		{ComponentConfig{Name: "a", Type: ActivityWasm, MemoryLimit: 100000}, "not a multiple of 64 KiB"},
		{ComponentConfig{Name: "w", Type: Workflow, MemoryLimit: 8 << 30}, "over the 4 GiB"},
	} {
		err := checkMemory(512<<20, []ComponentConfig{tc.c})
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("checkMemory(%+v) = %v, want %q", tc.c, err, tc.want)
		}
	}
}
