package events_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	"github.com/obelisk-go/obelisk/snapshot"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openStore(t testing.TB, dir string, opts events.Options) *events.PebbleStore {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet()
	}
	s, err := events.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func newStore(t testing.TB) *events.PebbleStore {
	return openStore(t, t.TempDir(), events.Options{NoSync: true})
}

// Event constructors for the store tests (times in nanoseconds).

func createdEv(ffqn, queue string, at, scheduled int64) *pb.Event {
	return &pb.Event{CreatedAt: at, Kind: &pb.Event_Created{Created: &pb.Created{Ffqn: ffqn, Queue: queue, ScheduledAt: scheduled, Params: []byte("[]")}}}
}

func childCreatedEv(parent, js string, at int64) *pb.Event {
	ev := createdEv("testing:child/ifc.fn", "q", at, at)
	ev.GetCreated().ParentId, ev.GetCreated().ParentJoinSetId = parent, js
	return ev
}

func lockedEv(run string, at, expires int64) *pb.Event {
	return &pb.Event{CreatedAt: at, Kind: &pb.Event_Locked{Locked: &pb.Locked{ExecutorId: "Exr_test", RunId: run, LockExpiresAt: expires}}}
}

func historyEv(at int64, h *pb.HistoryEvent) *pb.Event {
	return &pb.Event{CreatedAt: at, Kind: &pb.Event_History{History: h}}
}

func persistEv(at int64) *pb.Event {
	return historyEv(at, &pb.HistoryEvent{Kind: &pb.HistoryEvent_Persist{Persist: &pb.Persist{Kind: "random_u64", Value: []byte("1")}}})
}

func joinSetCreateEv(at int64, js string) *pb.Event {
	return historyEv(at, &pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinSetCreate{JoinSetCreate: &pb.JoinSetCreate{JoinSetId: js}}})
}

func requestEv(at int64, js, child string) *pb.Event {
	return historyEv(at, &pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinSetRequest{JoinSetRequest: &pb.JoinSetRequest{
		JoinSetId: js, Request: &pb.JoinSetRequest_Child{Child: &pb.ChildExecutionRequest{ChildExecutionId: child}}}}})
}

func joinNextEv(at int64, js string, lease int64) *pb.Event {
	return historyEv(at, &pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinNext{JoinNext: &pb.JoinNext{JoinSetId: js, RunExpiresAt: lease}}})
}

func finishedEv(at int64, result string) *pb.Event {
	return &pb.Event{CreatedAt: at, Kind: &pb.Event_Finished{Finished: &pb.Finished{Result: []byte(result)}}}
}

func pausedEv(at int64) *pb.Event {
	return &pb.Event{CreatedAt: at, Kind: &pb.Event_Paused{Paused: &pb.Paused{}}}
}

func childResponse(at int64, js, child string) *pb.Response {
	return &pb.Response{CreatedAt: at, JoinSetId: js, Kind: &pb.Response_Child{Child: &pb.ChildFinished{ChildExecutionId: child, Result: []byte(`{"ok":1}`)}}}
}

func appendTx(id string, v uint32, runID string, evs ...*pb.Event) *events.Tx {
	return &events.Tx{Appends: []events.Append{{ExecutionID: id, ExpectedVersion: v, RunID: runID, Events: evs}}}
}

func respondTx(id string, r *pb.Response) *events.Tx {
	return &events.Tx{Responses: []events.ResponseAppend{{ExecutionID: id, Response: r}}}
}

func mustCommit(t testing.TB, s *events.PebbleStore, tx *events.Tx) map[string]*pb.ExecutionState {
	t.Helper()
	states, err := s.Commit(context.Background(), tx)
	if err != nil {
		t.Fatalf("commit: %v", err)
	}
	return states
}

