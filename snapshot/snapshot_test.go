package snapshot_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/protobuf/proto"
	"pgregory.net/rapid"

	"github.com/obelisk-go/obelisk/events"
	"github.com/obelisk-go/obelisk/events/eventstest"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	"github.com/obelisk-go/obelisk/snapshot"
)

// A small workflow stream: created (v0), locked (v1), one-off join set (v2), request (v3),
// join_next (v4, blocks), then finished (v5) after the response.
func workflowStream() ([]*pb.Event, []*pb.Response) {
	hist := func(at int64, h *pb.HistoryEvent) *pb.Event {
		return &pb.Event{CreatedAt: at, Kind: &pb.Event_History{History: h}}
	}
	evs := []*pb.Event{
		{CreatedAt: 1, Kind: &pb.Event_Created{Created: &pb.Created{Ffqn: "testing:wf/ifc.fn", Queue: "q", ScheduledAt: 1}}},
		{CreatedAt: 2, Kind: &pb.Event_Locked{Locked: &pb.Locked{RunId: "R1", LockExpiresAt: 1000}}},
		hist(3, &pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinSetCreate{JoinSetCreate: &pb.JoinSetCreate{JoinSetId: "o:1-fibo"}}}),
		hist(3, &pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinSetRequest{JoinSetRequest: &pb.JoinSetRequest{JoinSetId: "o:1-fibo",
			Request: &pb.JoinSetRequest_Child{Child: &pb.ChildExecutionRequest{ChildExecutionId: "E_1.o:1-fibo_1"}}}}}),
		hist(4, &pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinNext{JoinNext: &pb.JoinNext{JoinSetId: "o:1-fibo", RunExpiresAt: 500}}}),
		{CreatedAt: 60, Kind: &pb.Event_Finished{Finished: &pb.Finished{Result: []byte(`{"ok":55}`)}}},
	}
	responses := []*pb.Response{{CreatedAt: 50, JoinSetId: "o:1-fibo", Cursor: 0, AtVersion: 5,
		Kind: &pb.Response_Child{Child: &pb.ChildFinished{ChildExecutionId: "E_1.o:1-fibo_1", Result: []byte(`{"ok":55}`)}}}}
	return evs, responses
}

func TestRefold(t *testing.T) {
	evs, rs := workflowStream()
	at := func(r *pb.Response, cursor, v uint32) *pb.Response {
		r = proto.CloneOf(r)
		r.Cursor, r.AtVersion = cursor, v
		return r
	}
	second := at(rs[0], 1, 5)
	second.GetChild().ChildExecutionId = "E_1.o:1-fibo_2"
	for _, tc := range []struct {
		name      string
		evs       []*pb.Event
		rs        []*pb.Response
		wantErr   string
		wantState func(*testing.T, *pb.ExecutionState)
	}{
		{name: "events only", evs: evs[:5], wantState: func(t *testing.T, st *pb.ExecutionState) {
			if st.Status != pb.Status_STATUS_BLOCKED_BY_JOIN_SET || st.NextVersion != 5 {
				t.Errorf("state %v", st)
			}
		}},
		{name: "response between v4 and v5", evs: evs, rs: rs, wantState: func(t *testing.T, st *pb.ExecutionState) {
			if st.Status != pb.Status_STATUS_FINISHED || st.ResponseCount != 1 || st.UpdatedAt != 60 {
				t.Errorf("state %v", st)
			}
		}},
		{name: "response at the end", evs: evs[:5], rs: rs, wantState: func(t *testing.T, st *pb.ExecutionState) {
			if st.Status != pb.Status_STATUS_PENDING_AT || st.PendingAt != 500 || st.UpdatedAt != 50 {
				t.Errorf("state %v", st)
			}
		}},
		{name: "response early", evs: evs[:5], rs: []*pb.Response{at(rs[0], 0, 4)}, wantState: func(t *testing.T, st *pb.ExecutionState) {
			// Answered before the wait: the JoinNext does not block, the set is pruned.
			if st.Status != pb.Status_STATUS_LOCKED || len(st.JoinSets) != 0 {
				t.Errorf("state %v", st)
			}
		}},
		{name: "two responses at one version, in cursor order", evs: evs[:5], rs: []*pb.Response{rs[0], second}, wantState: func(t *testing.T, st *pb.ExecutionState) {
			if st.ResponseCount != 2 || st.Status != pb.Status_STATUS_PENDING_AT {
				t.Errorf("state %v", st)
			}
		}},
		{name: "nothing", wantErr: "execution not found"},
		{name: "a response before created", evs: evs[:1], rs: []*pb.Response{at(rs[0], 0, 0)}, wantErr: "before the created event"},
		{name: "a gap in the cursors", evs: evs, rs: []*pb.Response{at(rs[0], 1, 5)}, wantErr: "cursor 1 where 0 was expected"},
		{name: "responses out of order", evs: evs, rs: []*pb.Response{at(rs[0], 0, 5), at(second, 1, 4)}, wantErr: "is at v4, but v5 has been folded"},
		{name: "a response beyond the events", evs: evs[:3], rs: rs, wantErr: "beyond the 3 events"},
		{name: "an event the fold rejects", evs: []*pb.Event{evs[0], evs[0]}, wantErr: "event v1"},
		{name: "a response after finished", evs: evs, rs: []*pb.Response{at(rs[0], 0, 6)}, wantErr: "the execution has finished"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := snapshot.Refold("E_1", tc.evs, tc.rs)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if st.ExecutionId != "E_1" {
				t.Errorf("execution id %q", st.ExecutionId)
			}
			tc.wantState(t, st)
		})
	}
}

