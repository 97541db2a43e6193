package actors

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/obelisk-go/obelisk/events"
	"github.com/obelisk-go/obelisk/internal/clip"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	"github.com/obelisk-go/obelisk/wasmhost/wit"
)

// CancelOutcome says what Cancel did.
type CancelOutcome string

// The outcomes of Cancel.
const (
	// Cancelled: an activity, a stub or a delay was cancelled at once.
	Cancelled CancelOutcome = "cancelled"
	// CancelRequested: a workflow's cancellation started; it finishes as cancelled once
	// its subtree has (the canceller drives it, no workflow code runs).
	CancelRequested CancelOutcome = "cancel_requested"
	// AlreadyCancelling: a workflow's cancellation had already been requested.
	AlreadyCancelling CancelOutcome = "already_cancelling"
	// AlreadyFinished: nothing was changed.
	AlreadyFinished CancelOutcome = "already_finished"
)

// NotFoundError: no execution (or delay) has this ID.
type NotFoundError struct{ ID string }

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("execution %s not found", clip.String(e.ID))
}

// FailedPreconditionError: the request is valid but the execution's state forbids it
// (pausing a finished execution, a stub whose result differs from the stored one).
type FailedPreconditionError struct{ Reason string }

func (e *FailedPreconditionError) Error() string { return e.Reason }

// Cancel cancels an execution or, given a delay ID, a delay.
//
//   - An activity or a stub finishes at once with the cancelled execution failure (a
//     running attempt is killed), which its parent receives as its response.
//   - A workflow gets CancelRequested: it is not run any more, and the canceller cancels
//     everything its join sets still wait for (child workflows in turn), then finishes it
//     as cancelled.
//   - A delay is answered as cancelled: the workflow waiting for it sees an error.
//
// An execution stopped at or past its deadline finishes as deadline_exceeded instead of
// cancelled (stopTx).
func (e *Engine) Cancel(ctx context.Context, id string) (CancelOutcome, error) {
	if events.IsDelayID(id) {
		return e.cancelDelay(ctx, id)
	}
	var outcome CancelOutcome
	_, err := e.changeRun(ctx, id, func(st *pb.ExecutionState) (*events.Tx, error) {
		switch {
		case st == nil:
			return nil, &NotFoundError{id}
		case st.Status == pb.Status_STATUS_FINISHED:
			outcome = AlreadyFinished
			return nil, nil
		case st.CancelRequested:
			outcome = AlreadyCancelling
			return nil, nil
		}
		now := time.Now()
		var tx *events.Tx
		tx, outcome = e.stopTx(st, now)
		return tx, nil
	})
	if err != nil {
		return "", err
	}
	return outcome, nil
}

func (e *Engine) cancelDelay(ctx context.Context, id string) (CancelOutcome, error) {
	parent, js, err := events.SplitDelayID(id)
	if err != nil {
		return "", &InvalidArgumentError{err}
	}
	if _, err := e.store.State(ctx, parent); errors.Is(err, events.ErrNotFound) {
		return "", &NotFoundError{id}
	} else if err != nil {
		return "", err
	}
	if _, waiting, err := e.store.DelayExpiry(ctx, id); err != nil {
		return "", err
	} else if !waiting {
		return AlreadyFinished, nil
	}
	_, err = e.store.Commit(ctx, &events.Tx{Responses: []events.ResponseAppend{{ExecutionID: parent, Response: &pb.Response{
		CreatedAt: time.Now().UnixNano(), JoinSetId: js,
		Kind: &pb.Response_Delay{Delay: &pb.DelayFinished{DelayId: id, Cancelled: true}},
	}}}})
	if err != nil {
		return "", fmt.Errorf("cancel delay %s: %w", id, err)
	}
	// The timer may have answered first (the store keeps the first answer).
	resps, err := e.store.Responses(ctx, parent, 0)
	if err != nil {
		return "", err
	}
	for _, r := range resps {
		if d := r.GetDelay(); d != nil && d.DelayId == id {
			if d.Cancelled {
				return Cancelled, nil
			}
			return AlreadyFinished, nil
		}
	}
	return AlreadyFinished, nil // the workflow finished before the answer
}

// canceller finishes the cancellations of workflows: it cancels what their join sets
// still wait for and, once every request has its response, finishes them as cancelled.
// It is driven by commits (a cancellation requested, a response arrived) and, at start,
// by every unfinished cancellation; each pass is idempotent. It runs as the supervised
// service "canceller" (supervisor.go).
type canceller struct {
	e    *Engine
	wake wakeup
	mu   sync.Mutex
	// queued maps the workflows to pass over to when they were last enqueued (seq): a
	// workflow leaves it only once a pass over it is done and it was not enqueued again
	// meanwhile, so a pass that crashes leaves the rest to the restarted service.
	queued map[string]uint64
	seq    uint64
}