func mustState(t testing.TB, s *events.PebbleStore, id string) *pb.ExecutionState {
	t.Helper()
	st, err := s.State(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// createWorkflow creates id, locks it with run R1 and opens the generated join set g:1.
func createWorkflow(t testing.TB, s *events.PebbleStore, id string) {
	t.Helper()
	mustCommit(t, s, appendTx(id, 0, "", createdEv("testing:wf/ifc.fn", "q", 1, 1), lockedEv("R1", 2, 1_000_000), joinSetCreateEv(3, "g:1")))
}

func TestStoreCreate(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	states := mustCommit(t, s, appendTx("E_1", 0, "", createdEv("testing:a/b.c", "q", 10, 20)))
	st := states["E_1"]
	if st == nil || st.NextVersion != 1 || st.Status != pb.Status_STATUS_PENDING_AT || st.PendingAt != 20 {
		t.Fatalf("created state: %v", st)
	}
	if got := mustState(t, s, "E_1"); !proto.Equal(got, st) {
		t.Fatalf("State: %v, Commit returned %v", got, st)
	}

	// A second create of the same ID is a version conflict.
	_, err := s.Commit(ctx, appendTx("E_1", 0, "", createdEv("testing:a/b.c", "q", 11, 11)))
	var ce *events.ConflictError
	if !errors.As(err, &ce) || ce.ExecutionID != "E_1" || ce.Expected != 0 || ce.Actual != 1 {
		t.Fatalf("second create: %v, want a ConflictError at v1", err)
	}
	evs, err := s.Events(ctx, "E_1", 0, 0)
	if err != nil || len(evs) != 1 || evs[0].CreatedAt != 10 {
		t.Fatalf("events after the conflicting create: %v %v", evs, err)
	}

	// Unknown executions.
	if _, err := s.State(ctx, "E_nope"); !errors.Is(err, events.ErrNotFound) {
		t.Fatalf("State of an unknown execution: %v", err)
	}
	if _, err := s.Commit(ctx, appendTx("E_nope", 1, "", persistEv(1))); !errors.Is(err, events.ErrNotFound) {
		t.Fatalf("append to an unknown execution: %v", err)
	}
	if _, err := s.Commit(ctx, respondTx("E_nope", childResponse(1, "g:1", "E_nope.g:1_1"))); !errors.Is(err, events.ErrNotFound) {
		t.Fatalf("respond to an unknown execution: %v", err)
	}
	// Created must be version 0, and only version 0.
	var te *events.TransitionError
	if _, err := s.Commit(ctx, appendTx("E_2", 0, "", persistEv(1))); !errors.As(err, &te) {
		t.Fatalf("a stream starting with history: %v, want a TransitionError", err)
	}
	if _, err := s.State(ctx, "E_2"); !errors.Is(err, events.ErrNotFound) {
		t.Fatalf("a rejected create left a state: %v", err)
	}
}

func TestStoreExpectedVersion(t *testing.T) {
	s := newStore(t)
	mustCommit(t, s, appendTx("E_1", 0, "", createdEv("testing:a/b.c", "q", 1, 1), lockedEv("R1", 2, 1000)))
	for _, tc := range []struct {
		name     string
		expected uint32
		wantErr  bool
	}{
		{"behind", 1, true},
		{"ahead", 3, true},
		{"far ahead", 100, true},
		{"at the end", 2, false},
		{"the same version again", 2, true},
		{"after it", 3, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := mustState(t, s, "E_1")
			_, err := s.Commit(context.Background(), appendTx("E_1", tc.expected, "", persistEv(10)))
			if !tc.wantErr {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ce *events.ConflictError
			if !errors.As(err, &ce) || ce.Expected != tc.expected || ce.Actual != before.NextVersion {
				t.Fatalf("got %v, want a ConflictError expected=%d actual=%d", err, tc.expected, before.NextVersion)
			}
			if after := mustState(t, s, "E_1"); !proto.Equal(after, before) {
				t.Fatalf("a conflict changed the state")
			}
		})
	}
}

func TestStoreRunID(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	mustCommit(t, s, appendTx("E_1", 0, "", createdEv("testing:a/b.c", "q", 1, 1)))
	// Nobody holds the lock yet: a run ID cannot match.
	var ce *events.ConflictError
	if _, err := s.Commit(ctx, appendTx("E_1", 1, "R1", lockedEv("R1", 2, 1000))); !errors.As(err, &ce) || ce.Reason == "" {
		t.Fatalf("append by a run before any lock: %v", err)
	}
	mustCommit(t, s, appendTx("E_1", 1, "", lockedEv("R1", 2, 1000)))
	mustCommit(t, s, appendTx("E_1", 2, "R1", persistEv(3)))
	_, err := s.Commit(ctx, appendTx("E_1", 3, "R2", persistEv(4)))
	if !errors.As(err, &ce) || ce.Reason == "" || ce.Expected != 3 {
		t.Fatalf("append by another run: %v", err)
	}
	if st := mustState(t, s, "E_1"); st.NextVersion != 3 {
		t.Fatalf("a refused append was written: v%d", st.NextVersion)
	}
	// The run that last held the lock is still named after it is released.
	mustCommit(t, s, appendTx("E_1", 3, "R1", &pb.Event{CreatedAt: 5, Kind: &pb.Event_Unlocked{Unlocked: &pb.Unlocked{UnlockedAt: 5}}}))
	mustCommit(t, s, appendTx("E_1", 4, "R1", finishedEv(6, `{"ok":1}`)))
}

// TestStoreTxAtomicity: one bad part rolls back the whole Tx.
func TestStoreTxAtomicity(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	createWorkflow(t, s, "E_P")
	before := mustState(t, s, "E_P")
	for _, tc := range []struct {
		name string
		tx   *events.Tx
	}{
		{"child create then a stale parent append", &events.Tx{Appends: []events.Append{
			{ExecutionID: "E_P.g:1_1", Events: []*pb.Event{childCreatedEv("E_P", "g:1", 5)}},
			{ExecutionID: "E_P", ExpectedVersion: 2, Events: []*pb.Event{requestEv(5, "g:1", "E_P.g:1_1")}},
		}}},
		{"parent append then a fold error in the child", &events.Tx{Appends: []events.Append{
			{ExecutionID: "E_P", ExpectedVersion: 3, Events: []*pb.Event{requestEv(5, "g:1", "E_P.g:1_1")}},
			{ExecutionID: "E_P.g:1_1", Events: []*pb.Event{persistEv(5)}},
		}}},
		{"a good second event after a bad one in one append", &events.Tx{Appends: []events.Append{
			{ExecutionID: "E_P", ExpectedVersion: 3, Events: []*pb.Event{persistEv(5), joinNextEv(5, "g:404", 5)}},
		}}},
		{"appends then a response to an unknown execution", &events.Tx{
			Appends:   []events.Append{{ExecutionID: "E_P", ExpectedVersion: 3, Events: []*pb.Event{persistEv(5)}}},
			Responses: []events.ResponseAppend{{ExecutionID: "E_nope", Response: childResponse(5, "g:1", "x")}},
		}},
		{"a good response then a bad append", &events.Tx{
			Appends:   []events.Append{{ExecutionID: "E_P", ExpectedVersion: 1, Events: []*pb.Event{persistEv(5)}}},
			Responses: []events.ResponseAppend{{ExecutionID: "E_P", Response: childResponse(5, "g:1", "E_P.g:1_1")}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.Commit(ctx, tc.tx); err == nil {
				t.Fatal("the tx committed")
			}
			if after := mustState(t, s, "E_P"); !proto.Equal(after, before) {
				t.Fatalf("parent state changed: %v", after)
			}
			if _, err := s.State(ctx, "E_P.g:1_1"); !errors.Is(err, events.ErrNotFound) {
				t.Fatalf("child state: %v", err)
			}
			if evs, _ := s.Events(ctx, "E_P", 0, 0); len(evs) != 3 {
				t.Fatalf("parent has %d events", len(evs))
			}
			if rs, _ := s.Responses(ctx, "E_P", 0); len(rs) != 0 {
				t.Fatalf("parent has %d responses", len(rs))
			}
			if kids, _ := s.Children(ctx, "E_P"); len(kids) != 0 {
				t.Fatalf("children index: %v", kids)
			}
		})
	}
	// The same Tx, fixed, commits both streams at once.
	states := mustCommit(t, s, &events.Tx{Appends: []events.Append{
		{ExecutionID: "E_P.g:1_1", Events: []*pb.Event{childCreatedEv("E_P", "g:1", 5)}},
		{ExecutionID: "E_P", ExpectedVersion: 3, RunID: "R1", Events: []*pb.Event{requestEv(5, "g:1", "E_P.g:1_1")}},
	}})
	if len(states) != 2 || states["E_P"].NextVersion != 4 || states["E_P.g:1_1"].NextVersion != 1 {
		t.Fatalf("states: %v", states)
	}
	// Two appends to one stream in one Tx chain their versions.
	mustCommit(t, s, &events.Tx{Appends: []events.Append{
		{ExecutionID: "E_P", ExpectedVersion: 4, Events: []*pb.Event{persistEv(6)}},
		{ExecutionID: "E_P", ExpectedVersion: 5, Events: []*pb.Event{persistEv(7)}},
	}})
	// A child's Finished and the parent's response go together.
	states = mustCommit(t, s, &events.Tx{
		Appends:   []events.Append{{ExecutionID: "E_P.g:1_1", ExpectedVersion: 1, Events: []*pb.Event{finishedEv(8, `{"ok":1}`)}}},
		Responses: []events.ResponseAppend{{ExecutionID: "E_P", Response: childResponse(8, "g:1", "E_P.g:1_1")}},
	})
	if states["E_P"].ResponseCount != 1 || states["E_P.g:1_1"].Status != pb.Status_STATUS_FINISHED {
		t.Fatalf("states: %v", states)
	}
	if err := snapshot.VerifyAll(ctx, s); err != nil {
		t.Fatal(err)
	}
}

// holdWriter makes the store's writer wait in OnCommit until release is closed, so that
// the commits sent meanwhile queue up and are applied as one group. Each OnCommit call's
// states are sent on the returned channel.
type holdWriter struct {
	once    sync.Once
	held    chan struct{}
	release chan struct{}
	groups  chan []*pb.ExecutionState
}

func newHoldWriter() *holdWriter {
	return &holdWriter{held: make(chan struct{}), release: make(chan struct{}), groups: make(chan []*pb.ExecutionState, 100)}
}

func (h *holdWriter) onCommit(states []*pb.ExecutionState) {
	h.groups <- states
	h.once.Do(func() {
		close(h.held)
		<-h.release
	})
}

// TestStoreGroupCommit drives concurrent committers into one group: in a group, a tx that
// fails leaves no trace while the others commit, and txs see the effects of the txs
// before them in the group.
func TestStoreGroupCommit(t *testing.T) {
	ctx := context.Background()
	h := newHoldWriter()
	s := openStore(t, t.TempDir(), events.Options{OnCommit: h.onCommit})
	mustCommit(t, s, appendTx("E_X", 0, "", createdEv("testing:a/b.c", "q", 1, 1)))
	<-h.held
	<-h.groups

	const racers = 8
	type result struct {
		name string
		err  error
	}
	results := make(chan result, 100)
	var wg sync.WaitGroup
	commit := func(name string, tx *events.Tx) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Commit(ctx, tx)
			results <- result{name, err}
		}()
	}
	// All of them race for v1 of E_X: one wins. Each also creates its own execution in
	// the same Tx, which must exist only for the winner.
	for i := range racers {
		id := fmt.Sprintf("E_R%d", i)
		commit(id, &events.Tx{Appends: []events.Append{
			{ExecutionID: id, Events: []*pb.Event{createdEv("testing:a/b.c", "q", 2, 2)}},
			{ExecutionID: "E_X", ExpectedVersion: 1, Events: []*pb.Event{lockedEv("R"+id, 2, 1000)}},
		}})
	}
	// Independent creates always commit.
	for i := range racers {
		commit(fmt.Sprintf("E_I%d", i), appendTx(fmt.Sprintf("E_I%d", i), 0, "", createdEv("testing:a/b.c", "q", 3, 3)))
	}
	// One bad tx.
	commit("bad", appendTx("E_X", 5, "", persistEv(4)))
	time.Sleep(100 * time.Millisecond) // let them all queue behind the held writer
	close(h.release)
	wg.Wait()
	close(results)

	winners, conflicts := 0, 0
	for r := range results {
		switch {
		case r.name == "bad":
			var ce *events.ConflictError
			if !errors.As(r.err, &ce) {
				t.Errorf("bad tx: %v", r.err)
			}
		case r.name[:3] == "E_I":
			if r.err != nil {
				t.Errorf("%s: %v", r.name, r.err)
			}
		case r.err == nil:
			winners++
			if st := mustState(t, s, r.name); st.NextVersion != 1 {
				t.Errorf("winner %s: %v", r.name, st)
			}
		default:
			var ce *events.ConflictError
			if !errors.As(r.err, &ce) || ce.ExecutionID != "E_X" {
				t.Errorf("%s: %v, want a conflict on E_X", r.name, r.err)
			}
			conflicts++
			if _, err := s.State(ctx, r.name); !errors.Is(err, events.ErrNotFound) {
				t.Errorf("loser %s was created: %v", r.name, err)
			}
		}
	}
	if winners != 1 || conflicts != racers-1 {
		t.Fatalf("%d winners, %d conflicts", winners, conflicts)
	}
	// Groups: the first commit, then (at least) one group with many txs.
	biggest := 0
	for len(h.groups) > 0 {
		biggest = max(biggest, len(<-h.groups))
	}
	if biggest < 4 {
		t.Errorf("largest group changed %d states: groups did not form", biggest)
	}
	if err := snapshot.VerifyAll(ctx, s); err != nil {
		t.Fatal(err)
	}
}

func TestStoreResponseDedupe(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	createWorkflow(t, s, "E_P")
	mustCommit(t, s, appendTx("E_P", 3, "R1", requestEv(4, "g:1", "E_P.g:1_1"), requestEv(4, "g:1", "E_P.g:1_2")))

	// The same child twice, in separate txs and within one tx.
	st := mustCommit(t, s, respondTx("E_P", childResponse(5, "g:1", "E_P.g:1_1")))["E_P"]
	if st.ResponseCount != 1 {
		t.Fatalf("response count %d", st.ResponseCount)
	}
	states := mustCommit(t, s, respondTx("E_P", childResponse(6, "g:1", "E_P.g:1_1")))
	if len(states) != 0 {
		t.Fatalf("a duplicate changed states: %v", states)
	}
	mustCommit(t, s, appendTx("E_P", 5, "R1", persistEv(7)))
	mustCommit(t, s, &events.Tx{Responses: []events.ResponseAppend{
		{ExecutionID: "E_P", Response: childResponse(8, "g:1", "E_P.g:1_2")},
		{ExecutionID: "E_P", Response: childResponse(8, "g:1", "E_P.g:1_2")},
		{ExecutionID: "E_P", Response: childResponse(8, "g:1", "E_P.g:1_1")},
	}})
	rs, err := s.Responses(ctx, "E_P", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 {
		t.Fatalf("%d responses, want 2", len(rs))
	}
	// The store numbers responses and records the stream version each arrived at.
	for i, want := range []struct {
		child     string
		atVersion uint32
		createdAt int64
	}{{"E_P.g:1_1", 5, 5}, {"E_P.g:1_2", 6, 8}} {
		r := rs[i]
		if r.Cursor != uint32(i) || r.AtVersion != want.atVersion || r.GetChild().ChildExecutionId != want.child || r.CreatedAt != want.createdAt {
			t.Errorf("response %d: %v", i, r)
		}
	}
	if rs, _ := s.Responses(ctx, "E_P", 1); len(rs) != 1 || rs[0].Cursor != 1 {
		t.Errorf("responses from cursor 1: %v", rs)
	}
	if st := mustState(t, s, "E_P"); st.ResponseCount != 2 || st.JoinSets["g:1"].Responses != 2 {
		t.Errorf("state: %v", st)
	}

	// Concurrent deliveries of one response, in one group: one is stored.
	h := newHoldWriter()
	s2dir := t.TempDir()
	s2 := openStore(t, s2dir, events.Options{NoSync: true, OnCommit: h.onCommit})
	createWorkflow(t, s2, "E_P")
	<-h.held
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s2.Commit(ctx, respondTx("E_P", childResponse(10, "g:1", "E_P.g:1_1"))); err != nil {
				t.Error(err)
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	close(h.release)
	wg.Wait()
	if rs, _ := s2.Responses(ctx, "E_P", 0); len(rs) != 1 {
		t.Fatalf("%d responses after concurrent duplicate deliveries", len(rs))
	}
	if st := mustState(t, s2, "E_P"); st.ResponseCount != 1 {
		t.Fatalf("response count %d", st.ResponseCount)
	}
}

// TestStoreResponseToFinished: a child that finishes after its parent did (the parent
// failed, or was cancelled, without waiting for it) must still be able to commit its
// Finished; the response, which nothing can consume any more, is dropped.
func TestStoreResponseToFinished(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	createWorkflow(t, s, "E_P")
	mustCommit(t, s, &events.Tx{Appends: []events.Append{
		{ExecutionID: "E_P", ExpectedVersion: 3, RunID: "R1", Events: []*pb.Event{requestEv(4, "g:1", "E_P.g:1_1")}},
		{ExecutionID: "E_P.g:1_1", Events: []*pb.Event{childCreatedEv("E_P", "g:1", 4)}},
	}})
	mustCommit(t, s, appendTx("E_P", 4, "", finishedEv(5, string(events.FailureResult(events.FailureCancelled, "test")))))
	parent := mustState(t, s, "E_P")
	mustCommit(t, s, &events.Tx{
		Appends:   []events.Append{{ExecutionID: "E_P.g:1_1", ExpectedVersion: 1, Events: []*pb.Event{finishedEv(6, `{"ok":1}`)}}},
		Responses: []events.ResponseAppend{{ExecutionID: "E_P", Response: childResponse(6, "g:1", "E_P.g:1_1")}},
	})
	if st := mustState(t, s, "E_P.g:1_1"); st.Status != pb.Status_STATUS_FINISHED {
		t.Fatalf("child: %v", st)
	}
	if st := mustState(t, s, "E_P"); !proto.Equal(st, parent) {
		t.Fatalf("the finished parent changed: %v", st)
	}
	if rs, _ := s.Responses(ctx, "E_P", 0); len(rs) != 0 {
		t.Fatalf("%d responses stored for a finished execution", len(rs))
	}
	if err := snapshot.VerifyAll(ctx, s); err != nil {
		t.Fatal(err)
	}
}

func TestStoreDuePending(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	// Scheduled at 30, 10, 20 in queue q; one in another queue; one paused; one locked.
	for _, c := range []struct {
		id, queue string
		at        int64
	}{{"E_c", "q", 30}, {"E_a", "q", 10}, {"E_b", "q", 20}, {"E_o", "other", 5}, {"E_p", "q", 1}, {"E_l", "q", 2}, {"E_z", "q", 100}} {
		mustCommit(t, s, appendTx(c.id, 0, "", createdEv("testing:a/b.c", c.queue, 1, c.at)))
	}
	mustCommit(t, s, appendTx("E_p", 1, "", pausedEv(2)))
	mustCommit(t, s, appendTx("E_l", 1, "", lockedEv("R1", 2, 500)))
	for _, tc := range []struct {
		queue    string
		now      int64
		limit    int
		want     []string
		wantNext int64
	}{
		{"q", 0, 10, nil, 10},
		{"q", 10, 10, []string{"E_a"}, 20},
		{"q", 25, 10, []string{"E_a", "E_b"}, 30},
		{"q", 30, 10, []string{"E_a", "E_b", "E_c"}, 100},
		{"q", 1000, 10, []string{"E_a", "E_b", "E_c", "E_z"}, 0},
		{"q", 1000, 2, []string{"E_a", "E_b"}, 0},
		{"other", 1000, 10, []string{"E_o"}, 0},
		{"nobody", 1000, 10, nil, 0},
	} {
		t.Run(fmt.Sprintf("%s@%d/%d", tc.queue, tc.now, tc.limit), func(t *testing.T) {
			due, next, err := s.DuePending(ctx, tc.queue, time.Unix(0, tc.now), tc.limit, nil)
			ids := pendingIDs(due)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids, tc.want) {
				t.Errorf("ids %v, want %v", ids, tc.want)
			}
			wantNext := time.Time{}
			if tc.wantNext != 0 {
				wantNext = time.Unix(0, tc.wantNext)
			}
			if !next.Equal(wantNext) {
				t.Errorf("next %v, want %v", next.UnixNano(), tc.wantNext)
			}
		})
	}
	// Locking takes it out of the index; failing puts it back at the backoff's end.
	mustCommit(t, s, appendTx("E_a", 1, "", lockedEv("R1", 40, 500)))
	mustCommit(t, s, appendTx("E_a", 2, "R1", &pb.Event{CreatedAt: 41, Kind: &pb.Event_TemporarilyFailed{TemporarilyFailed: &pb.TemporarilyFailed{BackoffExpiresAt: 60}}}))
	ids := duePendingIDs(t, s, "q", 50, nil)
	if !slices.Equal(ids, []string{"E_b", "E_c"}) {
		t.Errorf("after a lock and a failure: %v", ids)
	}
	ids = duePendingIDs(t, s, "q", 60, nil)
	if !slices.Equal(ids, []string{"E_b", "E_c", "E_a"}) {
		t.Errorf("after the backoff: %v", ids)
	}
	// Unpausing puts it back.
	mustCommit(t, s, appendTx("E_p", 2, "", &pb.Event{CreatedAt: 3, Kind: &pb.Event_Unpaused{Unpaused: &pb.Unpaused{}}}))
	ids = duePendingIDs(t, s, "q", 1, nil)
	if !slices.Equal(ids, []string{"E_p"}) {
		t.Errorf("after unpausing: %v", ids)
	}
}

// TestStoreDuePendingServes: a pending entry carries its execution's function, and the
// functions the caller does not serve are passed over without counting towards the
// limit, so that they hold up nothing behind them.
func TestStoreDuePendingServes(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	for i, f := range []string{"t:a/x.other", "t:a/x.other", "t:a/x.mine", "t:a/x.other", "t:a/x.mine"} {
		mustCommit(t, s, appendTx(fmt.Sprintf("E_%d", i), 0, "", createdEv(f, "q", 1, int64(10+i))))
	}
	mine := func(ffqn string) bool { return ffqn == "t:a/x.mine" }
	due, _, err := s.DuePending(ctx, "q", time.Unix(0, 100), 1, mine)
	if err != nil {
		t.Fatal(err)
	}
	if len(due) != 1 || due[0] != (events.Pending{ID: "E_2", FFQN: "t:a/x.mine"}) {
		t.Errorf("limit 1 past two others: %v", due)
	}
	if ids := duePendingIDs(t, s, "q", 100, mine); !slices.Equal(ids, []string{"E_2", "E_4"}) {
		t.Errorf("served: %v", ids)
	}
	all, _, _ := s.DuePending(ctx, "q", time.Unix(0, 100), 10, nil)
	if len(all) != 5 || all[0].FFQN != "t:a/x.other" || all[2].FFQN != "t:a/x.mine" {
		t.Errorf("all: %v", all)
	}
}

func pendingIDs(due []events.Pending) []string {
	var ids []string
	for _, p := range due {
		ids = append(ids, p.ID)
	}
	return ids
}

func duePendingIDs(t *testing.T, s events.Store, queue string, now int64, serves func(string) bool) []string {
	t.Helper()
	due, _, err := s.DuePending(context.Background(), queue, time.Unix(0, now), 10, serves)
	if err != nil {
		t.Fatal(err)
	}
	return pendingIDs(due)
}

func TestStoreExpiredLocks(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	for i, exp := range []int64{300, 100, 200} {
		id := fmt.Sprintf("E_%d", i)
		mustCommit(t, s, appendTx(id, 0, "", createdEv("testing:a/b.c", "q", 1, 1), lockedEv("R", 2, exp)))
	}
	for _, tc := range []struct {
		now      int64
		limit    int
		want     []string
		wantNext int64
	}{
		{99, 10, nil, 100},
		{100, 10, []string{"E_1"}, 200},
		{250, 10, []string{"E_1", "E_2"}, 300},
		{1000, 10, []string{"E_1", "E_2", "E_0"}, 0},
		{1000, 1, []string{"E_1"}, 0},
	} {
		ids, next, err := s.ExpiredLocks(ctx, time.Unix(0, tc.now), tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		wantNext := time.Time{}
		if tc.wantNext != 0 {
			wantNext = time.Unix(0, tc.wantNext)
		}
		if !slices.Equal(ids, tc.want) || !next.Equal(wantNext) {
			t.Errorf("at %d limit %d: %v next %d, want %v next %d", tc.now, tc.limit, ids, next.UnixNano(), tc.want, tc.wantNext)
		}
	}
	// Extending moves the timer; finishing removes it.
	mustCommit(t, s, appendTx("E_1", 2, "R", lockedEv("R", 50, 400)))
	mustCommit(t, s, appendTx("E_2", 2, "R", finishedEv(50, `{"ok":1}`)))
	ids, next, _ := s.ExpiredLocks(ctx, time.Unix(0, 350), 10)
	if !slices.Equal(ids, []string{"E_0"}) || next.UnixNano() != 400 {
		t.Errorf("after extend and finish: %v next %d", ids, next.UnixNano())
	}
}

// TestStoreDelays: a delay request adds a timer, its first answer (the timer's, or a
// cancellation's) removes it, also when the answer is dropped because the workflow has
// finished, and also when request and answer are in the same group commit.
func TestStoreDelays(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	delayEv := func(at int64, js, id string, expires int64) *pb.Event {
		return historyEv(at, &pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinSetRequest{JoinSetRequest: &pb.JoinSetRequest{
			JoinSetId: js, Request: &pb.JoinSetRequest_Delay{Delay: &pb.DelayRequest{DelayId: id, ExpiresAt: expires}}}}})
	}
	answer := func(parent, js, id string, cancelled bool) *events.Tx {
		return &events.Tx{Responses: []events.ResponseAppend{{ExecutionID: parent, Response: &pb.Response{
			CreatedAt: 10, JoinSetId: js, Kind: &pb.Response_Delay{Delay: &pb.DelayFinished{DelayId: id, Cancelled: cancelled}}}}}}
	}
	for _, p := range []string{"E_A", "E_B"} {
		mustCommit(t, s, appendTx(p, 0, "", createdEv("testing:a/b.c", "q", 1, 1), lockedEv("R", 2, 1000), joinSetCreateEv(3, "g:1")))
	}
	mustCommit(t, s, appendTx("E_A", 3, "R", delayEv(4, "g:1", "Delay_A.g:1_1", 300), delayEv(4, "g:1", "Delay_A.g:1_2", 100)))
	mustCommit(t, s, appendTx("E_B", 3, "R", delayEv(4, "g:1", "Delay_B.g:1_1", 200)))
	due := func(now int64) ([]string, int64) {
		t.Helper()
		due, next, err := s.ExpiredDelays(ctx, time.Unix(0, now), 10)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, d := range due {
			ids = append(ids, d.ID)
		}
		if next.IsZero() {
			return ids, 0
		}
		return ids, next.UnixNano()
	}
	if ids, next := due(150); !slices.Equal(ids, []string{"Delay_A.g:1_2"}) || next != 200 {
		t.Fatalf("at 150: %v next %d", ids, next)
	}
	if d, _, _ := s.ExpiredDelays(ctx, time.Unix(0, 150), 10); len(d) != 1 || d[0].At.UnixNano() != 100 {
		t.Fatalf("at 150: %v, want Delay_A.g:1_2 due at 100", d)
	}
	if at, waiting, _ := s.DelayExpiry(ctx, "Delay_A.g:1_1"); !waiting || at.UnixNano() != 300 {
		t.Fatalf("DelayExpiry: %v %v", at, waiting)
	}
	mustCommit(t, s, answer("E_A", "g:1", "Delay_A.g:1_2", false))
	mustCommit(t, s, answer("E_A", "g:1", "Delay_A.g:1_2", true)) // a late cancel: dropped
	mustCommit(t, s, answer("E_A", "g:1", "Delay_A.g:1_1", true))
	mustCommit(t, s, appendTx("E_B", 4, "R", finishedEv(5, `{"ok":null}`)))
	mustCommit(t, s, answer("E_B", "g:1", "Delay_B.g:1_1", false)) // dropped: E_B finished
	if ids, next := due(1000); len(ids) != 0 || next != 0 {
		t.Fatalf("after the answers: %v next %d", ids, next)
	}
	if _, waiting, _ := s.DelayExpiry(ctx, "Delay_A.g:1_1"); waiting {
		t.Fatal("an answered delay still waits")
	}
	resps, err := s.Responses(ctx, "E_A", 0)
	if err != nil || len(resps) != 2 || resps[0].GetDelay().Cancelled || !resps[1].GetDelay().Cancelled {
		t.Fatalf("responses of E_A: %v %v", resps, err)
	}
	// Requested and answered in one group commit.
	var wg sync.WaitGroup
	mustCommit(t, s, appendTx("E_C", 0, "", createdEv("testing:a/b.c", "q", 1, 1), lockedEv("R", 2, 1000), joinSetCreateEv(3, "g:1")))
	wg.Add(2)
	go func() {
		defer wg.Done()
		_, _ = s.Commit(ctx, appendTx("E_C", 3, "R", delayEv(4, "g:1", "Delay_C.g:1_1", 50)))
	}()
	go func() {
		defer wg.Done()
		time.Sleep(time.Millisecond)
		_, _ = s.Commit(ctx, answer("E_C", "g:1", "Delay_C.g:1_1", false))
	}()
	wg.Wait()
	resps, _ = s.Responses(ctx, "E_C", 0)
	if ids, _ := due(1000); len(resps) == 1 && len(ids) != 0 {
		t.Fatalf("a delay answered in the group of its request still has a timer: %v", ids)
	}
}

// TestStoreChildIDsExtendParentIDs: a child's ID starts with its parent's, so reading the
// parent's stream must not run into the child's.
func TestStoreChildIDsExtendParentIDs(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	createWorkflow(t, s, "E_P")
	mustCommit(t, s, &events.Tx{Appends: []events.Append{
		{ExecutionID: "E_P", ExpectedVersion: 3, RunID: "R1", Events: []*pb.Event{requestEv(5, "g:1", "E_P.g:1_1")}},
		{ExecutionID: "E_P.g:1_1", Events: []*pb.Event{childCreatedEv("E_P", "g:1", 5)}},
	}})
	createWorkflow(t, s, "E_P.g:1_1.g:1_1") // a grandchild that is itself a workflow
	mustCommit(t, s, respondTx("E_P.g:1_1", childResponse(6, "g:1", "E_P.g:1_1.g:1_1")))
	mustCommit(t, s, &events.Tx{Appends: []events.Append{{ExecutionID: "E_P.g:1_1", ExpectedVersion: 1, Events: []*pb.Event{finishedEv(7, `{"ok":1}`)}}},
		Responses: []events.ResponseAppend{{ExecutionID: "E_P", Response: childResponse(7, "g:1", "E_P.g:1_1")}}})
	for id, want := range map[string][2]int{"E_P": {4, 1}, "E_P.g:1_1": {2, 1}, "E_P.g:1_1.g:1_1": {3, 0}} {
		evs, err := s.Events(ctx, id, 0, 0)
		if err != nil || len(evs) != want[0] {
			t.Errorf("Events(%s): %d events (%v), want %d", id, len(evs), err, want[0])
		}
		if evs, _ := s.Events(ctx, id, 1, 0); len(evs) != want[0]-1 {
			t.Errorf("Events(%s, from 1): %d events, want %d", id, len(evs), want[0]-1)
		}
		rs, err := s.Responses(ctx, id, 0)
		if err != nil || len(rs) != want[1] {
			t.Errorf("Responses(%s): %d responses (%v), want %d", id, len(rs), err, want[1])
		}
	}
	if evs, _ := s.Events(ctx, "E_P", 1, 2); len(evs) != 2 || evs[0].GetLocked() == nil {
		t.Errorf("Events(E_P, 1, limit 2): %v", evs)
	}
	if err := snapshot.VerifyAll(ctx, s); err != nil {
		t.Fatal(err)
	}
}

func TestStoreChildren(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	createWorkflow(t, s, "E_1")
	createWorkflow(t, s, "E_10")
	for _, c := range []struct{ parent, id string }{
		{"E_1", "E_1.g:1_2"}, {"E_1", "E_1.g:1_1"}, {"E_10", "E_10.g:1_1"}, {"E_1.g:1_1", "E_1.g:1_1.o:1-x_1"},
	} {
		mustCommit(t, s, appendTx(c.id, 0, "", childCreatedEv(c.parent, "g:1", 5)))
	}
	for parent, want := range map[string][]string{
		"E_1":       {"E_1.g:1_1", "E_1.g:1_2"},
		"E_10":      {"E_10.g:1_1"},
		"E_1.g:1_1": {"E_1.g:1_1.o:1-x_1"},
		"E_2":       nil,
	} {
		got, err := s.Children(ctx, parent)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("Children(%s) = %v %v, want %v", parent, got, err, want)
		}
	}
}

func TestStoreList(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	// E_0 .. E_9 created at 0..9 (newest first in listings); odd ones finish; E_3 and
	// E_4 have children; the ffqn alternates between two interfaces.
	for i := range 10 {
		id := fmt.Sprintf("E_%d", i)
		ffqn := "testing:even/ifc.fn"
		if i%2 == 1 {
			ffqn = "testing:odd/ifc.fn"
		}
		mustCommit(t, s, appendTx(id, 0, "", createdEv(ffqn, "q", int64(100+i), 100)))
		if i%2 == 1 {
			mustCommit(t, s, appendTx(id, 1, "", finishedEv(200, `{"ok":1}`)))
		}
	}
	mustCommit(t, s, appendTx("E_3.g:1_1", 0, "", childCreatedEv("E_3", "g:1", 150)))
	mustCommit(t, s, appendTx("E_4.g:1_1", 0, "", childCreatedEv("E_4", "g:1", 50)))

	list := func(f events.ListFilter) []string {
		t.Helper()
		var all []string
		for page := 0; ; page++ {
			p, err := s.List(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			if f.Limit > 0 && len(p.States) > f.Limit {
				t.Fatalf("page of %d, limit %d", len(p.States), f.Limit)
			}
			for _, st := range p.States {
				all = append(all, st.ExecutionId)
			}
			if p.Next == "" {
				return all
			}
			if page > 20 {
				t.Fatal("paging does not end")
			}
			f.Before = p.Next
		}
	}
	for _, tc := range []struct {
		name string
		f    events.ListFilter
		want []string
	}{
		{"all, one page", events.ListFilter{Limit: 100}, []string{"E_3.g:1_1", "E_9", "E_8", "E_7", "E_6", "E_5", "E_4", "E_3", "E_2", "E_1", "E_0", "E_4.g:1_1"}},
		{"all, pages of 5", events.ListFilter{Limit: 5}, []string{"E_3.g:1_1", "E_9", "E_8", "E_7", "E_6", "E_5", "E_4", "E_3", "E_2", "E_1", "E_0", "E_4.g:1_1"}},
		{"all, pages of 1", events.ListFilter{Limit: 1}, []string{"E_3.g:1_1", "E_9", "E_8", "E_7", "E_6", "E_5", "E_4", "E_3", "E_2", "E_1", "E_0", "E_4.g:1_1"}},
		{"top level, pages of 3", events.ListFilter{Limit: 3, TopLevelOnly: true}, []string{"E_9", "E_8", "E_7", "E_6", "E_5", "E_4", "E_3", "E_2", "E_1", "E_0"}},
		{"finished", events.ListFilter{Limit: 2, Status: pb.Status_STATUS_FINISHED}, []string{"E_9", "E_7", "E_5", "E_3", "E_1"}},
		{"pending top level", events.ListFilter{Limit: 2, Status: pb.Status_STATUS_PENDING_AT, TopLevelOnly: true}, []string{"E_8", "E_6", "E_4", "E_2", "E_0"}},
		{"ffqn prefix", events.ListFilter{Limit: 4, FFQNPrefix: "testing:odd/"}, []string{"E_9", "E_7", "E_5", "E_3", "E_1"}},
		{"ffqn prefix and status", events.ListFilter{Limit: 4, FFQNPrefix: "testing:even", Status: pb.Status_STATUS_FINISHED}, nil},
		{"no match", events.ListFilter{FFQNPrefix: "nope"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := list(tc.f); !slices.Equal(got, tc.want) {
				t.Errorf("got %v\nwant %v", got, tc.want)
			}
		})
	}
	p, err := s.List(ctx, events.ListFilter{})
	if err != nil || len(p.States) != 12 || p.Next != "" {
		t.Errorf("default limit: %d states, next %q, %v", len(p.States), p.Next, err)
	}
	for _, bad := range []string{"zz", "00", "7300"} {
		// The caller's mistake, not the store's: the API answers invalid_argument.
		if _, err := s.List(ctx, events.ListFilter{Before: bad}); !errors.Is(err, events.ErrInvalidArgument) {
			t.Errorf("cursor %q: err %v, want ErrInvalidArgument", bad, err)
		}
	}
}

func TestStoreLiveAndAllStates(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	for i := range 5 {
		id := fmt.Sprintf("E_%d", i)
		mustCommit(t, s, appendTx(id, 0, "", createdEv("testing:a/b.c", "q", 1, 1)))
		if i%2 == 0 {
			mustCommit(t, s, appendTx(id, 1, "", finishedEv(2, `{"ok":1}`)))
		}
	}
	collect := func(scan func(context.Context, func(*pb.ExecutionState) error) error) []string {
		var ids []string
		if err := scan(ctx, func(st *pb.ExecutionState) error { ids = append(ids, st.ExecutionId); return nil }); err != nil {
			t.Fatal(err)
		}
		return ids
	}
	if got := collect(s.LiveStates); !slices.Equal(got, []string{"E_1", "E_3"}) {
		t.Errorf("LiveStates: %v", got)
	}
	if got := collect(s.AllStates); !slices.Equal(got, []string{"E_0", "E_1", "E_2", "E_3", "E_4"}) {
		t.Errorf("AllStates: %v", got)
	}
	stop := errors.New("stop")
	n := 0
	err := s.AllStates(ctx, func(*pb.ExecutionState) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("AllStates does not stop on an error: %v after %d", err, n)
	}
}

// TestStoreReopen writes through one store, closes it, and reads everything back from a
// new one on the same directory.
func TestStoreReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir, events.Options{})
	createWorkflow(t, s, "E_P")
	mustCommit(t, s, &events.Tx{Appends: []events.Append{
		{ExecutionID: "E_P", ExpectedVersion: 3, RunID: "R1", Events: []*pb.Event{requestEv(5, "g:1", "E_P.g:1_1"), joinNextEv(5, "g:1", 5)}},
		{ExecutionID: "E_P.g:1_1", Events: []*pb.Event{childCreatedEv("E_P", "g:1", 5)}},
	}})
	mustCommit(t, s, appendTx("E_L", 0, "", createdEv("testing:a/b.c", "q", 1, 1), lockedEv("R9", 2, 777)))
	mustCommit(t, s, appendTx("E_F", 0, "", createdEv("testing:a/b.c", "q", 1, 1), finishedEv(2, `{"err":"x"}`)))
	mustCommit(t, s, &events.Tx{
		Appends:   []events.Append{{ExecutionID: "E_P.g:1_1", ExpectedVersion: 1, Events: []*pb.Event{finishedEv(9, `{"ok":1}`)}}},
		Responses: []events.ResponseAppend{{ExecutionID: "E_P", Response: childResponse(9, "g:1", "E_P.g:1_1")}},
	})
	ids := []string{"E_P", "E_P.g:1_1", "E_L", "E_F"}
	type snap struct {
		st  *pb.ExecutionState
		evs []*pb.Event
		rs  []*pb.Response
	}
	read := func(s *events.PebbleStore) map[string]snap {
		out := map[string]snap{}
		for _, id := range ids {
			evs, err := s.Events(ctx, id, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			rs, err := s.Responses(ctx, id, 0)
			if err != nil {
				t.Fatal(err)
			}
			out[id] = snap{mustState(t, s, id), evs, rs}
		}
		return out
	}
	before := read(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(ctx, appendTx("E_L", 2, "", persistEv(3))); !errors.Is(err, events.ErrClosed) {
		t.Fatalf("commit after close: %v", err)
	}

	s2 := openStore(t, dir, events.Options{})
	after := read(s2)
	for _, id := range ids {
		b, a := before[id], after[id]
		if !proto.Equal(a.st, b.st) {
			t.Errorf("%s: state after reopen differs: %v", id, snapshot.Compare(id, b.st, a.st))
		}
		if len(a.evs) != len(b.evs) || len(a.rs) != len(b.rs) {
			t.Errorf("%s: %d events, %d responses after reopen; %d, %d before", id, len(a.evs), len(a.rs), len(b.evs), len(b.rs))
			continue
		}
		for i := range a.evs {
			if !proto.Equal(a.evs[i], b.evs[i]) {
				t.Errorf("%s: event %d differs", id, i)
			}
		}
		for i := range a.rs {
			if !proto.Equal(a.rs[i], b.rs[i]) {
				t.Errorf("%s: response %d differs", id, i)
			}
		}
	}
	if st := after["E_P"].st; st.Status != pb.Status_STATUS_PENDING_AT || st.ResponseCount != 1 {
		t.Errorf("parent after reopen: %v", st)
	}
	if kids, _ := s2.Children(ctx, "E_P"); !slices.Equal(kids, []string{"E_P.g:1_1"}) {
		t.Errorf("children after reopen: %v", kids)
	}
	if due := duePendingIDs(t, s2, "q", 100, nil); !slices.Equal(due, []string{"E_P"}) {
		t.Errorf("due after reopen: %v", due)
	}
	if exp, _, _ := s2.ExpiredLocks(ctx, time.Unix(0, 1000), 10); !slices.Equal(exp, []string{"E_L"}) {
		t.Errorf("expired locks after reopen: %v", exp)
	}
	if p, _ := s2.List(ctx, events.ListFilter{Status: pb.Status_STATUS_FINISHED}); len(p.States) != 2 {
		t.Errorf("finished after reopen: %d", len(p.States))
	}
	// The reopened store continues the streams and still dedupes.
	mustCommit(t, s2, appendTx("E_L", 2, "R9", persistEv(3)))
	if states := mustCommit(t, s2, respondTx("E_P", childResponse(10, "g:1", "E_P.g:1_1"))); len(states) != 0 {
		t.Errorf("a duplicate response after reopen was applied")
	}
	if err := snapshot.VerifyAll(ctx, s2); err != nil {
		t.Fatal(err)
	}
}

func TestStoreOnCommit(t *testing.T) {
	// OnCommit runs on the writer after the committers have their answers, so the test
	// waits for its calls.
	calls := make(chan []*pb.ExecutionState, 100)
	s := openStore(t, t.TempDir(), events.Options{NoSync: true, OnCommit: func(states []*pb.ExecutionState) { calls <- states }})
	ctx := context.Background()
	// next returns the states of the next call that changed any, failing on a call with
	// states that are not the expected next ones.
	next := func() map[string]uint32 {
		t.Helper()
		for {
			select {
			case states := <-calls:
				if len(states) == 0 {
					continue
				}
				out := map[string]uint32{}
				for _, st := range states {
					out[st.ExecutionId] = st.NextVersion
				}
				return out
			case <-time.After(5 * time.Second):
				t.Fatal("no OnCommit call")
				return nil
			}
		}
	}
	createWorkflow(t, s, "E_P")
	if m := next(); len(m) != 1 || m["E_P"] != 3 {
		t.Errorf("create: %v", m)
	}
	mustCommit(t, s, &events.Tx{Appends: []events.Append{
		{ExecutionID: "E_P", ExpectedVersion: 3, Events: []*pb.Event{requestEv(5, "g:1", "E_P.g:1_1")}},
		{ExecutionID: "E_P.g:1_1", Events: []*pb.Event{childCreatedEv("E_P", "g:1", 5)}},
	}})
	if m := next(); len(m) != 2 || m["E_P"] != 4 || m["E_P.g:1_1"] != 1 {
		t.Errorf("two streams: %v", m)
	}
	mustCommit(t, s, respondTx("E_P", childResponse(7, "g:1", "E_P.g:1_1")))
	if m := next(); len(m) != 1 || m["E_P"] != 4 {
		t.Errorf("response: %v", m)
	}
	// A failed tx and a duplicate response change no state: the next call with states is
	// the following commit's.
	_, _ = s.Commit(ctx, appendTx("E_P", 0, "", persistEv(6)))
	mustCommit(t, s, respondTx("E_P", childResponse(8, "g:1", "E_P.g:1_1")))
	mustCommit(t, s, appendTx("E_P.g:1_1", 1, "", finishedEv(9, `{"ok":1}`)))
	if m := next(); len(m) != 1 || m["E_P.g:1_1"] != 2 {
		t.Errorf("after a failed tx and a duplicate: %v", m)
	}
}

func TestStoreCommitContext(t *testing.T) {
	s := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// A commit that cannot even be queued returns the context's error; one that is queued
	// is waited for. Either way, nothing half-done: the state matches the outcome.
	_, err := s.Commit(ctx, appendTx("E_1", 0, "", createdEv("testing:a/b.c", "q", 1, 1)))
	_, serr := s.State(context.Background(), "E_1")
	if (err == nil) != (serr == nil) {
		t.Fatalf("commit %v, state %v", err, serr)
	}
}

// TestParamsStoredOnce: an execution's parameters are stored once, in its Created event;
// the state written beside it and the indexes do not carry them, and neither do the
// events that follow. Counted over every key and value in Pebble.
func TestParamsStoredOnce(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, events.Options{NoSync: true})
	params := make([]byte, 1<<20)
	for i := range params {
		params[i] = 'a' + byte(i*7919%26)
	}
	params = append(append([]byte(`["`), params...), `"]`...)
	created := createdEv("testing:a/b.c", "q", 1, 1)
	created.GetCreated().Params = params
	mustCommit(t, s, appendTx("E_1", 0, "", created))
	mustCommit(t, s, appendTx("E_1", 1, "", lockedEv("Run_1", 2, 1000)))
	mustCommit(t, s, appendTx("E_1", 2, "Run_1", finishedEv(3, `{"ok":null}`)))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := pebble.Open(dir, &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	it, err := db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	stored := 0
	for it.First(); it.Valid(); it.Next() {
		stored += len(it.Key()) + len(it.Value())
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	if stored < len(params) || stored > len(params)+4096 {
		t.Errorf("%d bytes stored for an execution with %d bytes of parameters, want them stored once", stored, len(params))
	}
}
