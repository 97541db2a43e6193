package actors

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// Activity attempts, their bounds and keepalives.
//
// An attempt runs until its lock expires. Without keepalive the lock is taken once, so
// lock_expiry is the attempt's whole budget. With keepalive the keepalive service renews
// the lock while the attempt runs, every lock_expiry/3 (a renewal held up by a slow
// commit still lands before the lock runs out), and the attempt's deadline moves with
// it: lock_expiry becomes the time in which an attempt whose node died is noticed, not
// its budget. max_duration, when set, bounds the attempt from its lock in both cases.
//
// A renewal is a Locked event of the same run, committed through the execution's actor
// (as a workflow extends its lock): the actor serialises it with the attempt's own
// outcome and with a cancellation, and a run that no longer holds the lock cannot renew
// it, so such a run is killed at once. Renewals of concurrent attempts are committed
// concurrently and share the store's group commits.

// attempt is one running attempt of an activity: the context it runs in, and what ends it.
type attempt struct {
	ctx context.Context
	d   *deadline
	// maxAt is when max_duration ends the attempt (zero: never).
	maxAt time.Time
	// deadlineAt is the execution's deadline (zero: none), which ends the attempt too.
	deadlineAt  time.Time
	maxDuration time.Duration
	id, runID   string
	c           *Component

	// Guarded by keepalives.mu.
	next     time.Time // when the lock is renewed next
	renewing bool      // a renewal is being committed
	ended    bool      // the attempt returned: a renewal still in flight may find it finished
	lost     bool      // a renewal found the lock held by no run of ours: killed
	failed   error     // the last renewal failed (the store, not the lock), nil once one succeeds
}

// beginAttempt starts the clock of an attempt of component c that st (run runID) locked.
// The caller runs the attempt in its ctx and calls endAttempt when the attempt has returned.
func (e *Engine) beginAttempt(ctx context.Context, c *Component, st *pb.ExecutionState, runID string) *attempt {
	now := time.Now()
	a := &attempt{id: st.ExecutionId, runID: runID, c: c, maxDuration: c.Config.MaxDuration}
	if a.maxDuration > 0 {
		a.maxAt = now.Add(a.maxDuration)
	}
	if st.Deadline != 0 {
		a.deadlineAt = time.Unix(0, st.Deadline)
	}
	a.d = newDeadline(ctx, a.bound(time.Unix(0, st.LockExpiresAt)))
	a.ctx = a.d.ctx
	if c.Config.KeepAlive {
		e.keepalives.add(a, now)
	}
	return a
}

// endAttempt stops the attempt's clock and its renewals; it may be called again.
func (e *Engine) endAttempt(a *attempt) {
	if a.c.Config.KeepAlive {
		e.keepalives.remove(a)
	}
	a.d.stop()
}

// bound is when the attempt must end if its lock ends at lockEnd: then, at its
// max_duration or at the execution's deadline, whichever comes first. A kept-alive attempt
// gets lockGrace more, as the timer service gives a live run: a renewal held up by a
// busy node still lands in it (the store takes a Locked event of the run that holds the
// lock until the timer service expires it), and the node is alive, which is all a
// kept-alive lock is about.
func (a *attempt) bound(lockEnd time.Time) time.Time {
	if a.c.Config.KeepAlive {
		lockEnd = lockEnd.Add(lockGrace)
	}
	if !a.maxAt.IsZero() && a.maxAt.Before(lockEnd) {
		lockEnd = a.maxAt
	}
	if !a.deadlineAt.IsZero() && a.deadlineAt.Before(lockEnd) {
		lockEnd = a.deadlineAt
	}
	return lockEnd
}

// timeoutError is why an attempt was killed at its deadline.
type timeoutError struct {
	reason string
	err    error // what the run returned
}

func (e *timeoutError) Error() string   { return e.reason + ": " + e.err.Error() }
func (e *timeoutError) Unwrap() []error { return []error{errTimedOut, e.err} }

// explain turns the error of a run whose context ended (its deadline passed, or a
// renewal found the lock lost) into a timeoutError saying which; other errors are
// returned as they are.
func (e *Engine) explain(a *attempt, runErr error) error {
	if runErr == nil || a.ctx.Err() == nil {
		return runErr
	}
	e.keepalives.mu.Lock()
	lost, failed := a.lost, a.failed
	e.keepalives.mu.Unlock()
	switch {
	case !a.deadlineAt.IsZero() && !time.Now().Before(a.deadlineAt):
		return &timeoutError{fmt.Sprintf("activity cut at the execution's deadline %s", a.deadlineAt.UTC().Format(time.RFC3339Nano)), runErr}
	case !a.maxAt.IsZero() && !time.Now().Before(a.maxAt):
		return &timeoutError{fmt.Sprintf("activity exceeded its max_duration of %s", a.maxDuration), runErr}
	case lost:
		return &timeoutError{"activity lost its lock", runErr}
	case failed != nil:
		return &timeoutError{fmt.Sprintf("activity exceeded its lock expiry: renewing the lock failed: %v", failed), runErr}
	}
	return &timeoutError{"activity exceeded its lock expiry", runErr}
}

