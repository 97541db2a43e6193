package crashsim

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// Execution is what the simulation compares of one execution of the tree: its function
// and parameters, its recorded history and its result.
//
// History holds the workflow's history events, one line each, without what
// legitimately differs from one run to another: the times (every event's, a delay's
// expiry, a schedule's due time, a join_next's keep-alive), the values drawn at random
// (a persist event is compared by its kind, a schedule by its function, parameters and
// request, not by the new execution's ID) and the lock and attempt bookkeeping (locked,
// unlocked, temporarily failed or timed out), which a crash changes by design. Child
// requests are compared with their IDs, functions and parameters, delay requests with
// their IDs and requests.
type Execution struct {
	// ID is the execution's ID with the top-level execution's ULID written "root"
	// (E_root, E_root.g:1_1, Delay_root.o:2-sleep_1): the same in every run.
	ID      string          `json:"id"`
	FFQN    string          `json:"ffqn"`
	Params  json.RawMessage `json:"params"`
	History []string        `json:"history"`
	// Result is the execution's result ({"ok": ...}, {"err": ...} or
	// {"execution_failure": ...}); absent while it has not finished.
	Result json.RawMessage `json:"result,omitempty"`
}

// readTree reads the execution root and its descendants, root first, then each child's
// subtree in the order of the children's IDs.
func readTree(ctx context.Context, store events.Store, root string) ([]Execution, error) {
	var out []Execution
	var walk func(id string) error
	walk = func(id string) error {
		ex, err := readExecution(ctx, store, root, id)
		if err != nil {
			return err
		}
		out = append(out, ex)
		children, err := store.Children(ctx, id)
		if err != nil {
			return fmt.Errorf("children of %s: %w", id, err)
		}
		slices.Sort(children)
		for _, c := range children {
			if err := walk(c); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(root); err != nil {
		return nil, err
	}
	return out, nil
}

func readExecution(ctx context.Context, store events.Store, root, id string) (Execution, error) {
	evs, err := store.Events(ctx, id, 0, 0)
	if err != nil {
		return Execution{}, fmt.Errorf("events of %s: %w", id, err)
	}
	if len(evs) == 0 || evs[0].GetCreated() == nil {
		return Execution{}, fmt.Errorf("events of %s: no created event", id)
	}
	rel := relativizer(root)
	c := evs[0].GetCreated()
	ex := Execution{ID: rel(id), FFQN: c.Ffqn, Params: json.RawMessage(c.Params), History: []string{}}
	for _, ev := range evs[1:] {
		if h := ev.GetHistory(); h != nil {
			ex.History = append(ex.History, historyLine(h, rel))
		}
		if f := ev.GetFinished(); f != nil {
			ex.Result = json.RawMessage(f.Result)
		}
	}
	return ex, nil
}

// relativizer returns a function writing the ULID of the top-level execution root as
// "root" in an ID.
func relativizer(root string) func(string) string {
	ulid := strings.TrimPrefix(root, events.TopLevelPrefix)
	return func(s string) string { return strings.ReplaceAll(s, ulid, "root") }
}

// historyLine is a history event as the simulation compares it (see Execution).
func historyLine(h *pb.HistoryEvent, rel func(string) string) string {
	switch k := h.Kind.(type) {
	case *pb.HistoryEvent_Persist:
		return "persist " + k.Persist.Kind
	case *pb.HistoryEvent_JoinSetCreate:
		return "join_set_create " + k.JoinSetCreate.JoinSetId
	case *pb.HistoryEvent_JoinSetRequest:
		r := k.JoinSetRequest
		if c := r.GetChild(); c != nil {
			return fmt.Sprintf("child %s %s %s%s", r.JoinSetId, rel(c.ChildExecutionId), c.Ffqn, c.Params)
		}
		if d := r.GetDelay(); d != nil {
			return fmt.Sprintf("delay %s %s %s", r.JoinSetId, rel(d.DelayId), d.ScheduleAt)
		}
		return "join_set_request " + r.JoinSetId
	case *pb.HistoryEvent_JoinNext:
		line := "join_next " + k.JoinNext.JoinSetId
		if k.JoinNext.RequestedFfqn != "" {
			line += " " + k.JoinNext.RequestedFfqn
		}
		if k.JoinNext.Closing {
			line += " closing"
		}
		return line
	case *pb.HistoryEvent_Schedule:
		return fmt.Sprintf("schedule %s%s at %s", k.Schedule.Ffqn, k.Schedule.Params, k.Schedule.ScheduleAt)
	case *pb.HistoryEvent_Stub:
		return fmt.Sprintf("stub %s %s %s", rel(k.Stub.TargetExecutionId), k.Stub.Result, k.Stub.Outcome)
	case *pb.HistoryEvent_JoinNextTry:
		return fmt.Sprintf("join_next_try %s %s", k.JoinNextTry.JoinSetId, k.JoinNextTry.Outcome)
	}
	return fmt.Sprintf("unknown history event %T", h.Kind)
}

// difference describes the first way got differs from want ("" if it does not).
func difference(want, got []Execution) string {
	for i := range max(len(want), len(got)) {
		if i >= len(got) {
			return fmt.Sprintf("execution %s is missing (the tree has %d executions, the reference %d)", want[i].ID, len(got), len(want))
		}
		if i >= len(want) {
			return fmt.Sprintf("execution %s is extra (the tree has %d executions, the reference %d)", got[i].ID, len(got), len(want))
		}
		w, g := want[i], got[i]
		if w.ID != g.ID {
			return fmt.Sprintf("execution %s in place of the reference's %s", g.ID, w.ID)
		}
		if w.FFQN != g.FFQN || string(w.Params) != string(g.Params) {
			return fmt.Sprintf("execution %s: %s%s, the reference %s%s", g.ID, g.FFQN, g.Params, w.FFQN, w.Params)
		}
		for j := range max(len(w.History), len(g.History)) {
			switch {
			case j >= len(g.History):
				return fmt.Sprintf("execution %s: history ends after %d events, the reference goes on with %q", g.ID, j, w.History[j])
			case j >= len(w.History):
				return fmt.Sprintf("execution %s: history event %d %q, the reference ends after %d events", g.ID, j, g.History[j], j)
			case w.History[j] != g.History[j]:
				return fmt.Sprintf("execution %s: history event %d %q, the reference %q", g.ID, j, g.History[j], w.History[j])
			}
		}
		if string(w.Result) != string(g.Result) {
			return fmt.Sprintf("execution %s: result %s, the reference %s", g.ID, orUnfinished(g.Result), orUnfinished(w.Result))
		}
	}
	return ""
}

func orUnfinished(r json.RawMessage) string {
	if r == nil {
		return "(unfinished)"
	}
	return string(r)
}

// describeCommit says what a group commit wrote: each execution it changed, with its
// function's name and its new status.
func describeCommit(states []*pb.ExecutionState, rel func(string) string) string {
	parts := make([]string, 0, len(states))
	for _, st := range states {
		fn := st.Ffqn
		if i := strings.LastIndexByte(fn, '/'); i >= 0 {
			fn = fn[i+1:]
		}
		status := events.StatusName(st.Status)
		if st.Status == pb.Status_STATUS_FINISHED {
			status += " " + resultKind(st.ResultKind)
		}
		parts = append(parts, fmt.Sprintf("%s (%s) %s", rel(st.ExecutionId), fn, status))
	}
	slices.Sort(parts) // the writer's map order is not the commit's
	return strings.Join(parts, "; ")
}

func resultKind(k pb.ResultKind) string {
	switch k {
	case pb.ResultKind_RESULT_KIND_OK:
		return "ok"
	case pb.ResultKind_RESULT_KIND_ERR:
		return "err"
	}
	return "execution_failure"
}
