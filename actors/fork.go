package actors

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	"github.com/obelisk-go/obelisk/snapshot"
)

// Forks.
//
// A fork is a new top-level workflow execution whose history is a prefix of another's,
// copied as recorded, and which then goes on by itself, on the same code or on another
// component. The fork point is a version: events 0..at-1 are kept, with the responses
// that had arrived when event at was written (at_version <= at), so the fork starts in
// the state its original was in just before event at. Its children and delays are those
// the prefix requested, renamed into the fork's tree (the IDs derive from the parent's,
// and the workflow, replayed under its new ID, asks for them by the new names); the
// child executions themselves stay the original's, and their results come to the fork as
// copied responses. See docs/RATIONALE.md, "A fork copies a prefix, renamed".

// ForkOptions change what Engine.Fork does.
type ForkOptions struct {
	// Component is the deployed component (name or ID) the fork continues on; "" keeps
	// the original's.
	Component string
	// CancelOriginal cancels the original once the fork exists.
	CancelOriginal bool
}

// Fork creates a workflow execution whose history is execution id's up to version at
// (events 0..at-1 and the responses folded before event at), then continues it on
// opts.Component, and returns its ID. The fork records its origin (Created.forked_from,
// forked_at_version) and the original lists it (Store.Forks).
//
// at must be 1 (the Created event alone) or more, no later than the last event before
// the result, and at a step boundary: not inside the events one host call recorded
// together (a direct call or sleep, a join set's close), which a replay could not stop
// in. Every child requested in the prefix must have finished, before or after at (its
// result comes to the fork as the original got it): a child still running is refused,
// named. Delays requested in the prefix and not answered in it get timers of the fork's,
// at their recorded expiries.
func (e *Engine) Fork(ctx context.Context, id string, at uint32, opts ForkOptions) (string, error) {
	if cid, err := events.CanonicalID(id); err == nil {
		id = cid
	}
	st, evs, resps, err := e.workflowHistory(ctx, id, "forked")
	if errors.Is(err, events.ErrNotFound) {
		return "", &NotFoundError{id}
	}
	if err != nil {
		return "", fmt.Errorf("fork %s: %w", id, err)
	}
	if opts.CancelOriginal && st.ParentId != "" {
		// The fork is top-level: its result would go nowhere, and the cancellation's
		// failure to the parent.
		return "", &InvalidArgumentError{fmt.Errorf("execution %s is a child of %s: a child's fork cannot replace it under its parent (fork without cancelling it, or fork the parent)", id, st.ParentId)}
	}
	if err := forkPoint(id, evs, at); err != nil {
		return "", &InvalidArgumentError{err}
	}
	to, err := e.forkTarget(st, opts.Component)
	if err != nil {
		return "", err
	}
	now := time.Now()
	fork := events.NewExecutionID(now)
	rn := renamer{from: id, to: fork}

	prefix := make([]*pb.Event, at)
	requested := map[string]*pb.JoinSetRequest{} // children of the prefix, by the original's ID
	var order []string
	for v, ev := range evs[:at] {
		ev = proto.CloneOf(ev)
		if c := ev.GetCreated(); c != nil {
			c.ParentId, c.ParentJoinSetId, c.ScheduledBy = "", "", ""
			c.TraceParent, c.TraceState = "", "" // a new top-level execution: a trace of its own
			c.ForkedFrom, c.ForkedAtVersion = id, at
			if c.SeedId == "" { // a fork of a fork keeps the root's
				c.SeedId = id
			}
			// A fork is a repair, started later: the original's deadline was its
			// submitter's, and would often have passed already.
			c.Deadline = 0
		}
		if r := ev.GetHistory().GetJoinSetRequest(); r != nil && r.GetChild() != nil {
			requested[r.GetChild().ChildExecutionId] = r
			order = append(order, r.GetChild().ChildExecutionId)
		}
		rn.history(ev.GetHistory())
		prefix[v] = ev
	}
	var copied []*pb.Response
	answered := map[string]bool{}
	for _, r := range resps {
		if r.AtVersion > at {
			break // the log is in arrival order: at_version never decreases
		}
		answered[responseID(r)] = true
		copied = append(copied, rn.response(r))
	}
	pst, err := snapshot.Refold(fork, prefix, copied)
	if err != nil {
		return "", fmt.Errorf("fork %s at version %d: %w", id, at, err)
	}

	// The children the prefix requested and did not get an answer for: their results
	// come after the copied history, as the original got them (or would have).
	var after []*pb.Response
	for _, r := range resps {
		if c := r.GetChild(); c != nil && r.AtVersion > at && requested[c.ChildExecutionId] != nil && !answered[c.ChildExecutionId] {
			answered[c.ChildExecutionId] = true
			after = append(after, rn.response(r))
		}
	}
	for _, child := range order {
		if answered[child] {
			continue
		}
		cst, err := e.store.State(ctx, child)
		if err != nil && !errors.Is(err, events.ErrNotFound) {
			return "", fmt.Errorf("fork %s: read child %s: %w", id, child, err)
		}
		if cst == nil || cst.Status != pb.Status_STATUS_FINISHED {
			return "", &InvalidArgumentError{fmt.Errorf("child %s, requested before version %d, has not finished: fork at a version before its request, or once it has finished (its result then comes to the fork too)", child, at)}
		}
		after = append(after, rn.response(&pb.Response{CreatedAt: cst.FinishedAt, JoinSetId: requested[child].JoinSetId,
			Kind: &pb.Response_Child{Child: &pb.ChildFinished{ChildExecutionId: child, Result: cst.Result}}}))
	}
	for _, r := range after {
		r.AtVersion = math.MaxUint32 // after the copied events and the fork's own
	}

	// The fork's own events: the original's run does not hold it, and it runs on to.
	tail := []*pb.Event(nil)
	if pst.Status == pb.Status_STATUS_LOCKED || pst.RunId != "" && pst.LockExpiresAt > now.UnixNano() {
		tail = append(tail, &pb.Event{CreatedAt: now.UnixNano(), Kind: &pb.Event_Unlocked{Unlocked: &pb.Unlocked{
			UnlockedAt: now.UnixNano(), Reason: fmt.Sprintf("forked from %s at version %d", id, at)}}})
	}
	if pst.Paused {
		// Whoever paused the original did not pause the fork someone asks for now.
		tail = append(tail, &pb.Event{CreatedAt: now.UnixNano(), Kind: &pb.Event_Unpaused{Unpaused: &pb.Unpaused{}}})
	}
	queue := pst.Queue
	if pst.ComponentId != to.ID {
		queue = e.movedQueue(pst.Queue, to)
		tail = append(tail, &pb.Event{CreatedAt: now.UnixNano(), Kind: &pb.Event_Moved{Moved: &pb.Moved{
			FromComponentId: pst.ComponentId, ToComponentId: to.ID, By: "fork", Queue: queue}}})
	}
	// A fork is a new top-level execution asked for from outside, admitted as a
	// submission is (admission.go), before its actor decides (see Submit).
	release, err := e.admit(queue, now)
	if err != nil {
		return "", e.refused(err)
	}
	defer release() // once committed (and counted by the store) or not
	if err := e.versionStarted(to.ID); err != nil {
		return "", err
	}
	_, err = e.change(ctx, fork, func(st *pb.ExecutionState) (*events.Tx, error) {
		if st != nil {
			return nil, &ExistsError{fork}
		}
		return &events.Tx{Appends: []events.Append{{ExecutionID: fork, Events: append(prefix, tail...), Responses: append(copied, after...)}}}, nil
	})
	if err != nil {
		e.versionFinished(to.ID)
		return "", fmt.Errorf("fork %s at version %d: %w", id, at, err)
	}
	e.log.Info("execution forked", "execution", id, "at_version", at, "fork", fork, "component", to.ID)
	if opts.CancelOriginal {
		if _, err := e.Cancel(ctx, id); err != nil {
			return fork, fmt.Errorf("forked %s as %s, but cancelling the original failed: %w", id, fork, err)
		}
	}
	return fork, nil
}

