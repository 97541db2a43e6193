package actors

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// Upgrade: moving a set of workflow executions onto a new component, with approval.
//
// Each selected execution is shadow-replayed against the target (Engine.Replay). One
// that replays cleanly is moved onto it (Engine.MoveToComponent: a Moved event says who
// moved it from which component to which; its run of the old code is stopped, and a
// retired version is dropped with its last execution). One that diverges is left alone
// and listed with its report, unless it is approved (UpgradeOptions.Approve): it is then
// forked at the start of the step that diverged onto the target (Engine.Fork), and the
// original, cancelled, keeps its history.
//
// An execution that finished as nondeterminism_detected (its code diverged from its
// own history) is repaired by a fork too: its history, which the target must replay
// cleanly, is forked whole onto the target, which continues it; the original keeps
// its result, which was delivered already. A child execution is refused: its parent
// consumed its failure (docs/RATIONALE.md, "Repairing a nondeterministic execution").

// UpgradeOutcome is what Upgrade did with one execution.
type UpgradeOutcome string

// The outcomes of an upgrade.
const (
	// UpgradeMoved: it replayed cleanly and now runs on the target.
	UpgradeMoved UpgradeOutcome = "moved"
	// UpgradeForked: approved despite its divergence, or a repaired
	// nondeterminism_detected execution: forked onto the target (ForkID).
	UpgradeForked UpgradeOutcome = "forked"
	// UpgradeDiverged: it diverges on the target and was left alone.
	UpgradeDiverged UpgradeOutcome = "diverged"
	// UpgradeWouldMove, UpgradeWouldFork: what a dry run would have done.
	UpgradeWouldMove UpgradeOutcome = "would_move"
	UpgradeWouldFork UpgradeOutcome = "would_fork"
	// UpgradeFailed: it could not be replayed, moved or forked (Error says why); it was
	// left as it was.
	UpgradeFailed UpgradeOutcome = "failed"
)

// UpgradeSelection selects the executions of an upgrade: the IDs given, or every
// workflow execution of function FFQN, or pinned to component FromComponent (a name or
// an ID). Statuses, if any, keep those whose status (events.StatusName, or
// "nondeterminism_detected" for one that finished so) is listed. Without Statuses the
// unfinished ones and those that finished as nondeterminism_detected are selected.
type UpgradeSelection struct {
	IDs           []string
	FFQN          string
	FromComponent string
	Statuses      []string
}

// UpgradeOptions say where an upgrade moves executions and how.
type UpgradeOptions struct {
	// Component is the target: a deployed component's name or ID.
	Component string
	// DryRun replays and reports, and moves and forks nothing.
	DryRun bool
	// Approve are the executions that are forked at their divergence rather than left.
	Approve []string
	// By says who upgrades (recorded in the Moved events): "cli", the API caller.
	By string
}

// UpgradeItem is what Upgrade did with one execution.
type UpgradeItem struct {
	ExecutionID string
	// From is the component it was pinned to.
	From    string
	Outcome UpgradeOutcome
	// Report is its replay against the target (nil if it could not be replayed).
	Report *ReplayReport
	// ForkID is the fork made of it (forked).
	ForkID string
	// Error says why it failed.
	Error string
}

// UpgradeResult is an upgrade's outcome.
type UpgradeResult struct {
	// To is the target's component ID.
	To    string
	Items []UpgradeItem
}

// StatusNondeterminismDetected selects, in UpgradeSelection.Statuses, the executions
// that finished as nondeterminism_detected.
const StatusNondeterminismDetected = "nondeterminism_detected"

