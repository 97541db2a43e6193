package actors

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// Deadlines.
//
// A submitter may give an execution a deadline (WithDeadline), stored as an absolute time
// in its Created event: a replay or a restart computes nothing from the clock. A
// workflow's children get the earlier of their own deadline and their parent's
// (inheritDeadline), from the parent's Created event. While an execution with a deadline
// is open (events.DeadlineOpen), the store keeps it in a deadline index (u/, by time),
// a durable timer like a delay's: the deadline timer scans it and stops, through each
// execution's actor, whatever passed its deadline: an activity finishes
// deadline_exceeded at once (a running attempt is killed), a workflow gets a
// CancelRequested marked deadline_exceeded, and the canceller cancels its open children
// and finishes it as deadline_exceeded. Its children, whose deadlines are never later
// than its own, have passed theirs too, so they finish deadline_exceeded as well (the
// one rule, stopTx: whatever is stopped at or after its deadline finishes
// deadline_exceeded, whatever stopped it), and each parent's join set gets the child's
// failure as it is.
//
// An activity attempt is bounded by the deadline too (attempt.bound), and an attempt
// that ends in a failure or a timeout at or after it is not retried (noRetryPastDeadline).

// WithDeadline gives the execution a deadline: it finishes as deadline_exceeded if it is
// still open then. Zero is none; Submit refuses one beyond MaxDeadline from now
// (checkDeadline).
func WithDeadline(at time.Time) SubmitOption {
	return func(o *submitOptions) { o.deadline = at }
}

// MaxDeadline is how far ahead a deadline may be: well within what Unix nanoseconds
// hold (until 2262), which a deadline is stored as; beyond, it would wrap into the past
// and stop the execution at once.
const MaxDeadline = 100 * 365 * 24 * time.Hour

// checkDeadline checks a submission's deadline at (zero: none) at now.
func checkDeadline(at, now time.Time) error {
	switch {
	case at.IsZero():
		return nil
	case at.After(now.Add(MaxDeadline)):
		return fmt.Errorf("deadline %s: more than %d years from now, the limit", at.UTC().Format(time.RFC3339), MaxDeadline/(365*24*time.Hour))
	case at.UnixNano() <= 0:
		return fmt.Errorf("deadline %s: before 1970", at.UTC().Format(time.RFC3339))
	}
	return nil
}

// inheritDeadline is the deadline of a child whose own is own and whose parent's is
// parent (Unix ns; 0: none): the earlier of the two.
func inheritDeadline(own, parent int64) int64 {
	switch {
	case own == 0:
		return parent
	case parent == 0:
		return own
	}
	return min(own, parent)
}

// deadlinePassed reports whether st has a deadline and now is at or past it.
func deadlinePassed(st *pb.ExecutionState, now time.Time) bool {
	return st.Deadline != 0 && now.UnixNano() >= st.Deadline
}

// deadlineResult is the result of an execution stopped at its deadline.
func deadlineResult(st *pb.ExecutionState) []byte {
	return events.FailureResult(events.FailureDeadlineExceeded,
		fmt.Sprintf("deadline %s exceeded", time.Unix(0, st.Deadline).UTC().Format(time.RFC3339Nano)))
}

// stopTx stops the unfinished execution st, for a cancellation or its deadline: a
// workflow gets CancelRequested (the canceller cancels its subtree, then finishes it),
// anything else finishes at once. Stopped at or past its deadline, it finishes
// deadline_exceeded, otherwise cancelled.
func (e *Engine) stopTx(st *pb.ExecutionState, now time.Time) (*events.Tx, CancelOutcome) {
	passed := deadlinePassed(st, now)
	if st.ComponentType == pb.ComponentType_COMPONENT_TYPE_WORKFLOW {
		return appendTx(st, "", &pb.Event{CreatedAt: now.UnixNano(), Kind: &pb.Event_CancelRequested{CancelRequested: &pb.CancelRequested{DeadlineExceeded: passed}}}), CancelRequested
	}
	result := events.FailureResult(events.FailureCancelled, "cancelled")
	if passed {
		result = deadlineResult(st)
	}
	return e.finishTx(st, result, now), Cancelled
}

// noRetryPastDeadline replaces tx, the outcome of a failed attempt of st, by stopTx
// when tx retries the execution and its deadline has passed: the retry could not run.
// What the attempt returned is kept in the Finished event (returned; an err value) with
// why it ended (reason): the deadline decides the result, but the value is not lost.
func (e *Engine) noRetryPastDeadline(st *pb.ExecutionState, tx *events.Tx, now time.Time) *events.Tx {
	if tx == nil || !deadlinePassed(st, now) || st.CancelRequested {
		return tx
	}
	var returned []byte
	var why string
	switch k := tx.Appends[0].Events[0].Kind.(type) {
	case *pb.Event_TemporarilyFailed:
		why = k.TemporarilyFailed.Reason
		if k.TemporarilyFailed.Detail != nil {
			returned = append(append([]byte(`{"err":`), k.TemporarilyFailed.Detail...), '}')
		}
	case *pb.Event_TemporarilyTimedOut:
		why = k.TemporarilyTimedOut.Reason
	default:
		return tx
	}
	stop, _ := e.stopTx(st, now)
	if f := stop.Appends[0].Events[0].GetFinished(); f != nil {
		f.Returned, f.Reason = returned, "not retried past the deadline: "+why
	}
	return stop
}

// deadlineTimer stops the executions whose deadline passed. It runs as the supervised
// service "deadlines" (supervisor.go).
type deadlineTimer struct {
	e *Engine
	alarm
}

func newDeadlineTimer(e *Engine) *deadlineTimer { return &deadlineTimer{e: e} }

// pass stops the executions whose deadline is due and returns the next deadline.
func (t *deadlineTimer) pass(ctx context.Context) time.Time {
	t.forget()
	return t.after(t.tick(ctx))
}

// deadlinesAtOnce bounds the executions a pass stops concurrently: each is a commit
// through its actor, and a tree whose deadline passes has them all due together.
const deadlinesAtOnce = 16

func (t *deadlineTimer) tick(ctx context.Context) time.Time {
	const batch = 256
	for {
		now := time.Now()
		due, next, err := t.e.store.ExpiredDeadlines(ctx, now, batch)
		if err != nil {
			t.e.log.Error("deadlines: scan", "err", err)
			return now.Add(safetyTick)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		failed := 0
		turns := make(chan struct{}, deadlinesAtOnce)
		for _, d := range due {
			t.e.cfg.Metrics.TimerLag("deadline", now.Sub(d.At))
			turns <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-turns; wg.Done() }()
				_, err := t.e.changeRun(ctx, d.ID, func(st *pb.ExecutionState) (*events.Tx, error) {
					return t.e.deadlineTx(st, time.Now()), nil
				})
				if err != nil && ctx.Err() == nil {
					t.e.log.Warn("deadlines: stop", "execution", d.ID, "err", err)
					mu.Lock()
					failed++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(due) > 0 {
			t.e.hook("deadlines", "stopped")
		}
		if failed > 0 || ctx.Err() != nil {
			// What failed is still due: try again a little later, not in a busy loop.
			return now.Add(safetyTick)
		}
		if len(due) < batch {
			return next
		}
	}
}

// deadlineTx stops st if its deadline has passed and it is still open (nil otherwise:
// it finished, or a cancellation is finishing it, meanwhile).
func (e *Engine) deadlineTx(st *pb.ExecutionState, now time.Time) *events.Tx {
	if !events.DeadlineOpen(st) || !deadlinePassed(st, now) {
		return nil
	}
	tx, _ := e.stopTx(st, now)
	return tx
}
