package api

import (
	"encoding/json"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	apiv1 "github.com/obelisk-go/obelisk/proto/obelisk/v1"
)

// EventView renders a stored event as readable JSON: JSON payloads (params, results,
// error details) are embedded as JSON, not as base64 bytes. The details of each kind are
// one of the types listed in [EventDetails].
func EventView(version uint32, ev *pb.Event) *apiv1.EventView {
	b, _ := json.Marshal(EventDetailsOf(ev))
	return &apiv1.EventView{Version: version, CreatedAt: rfc3339(ev.CreatedAt), Kind: events.EventKind(ev), DetailsJson: string(b)}
}

// EventKindDetails says which Go types render the details_json of one event kind.
type EventKindDetails struct {
	Kind        string // as events.EventKind names it
	Description string
	Types       []any // zero values of the detail types; several = one of them
}

// EventDetails lists every event kind with the types that render its details. It is the
// one description of the JSON view of events: [EventDetailsOf] renders them, and the
// JSON Schemas of docs/schemas/events are generated from it (obelisk generate schemas).
var EventDetails = []EventKindDetails{
	{"created", "The execution was created (always version 0).", []any{CreatedDetails{}}},
	{"locked", "A run of an executor holds the execution until lock_expires_at.", []any{LockedDetails{}}},
	{"unlocked", "The execution is pending again without counting a failure.", []any{UnlockedDetails{}}},
	{"temporarily_failed", "A run failed; it is retried after backoff_expires_at.", []any{TemporarilyFailedDetails{}}},
	{"temporarily_timed_out", "A run timed out; it is retried after backoff_expires_at.", []any{TemporarilyTimedOutDetails{}}},
	{"history.persist", "The workflow drew a value (random or a generated ID), returned again on replay.", []any{PersistDetails{}}},
	{"history.join_set_create", "The workflow created a join set.", []any{JoinSetCreateDetails{}}},
	{"history.join_set_request", "The workflow submitted a child execution or a delay into a join set.", []any{ChildRequestDetails{}, DelayRequestDetails{}}},
	{"history.join_next", "The workflow waits for the next response of a join set.", []any{JoinNextDetails{}}},
	{"history.schedule", "The workflow scheduled a new top-level execution.", []any{ScheduleDetails{}}},
	{"history.stub", "The workflow wrote the result of an activity stub's execution.", []any{StubDetails{}}},
	{"history.join_next_try", "The workflow looked for a response without waiting.", []any{JoinNextTryDetails{}}},
	{"cancel_requested", "Cancellation of the execution (and its subtree) was requested.", []any{CancelRequestedDetails{}}},
	{"paused", "The execution is not run until it is unpaused.", []any{EmptyDetails{}}},
	{"unpaused", "The execution may run again.", []any{EmptyDetails{}}},
	{"finished", "The execution finished with its result.", []any{FinishedDetails{}}},
	{"moved", "The execution was pinned to another component: its next run loads that one's code.", []any{MovedDetails{}}},
}

// ValueJSON is a WIT-typed value as JSON, embedded as it is (null when absent).
type ValueJSON json.RawMessage

// ParamsJSON is the positional JSON array of a function's parameters.
type ParamsJSON json.RawMessage

// ResultJSON is a result: {"ok": v} | {"err": v} | {"execution_failure": {...}}.
type ResultJSON json.RawMessage

func rawOrNull(b []byte) ([]byte, error) {
	if len(b) == 0 || !json.Valid(b) {
		return []byte("null"), nil
	}
	return b, nil
}

// MarshalJSON embeds the value.
func (v ValueJSON) MarshalJSON() ([]byte, error) { return rawOrNull(v) }

// MarshalJSON embeds the parameters.
func (v ParamsJSON) MarshalJSON() ([]byte, error) { return rawOrNull(v) }

// MarshalJSON embeds the result.
func (v ResultJSON) MarshalJSON() ([]byte, error) { return rawOrNull(v) }

