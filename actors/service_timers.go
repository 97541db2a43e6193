package actors

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// lockGrace is how long a live run may overrun its lock before the timer service takes
// over: a live run notices its own expiry (its context ends) and records the outcome.
const lockGrace = time.Second

// alarm wakes a service for a time: a pass is asked for when a time earlier than every
// one known is notified (since the last pass began, or found by it: after), and the
// earliest bounds the wait after it.
type alarm struct {
	wake wakeup
	next atomic.Int64 // Unix ns; 0: none known
}

func (a *alarm) notify(at int64) {
	for {
		cur := a.next.Load()
		if cur != 0 && cur <= at {
			return
		}
		if a.next.CompareAndSwap(cur, at) {
			break
		}
	}
	a.wake.poke()
}

// earliest returns the earlier of next and the times notified since the last forget.
func (a *alarm) earliest(next time.Time) time.Time {
	if n := a.next.Load(); n != 0 && (next.IsZero() || n < next.UnixNano()) {
		return time.Unix(0, n)
	}
	return next
}

// forget starts a pass: what it reads from the indexes covers every time notified so far.
func (a *alarm) forget() { a.next.Store(0) }

// after ends a pass that found next: it returns the earliest of next and the times
// notified during the pass, and keeps it as known, so that a later notify of it or a
// later time (every commit of an execution whose deadline, say, stays open notifies
// it again) asks for no pass: the service wakes then anyway.
func (a *alarm) after(next time.Time) time.Time {
	next = a.earliest(next)
	if next.IsZero() {
		return next
	}
	for at := next.UnixNano(); ; {
		cur := a.next.Load()
		if cur != 0 && cur <= at || a.next.CompareAndSwap(cur, at) {
			return next // (an earlier time notified meanwhile poked for another pass)
		}
	}
}

// timerService expires the locks of runs that no longer exist (or overran the grace):
// retries of timed-out attempts follow from what it records. It runs as the supervised
// service "timers" (supervisor.go).
type timerService struct {
	e *Engine
	alarm
}

func newTimerService(e *Engine) *timerService { return &timerService{e: e} }

// pass expires the locks that are due and returns the next expiry.
func (t *timerService) pass(ctx context.Context) time.Time {
	t.forget()
	return t.after(t.tickLocks(ctx))
}

// delayTimer answers the delays of workflows when they expire. It runs as the
// supervised service "delays" (supervisor.go).
type delayTimer struct {
	e *Engine
	alarm
}

func newDelayTimer(e *Engine) *delayTimer { return &delayTimer{e: e} }

// pass answers the delays that are due and returns the next expiry.
func (t *delayTimer) pass(ctx context.Context) time.Time {
	t.forget()
	return t.after(t.tickDelays(ctx))
}

// tickDelays answers the delays that are due and returns the next expiry. The answers
// of one scan go in one transaction (one synced write for a crowd of delays expiring
// together); should it fail, each is tried on its own, so one bad delay cannot hold the
// others back. An answer to a workflow that has finished is dropped by the store.
func (t *delayTimer) tickDelays(ctx context.Context) time.Time {
	const batch = 256
	for {
		now := time.Now()
		due, next, err := t.e.store.ExpiredDelays(ctx, now, batch)
		if err != nil {
			t.e.log.Error("delays: scan", "err", err)
			return now.Add(safetyTick)
		}
		var answers []events.ResponseAppend
		for _, d := range due {
			id := d.ID
			t.e.cfg.Metrics.TimerLag("delay", now.Sub(d.At))
			parent, js, err := events.SplitDelayID(id)
			if err != nil {
				t.e.log.Error("delays: delay", "delay", id, "err", err)
				continue
			}
			answers = append(answers, events.ResponseAppend{ExecutionID: parent, Response: &pb.Response{
				CreatedAt: now.UnixNano(), JoinSetId: js, Kind: &pb.Response_Delay{Delay: &pb.DelayFinished{DelayId: id}},
			}})
		}
		if len(answers) > 0 {
			if _, err := t.e.store.Commit(ctx, &events.Tx{Responses: answers}); err != nil {
				if ctx.Err() != nil {
					return now
				}
				for _, a := range answers {
					if _, err := t.e.store.Commit(ctx, &events.Tx{Responses: []events.ResponseAppend{a}}); err != nil && ctx.Err() == nil {
						t.e.log.Warn("delays: answer", "delay", a.Response.GetDelay().DelayId, "err", err)
					}
				}
			}
			t.e.hook("delays", "answered")
		}
		if len(due) < batch {
			return next
		}
	}
}

