package events_test

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"pgregory.net/rapid"

	"github.com/obelisk-go/obelisk/events"
	"github.com/obelisk-go/obelisk/events/eventstest"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	"github.com/obelisk-go/obelisk/snapshot"
)

// TestFoldProperties folds random valid histories (see eventstest) and checks that the fold
// accepts them, agrees with the model after every step, keeps its invariants, never
// mutates its input, treats finished as terminal, and that a snapshot taken anywhere and
// continued with FoldFrom, or a Refold from scratch, give the same state.
func TestFoldProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		h := eventstest.Histories("E_P", eventstest.Options{}).Draw(t, "history")
		var (
			st     *pb.ExecutionState
			states []*pb.ExecutionState
			nev    uint32
		)
		for i, s := range h.Steps {
			var before *pb.ExecutionState
			if st != nil {
				before = events.CloneState(st)
			}
			var next *pb.ExecutionState
			var err error
			if s.Event != nil {
				next, err = events.Fold(h.ID, st, s.Version, s.Event)
				nev++
			} else {
				next, err = events.FoldResponse(st, s.Response)
			}
			if err != nil {
				t.Fatalf("step %d (%s): the fold rejects a valid step: %v", i, s.Action, err)
			}
			if st != nil && !proto.Equal(st, before) {
				t.Fatalf("step %d (%s): the fold modified its input state", i, s.Action)
			}
			st = next
			if err := s.Want.Check(st); err != nil {
				t.Fatalf("step %d (%s): %v", i, s.Action, err)
			}
			if st.NextVersion != nev {
				t.Fatalf("step %d: next_version %d after %d events", i, st.NextVersion, nev)
			}
			checkInvariants(t, st)
			states = append(states, st)
		}
		if h.Finished() {
			checkTerminal(t, h.ID, st)
		}

		// The snapshot property.
		evs, responses := h.Events(), h.Responses()
		re, err := snapshot.Refold(h.ID, evs, responses)
		if err != nil {
			t.Fatalf("refold: %v", err)
		}
		if err := snapshot.Compare(h.ID, st, re); err != nil {
			t.Fatalf("refold: %v", err)
		}
		k := rapid.IntRange(0, len(states)-1).Draw(t, "snapshot_at")
		snap := snapshot.Take(states[k])
		from, err := snapshot.FoldFrom(snap, evs[snap.Version:], responses[snap.ResponseCursor:])
		if err != nil {
			t.Fatalf("fold from the snapshot after step %d: %v", k, err)
		}
		if err := snapshot.Compare(h.ID, st, from); err != nil {
			t.Fatalf("fold from the snapshot after step %d: %v", k, err)
		}
	})
}

func checkInvariants(t *rapid.T, st *pb.ExecutionState) {
	for id, js := range st.JoinSets {
		if js.Responses > js.Requests {
			t.Fatalf("join set %s: %d responses for %d requests", id, js.Responses, js.Requests)
		}
		if js.JoinNexts > js.Requests {
			t.Fatalf("join set %s: %d waits for %d requests", id, js.JoinNexts, js.Requests)
		}
		if strings.HasPrefix(id, "o:") && js.Requests > 1 {
			t.Fatalf("one-off join set %s has %d requests", id, js.Requests)
		}
		if strings.HasPrefix(id, "o:") && js.Requests > 0 && js.Requests == js.Responses && js.Responses == js.JoinNexts {
			t.Fatalf("one-off join set %s is answered and joined, but not pruned", id)
		}
	}
	switch st.Status {
	case pb.Status_STATUS_BLOCKED_BY_JOIN_SET:
		js := st.JoinSets[st.BlockedJoinSetId]
		if js == nil || js.JoinNexts <= js.Responses {
			t.Fatalf("blocked on %q, which has no unanswered wait (%v)", st.BlockedJoinSetId, js)
		}
	case pb.Status_STATUS_LOCKED:
		if st.LockExpiresAt == 0 || st.RunId == "" {
			t.Fatalf("locked without a lock: run %q expires %d", st.RunId, st.LockExpiresAt)
		}
	case pb.Status_STATUS_FINISHED:
		if len(st.JoinSets) != 0 || st.PendingAt != 0 || st.LockExpiresAt != 0 || st.ResultKind == pb.ResultKind_RESULT_KIND_UNSPECIFIED {
			t.Fatalf("finished state keeps live fields: %v", st)
		}
	case pb.Status_STATUS_PENDING_AT:
	default:
		t.Fatalf("status %v", st.Status)
	}
}

// checkTerminal tries every kind of event, and a response, on a finished state.
func checkTerminal(t *rapid.T, id string, st *pb.ExecutionState) {
	at := st.UpdatedAt + 1
	hist := func(h *pb.HistoryEvent) *pb.Event {
		return &pb.Event{CreatedAt: at, Kind: &pb.Event_History{History: h}}
	}
	after := []*pb.Event{
		{CreatedAt: at, Kind: &pb.Event_Created{Created: &pb.Created{Ffqn: "a:b/c.d"}}},
		{CreatedAt: at, Kind: &pb.Event_Locked{Locked: &pb.Locked{RunId: st.RunId, LockExpiresAt: at + 100}}},
		{CreatedAt: at, Kind: &pb.Event_Locked{Locked: &pb.Locked{RunId: "Run_new", LockExpiresAt: at + 100}}},
		{CreatedAt: at, Kind: &pb.Event_Unlocked{Unlocked: &pb.Unlocked{UnlockedAt: at}}},
		{CreatedAt: at, Kind: &pb.Event_TemporarilyFailed{TemporarilyFailed: &pb.TemporarilyFailed{BackoffExpiresAt: at}}},
		{CreatedAt: at, Kind: &pb.Event_TemporarilyTimedOut{TemporarilyTimedOut: &pb.TemporarilyTimedOut{BackoffExpiresAt: at}}},
		hist(&pb.HistoryEvent{Kind: &pb.HistoryEvent_Persist{Persist: &pb.Persist{}}}),
		hist(&pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinSetCreate{JoinSetCreate: &pb.JoinSetCreate{JoinSetId: "g:99"}}}),
		{CreatedAt: at, Kind: &pb.Event_CancelRequested{CancelRequested: &pb.CancelRequested{}}},
		{CreatedAt: at, Kind: &pb.Event_Paused{Paused: &pb.Paused{}}},
		{CreatedAt: at, Kind: &pb.Event_Unpaused{Unpaused: &pb.Unpaused{}}},
		{CreatedAt: at, Kind: &pb.Event_Finished{Finished: &pb.Finished{Result: []byte(`{"ok":2}`)}}},
	}
	for _, ev := range after {
		if _, err := events.Fold(id, st, st.NextVersion, ev); err == nil {
			t.Fatalf("%s accepted after finished", events.EventKind(ev))
		}
	}
	r := &pb.Response{CreatedAt: at, JoinSetId: "g:1", Cursor: st.ResponseCount, AtVersion: st.NextVersion,
		Kind: &pb.Response_Child{Child: &pb.ChildFinished{ChildExecutionId: id + ".g:1_1", Result: []byte(`{"ok":1}`)}}}
	if _, err := events.FoldResponse(st, r); err == nil {
		t.Fatalf("response accepted after finished")
	}
}