// keepalives renews the locks of the running attempts of kept-alive activities. It runs
// as the supervised service "keepalives" (supervisor.go); the attempts it renews live
// here, outside the service's actor, so a restart of the service loses none of them.
type keepalives struct {
	e  *Engine
	mu sync.Mutex
	// runs are the attempts being kept alive.
	runs map[*attempt]struct{}
	// alarm: a renewal that ends schedules the next one, and wakes the service if that is
	// earlier than anything it knew.
	alarm
}

func newKeepalives(e *Engine) *keepalives {
	return &keepalives{e: e, runs: map[*attempt]struct{}{}}
}

// renewEvery is how often a kept-alive lock of lockExpiry is renewed.
func renewEvery(lockExpiry time.Duration) time.Duration { return lockExpiry / 3 }

func (k *keepalives) add(a *attempt, now time.Time) {
	k.mu.Lock()
	a.next = now.Add(renewEvery(a.c.Config.LockExpiry))
	k.runs[a] = struct{}{}
	k.mu.Unlock()
	k.notify(a.next.UnixNano())
}

func (k *keepalives) remove(a *attempt) {
	k.mu.Lock()
	delete(k.runs, a)
	a.ended = true
	k.mu.Unlock()
}

// pass starts the renewals that are due and returns when the next one is.
func (k *keepalives) pass(ctx context.Context) time.Time {
	k.forget()
	return k.after(k.tick(ctx))
}

// tick starts the renewals that are due, each on its own goroutine (a renewal waits for
// a synced commit: one slow commit must not hold back the others), and returns when the
// next one is due among the attempts not being renewed; a renewal that ends notifies
// the alarm of the one after it.
func (k *keepalives) tick(ctx context.Context) time.Time {
	now := time.Now()
	var next time.Time
	var due []*attempt
	k.mu.Lock()
	for a := range k.runs {
		switch {
		case a.renewing || a.lost:
		case !a.next.After(now):
			a.renewing = true
			due = append(due, a)
		case next.IsZero() || a.next.Before(next):
			next = a.next
		}
	}
	k.mu.Unlock()
	for _, a := range due {
		go k.renew(ctx, a)
	}
	return next
}

// errLockNotHeld: a renewal found the execution no longer locked by the attempt's run.
var errLockNotHeld = errors.New("the run no longer holds the lock")

// renew extends a's lock to lock_expiry from now and moves its deadline with it. A run
// that lost its lock is killed; after a failure of the store the renewal is tried again
// soon, and the attempt ends at its current deadline if none succeeds.
func (k *keepalives) renew(ctx context.Context, a *attempt) {
	e := k.e
	var expires time.Time
	_, err := e.change(ctx, a.id, func(st *pb.ExecutionState) (*events.Tx, error) {
		if st == nil || st.Status != pb.Status_STATUS_LOCKED || st.RunId != a.runID {
			return nil, errLockNotHeld
		}
		now := time.Now()
		ev := e.executors[a.c.ID].lockedEvent(a.runID, now, st.SubmittedRetry)
		expires = time.Unix(0, ev.GetLocked().LockExpiresAt)
		return appendTx(st, a.runID, ev), nil
	})
	now := time.Now()
	k.mu.Lock()
	a.renewing = false
	ended := a.ended
	switch {
	case err == nil:
		a.failed = nil
		a.next = now.Add(renewEvery(a.c.Config.LockExpiry))
	case errors.Is(err, errLockNotHeld):
		a.lost = true
	default:
		a.failed = err
		a.next = now.Add(renewEvery(a.c.Config.LockExpiry) / 4)
	}
	lost, next := a.lost, a.next
	k.mu.Unlock()
	if !lost && !ended {
		k.notify(next.UnixNano())
	}
	switch {
	case ended && err != nil:
		// The attempt returned and recorded its outcome meanwhile: not a lost lock.
	case err == nil:
		a.d.extend(a.bound(expires))
		e.cfg.Metrics.LockRenewal("ok")
	case errors.Is(err, errLockNotHeld):
		// Cancelled, or expired by the timer service after renewals failed: the
		// outcome is no longer this run's to record.
		a.d.cancel()
		e.cfg.Metrics.LockRenewal("lost")
	case ctx.Err() != nil:
		// Shutting down.
	default:
		e.log.Warn("keepalive: renew lock", "execution", a.id, "err", err)
		e.cfg.Metrics.LockRenewal("failed")
	}
}
