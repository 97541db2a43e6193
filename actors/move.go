package actors

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/obelisk-go/obelisk/events"
	"github.com/obelisk-go/obelisk/internal/clip"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// MoveToComponent pins the unfinished execution id to another component, named by a
// deployed component's name or ID: its next run loads that component's code (a fixed
// version of its workflow, say), and its history, replayed there, must still match.
// It records a Moved event saying from which component to which and who did it (by:
// "cli", "api", ...), through the execution's actor like every decided change.
//
// The target must be deployed (not a retired version), of the same type, and export
// the execution's function with the same signature. A workflow that a run holds is
// unlocked by the same commit, and the run, or an instance parked in memory waiting for
// a response, is stopped: it runs the old code. A running activity is refused
// (FailedPreconditionError): move it when its attempt has ended. Moving an execution to
// the component it is on already changes nothing.
func (e *Engine) MoveToComponent(ctx context.Context, id, component, by string) error {
	return e.moveAt(ctx, id, component, by, 0)
}

// errMovedOn: the execution recorded something since the version a move was decided at.
var errMovedOn = errors.New("the execution went on since it was replayed")

// moveAt is MoveToComponent, refused with errMovedOn unless the execution's next version
// is still version (0: whatever it is): what was replayed against the target is then
// the whole history that the target's runs replay.
func (e *Engine) moveAt(ctx context.Context, id, component, by string, version uint32) error {
	to, err := e.moveTarget(component)
	if err != nil {
		return err
	}
	if cid, err := events.CanonicalID(id); err == nil {
		id = cid
	}
	var from string
	for attempt := 1; ; attempt++ {
		from, err = e.moveOnce(ctx, id, to, by, version)
		if !errors.Is(err, errMoveRaced) {
			break
		}
		if attempt == maxMoveAttempts {
			return &FailedPreconditionError{fmt.Sprintf("move %s to %s: the execution changed under each of %d attempts: try again", id, to.ID, attempt)}
		}
	}
	if err != nil {
		return fmt.Errorf("move %s to %s: %w", id, to.ID, err)
	}
	if from != "" {
		e.versionFinished(from)
		e.log.Info("execution moved to another component", "execution", id, "from", from, "to", to.ID, "by", by)
	}
	return nil
}

// errMoveRaced: the execution changed between a move's check of its run and its
// commit (a run of the old code locked it, say): the move checks again.
var errMoveRaced = errors.New("the execution changed since the move checked its run")

// maxMoveAttempts bounds the checks a move makes of an execution that keeps changing.
const maxMoveAttempts = 5

// moveOnce checks the execution id's run, stopping one of the old code, then commits
// the move (see moveAt), on the condition that the execution has not changed since the
// check (errMoveRaced). It returns the component the execution was moved from ("": it
// was not moved).
func (e *Engine) moveOnce(ctx context.Context, id string, to *Component, by string, version uint32) (string, error) {
	// A run of the old code is stopped before the commit that takes the execution
	// from it, so that the stop cannot reach a run of the new code started after the
	// commit. Stopping one needlessly (the move is then refused) costs a replay, no more.
	// A run that locks after this check changes the version, and the commit, which is
	// conditioned on the version seen here, is refused: the next attempt stops it.
	seen := uint32(0)
	if st, err := e.store.State(ctx, id); err == nil {
		seen = st.NextVersion
		if st.Status != pb.Status_STATUS_FINISHED && st.ComponentId != to.ID && st.ComponentType == pb.ComponentType_COMPONENT_TYPE_WORKFLOW &&
			st.RunId != "" && (st.Status == pb.Status_STATUS_LOCKED || st.LockExpiresAt > time.Now().UnixNano()) {
			e.active.stop(id)
		}
	}
	e.hook("move", "checked")
	var from string
	_, err := e.change(ctx, id, func(st *pb.ExecutionState) (*events.Tx, error) {
		from = ""
		if st == nil {
			return nil, &NotFoundError{id}
		}
		if err := e.checkMove(st, to); err != nil || st.ComponentId == to.ID {
			return nil, err
		}
		if version != 0 && st.NextVersion != version {
			return nil, errMovedOn
		}
		if seen != 0 && st.NextVersion != seen {
			return nil, errMoveRaced
		}
		now := time.Now().UnixNano()
		moved := &pb.Event{CreatedAt: now, Kind: &pb.Event_Moved{Moved: &pb.Moved{
			FromComponentId: st.ComponentId, ToComponentId: to.ID, By: by, Queue: e.movedQueue(st.Queue, to)}}}
		from = st.ComponentId
		if st.Status == pb.Status_STATUS_LOCKED {
			// A workflow (checkMove): its run stops; a later run, of the new code, replays.
			return appendTx(st, "", &pb.Event{CreatedAt: now, Kind: &pb.Event_Unlocked{Unlocked: &pb.Unlocked{
				UnlockedAt: now, Reason: "moved to " + to.ID}}}, moved), nil
		}
		return appendTx(st, "", moved), nil
	})
	return from, err
}

