package actors

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// logStore is a store whose writes go through a log that several nodes apply
// (events/replicated.Store): a node may not have applied yet what another committed.
type logStore interface {
	// LogEnd returns the log's last entry, asking its leader.
	LogEnd(ctx context.Context) (uint64, error)
	// WaitAppliedTo waits until this node applied the log up to entry seq.
	WaitAppliedTo(ctx context.Context, seq uint64) error
}

// SyncReads waits until this node's store holds every commit acknowledged before the
// call, on any node of the cluster, so that the reads after it find an execution
// submitted elsewhere a moment ago, and its latest state. On a single node every commit
// is the store's own: it returns at once.
func (e *Engine) SyncReads(ctx context.Context) error {
	if e.reads == nil {
		return nil
	}
	return e.reads.sync(ctx)
}

// readBarrier serves SyncReads on a cluster's node. The callers of one moment share one
// request to the log's leader: at most one is on its way, and a caller arriving while it
// is waits for the next (the one on its way may have been answered before the caller's
// commit was acknowledged). Many concurrent reads cost a round trip each, not a request
// each.
type readBarrier struct {
	store logStore
	// ctx ends the requests (the engine closing); timeout bounds each one.
	ctx     context.Context
	timeout time.Duration

	mu   sync.Mutex
	cur  *barrierRound // on its way
	next *barrierRound // its callers arrived while cur was on its way
}

type barrierRound struct {
	done chan struct{}
	end  uint64
	err  error
}

// newReadBarrier returns the barrier of a store that needs one, nil for one that does
// not (a single node's).
func newReadBarrier(ctx context.Context, s any) *readBarrier {
	ls, ok := s.(logStore)
	if !ok {
		return nil
	}
	return &readBarrier{store: ls, ctx: ctx, timeout: barrierTimeout}
}

// barrierTimeout bounds one round's asking for the log's end. A round asks again, every
// barrierRetry, while no leader answers: the log's leader may have died with its node,
// and a read waits out the election (seconds, more on a busy machine) rather than fail.
const (
	barrierTimeout = 30 * time.Second
	barrierRetry   = 200 * time.Millisecond
)

func (b *readBarrier) sync(ctx context.Context) error {
	r := b.join()
	select {
	case <-r.done:
	case <-ctx.Done():
		return fmt.Errorf("sync reads: %w", ctx.Err())
	}
	if r.err != nil {
		return fmt.Errorf("sync reads: %w", r.err)
	}
	if err := b.store.WaitAppliedTo(ctx, r.end); err != nil {
		return fmt.Errorf("sync reads: %w", err)
	}
	return nil
}

// join returns the round whose answer covers a caller arriving now.
func (b *readBarrier) join() *barrierRound {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cur == nil {
		b.cur = &barrierRound{done: make(chan struct{})}
		go b.run(b.cur)
		return b.cur
	}
	if b.next == nil {
		b.next = &barrierRound{done: make(chan struct{})}
	}
	return b.next
}

// run asks where the log ends for r, then starts the round that waited for it, if any.
func (b *readBarrier) run(r *barrierRound) {
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	for {
		actx, acancel := context.WithTimeout(ctx, 2*time.Second)
		r.end, r.err = b.store.LogEnd(actx)
		acancel()
		if r.err == nil || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(barrierRetry):
		}
	}
	cancel()
	close(r.done)
	b.mu.Lock()
	b.cur, b.next = b.next, nil
	if b.cur != nil {
		go b.run(b.cur)
	}
	b.mu.Unlock()
}