func newCanceller(e *Engine) *canceller {
	return &canceller{e: e, queued: map[string]uint64{}}
}

// enqueue asks for a pass over a workflow being cancelled; it never blocks (it is called
// from the store's commit hook).
func (c *canceller) enqueue(id string) {
	c.mu.Lock()
	c.seq++
	c.queued[id] = c.seq
	c.mu.Unlock()
	c.wake.poke()
}

// pass goes over the queued workflows; it has no due time of its own.
func (c *canceller) pass(ctx context.Context) time.Time {
	c.mu.Lock()
	todo := maps.Clone(c.queued)
	c.mu.Unlock()
	for id, seq := range todo {
		err := c.cancelOne(ctx, id)
		c.mu.Lock()
		if c.queued[id] == seq {
			delete(c.queued, id)
		}
		c.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			c.e.log.Warn("cancel: pass", "execution", id, "err", err)
			c.enqueueLater(ctx, id)
		}
	}
	return time.Time{}
}

func (c *canceller) enqueueLater(ctx context.Context, id string) {
	time.AfterFunc(safetyTick, func() {
		if ctx.Err() == nil {
			c.enqueue(id)
		}
	})
}

// cancelOne cancels the outstanding requests of a workflow being cancelled, or finishes
// it.
func (c *canceller) cancelOne(ctx context.Context, id string) error {
	e := c.e
	st, err := e.store.State(ctx, id)
	if err != nil {
		return err
	}
	if st.Status == pb.Status_STATUS_FINISHED || !st.CancelRequested {
		return nil
	}
	open, byDeadline, err := e.outstanding(ctx, id)
	if err != nil {
		return err
	}
	for _, req := range open {
		if _, err := e.Cancel(ctx, req); err != nil && !errors.As(err, new(*NotFoundError)) {
			return fmt.Errorf("cancel %s: %w", req, err)
		}
		e.hook("canceller", "request cancelled")
	}
	if len(open) > 0 {
		return nil // their responses bring the next pass
	}
	_, err = e.change(ctx, id, func(st *pb.ExecutionState) (*events.Tx, error) {
		if st == nil || st.Status == pb.Status_STATUS_FINISHED {
			return nil, nil
		}
		if byDeadline {
			return e.finishTx(st, deadlineResult(st), time.Now()), nil
		}
		return e.finishTx(st, events.FailureResult(events.FailureCancelled, "cancelled"), time.Now()), nil
	})
	return err
}

// outstanding lists the children and delays a workflow requested that have no response
// yet (History is frozen once a cancellation is requested, so the list is complete), and
// whether its cancellation is its deadline's (CancelRequested.deadline_exceeded).
func (e *Engine) outstanding(ctx context.Context, id string) (open []string, byDeadline bool, _ error) {
	evs, err := e.store.Events(ctx, id, 0, 0)
	if err != nil {
		return nil, false, err
	}
	resps, err := e.store.Responses(ctx, id, 0)
	if err != nil {
		return nil, false, err
	}
	answered := make(map[string]bool, len(resps))
	for _, r := range resps {
		answered[responseID(r)] = true
	}
	for _, ev := range evs {
		if c := ev.GetCancelRequested(); c != nil {
			byDeadline = c.DeadlineExceeded
		}
		req := ev.GetHistory().GetJoinSetRequest()
		if req == nil {
			continue
		}
		rid := req.GetChild().GetChildExecutionId()
		if d := req.GetDelay(); d != nil {
			rid = d.DelayId
		}
		if !answered[rid] {
			open = append(open, rid)
		}
	}
	return open, byDeadline, nil
}

// Pause stops an execution from being run until Unpause; responses still arrive. A
// workflow that is running is stopped (it continues by replay); a running activity cannot
// be paused.
func (e *Engine) Pause(ctx context.Context, id string) error {
	_, err := e.change(ctx, id, func(st *pb.ExecutionState) (*events.Tx, error) {
		now := time.Now().UnixNano()
		paused := &pb.Event{CreatedAt: now, Kind: &pb.Event_Paused{Paused: &pb.Paused{}}}
		switch {
		case st == nil:
			return nil, &NotFoundError{id}
		case st.Status == pb.Status_STATUS_FINISHED:
			return nil, &FailedPreconditionError{fmt.Sprintf("execution %s has finished", id)}
		case st.Paused:
			return nil, &FailedPreconditionError{fmt.Sprintf("execution %s is already paused", id)}
		case st.Status == pb.Status_STATUS_LOCKED && st.ComponentType != pb.ComponentType_COMPONENT_TYPE_WORKFLOW:
			return nil, &FailedPreconditionError{fmt.Sprintf("activity %s is running; pause it when it is not", id)}
		case st.Status == pb.Status_STATUS_LOCKED:
			return appendTx(st, "", &pb.Event{CreatedAt: now, Kind: &pb.Event_Unlocked{Unlocked: &pb.Unlocked{UnlockedAt: now, Reason: "paused"}}}, paused), nil
		}
		return appendTx(st, "", paused), nil
	})
	return err
}

