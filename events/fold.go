package events

import (
	"fmt"
	"strings"
	"unicode/utf8"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// TransitionError is returned when an event is not allowed in the execution's state.
type TransitionError struct {
	ExecutionID string
	Event       string
	Status      pb.Status
	Reason      string
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("execution %s: %s not allowed in status %s: %s", e.ExecutionID, e.Event, StatusName(e.Status), e.Reason)
}

// ResultKindName names the kind of a finished execution's result: ok, err or
// execution_failure (its top-level member).
func ResultKindName(k pb.ResultKind) string {
	switch k {
	case pb.ResultKind_RESULT_KIND_OK:
		return "ok"
	case pb.ResultKind_RESULT_KIND_ERR:
		return "err"
	}
	return "execution_failure"
}

// StatusName is the API name of a status: pending_at, locked, blocked_by_join_set, finished.
func StatusName(s pb.Status) string {
	switch s {
	case pb.Status_STATUS_PENDING_AT:
		return "pending_at"
	case pb.Status_STATUS_LOCKED:
		return "locked"
	case pb.Status_STATUS_BLOCKED_BY_JOIN_SET:
		return "blocked_by_join_set"
	case pb.Status_STATUS_FINISHED:
		return "finished"
	}
	return "unknown"
}

// EventKind names an event's kind as the API shows it.
func EventKind(ev *pb.Event) string {
	switch k := ev.Kind.(type) {
	case *pb.Event_Created:
		return "created"
	case *pb.Event_Locked:
		return "locked"
	case *pb.Event_Unlocked:
		return "unlocked"
	case *pb.Event_TemporarilyFailed:
		return "temporarily_failed"
	case *pb.Event_TemporarilyTimedOut:
		return "temporarily_timed_out"
	case *pb.Event_History:
		switch k.History.Kind.(type) {
		case *pb.HistoryEvent_Persist:
			return "history.persist"
		case *pb.HistoryEvent_JoinSetCreate:
			return "history.join_set_create"
		case *pb.HistoryEvent_JoinSetRequest:
			return "history.join_set_request"
		case *pb.HistoryEvent_JoinNext:
			return "history.join_next"
		case *pb.HistoryEvent_Schedule:
			return "history.schedule"
		case *pb.HistoryEvent_Stub:
			return "history.stub"
		case *pb.HistoryEvent_JoinNextTry:
			return "history.join_next_try"
		}
		return "history"
	case *pb.Event_CancelRequested:
		return "cancel_requested"
	case *pb.Event_Paused:
		return "paused"
	case *pb.Event_Unpaused:
		return "unpaused"
	case *pb.Event_Finished:
		return "finished"
	case *pb.Event_Moved:
		return "moved"
	}
	return "unknown"
}

// Fold applies the event with the given version to st and returns the new state. st is
// nil before version 0 (Created). Fold never mutates st: the result is a new value
// (sharing nothing mutable with st), so a caller can discard it if a later check fails.
// Time comes only from the events, so folding is deterministic.
func Fold(id string, st *pb.ExecutionState, version uint32, ev *pb.Event) (*pb.ExecutionState, error) {
	kind := EventKind(ev)
	bad := func(status pb.Status, reason string) error {
		return &TransitionError{ExecutionID: id, Event: kind, Status: status, Reason: reason}
	}
	now := ev.CreatedAt
	if st == nil {
		c := ev.GetCreated()
		if c == nil || version != 0 {
			return nil, bad(pb.Status_STATUS_UNSPECIFIED, "the first event must be created, at version 0")
		}
		return &pb.ExecutionState{
			ExecutionId:      id,
			Ffqn:             c.Ffqn,
			ComponentId:      c.ComponentId,
			ComponentType:    c.ComponentType,
			Queue:            c.Queue,
			ParentId:         c.ParentId,
			ParentJoinSetId:  c.ParentJoinSetId,
			CreatedAt:        now,
			FirstScheduledAt: c.ScheduledAt,
			NextVersion:      1,
			Status:           pb.Status_STATUS_PENDING_AT,
			PendingAt:        c.ScheduledAt,
			UpdatedAt:        now,
			SubmittedRetry:   c.Retry,
			ForkedFrom:       c.ForkedFrom,
			ForkedAtVersion:  c.ForkedAtVersion,
			Deadline:         c.Deadline,
			TraceParent:      c.TraceParent,
			TraceState:       c.TraceState,
		}, nil
	}
	if version != st.NextVersion {
		return nil, bad(st.Status, fmt.Sprintf("version %d, expected %d", version, st.NextVersion))
	}
	if st.Status == pb.Status_STATUS_FINISHED {
		return nil, bad(st.Status, "the execution has finished")
	}
	n := CloneState(st)
	n.NextVersion++
	n.UpdatedAt = now
	switch k := ev.Kind.(type) {
	case *pb.Event_Created:
		return nil, bad(st.Status, "already created")
	case *pb.Event_Locked:
		l := k.Locked
		if l.LockExpiresAt <= now {
			return nil, bad(st.Status, "lock expires before it is taken")
		}
		sameRun := l.RunId != "" && l.RunId == st.RunId
		switch {
		case st.Paused:
			return nil, bad(st.Status, "the execution is paused")
		case st.CancelRequested:
			return nil, bad(st.Status, "the execution is being cancelled")
		case st.Status == pb.Status_STATUS_LOCKED && sameRun:
		case st.Status == pb.Status_STATUS_PENDING_AT && (st.PendingAt <= now || sameRun && st.LockExpiresAt > now):
		case st.Status == pb.Status_STATUS_LOCKED:
			return nil, bad(st.Status, "locked by another run")
		default:
			return nil, bad(st.Status, "not pending, or not due yet")
		}
		// locked_at_version tells whether a run made progress (wrote history) before its
		// lock expired, which decides whether the expiry counts as a timeout. An extension
		// right after the lock (a run renewing it before its replay) is no progress, so it
		// moves the mark.
		if !sameRun || st.Status != pb.Status_STATUS_LOCKED || st.NextVersion == st.LockedAtVersion+1 {
			n.LockedAtVersion = version
		}
		n.Status = pb.Status_STATUS_LOCKED
		n.ExecutorId, n.RunId, n.LockExpiresAt = l.ExecutorId, l.RunId, l.LockExpiresAt
		n.Retry = l.Retry
		n.PendingAt = 0
		if l.ComponentId != "" {
			n.ComponentId = l.ComponentId
		}
	case *pb.Event_Unlocked:
		switch st.Status {
		case pb.Status_STATUS_LOCKED:
			n.Status, n.PendingAt, n.LockExpiresAt = pb.Status_STATUS_PENDING_AT, k.Unlocked.UnlockedAt, 0
			// A run that replayed up to a wait whose response has not come leaves the
			// execution blocked on it, not pending (it would only be locked again). If
			// several waits are unanswered, the smallest join set ID is chosen, so that the
			// fold does not depend on map iteration order.
			for id, js := range n.JoinSets {
				if js.JoinNexts > js.Responses && (n.Status != pb.Status_STATUS_BLOCKED_BY_JOIN_SET || id < n.BlockedJoinSetId) {
					n.Status, n.PendingAt, n.BlockedJoinSetId = pb.Status_STATUS_BLOCKED_BY_JOIN_SET, 0, id
				}
			}
		case pb.Status_STATUS_BLOCKED_BY_JOIN_SET, pb.Status_STATUS_PENDING_AT:
			// Releases a warm run's lease: the next response makes it due at once.
			n.LockExpiresAt = 0
			if st.Status == pb.Status_STATUS_PENDING_AT {
				n.PendingAt = k.Unlocked.UnlockedAt
			}
		}
	case *pb.Event_TemporarilyFailed:
		if !holdsLock(st, now) {
			return nil, bad(st.Status, "not locked")
		}
		n.Status, n.PendingAt, n.LockExpiresAt = pb.Status_STATUS_PENDING_AT, k.TemporarilyFailed.BackoffExpiresAt, 0
		n.IntermittentFailures++
		n.LastFailure = failureText(n.IntermittentFailures, "failed", k.TemporarilyFailed.Reason, k.TemporarilyFailed.Detail)
	case *pb.Event_TemporarilyTimedOut:
		if st.Status != pb.Status_STATUS_LOCKED {
			return nil, bad(st.Status, "not locked")
		}
		n.Status, n.PendingAt, n.LockExpiresAt = pb.Status_STATUS_PENDING_AT, k.TemporarilyTimedOut.BackoffExpiresAt, 0
		n.IntermittentFailures++
		n.LastFailure = failureText(n.IntermittentFailures, "timed out", k.TemporarilyTimedOut.Reason, nil)
	case *pb.Event_History:
		switch {
		case !holdsLock(st, now):
			return nil, bad(st.Status, "history is written only by the run holding the lock")
		case st.CancelRequested:
			// Freezes the requests: the cancellation sees every child it must cancel.
			return nil, bad(st.Status, "the execution is being cancelled")
		case st.Paused:
			return nil, bad(st.Status, "the execution is paused")
		}
		if st.Status != pb.Status_STATUS_LOCKED {
			// A warm run continuing within its lease re-takes its lock implicitly.
			n.Status, n.PendingAt = pb.Status_STATUS_LOCKED, 0
		}
		if err := foldHistory(n, k.History, now); err != nil {
			return nil, bad(st.Status, err.Error())
		}
	case *pb.Event_CancelRequested:
		if st.CancelRequested {
			return nil, bad(st.Status, "cancellation was already requested")
		}
		n.CancelRequested = true
	case *pb.Event_Paused:
		switch {
		case st.Paused:
			return nil, bad(st.Status, "already paused")
		case st.Status == pb.Status_STATUS_LOCKED:
			// A run holds it: unlock first (a workflow), or wait (an activity).
			return nil, bad(st.Status, "a locked execution cannot be paused")
		}
		n.Paused = true
	case *pb.Event_Unpaused:
		if !st.Paused {
			return nil, bad(st.Status, "not paused")
		}
		n.Paused = false
	case *pb.Event_Moved:
		m := k.Moved
		switch {
		case st.Status == pb.Status_STATUS_LOCKED:
			// The run holding it runs the old code and would go on writing.
			return nil, bad(st.Status, "a locked execution cannot be moved: a run holds it")
		case m.ToComponentId == "":
			return nil, bad(st.Status, "no component to move to")
		case m.FromComponentId != st.ComponentId:
			return nil, bad(st.Status, fmt.Sprintf("it runs on %s, not on %s", st.ComponentId, m.FromComponentId))
		}
		n.ComponentId = m.ToComponentId
		if m.Queue != "" {
			n.Queue = m.Queue
		}
		if st.RunId != "" && st.LockExpiresAt > now {
			// A parked run's lease ends: it cannot write history any more (holdsLock),
			// and a response makes the execution due at once, for a run of the new code.
			n.LockExpiresAt = 0
			if st.Status == pb.Status_STATUS_PENDING_AT {
				n.PendingAt = now
			}
		}
	case *pb.Event_Finished:
		r, err := ParseResult(k.Finished.Result)
		if err != nil {
			return nil, bad(st.Status, err.Error())
		}
		n.Status = pb.Status_STATUS_FINISHED
		n.FinishedAt, n.ResultKind, n.Result = now, r.Kind, k.Finished.Result
		n.PendingAt, n.LockExpiresAt, n.BlockedJoinSetId = 0, 0, ""
		n.JoinSets = nil
	default:
		return nil, bad(st.Status, "unknown event kind")
	}
	return n, nil
}

// maxFailureText bounds a state's last_failure: the state is stored with every event, and
// the whole reason (a trap's stack trace, say) is in the event anyway.
const maxFailureText = 512

// failureText is the state's last_failure for the n-th temporary failure or timeout:
// "attempt 3 timed out: lock expired after 1s", with the error value (detail) appended
// when there is one.
func failureText(n uint32, what, reason string, detail []byte) string {
	s := fmt.Sprintf("attempt %d %s", n, what)
	if reason != "" {
		s += ": " + reason
	}
	if len(detail) > 0 {
		s += ": " + string(detail)
	}
	if len(s) > maxFailureText {
		cut := maxFailureText
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return s
}

// holdsLock: the execution is locked, or a warm run's lease (a JoinNext's run_expires_at)
// has not run out. Which run holds it is checked by the store against Append.RunID.
func holdsLock(st *pb.ExecutionState, now int64) bool {
	switch st.Status {
	case pb.Status_STATUS_LOCKED:
		return true
	case pb.Status_STATUS_PENDING_AT, pb.Status_STATUS_BLOCKED_BY_JOIN_SET:
		return st.RunId != "" && st.LockExpiresAt > now
	}
	return false
}

func foldHistory(n *pb.ExecutionState, h *pb.HistoryEvent, now int64) error {
	switch k := h.Kind.(type) {
	case *pb.HistoryEvent_JoinSetCreate:
		id := k.JoinSetCreate.JoinSetId
		if _, ok := n.JoinSets[id]; ok {
			return fmt.Errorf("join set %s already exists", id)
		}
		if n.JoinSets == nil {
			n.JoinSets = map[string]*pb.JoinSetCounters{}
		}
		n.JoinSets[id] = &pb.JoinSetCounters{}
	case *pb.HistoryEvent_JoinSetRequest:
		js, ok := n.JoinSets[k.JoinSetRequest.JoinSetId]
		if !ok {
			return fmt.Errorf("join set %s does not exist", k.JoinSetRequest.JoinSetId)
		}
		js.Requests++
	case *pb.HistoryEvent_JoinNext:
		id := k.JoinNext.JoinSetId
		js, ok := n.JoinSets[id]
		if !ok {
			return fmt.Errorf("join set %s does not exist", id)
		}
		js.JoinNexts++
		if js.Responses < js.JoinNexts {
			n.Status = pb.Status_STATUS_BLOCKED_BY_JOIN_SET
			n.BlockedJoinSetId = id
			n.LockExpiresAt = k.JoinNext.RunExpiresAt
		}
		pruneOneOff(n, id)
	case *pb.HistoryEvent_JoinNextTry:
		id := k.JoinNextTry.JoinSetId
		js, ok := n.JoinSets[id]
		if !ok {
			return fmt.Errorf("join set %s does not exist", id)
		}
		if k.JoinNextTry.Outcome == "found" {
			if js.Responses <= js.JoinNexts {
				return fmt.Errorf("join_next_try found a response in join set %s, which has none to take", id)
			}
			js.JoinNexts++
			pruneOneOff(n, id)
		}
	case *pb.HistoryEvent_Persist, *pb.HistoryEvent_Schedule, *pb.HistoryEvent_Stub:
	default:
		return fmt.Errorf("unknown history event")
	}
	return nil
}

// pruneOneOff forgets a one-off join set once all of it has been joined: nothing can refer
// to it again, and keeping it would make a long workflow's state grow without bound.
func pruneOneOff(n *pb.ExecutionState, id string) {
	js := n.JoinSets[id]
	if strings.HasPrefix(id, "o:") && js.Requests == js.Responses && js.Responses == js.JoinNexts {
		delete(n.JoinSets, id)
	}
}

// FoldResponse applies a response (a child finished, a delay expired) to st. A workflow
// blocked on the response's join set becomes pending: at once, or when the lease of the
// warm run that waits for it ends, so that run can continue without a replay.
func FoldResponse(st *pb.ExecutionState, r *pb.Response) (*pb.ExecutionState, error) {
	if st.Status == pb.Status_STATUS_FINISHED {
		return nil, &TransitionError{ExecutionID: st.ExecutionId, Event: "response", Status: st.Status, Reason: "the execution has finished"}
	}
	n := CloneState(st)
	n.ResponseCount++
	n.UpdatedAt = r.CreatedAt
	js, ok := n.JoinSets[r.JoinSetId]
	if !ok {
		// The response can only follow its request; an unknown join set means the one-off
		// set was pruned, which happens only after its response. Record it anyway.
		if n.JoinSets == nil {
			n.JoinSets = map[string]*pb.JoinSetCounters{}
		}
		js = &pb.JoinSetCounters{}
		n.JoinSets[r.JoinSetId] = js
	}
	js.Responses++
	if n.Status == pb.Status_STATUS_BLOCKED_BY_JOIN_SET && n.BlockedJoinSetId == r.JoinSetId && js.Responses >= js.JoinNexts {
		n.Status = pb.Status_STATUS_PENDING_AT
		n.PendingAt = max(r.CreatedAt, n.LockExpiresAt)
		n.BlockedJoinSetId = ""
	}
	// Also when the wait was recorded by a run that stopped before the response came.
	pruneOneOff(n, r.JoinSetId)
	return n, nil
}

// CloneState deep-copies a state (faster than proto.Clone on this hot path).
func CloneState(st *pb.ExecutionState) *pb.ExecutionState {
	n := &pb.ExecutionState{
		ExecutionId: st.ExecutionId, Ffqn: st.Ffqn, ComponentId: st.ComponentId, ComponentType: st.ComponentType,
		Queue: st.Queue, ParentId: st.ParentId, ParentJoinSetId: st.ParentJoinSetId, CreatedAt: st.CreatedAt,
		FirstScheduledAt: st.FirstScheduledAt, NextVersion: st.NextVersion, ResponseCount: st.ResponseCount,
		Status: st.Status, PendingAt: st.PendingAt, ExecutorId: st.ExecutorId, RunId: st.RunId,
		LockExpiresAt: st.LockExpiresAt, LockedAtVersion: st.LockedAtVersion, Retry: st.Retry,
		IntermittentFailures: st.IntermittentFailures, BlockedJoinSetId: st.BlockedJoinSetId,
		CancelRequested: st.CancelRequested, Paused: st.Paused, FinishedAt: st.FinishedAt,
		ResultKind: st.ResultKind, Result: st.Result, UpdatedAt: st.UpdatedAt, LastFailure: st.LastFailure,
		SubmittedRetry: st.SubmittedRetry, EventChain: st.EventChain, ResponseChain: st.ResponseChain,
		ForkedFrom: st.ForkedFrom, ForkedAtVersion: st.ForkedAtVersion, Deadline: st.Deadline,
		TraceParent: st.TraceParent, TraceState: st.TraceState,
	}
	if len(st.JoinSets) > 0 {
		n.JoinSets = make(map[string]*pb.JoinSetCounters, len(st.JoinSets))
		for k, v := range st.JoinSets {
			n.JoinSets[k] = &pb.JoinSetCounters{Requests: v.Requests, Responses: v.Responses, JoinNexts: v.JoinNexts}
		}
	}
	return n
}

// Runnable reports whether an executor may lock the execution once it is due: it is
// pending, not paused and not being cancelled (a cancellation runs no code).
func Runnable(st *pb.ExecutionState) bool {
	return st != nil && st.Status == pb.Status_STATUS_PENDING_AT && !st.Paused && !st.CancelRequested
}
