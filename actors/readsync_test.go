package actors

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/events"
)

// fakeLog is a log whose end a test moves, and whose LogEnd requests it holds until
// released.
type fakeLog struct {
	end, applied atomic.Uint64
	requests     atomic.Int32
	release      chan struct{} // each LogEnd waits for a value
	failed       chan struct{}
}

func (f *fakeLog) LogEnd(ctx context.Context) (uint64, error) {
	f.requests.Add(1)
	select {
	case <-f.release:
		return f.end.Load(), nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}
func (f *fakeLog) WaitAppliedTo(ctx context.Context, seq uint64) error {
	for f.applied.Load() < seq {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-f.failed:
			return errors.New("failed")
		case <-time.After(time.Millisecond):
		}
	}
	return nil
}

// TestSyncReadsWaitsForTheLogEnd: a read waits until the node applied the log's end as of
// its call, and no longer.
func TestSyncReadsWaitsForTheLogEnd(t *testing.T) {
	f := &fakeLog{release: make(chan struct{}), failed: make(chan struct{})}
	close(f.release) // answered at once
	f.end.Store(5)
	f.applied.Store(3)
	b := newReadBarrier(context.Background(), f)
	done := make(chan error, 1)
	go func() { done <- b.sync(context.Background()) }()
	select {
	case err := <-done:
		t.Fatalf("returned at applied 3 of 5: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	f.applied.Store(5)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still waiting at applied 5 of 5")
	}
	// Caught up: no wait beyond the request.
	if err := b.sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	f.end.Store(9)
	if err := b.sync(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("behind until the deadline: %v", err)
	}
}

// TestSyncReadsSharesRequests: the callers arriving while a request is on its way share
// the next one (not that one: it may predate their commits), so many concurrent reads
// make two requests, not one each.
func TestSyncReadsSharesRequests(t *testing.T) {
	f := &fakeLog{release: make(chan struct{}), failed: make(chan struct{})}
	b := newReadBarrier(context.Background(), f)
	var wg sync.WaitGroup
	first := make(chan error, 1)
	go func() { first <- b.sync(context.Background()) }()
	for f.requests.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	// The first request is on its way: these wait for the next.
	errs := make(chan error, 50)
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- b.sync(context.Background())
		}()
	}
	time.Sleep(50 * time.Millisecond) // let them all join
	f.release <- struct{}{}           // the first request
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	f.release <- struct{}{} // the second, for all 50
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := f.requests.Load(); n != 2 {
		t.Fatalf("%d requests for 51 reads, want 2", n)
	}
}

// TestSyncReadsSingleNode: an engine on its own Pebble store has no barrier.
func TestSyncReadsSingleNode(t *testing.T) {
	s, err := events.Open(t.TempDir(), events.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if b := newReadBarrier(context.Background(), s); b != nil {
		t.Fatal("a barrier for a single node's store")
	}
	if err := (&Engine{}).SyncReads(context.Background()); err != nil {
		t.Fatal(err)
	}
}