// The details of each event kind. Times are RFC 3339 (UTC, nanoseconds).
type (
	CreatedDetails struct {
		FFQN            string        `json:"ffqn" jsonschema_description:"the function executed"`
		Params          ParamsJSON    `json:"params" jsonschema_description:"the parameters: a JSON array"`
		ScheduledAt     string        `json:"scheduled_at" jsonschema:"format=date-time"`
		ComponentID     string        `json:"component_id" jsonschema_description:"<type>:<name>:sha256:<hex>"`
		ParentID        string        `json:"parent_id,omitempty" jsonschema_description:"set for a child execution"`
		ParentJoinSetID string        `json:"parent_join_set_id,omitempty" jsonschema_description:"the parent's join set, for a child execution"`
		Retry           *RetryDetails `json:"retry,omitempty" jsonschema_description:"the retry policy its submitter gave, which replaces its component's"`
		Deadline        string        `json:"deadline,omitempty" jsonschema:"format=date-time" jsonschema_description:"when it finishes as deadline_exceeded if still open: its submitter's, or the earlier of its own and its parent's"`
	}
	CancelRequestedDetails struct {
		DeadlineExceeded bool `json:"deadline_exceeded,omitempty" jsonschema_description:"the cancellation is the execution's deadline passing: it finishes as deadline_exceeded"`
	}
	RetryDetails struct {
		MaxRetries        uint32  `json:"max_retries"`
		Unlimited         bool    `json:"unlimited"`
		RetryExpBackoffMS int64   `json:"retry_exp_backoff_ms"`
		RetryJitter       float64 `json:"retry_jitter,omitempty" jsonschema_description:"each retry's delay is scaled by a factor from 1-j to 1+j"`
	}
	LockedDetails struct {
		ExecutorID    string        `json:"executor_id"`
		RunID         string        `json:"run_id"`
		LockExpiresAt string        `json:"lock_expires_at" jsonschema:"format=date-time"`
		Retry         *RetryDetails `json:"retry,omitempty" jsonschema_description:"the retry configuration of the run"`
	}
	UnlockedDetails struct {
		UnlockedAt string `json:"unlocked_at" jsonschema:"format=date-time"`
		Reason     string `json:"reason"`
	}
	TemporarilyFailedDetails struct {
		BackoffExpiresAt string    `json:"backoff_expires_at" jsonschema:"format=date-time"`
		Reason           string    `json:"reason"`
		Detail           ValueJSON `json:"detail,omitempty" jsonschema_description:"the err value, when there is one"`
	}
	TemporarilyTimedOutDetails struct {
		BackoffExpiresAt string `json:"backoff_expires_at" jsonschema:"format=date-time"`
		Reason           string `json:"reason,omitempty" jsonschema_description:"what ran out, e.g. lock expired after 1s (absent in events written before it was recorded)"`
	}
	FinishedDetails struct {
		Result     ResultJSON `json:"result" jsonschema_description:"the result"`
		Reason     string     `json:"reason,omitempty" jsonschema_description:"why it finished although its retry policy allowed another attempt (an exhausted retry budget)"`
		CachedFrom string     `json:"cached_from,omitempty" jsonschema_description:"the execution whose result this is, served from the activity result cache (exec.cache_ttl) instead of running"`
		Returned   ResultJSON `json:"returned,omitempty" jsonschema_description:"what the execution itself returned when its deadline's result replaced it (an err not retried past the deadline, a workflow's result returned past it)"`
	}
	PersistDetails struct {
		Kind  string    `json:"kind" jsonschema:"pattern=^(random_u64|random_string)(\\([0-9]+\\,[0-9]+\\))?$|^execution_id$" jsonschema_description:"random_u64(min,max_exclusive) | random_string(min_length,max_length_exclusive) | execution_id"`
		Value ValueJSON `json:"value" jsonschema_description:"the value drawn: a u64 or a string"`
	}
	JoinSetCreateDetails struct {
		JoinSetID string `json:"join_set_id" jsonschema_description:"g:<n> | n:<name> | o:<n>-<fn|sleep>"`
	}
	ChildRequestDetails struct {
		JoinSetID        string     `json:"join_set_id"`
		ChildExecutionID string     `json:"child_execution_id"`
		FFQN             string     `json:"ffqn"`
		Params           ParamsJSON `json:"params" jsonschema_description:"the child's parameters: a JSON array"`
	}
	DelayRequestDetails struct {
		JoinSetID string `json:"join_set_id"`
		DelayID   string `json:"delay_id"`
		ExpiresAt string `json:"expires_at" jsonschema:"format=date-time"`
	}
	JoinNextDetails struct {
		JoinSetID     string `json:"join_set_id"`
		RunExpiresAt  string `json:"run_expires_at" jsonschema:"format=date-time"`
		Closing       bool   `json:"closing"`
		RequestedFFQN string `json:"requested_ffqn,omitempty"`
	}
	ScheduleDetails struct {
		ExecutionID string     `json:"execution_id"`
		ScheduledAt string     `json:"scheduled_at" jsonschema:"format=date-time"`
		FFQN        string     `json:"ffqn"`
		Params      ParamsJSON `json:"params" jsonschema_description:"the parameters: a JSON array"`
		ScheduleAt  ValueJSON  `json:"schedule_at" jsonschema_description:"the request as the workflow made it"`
	}
	StubDetails struct {
		TargetExecutionID string     `json:"target_execution_id"`
		Result            ResultJSON `json:"result" jsonschema_description:"the result written"`
		Outcome           string     `json:"outcome,omitempty" jsonschema:"enum=ok,enum=conflict,enum=execution_not_found,enum=type_check"`
	}
	JoinNextTryDetails struct {
		JoinSetID string `json:"join_set_id"`
		Outcome   string `json:"outcome" jsonschema:"enum=found,enum=pending"`
	}
	MovedDetails struct {
		FromComponentID string `json:"from_component_id" jsonschema_description:"the component it ran on"`
		ToComponentID   string `json:"to_component_id" jsonschema_description:"the component it runs on from now on"`
		By              string `json:"by" jsonschema_description:"who moved it: cli, api, upgrade, ..."`
		Queue           string `json:"queue,omitempty" jsonschema_description:"the queue it is pending in from now on"`
	}
	EmptyDetails struct{}
)