// moveTarget returns the deployed component named (or identified) by component: a
// retired version is refused.
func (e *Engine) moveTarget(component string) (*Component, error) {
	c, err := e.reg.lookup(component)
	if err != nil {
		return nil, err
	}
	if c.Retired {
		return nil, &InvalidArgumentError{fmt.Errorf("component %s is a retired version: it only finishes the executions pinned to it, and takes no others", component)}
	}
	return c, nil
}

// checkMove says why the execution st cannot be moved to component to (nil: it can).
func (e *Engine) checkMove(st *pb.ExecutionState, to *Component) error {
	switch {
	case st.Status == pb.Status_STATUS_FINISHED:
		return &FailedPreconditionError{fmt.Sprintf("execution %s has finished: there is nothing to move", st.ExecutionId)}
	case st.Status == pb.Status_STATUS_LOCKED && st.ComponentType != pb.ComponentType_COMPONENT_TYPE_WORKFLOW:
		return &FailedPreconditionError{fmt.Sprintf("activity %s is running; move it when its attempt has ended", st.ExecutionId)}
	}
	return e.checkRunsOn(st, to, to.Config.Name)
}

// checkRunsOn says why the execution st cannot run, or be replayed, on component to,
// which messages call what (its name, or the file it came from) (nil: it can): to must
// be of st's type and export its function with the signature of the component st is
// pinned to (registry.functionOf; when this process has it).
func (e *Engine) checkRunsOn(st *pb.ExecutionState, to *Component, what string) error {
	id := st.ExecutionId
	if st.ComponentType != to.Config.pbType() {
		return &InvalidArgumentError{fmt.Errorf("execution %s runs on a %s, component %s is a %s", id, componentTypeName(st.ComponentType), clip.Quote(what), to.Config.Type)}
	}
	fn, ok := to.function(st.Ffqn)
	if !ok {
		return &InvalidArgumentError{fmt.Errorf("component %s does not export %s, the function of execution %s", clip.Quote(what), clip.String(st.Ffqn), id)}
	}
	if pinned, ok := e.reg.functionOf(st.ComponentId, st.Ffqn); ok && pinned.Fn.Signature() != fn.Fn.Signature() {
		return &InvalidArgumentError{fmt.Errorf("component %s exports %s as %s, but execution %s was created for %s", clip.Quote(what), st.Ffqn, fn.Fn.Signature(), id, pinned.Fn.Signature())}
	}
	return nil
}

// movedQueue is the queue an execution pending in queue is pending in once moved to
// component to: the same, if this process's executor of that queue runs to (a queue
// chosen at submission), else the one to is configured with.
func (e *Engine) movedQueue(queue string, to *Component) string {
	if q := e.queues[queue]; q != nil && q.byComponent[to.ID] != nil {
		return queue
	}
	return to.Config.QueueName()
}