// forkTarget returns the component a fork of the execution st continues on: the
// deployed one named (or identified) by component, or, for "", the one st is pinned to,
// which must still be loaded.
func (e *Engine) forkTarget(st *pb.ExecutionState, component string) (*Component, error) {
	var to *Component
	if component != "" {
		var err error
		if to, err = e.moveTarget(component); err != nil {
			return nil, err
		}
	} else if to = e.reg.byID[st.ComponentId]; to == nil || to.dropped.Load() {
		return nil, &FailedPreconditionError{fmt.Sprintf("execution %s ran on %s, which is not deployed any more: name the component the fork continues on", st.ExecutionId, st.ComponentId)}
	}
	if err := e.checkRunsOn(st, to, to.Config.Name); err != nil {
		return nil, err
	}
	return to, nil
}

// forkPoint says why version at of the history evs of execution id is not a fork point
// (nil: it is).
func forkPoint(id string, evs []*pb.Event, at uint32) error {
	last := uint32(len(evs)) // the first version that cannot be kept
	for v, ev := range evs {
		switch {
		case ev.GetFinished() != nil:
			last = uint32(v)
		case ev.GetCancelRequested() != nil && uint32(v) < at:
			return fmt.Errorf("version %d: execution %s was being cancelled from version %d on: fork at %d or before", at, id, v, v)
		}
	}
	switch {
	case at == 0:
		return fmt.Errorf("version 0: a fork keeps at least the Created event (version 0): fork at 1 or later")
	case at > last:
		return fmt.Errorf("version %d is beyond the history of %s: it has events 0..%d before its result: fork at 1..%d", at, id, last-1, last)
	}
	// The events one host call recorded together: a direct call or a sleep (the
	// create, request and join_next of a one-off join set) and a join set's close (its
	// closing join_nexts). A replay that ended inside one would fail.
	var prev, next *pb.HistoryEvent
	prevV := -1
	for v := int(at) - 1; v > 0 && prev == nil; v-- {
		prev, prevV = evs[v].GetHistory(), v
	}
	for v := int(at); v < len(evs) && next == nil; v++ {
		next = evs[v].GetHistory()
	}
	if prev == nil {
		return nil
	}
	js := prev.GetJoinSetCreate().GetJoinSetId() + prev.GetJoinSetRequest().GetJoinSetId()
	if strings.HasPrefix(js, "o:") {
		start, end := prevV, int(at)
		for v := prevV; v > 0; v-- {
			if evs[v].GetHistory().GetJoinSetCreate().GetJoinSetId() == js {
				start = v
				break
			}
		}
		for v := int(at); v < len(evs); v++ {
			if evs[v].GetHistory().GetJoinNext().GetJoinSetId() == js {
				end = v + 1
				break
			}
		}
		return fmt.Errorf("version %d is not a step boundary: it is inside the call recorded by versions %d..%d (join set %s): fork at %d or %d", at, start, end-1, js, start, end)
	}
	if jn, nx := prev.GetJoinNext(), next.GetJoinNext(); jn.GetClosing() && nx.GetClosing() && jn.JoinSetId == nx.JoinSetId {
		return fmt.Errorf("version %d is not a step boundary: it is inside the close of join set %s (closing join_nexts around it)", at, jn.JoinSetId)
	}
	return nil
}

