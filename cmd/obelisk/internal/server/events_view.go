package server

import (
	"encoding/json"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
)

// EventView renders a stored event as readable JSON: JSON payloads (params, results,
// error details) are embedded as JSON, not as base64 bytes.
func EventView(version uint32, ev *pb.Event) *pb.EventView {
	d := map[string]any{}
	raw := func(b []byte) json.RawMessage {
		if len(b) == 0 || !json.Valid(b) {
			return nil
		}
		return b
	}
	switch k := ev.Kind.(type) {
	case *pb.Event_Created:
		c := k.Created
		d["ffqn"], d["params"], d["scheduled_at"], d["component_id"] = c.Ffqn, raw(c.Params), rfc3339(c.ScheduledAt), c.ComponentId
		if c.ParentId != "" {
			d["parent_id"], d["parent_join_set_id"] = c.ParentId, c.ParentJoinSetId
		}
	case *pb.Event_Locked:
		l := k.Locked
		d["executor_id"], d["run_id"], d["lock_expires_at"] = l.ExecutorId, l.RunId, rfc3339(l.LockExpiresAt)
		if l.Retry != nil {
			d["retry"] = map[string]any{"max_retries": l.Retry.MaxRetries, "unlimited": l.Retry.UnlimitedRetries, "retry_exp_backoff_ms": l.Retry.RetryExpBackoff / 1e6}
		}
	case *pb.Event_Unlocked:
		d["unlocked_at"], d["reason"] = rfc3339(k.Unlocked.UnlockedAt), k.Unlocked.Reason
	case *pb.Event_TemporarilyFailed:
		t := k.TemporarilyFailed
		d["backoff_expires_at"], d["reason"] = rfc3339(t.BackoffExpiresAt), t.Reason
		if r := raw(t.Detail); r != nil {
			d["detail"] = r
		}
	case *pb.Event_TemporarilyTimedOut:
		d["backoff_expires_at"] = rfc3339(k.TemporarilyTimedOut.BackoffExpiresAt)
	case *pb.Event_Finished:
		d["result"] = raw(k.Finished.Result)
	case *pb.Event_History:
		switch h := k.History.Kind.(type) {
		case *pb.HistoryEvent_JoinSetCreate:
			d["join_set_id"] = h.JoinSetCreate.JoinSetId
		case *pb.HistoryEvent_JoinSetRequest:
			d["join_set_id"] = h.JoinSetRequest.JoinSetId
			if c := h.JoinSetRequest.GetChild(); c != nil {
				d["child_execution_id"], d["ffqn"], d["params"] = c.ChildExecutionId, c.Ffqn, raw(c.Params)
			}
			if dl := h.JoinSetRequest.GetDelay(); dl != nil {
				d["delay_id"], d["expires_at"] = dl.DelayId, rfc3339(dl.ExpiresAt)
			}
		case *pb.HistoryEvent_JoinNext:
			j := h.JoinNext
			d["join_set_id"], d["run_expires_at"], d["closing"] = j.JoinSetId, rfc3339(j.RunExpiresAt), j.Closing
			if j.RequestedFfqn != "" {
				d["requested_ffqn"] = j.RequestedFfqn
			}
		case *pb.HistoryEvent_Persist:
			d["kind"], d["value"] = h.Persist.Kind, raw(h.Persist.Value)
		case *pb.HistoryEvent_Schedule:
			sc := h.Schedule
			d["execution_id"], d["scheduled_at"], d["ffqn"], d["params"], d["schedule_at"] = sc.ExecutionId, rfc3339(sc.ScheduledAt), sc.Ffqn, raw(sc.Params), raw(sc.ScheduleAt)
		case *pb.HistoryEvent_Stub:
			d["target_execution_id"], d["result"] = h.Stub.TargetExecutionId, raw(h.Stub.Result)
		}
	}
	b, _ := json.Marshal(d)
	return &pb.EventView{Version: version, CreatedAt: rfc3339(ev.CreatedAt), Kind: events.EventKind(ev), DetailsJson: string(b)}
}
