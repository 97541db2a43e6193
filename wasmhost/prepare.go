package wasmhost

import (
	"context"
	"sync"
	"sync/atomic"
)

// preparation is something a module makes once, in the background, the first time it is
// asked for: the workflow snapshot and the activity image. Until it is ready (or if it
// fails) callers take the plain path; they never wait for it, except tests (wait).
type preparation[T any] struct {
	mu    sync.Mutex
	state atomic.Int32  // a snapshotState; changed under mu
	done  chan struct{} // closed when state leaves snapshotPreparing
	ready atomic.Pointer[T]
}

// get returns the prepared value, or nil when there is none (yet). The first call with
// enabled set starts prepare on a new goroutine; prepare must end by calling finish.
func (p *preparation[T]) get(ctx context.Context, enabled bool, prepare func()) *T {
	if v := p.ready.Load(); v != nil {
		return v
	}
	if !enabled || p.state.Load() != snapshotNone {
		return nil // disabled; being made, or failed
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state.Load() == snapshotNone && ctx.Err() == nil {
		p.state.Store(snapshotPreparing)
		p.done = make(chan struct{})
		go prepare()
	}
	return nil
}

// wait calls get, then waits until the preparation is made or has failed; nil means the
// plain path.
func (p *preparation[T]) wait(ctx context.Context, get func() *T) (*T, error) {
	if v := get(); v != nil {
		return v, nil
	}
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return nil, nil
	}
	select {
	case <-done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return p.ready.Load(), nil
}

// finish publishes the outcome of prepare: v, or failure when v is nil. If the module was
// closed meanwhile (closed reports it, under the same lock Close takes), v is given to
// discard instead: Close has already looked and will not see it. It reports whether v
// was published.
func (p *preparation[T]) finish(v *T, closed func() bool, discard func(*T)) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	defer close(p.done)
	if v != nil && closed() {
		discard(v)
		v = nil
	}
	if v == nil {
		p.state.Store(snapshotFailed)
		return false
	}
	p.ready.Store(v)
	p.state.Store(snapshotReady)
	return true
}

// skip marks a preparation that was not started as never to be made (failed), so that
// get never starts it. It reports whether it did.
func (p *preparation[T]) skip() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state.Load() != snapshotNone {
		return false
	}
	p.done = make(chan struct{})
	close(p.done)
	p.state.Store(snapshotFailed)
	return true
}

// take removes the prepared value, for Close.
func (p *preparation[T]) take() *T {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ready.Swap(nil)
}