func retryDetails(r *pb.RetryConfig) *RetryDetails {
	if r == nil {
		return nil
	}
	return &RetryDetails{MaxRetries: r.MaxRetries, Unlimited: r.UnlimitedRetries, RetryExpBackoffMS: r.RetryExpBackoff / 1e6, RetryJitter: r.RetryJitter}
}

// EventDetailsOf returns the details of an event: a value of one of the types
// [EventDetails] lists for its kind.
func EventDetailsOf(ev *pb.Event) any {
	switch k := ev.Kind.(type) {
	case *pb.Event_Created:
		c := k.Created
		d := CreatedDetails{FFQN: c.Ffqn, Params: c.Params, ScheduledAt: rfc3339(c.ScheduledAt), ComponentID: c.ComponentId}
		if c.ParentId != "" {
			d.ParentID, d.ParentJoinSetID = c.ParentId, c.ParentJoinSetId
		}
		d.Retry = retryDetails(c.Retry)
		d.Deadline = rfc3339(c.Deadline)
		return d
	case *pb.Event_CancelRequested:
		return CancelRequestedDetails{DeadlineExceeded: k.CancelRequested.DeadlineExceeded}
	case *pb.Event_Locked:
		l := k.Locked
		d := LockedDetails{ExecutorID: l.ExecutorId, RunID: l.RunId, LockExpiresAt: rfc3339(l.LockExpiresAt)}
		d.Retry = retryDetails(l.Retry)
		return d
	case *pb.Event_Unlocked:
		return UnlockedDetails{UnlockedAt: rfc3339(k.Unlocked.UnlockedAt), Reason: k.Unlocked.Reason}
	case *pb.Event_TemporarilyFailed:
		t := k.TemporarilyFailed
		d := TemporarilyFailedDetails{BackoffExpiresAt: rfc3339(t.BackoffExpiresAt), Reason: t.Reason}
		if json.Valid(t.Detail) {
			d.Detail = t.Detail
		}
		return d
	case *pb.Event_TemporarilyTimedOut:
		return TemporarilyTimedOutDetails{BackoffExpiresAt: rfc3339(k.TemporarilyTimedOut.BackoffExpiresAt), Reason: k.TemporarilyTimedOut.Reason}
	case *pb.Event_Finished:
		return FinishedDetails{Result: k.Finished.Result, Reason: k.Finished.Reason, CachedFrom: k.Finished.CachedFrom, Returned: k.Finished.Returned}
	case *pb.Event_Moved:
		m := k.Moved
		return MovedDetails{FromComponentID: m.FromComponentId, ToComponentID: m.ToComponentId, By: m.By, Queue: m.Queue}
	case *pb.Event_History:
		switch h := k.History.Kind.(type) {
		case *pb.HistoryEvent_JoinSetCreate:
			return JoinSetCreateDetails{JoinSetID: h.JoinSetCreate.JoinSetId}
		case *pb.HistoryEvent_JoinSetRequest:
			r := h.JoinSetRequest
			if dl := r.GetDelay(); dl != nil {
				return DelayRequestDetails{JoinSetID: r.JoinSetId, DelayID: dl.DelayId, ExpiresAt: rfc3339(dl.ExpiresAt)}
			}
			c := r.GetChild()
			return ChildRequestDetails{JoinSetID: r.JoinSetId, ChildExecutionID: c.GetChildExecutionId(), FFQN: c.GetFfqn(), Params: c.GetParams()}
		case *pb.HistoryEvent_JoinNext:
			j := h.JoinNext
			return JoinNextDetails{JoinSetID: j.JoinSetId, RunExpiresAt: rfc3339(j.RunExpiresAt), Closing: j.Closing, RequestedFFQN: j.RequestedFfqn}
		case *pb.HistoryEvent_Persist:
			return PersistDetails{Kind: h.Persist.Kind, Value: h.Persist.Value}
		case *pb.HistoryEvent_Schedule:
			sc := h.Schedule
			return ScheduleDetails{ExecutionID: sc.ExecutionId, ScheduledAt: rfc3339(sc.ScheduledAt), FFQN: sc.Ffqn, Params: sc.Params, ScheduleAt: sc.ScheduleAt}
		case *pb.HistoryEvent_Stub:
			return StubDetails{TargetExecutionID: h.Stub.TargetExecutionId, Result: h.Stub.Result, Outcome: h.Stub.Outcome}
		case *pb.HistoryEvent_JoinNextTry:
			return JoinNextTryDetails{JoinSetID: h.JoinNextTry.JoinSetId, Outcome: h.JoinNextTry.Outcome}
		}
	}
	return EmptyDetails{}
}