// renamer renames the children and delays of a workflow's tree into a fork's: their IDs
// derive from their parent's (E_<ULID>.<join-set>_<n>, Delay_<ULID>.<join-set>_<n>).
type renamer struct{ from, to string }

func (rn renamer) id(s string) string {
	if rest, ok := strings.CutPrefix(s, rn.from+"."); ok {
		return rn.to + "." + rest
	}
	from := events.DelayPrefix + strings.TrimPrefix(rn.from, events.TopLevelPrefix) + "."
	if rest, ok := strings.CutPrefix(s, from); ok {
		return events.DelayPrefix + strings.TrimPrefix(rn.to, events.TopLevelPrefix) + "." + rest
	}
	return s
}

// history renames the IDs a history event (nil: none) holds, in place.
func (rn renamer) history(h *pb.HistoryEvent) {
	if c := h.GetJoinSetRequest().GetChild(); c != nil {
		c.ChildExecutionId = rn.id(c.ChildExecutionId)
	}
	if d := h.GetJoinSetRequest().GetDelay(); d != nil {
		d.DelayId = rn.id(d.DelayId)
	}
	if s := h.GetStub(); s != nil {
		s.TargetExecutionId = rn.id(s.TargetExecutionId)
	}
}

// response returns a copy of r with its child or delay renamed.
func (rn renamer) response(r *pb.Response) *pb.Response {
	r = proto.CloneOf(r)
	if c := r.GetChild(); c != nil {
		c.ChildExecutionId = rn.id(c.ChildExecutionId)
	}
	if d := r.GetDelay(); d != nil {
		d.DelayId = rn.id(d.DelayId)
	}
	return r
}