// Unpause lets a paused execution run again.
func (e *Engine) Unpause(ctx context.Context, id string) error {
	_, err := e.change(ctx, id, func(st *pb.ExecutionState) (*events.Tx, error) {
		switch {
		case st == nil:
			return nil, &NotFoundError{id}
		case !st.Paused:
			return nil, &FailedPreconditionError{fmt.Sprintf("execution %s is not paused", id)}
		}
		return appendTx(st, "", &pb.Event{CreatedAt: time.Now().UnixNano(), Kind: &pb.Event_Unpaused{Unpaused: &pb.Unpaused{}}}), nil
	})
	return err
}

// StubOutcome says what Stub did.
type StubOutcome string

// The outcomes of Stub.
const (
	Stubbed        StubOutcome = "stubbed"
	AlreadyStubbed StubOutcome = "already_stubbed"
)

// Stub writes the result ({"ok": v} or {"err": v}, type-checked against the function's
// WIT) of an execution of an activity stub. Writing the result it already has is fine;
// another one is a FailedPreconditionError (conflict).
func (e *Engine) Stub(ctx context.Context, id string, result json.RawMessage) (StubOutcome, error) {
	var compact bytes.Buffer
	if err := json.Compact(&compact, result); err != nil {
		return "", &InvalidArgumentError{fmt.Errorf("result: %w", err)}
	}
	st, fn, err := e.stubTarget(ctx, id)
	if err != nil {
		return "", err
	}
	if st == nil {
		if _, err := e.store.State(ctx, id); err == nil {
			return "", &FailedPreconditionError{fmt.Sprintf("execution %s is not an execution of an activity stub", id)}
		}
		return "", &NotFoundError{id}
	}
	if msg := checkWrittenResult(fn, compact.Bytes()); msg != "" {
		return "", &InvalidArgumentError{fmt.Errorf("stub %s: %s", id, msg)}
	}
	var outcome StubOutcome
	_, err = e.change(ctx, id, func(st *pb.ExecutionState) (*events.Tx, error) {
		switch {
		case st.Status == pb.Status_STATUS_FINISHED && bytes.Equal(st.Result, compact.Bytes()):
			outcome = AlreadyStubbed
			return nil, nil
		case st.Status == pb.Status_STATUS_FINISHED:
			return nil, &FailedPreconditionError{fmt.Sprintf("conflict: execution %s already has the result %s", id, st.Result)}
		}
		outcome = Stubbed
		return e.finishTx(st, compact.Bytes(), time.Now()), nil
	})
	if err != nil {
		return "", err
	}
	return outcome, nil
}

// stubTarget returns the state and function of an execution of an activity stub; a nil
// state when there is no such execution.
func (e *Engine) stubTarget(ctx context.Context, id string) (*pb.ExecutionState, Function, error) {
	st, err := e.store.State(ctx, id)
	if errors.Is(err, events.ErrNotFound) {
		return nil, Function{}, nil
	}
	if err != nil {
		return nil, Function{}, err
	}
	fn, ok := e.reg.functionOf(st.ComponentId, st.Ffqn)
	if !ok || fn.Component.Config.Type != ActivityStub {
		return nil, Function{}, nil
	}
	return st, fn, nil
}

// checkWrittenResult says what is wrong with a result written from outside the function's
// code (a stub's, an external worker's), or "" if nothing.
func checkWrittenResult(fn Function, result []byte) string {
	r, err := events.ParseResult(result)
	if err != nil {
		return err.Error()
	}
	if r.Kind == pb.ResultKind_RESULT_KIND_EXECUTION_FAILURE {
		return `a written result is {"ok": v} or {"err": v}, not an execution failure`
	}
	if err := wit.CheckValue(fn.Fn.Result, result); err != nil {
		return fmt.Sprintf("result does not match %s: %v", fn.Fn.Result, err)
	}
	return ""
}

// activeRuns are the runs of this process by execution, so that a commit that takes an
// execution away from its run (finished by a cancellation, cancel requested, paused)
// stops the run at once.
type activeRuns struct {
	mu sync.Mutex
	m  map[string]context.CancelFunc
}

func (a *activeRuns) add(id string, cancel context.CancelFunc) {
	a.mu.Lock()
	a.m[id] = cancel
	a.mu.Unlock()
}

func (a *activeRuns) remove(id string) {
	a.mu.Lock()
	delete(a.m, id)
	a.mu.Unlock()
}

func (a *activeRuns) stop(id string) {
	a.mu.Lock()
	cancel := a.m[id]
	a.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}