func TestFoldFrom(t *testing.T) {
	evs, rs := workflowStream()
	full, err := snapshot.Refold("E_1", evs, rs)
	if err != nil {
		t.Fatal(err)
	}
	// Snapshots at every point of the interleaved order: after v0..v4, after the
	// response, after v5.
	type point struct{ version, cursor uint32 }
	for _, p := range []point{{1, 0}, {2, 0}, {3, 0}, {4, 0}, {5, 0}, {5, 1}, {6, 1}} {
		t.Run(fmt.Sprintf("v%d/r%d", p.version, p.cursor), func(t *testing.T) {
			st, err := snapshot.Refold("E_1", evs[:p.version], rs[:p.cursor])
			if err != nil {
				t.Fatal(err)
			}
			snap := snapshot.Take(st)
			if snap.Version != p.version || snap.ResponseCursor != p.cursor {
				t.Fatalf("snapshot at v%d/r%d", snap.Version, snap.ResponseCursor)
			}
			kept := proto.CloneOf(snap.State)
			got, err := snapshot.FoldFrom(snap, evs[p.version:], rs[p.cursor:])
			if err != nil {
				t.Fatal(err)
			}
			if err := snapshot.Compare("E_1", full, got); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(snap.State, kept) {
				t.Fatal("FoldFrom modified the snapshot")
			}
		})
	}
	st, _ := snapshot.Refold("E_1", evs[:5], nil)
	for _, tc := range []struct {
		name string
		snap snapshot.Snapshot
		rs   []*pb.Response
		want string
	}{
		{"the zero snapshot", snapshot.Snapshot{}, nil, "use Refold"},
		{"a snapshot whose state is elsewhere", snapshot.Snapshot{State: st, Version: 4}, nil, "holds a state at v5/r0"},
		{"a response that belongs before the snapshot", snapshot.Take(st), []*pb.Response{{Cursor: 0, AtVersion: 3, JoinSetId: "o:1-fibo"}}, "is at v3, but v5 has been folded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := snapshot.FoldFrom(tc.snap, evs[5:], tc.rs); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
	if snap := snapshot.Take(nil); snap.State != nil || snap.Version != 0 {
		t.Errorf("Take(nil) = %+v", snap)
	}
}

func TestCompare(t *testing.T) {
	evs, rs := workflowStream()
	base, err := snapshot.Refold("E_1", evs[:5], nil)
	if err != nil {
		t.Fatal(err)
	}
	withRetry := proto.CloneOf(base)
	withRetry.Retry = &pb.RetryConfig{}
	answered, _ := snapshot.Refold("E_1", evs[:5], rs)
	for _, tc := range []struct {
		name        string
		change      func(*pb.ExecutionState)
		field       string
		stored, ref string
	}{
		{"status", func(st *pb.ExecutionState) { st.Status = pb.Status_STATUS_LOCKED }, "status", "STATUS_LOCKED", "STATUS_BLOCKED_BY_JOIN_SET"},
		{"first field in number order", func(st *pb.ExecutionState) { st.UpdatedAt, st.Ffqn = 1, "x" }, "ffqn", `"x"`, `"testing:wf/ifc.fn"`},
		{"a join set counter", func(st *pb.ExecutionState) { st.JoinSets["o:1-fibo"].Responses = 1 }, "join_sets[o:1-fibo]", "responses:1", "{requests:1join_nexts:1}"},
		{"a join set missing", func(st *pb.ExecutionState) { st.JoinSets["g:9"] = &pb.JoinSetCounters{} }, "join_sets[g:9]", "{}", "absent"},
		{"presence of a message", func(st *pb.ExecutionState) { st.Retry = &pb.RetryConfig{} }, "retry", "{}", "unset"},
		{"bytes", func(st *pb.ExecutionState) { st.Result = []byte("x") }, "result", `"x"`, `""`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stored := proto.CloneOf(base)
			tc.change(stored)
			err := snapshot.Compare("E_1", stored, base)
			var me *snapshot.MismatchError
			if !errors.As(err, &me) {
				t.Fatalf("got %v, want a MismatchError", err)
			}
			if me.Field != tc.field || !strings.Contains(strings.ReplaceAll(me.Stored, " ", ""), tc.stored) ||
				!strings.Contains(strings.ReplaceAll(me.Refolded, " ", ""), tc.ref) {
				t.Fatalf("got field %s stored %s refolded %s; want %s %s %s", me.Field, me.Stored, me.Refolded, tc.field, tc.stored, tc.ref)
			}
			if !strings.Contains(err.Error(), "E_1") || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("message %q", err)
			}
		})
	}
	if err := snapshot.Compare("E_1", base, proto.CloneOf(base)); err != nil {
		t.Errorf("equal states: %v", err)
	}
	if err := snapshot.Compare("E_1", withRetry, base); err == nil {
		t.Errorf("retry presence not compared")
	}
	if err := snapshot.Compare("E_1", answered, base); err == nil {
		t.Errorf("different states compare equal")
	}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestVerify(t *testing.T) {
	ctx := context.Background()
	s, err := events.Open(t.TempDir(), events.Options{NoSync: true, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	evs, rs := workflowStream()
	if _, err := s.Commit(ctx, &events.Tx{Appends: []events.Append{{ExecutionID: "E_1", Events: evs[:5]}}}); err != nil {
		t.Fatal(err)
	}
	if err := snapshot.Verify(ctx, s, "E_1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(ctx, &events.Tx{Responses: []events.ResponseAppend{{ExecutionID: "E_1", Response: rs[0]}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(ctx, &events.Tx{Appends: []events.Append{{ExecutionID: "E_1", ExpectedVersion: 5, Events: evs[5:]}}}); err != nil {
		t.Fatal(err)
	}
	if err := snapshot.Verify(ctx, s, "E_1"); err != nil {
		t.Fatal(err)
	}
	if err := snapshot.VerifyAll(ctx, s); err != nil {
		t.Fatal(err)
	}
	if err := snapshot.Verify(ctx, s, "E_2"); !errors.Is(err, events.ErrNotFound) {
		t.Fatalf("Verify of an unknown execution: %v", err)
	}
}

// TestVerifyEach: every execution is checked; one whose stored state was damaged is
// reported (the first differing field, or the logs it claims and the store lacks) and
// the check goes on with the others.
func TestVerifyEach(t *testing.T) {
	ctx := context.Background()
	s, err := events.Open(t.TempDir(), events.Options{NoSync: true, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	evs, _ := workflowStream()
	for _, id := range []string{"E_1", "E_2", "E_3"} {
		if _, err := s.Commit(ctx, &events.Tx{Appends: []events.Append{{ExecutionID: id, Events: evs[:5]}}}); err != nil {
			t.Fatal(err)
		}
	}
	each := func() (int, []error) {
		t.Helper()
		var failures []error
		n, err := snapshot.VerifyEach(ctx, s, func(id string, f error) error {
			failures = append(failures, fmt.Errorf("%s: %w", id, f))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return n, failures
	}
	if n, failures := each(); n != 3 || len(failures) != 0 {
		t.Fatalf("clean store: %d checked, failures %v", n, failures)
	}

	st, err := s.State(ctx, "E_1")
	if err != nil {
		t.Fatal(err)
	}
	wrongStatus := proto.CloneOf(st)
	wrongStatus.Status = pb.Status_STATUS_FINISHED
	if err := s.ForgeStateForTest(ctx, wrongStatus); err != nil {
		t.Fatal(err)
	}
	beyond := proto.CloneOf(st)
	beyond.ExecutionId, beyond.NextVersion = "E_3", 6
	if err := s.ForgeStateForTest(ctx, beyond); err != nil {
		t.Fatal(err)
	}
	n, failures := each()
	if n != 3 || len(failures) != 2 {
		t.Fatalf("damaged store: %d checked, failures %v", n, failures)
	}
	var me *snapshot.MismatchError
	if !errors.As(failures[0], &me) || me.ExecutionID != "E_1" || me.Field != "status" || me.Stored != "STATUS_FINISHED" || me.Refolded != "STATUS_BLOCKED_BY_JOIN_SET" {
		t.Errorf("first failure %v, want a mismatch of E_1's status", failures[0])
	}
	if msg := failures[1].Error(); !strings.HasPrefix(msg, "E_3: the state is at v6/r0 but the store has 5 events") {
		t.Errorf("second failure %q", msg)
	}
	if err := snapshot.VerifyAll(ctx, s); err == nil || !strings.Contains(err.Error(), "execution E_1: stored state differs") ||
		!strings.Contains(err.Error(), "verify E_3: the state is at v6/r0") {
		t.Errorf("VerifyAll: %v", err)
	}
	if err := snapshot.Verify(ctx, s, "E_3"); err == nil || !strings.Contains(err.Error(), "verify E_3: the state is at v6/r0") {
		t.Errorf("Verify: %v", err)
	}

	// An error from the callback ends the check, and is returned.
	stop := errors.New("stop")
	calls := 0
	if _, err := snapshot.VerifyEach(ctx, s, func(string, error) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Errorf("VerifyEach with a failing callback: %v after %d calls", err, calls)
	}
}

// unreadable is a store whose execution logs cannot be read.
type unreadable struct {
	events.Store
	err error
}

func (u unreadable) AllStates(ctx context.Context, fn func(*pb.ExecutionState) error) error {
	return fn(&pb.ExecutionState{ExecutionId: "E_1", NextVersion: 1})
}

func (u unreadable) Events(context.Context, string, uint32, int) ([]*pb.Event, error) {
	return nil, u.err
}

// TestVerifyEachUnreadable: a store that cannot be read ends the check with its error,
// which is not reported as a failure of the execution.
func TestVerifyEachUnreadable(t *testing.T) {
	broken := errors.New("disk on fire")
	n, err := snapshot.VerifyEach(context.Background(), unreadable{err: broken}, func(_ string, f error) error {
		t.Errorf("failure reported: %v", f)
		return nil
	})
	if !errors.Is(err, broken) || !strings.Contains(err.Error(), "E_1") || n != 1 {
		t.Errorf("VerifyEach: %d checked, %v", n, err)
	}
}

// TestSnapshotProperty: for random valid histories of several executions (whose IDs
// extend each other, as children's do),
//   - folding everything == a snapshot taken at a random point + FoldFrom the rest ==
//     Refold, also through a chain of two snapshots;
//   - committed through a real events.Store (in random Tx batches, the executions by
//     concurrent committers), the stored events, responses and states are the model's,
//     and Verify and VerifyAll pass.
func TestSnapshotProperty(t *testing.T) {
	dir := t.TempDir()
	var run atomic.Int64
	ids := []string{"E_P", "E_P.g:1_1", "E_P.g:1_10", "E_Q"}
	rapid.Check(t, func(t *rapid.T) {
		hs := make([]eventstest.History, len(ids))
		for i, id := range ids {
			hs[i] = eventstest.Histories(id, eventstest.Options{MaxSteps: 40}).Draw(t, id)
		}
		for _, h := range hs {
			checkSnapshots(t, h)
		}

		s, err := events.Open(filepath.Join(dir, fmt.Sprint(run.Add(1))), events.Options{NoSync: true, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		txs := make([][]*events.Tx, len(hs))
		for i, h := range hs {
			txs[i] = batches(t, h)
		}
		ctx := context.Background()
		var wg sync.WaitGroup
		errs := make([]error, len(hs))
		for i := range hs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j, tx := range txs[i] {
					if _, err := s.Commit(ctx, tx); err != nil {
						errs[i] = fmt.Errorf("%s: tx %d: %w", hs[i].ID, j, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		for _, h := range hs {
			checkStored(t, s, h)
			if err := snapshot.Verify(ctx, s, h.ID); err != nil {
				t.Fatal(err)
			}
		}
		if err := snapshot.VerifyAll(ctx, s); err != nil {
			t.Fatal(err)
		}
	})
}

// checkSnapshots folds h step by step, then checks Refold and FoldFrom against it.
func checkSnapshots(t *rapid.T, h eventstest.History) {
	var st *pb.ExecutionState
	states := make([]*pb.ExecutionState, 0, len(h.Steps))
	for i, s := range h.Steps {
		var err error
		if s.Event != nil {
			st, err = events.Fold(h.ID, st, s.Version, s.Event)
		} else {
			st, err = events.FoldResponse(st, s.Response)
		}
		if err != nil {
			t.Fatalf("%s step %d (%s): %v", h.ID, i, s.Action, err)
		}
		states = append(states, st)
	}
	evs, rs := h.Events(), h.Responses()
	re, err := snapshot.Refold(h.ID, evs, rs)
	if err != nil {
		t.Fatal(err)
	}
	if err := snapshot.Compare(h.ID, st, re); err != nil {
		t.Fatalf("refold: %v", err)
	}
	k1 := rapid.IntRange(0, len(states)-1).Draw(t, "first_snapshot")
	k2 := rapid.IntRange(k1, len(states)-1).Draw(t, "second_snapshot")
	s1 := snapshot.Take(states[k1])
	s2 := snapshot.Take(states[k2])
	mid, err := snapshot.FoldFrom(s1, evs[s1.Version:s2.Version], rs[s1.ResponseCursor:s2.ResponseCursor])
	if err != nil {
		t.Fatalf("from step %d to step %d: %v", k1, k2, err)
	}
	if err := snapshot.Compare(h.ID, states[k2], mid); err != nil {
		t.Fatalf("from step %d to step %d: %v", k1, k2, err)
	}
	for _, snap := range []snapshot.Snapshot{s1, snapshot.Take(mid)} {
		end, err := snapshot.FoldFrom(snap, evs[snap.Version:], rs[snap.ResponseCursor:])
		if err != nil {
			t.Fatalf("from v%d/r%d: %v", snap.Version, snap.ResponseCursor, err)
		}
		if err := snapshot.Compare(h.ID, st, end); err != nil {
			t.Fatalf("from v%d/r%d: %v", snap.Version, snap.ResponseCursor, err)
		}
	}
}

// batches cuts h into Txs as writers would: a run of events (one Append, by the run that
// holds the lock if the first event is that run's), then the responses that follow it.
func batches(t *rapid.T, h eventstest.History) []*events.Tx {
	var txs []*events.Tx
	var cur *events.Tx
	for i, s := range h.Steps {
		split := cur == nil || rapid.Bool().Draw(t, fmt.Sprintf("%s_split_%d", h.ID, i))
		if s.Event != nil && cur != nil && len(cur.Responses) > 0 {
			split = true // an event after a response would be folded before it
		}
		if split {
			cur = &events.Tx{}
			txs = append(txs, cur)
		}
		if s.Response != nil {
			r := proto.CloneOf(s.Response)
			r.Cursor, r.AtVersion = 0, 0 // the store sets them
			cur.Responses = append(cur.Responses, events.ResponseAppend{ExecutionID: h.ID, Response: r})
			continue
		}
		if len(cur.Appends) == 0 {
			cur.Appends = []events.Append{{ExecutionID: h.ID, ExpectedVersion: s.Version, RunID: s.RunID}}
		}
		cur.Appends[0].Events = append(cur.Appends[0].Events, s.Event)
	}
	return txs
}

// checkStored compares what the store holds for h with the model.
func checkStored(t *rapid.T, s *events.PebbleStore, h eventstest.History) {
	ctx := context.Background()
	st, err := s.State(ctx, h.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Steps[len(h.Steps)-1].Want.Check(st); err != nil {
		t.Fatalf("%s: stored state: %v", h.ID, err)
	}
	evs, err := s.Events(ctx, h.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := h.Events()
	if len(evs) != len(want) {
		t.Fatalf("%s: %d events stored, %d in the history", h.ID, len(evs), len(want))
	}
	for i := range evs {
		if !proto.Equal(evs[i], want[i]) {
			t.Fatalf("%s: event v%d differs", h.ID, i)
		}
	}
	rs, err := s.Responses(ctx, h.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	wantR := h.Responses()
	if len(rs) != len(wantR) {
		t.Fatalf("%s: %d responses stored, %d in the history", h.ID, len(rs), len(wantR))
	}
	for i := range rs {
		if !proto.Equal(rs[i], wantR[i]) {
			t.Fatalf("%s: response %d: stored %v, the model's %v", h.ID, i, rs[i], wantR[i])
		}
	}
}
