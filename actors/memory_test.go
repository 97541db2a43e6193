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
	if err := b.acquire(ctx, 128); err != nil {
		t.Fatal(err)
	}
	if !b.tryAcquire(128) {
		t.Fatal("tryAcquire(128) with 172 free failed")
	}
	if b.tryAcquire(128) {
		t.Fatal("tryAcquire(128) with 44 free succeeded")
	}
	big, small := make(chan error, 1), make(chan error, 1)
	bigCtx, giveUp := context.WithCancel(ctx)
	go func() { big <- b.acquire(bigCtx, 200) }()
	waitFor(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.waiters.Len() == 1 })
	go func() { small <- b.acquire(ctx, 40) }() // fits now, but waits behind big
	waitFor(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.waiters.Len() == 2 })
	if b.tryAcquire(1) {
		t.Fatal("tryAcquire jumped the queue")
	}
	giveUp()
	if err := <-big; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled acquire = %v", err)
	}
	if err := <-small; err != nil { // granted when big left the queue
		t.Fatal(err)
	}
	b.release(128)
	b.release(128)
	b.release(40)
	if b.used != 0 || b.waiters.Len() != 0 {
		t.Fatalf("after releasing everything: used %d, %d waiters", b.used, b.waiters.Len())
	}
	if err := b.acquire(ctx, 301); !errors.Is(err, errOverBudget) {
		t.Fatalf("acquire over the budget = %v", err)
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
		{ComponentConfig{Name: "w", Type: Workflow, MemoryLimit: 1 << 30}, ""}, // workflows do not reserve
		{ComponentConfig{Name: "a", Type: ActivityWasm, MemoryLimit: 100000}, "not a multiple of 64 KiB"},
		{ComponentConfig{Name: "w", Type: Workflow, MemoryLimit: 8 << 30}, "over the 4 GiB"},
	} {
		err := checkMemory(512<<20, []ComponentConfig{tc.c})
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("checkMemory(%+v) = %v, want %q", tc.c, err, tc.want)
		}
	}
}