func (t *timerService) tickLocks(ctx context.Context) time.Time {
	now := time.Now()
	ids, next, err := t.e.store.ExpiredLocks(ctx, now, 256)
	if err != nil {
		t.e.log.Error("timers: scan", "err", err)
		return now.Add(safetyTick)
	}
	for _, id := range ids {
		st, err := t.e.store.State(ctx, id)
		if err != nil || st.Status != pb.Status_STATUS_LOCKED {
			continue
		}
		if t.e.runs.has(st.RunId) {
			due := time.Unix(0, st.LockExpiresAt).Add(lockGrace)
			if due.After(now) {
				if next.IsZero() || due.Before(next) {
					next = due
				}
				continue
			}
		}
		t.e.cfg.Metrics.TimerLag("lock", now.Sub(time.Unix(0, st.LockExpiresAt)))
		_, err = t.e.changeRun(ctx, id, func(st *pb.ExecutionState) (*events.Tx, error) {
			now := time.Now()
			tx, err := t.e.expireTx(st, now, false)
			return t.e.noRetryPastDeadline(st, tx, now), err
		})
		if err != nil && ctx.Err() == nil {
			t.e.log.Warn("timers: expire lock", "execution", id, "err", err)
		}
		t.e.hook("timers", "expired")
	}
	return next
}

// expireTx records that the lock (or, with force, the warm lease) of a run is gone:
// a workflow that made progress is unlocked without penalty; otherwise the run timed out,
// which an activity may retry (workflows always may).
func (e *Engine) expireTx(st *pb.ExecutionState, now time.Time, force bool) (*events.Tx, error) {
	if st == nil {
		return nil, nil
	}
	switch st.Status {
	case pb.Status_STATUS_LOCKED:
		if !force && st.LockExpiresAt > now.UnixNano() {
			return nil, nil
		}
	case pb.Status_STATUS_PENDING_AT, pb.Status_STATUS_BLOCKED_BY_JOIN_SET:
		if force && st.RunId != "" && st.LockExpiresAt > now.UnixNano() {
			return appendTx(st, "", &pb.Event{CreatedAt: now.UnixNano(), Kind: &pb.Event_Unlocked{Unlocked: &pb.Unlocked{
				UnlockedAt: now.UnixNano(), Reason: "the run holding the lease is gone"}}}), nil
		}
		return nil, nil
	default:
		return nil, nil
	}
	isWorkflow := st.ComponentType == pb.ComponentType_COMPONENT_TYPE_WORKFLOW
	if isWorkflow && st.NextVersion > st.LockedAtVersion+1 {
		return appendTx(st, "", &pb.Event{CreatedAt: now.UnixNano(), Kind: &pb.Event_Unlocked{Unlocked: &pb.Unlocked{
			UnlockedAt: now.UnixNano(), Reason: "lock expired after the run made progress"}}}), nil
	}
	why := "lock expired"
	fn, found := e.reg.functionOf(st.ComponentId, st.Ffqn)
	if found {
		why = fmt.Sprintf("lock expired after %s", fn.Component.Config.LockExpiry)
	}
	// The one retry decision of an attempt that failed (runner_activity.go): a timeout
	// counts in the function's retry budget like an attempt that ended in a failure.
	backoff, held, ok := e.retryAfter(st, fn, now)
	if ok {
		return appendTx(st, "", &pb.Event{CreatedAt: now.UnixNano(), Kind: &pb.Event_TemporarilyTimedOut{TemporarilyTimedOut: &pb.TemporarilyTimedOut{
			BackoffExpiresAt: now.Add(backoff).UnixNano(), Reason: withHold(why, held)}}}), nil
	}
	if held != "" {
		return e.finishReasonTx(st, events.FailureResult(events.FailureTimedOut, withHold(why, held)), held, now), nil
	}
	return e.finishTx(st, events.FailureResult(events.FailureTimedOut, noRetriesLeft(st, "timed out", why)), now), nil
}