// Upgrade moves the selected workflow executions onto opts.Component (see above).
func (e *Engine) Upgrade(ctx context.Context, sel UpgradeSelection, opts UpgradeOptions) (*UpgradeResult, error) {
	to, err := e.moveTarget(opts.Component)
	if err != nil {
		return nil, fmt.Errorf("upgrade: %w", err)
	}
	if to.Config.Type != Workflow {
		return nil, &InvalidArgumentError{fmt.Errorf("upgrade: component %q is a %s: only workflow executions are upgraded", to.Config.Name, to.Config.Type)}
	}
	states, err := e.upgradeSelection(ctx, sel, to)
	if err != nil {
		return nil, err
	}
	approved := map[string]bool{}
	for _, id := range opts.Approve {
		if cid, err := events.CanonicalID(strings.TrimSpace(id)); err == nil {
			approved[cid] = true
		}
	}
	res := &UpgradeResult{To: to.ID}
	for _, st := range states {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		res.Items = append(res.Items, e.upgradeOne(ctx, st, to, opts, approved[st.ExecutionId]))
	}
	return res, nil
}

// upgradeSelection returns the states of the executions sel selects, by ID order for
// given IDs, oldest first otherwise. Those already on to are left out.
func (e *Engine) upgradeSelection(ctx context.Context, sel UpgradeSelection, to *Component) ([]*pb.ExecutionState, error) {
	given := 0
	for _, set := range []bool{len(sel.IDs) > 0, sel.FFQN != "", sel.FromComponent != ""} {
		if set {
			given++
		}
	}
	if given != 1 {
		return nil, &InvalidArgumentError{errors.New("upgrade: select the executions by their IDs, by function, or by the component they are pinned to: one of the three")}
	}
	for _, status := range sel.Statuses {
		switch status {
		case "pending_at", "locked", "blocked_by_join_set", StatusNondeterminismDetected:
		default:
			return nil, &InvalidArgumentError{fmt.Errorf("upgrade: status %q: want pending_at, locked, blocked_by_join_set or %s", status, StatusNondeterminismDetected)}
		}
	}
	keep := func(st *pb.ExecutionState) bool {
		status := events.StatusName(st.Status)
		if nondeterministic(st) {
			status = StatusNondeterminismDetected
		}
		if len(sel.Statuses) > 0 {
			return slices.Contains(sel.Statuses, status)
		}
		return st.Status != pb.Status_STATUS_FINISHED || status == StatusNondeterminismDetected
	}
	if len(sel.IDs) > 0 {
		var out []*pb.ExecutionState
		for _, id := range sel.IDs {
			cid, err := events.CanonicalID(strings.TrimSpace(id))
			if err != nil {
				return nil, &InvalidArgumentError{fmt.Errorf("upgrade: execution ID %q: %w", id, err)}
			}
			st, err := e.store.State(ctx, cid)
			if errors.Is(err, events.ErrNotFound) {
				return nil, &NotFoundError{cid}
			}
			if err != nil {
				return nil, fmt.Errorf("upgrade: %w", err)
			}
			out = append(out, st)
		}
		return out, nil
	}
	fromIDs := map[string]bool{}
	if sel.FromComponent != "" {
		for id, c := range e.reg.byID {
			if id == sel.FromComponent || c.Config.Name == sel.FromComponent {
				fromIDs[id] = true
			}
		}
		// A version this process does not have (never recorded) can still be named by ID.
		fromIDs[sel.FromComponent] = true
	}
	var out []*pb.ExecutionState
	err := e.store.AllStates(ctx, func(st *pb.ExecutionState) error {
		if st.ComponentType != pb.ComponentType_COMPONENT_TYPE_WORKFLOW || st.ComponentId == to.ID || !keep(st) {
			return nil
		}
		if sel.FFQN != "" && st.Ffqn != sel.FFQN || sel.FromComponent != "" && !fromIDs[st.ComponentId] {
			return nil
		}
		out = append(out, st)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("upgrade: list executions: %w", err)
	}
	slices.SortFunc(out, func(a, b *pb.ExecutionState) int { return strings.Compare(a.ExecutionId, b.ExecutionId) })
	return out, nil
}

// nondeterministic: st finished as nondeterminism_detected.
func nondeterministic(st *pb.ExecutionState) bool {
	if st.Status != pb.Status_STATUS_FINISHED {
		return false
	}
	res, err := events.ParseResult(st.Result)
	return err == nil && res.Failure != nil && res.Failure.Kind == events.FailureNondeterminismDetected
}

// upgradeOne replays st against to and moves it, forks it or leaves it (see above).
func (e *Engine) upgradeOne(ctx context.Context, st *pb.ExecutionState, to *Component, opts UpgradeOptions, approved bool) UpgradeItem {
	id := st.ExecutionId
	item := UpgradeItem{ExecutionID: id, From: st.ComponentId}
	fail := func(format string, args ...any) UpgradeItem {
		item.Outcome, item.Error = UpgradeFailed, fmt.Sprintf(format, args...)
		return item
	}
	switch {
	case st.ComponentType != pb.ComponentType_COMPONENT_TYPE_WORKFLOW:
		return fail("execution %s is of %s, not a workflow: only workflow executions are upgraded", id, st.Ffqn)
	case st.ComponentId == to.ID:
		return fail("execution %s is on %s already", id, to.ID)
	case st.Status == pb.Status_STATUS_FINISHED && !nondeterministic(st):
		return fail("execution %s has finished: only unfinished executions and those that finished as nondeterminism_detected are upgraded", id)
	}
	// The execution may go on while it is replayed: the move is made only if the
	// version replayed is still the execution's, else it is replayed again.
	for attempt := 0; ; attempt++ {
		rep, err := e.Replay(ctx, id, ReplayTarget{Component: to.ID})
		if err != nil {
			return fail("replay: %v", err)
		}
		item.Report = rep
		nd := nondeterministic(st)
		switch {
		case !rep.OK && !approved:
			item.Outcome = UpgradeDiverged
			return item
		case !rep.OK && rep.Divergence.Index >= rep.HistoryEvents:
			return fail("execution %s diverges past the end of its history (%s): there is no step to fork at", id, rep.Divergence.Detail)
		case nd && st.ParentId != "":
			return fail("execution %s finished as nondeterminism_detected and its parent %s has been given that result: repair the parent instead", id, st.ParentId)
		case !rep.OK && st.ParentId != "":
			// Its fork would be top-level, and the cancelled original's failure would go
			// to the parent: a child is repaired by upgrading its parent's tree.
			return fail("execution %s is a child of %s: approving its divergence would cancel it under its parent; upgrade the parent instead", id, st.ParentId)
		case rep.OK && !nd && opts.DryRun:
			item.Outcome = UpgradeWouldMove
			return item
		case opts.DryRun:
			item.Outcome = UpgradeWouldFork
			return item
		case rep.OK && !nd:
			err := e.moveAt(ctx, id, to.ID, opts.By, rep.Version)
			if errors.Is(err, errMovedOn) && attempt < 3 {
				if st, err = e.store.State(ctx, id); err != nil {
					return fail("read the state: %v", err)
				}
				continue // it went on meanwhile: replay what it has now
			}
			if err != nil {
				return fail("%v", err)
			}
			item.Outcome = UpgradeMoved
			return item
		}
		// Fork: an approved divergence at the step that diverged, a repaired
		// nondeterminism_detected execution after its whole history.
		at := rep.Version
		if nd {
			at = rep.Version - 1 // its last event is its result
		}
		if !rep.OK {
			at = rep.Divergence.StepVersion
		}
		forkID, err := e.Fork(ctx, id, at, ForkOptions{Component: to.ID, CancelOriginal: !nd})
		if forkID == "" {
			return fail("fork at version %d: %v", at, err)
		}
		// Forked, even if the original could not be cancelled: the fork is what to know
		// (an upgrade run again would fork it a second time).
		item.Outcome, item.ForkID = UpgradeForked, forkID
		if err != nil {
			item.Error = fmt.Sprintf("forked as %s, but the original was not cancelled: %v", forkID, err)
		}
		return item
	}
}
