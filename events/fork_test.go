package events

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// forkTx creates fork as a copy of a history of original's (made up here): a child
// request answered before the next event (at_version 4), an answered delay whose answer
// is delivered after the copied events, and a delay left waiting.
func forkTx(original, fork string, at int64) *Tx {
	created := gCreated(at)
	created.GetCreated().ForkedFrom, created.GetCreated().ForkedAtVersion = original, 6
	req := func(r *pb.JoinSetRequest) *pb.Event {
		r.JoinSetId = "g:1"
		return rHistory(at, &pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinSetRequest{JoinSetRequest: r}})
	}
	child := ChildExecutionID(fork, "g:1", 1)
	answered, waiting := DelayID(fork, "g:1", 2), DelayID(fork, "g:1", 3)
	return &Tx{Appends: []Append{{ExecutionID: fork, Events: []*pb.Event{
		created, gLocked("R", at),
		rHistory(at, &pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinSetCreate{JoinSetCreate: &pb.JoinSetCreate{JoinSetId: "g:1"}}}),
		req(&pb.JoinSetRequest{Request: &pb.JoinSetRequest_Child{Child: &pb.ChildExecutionRequest{ChildExecutionId: child}}}),
		req(&pb.JoinSetRequest{Request: &pb.JoinSetRequest_Delay{Delay: &pb.DelayRequest{DelayId: answered, ExpiresAt: at + 5}}}),
		req(&pb.JoinSetRequest{Request: &pb.JoinSetRequest_Delay{Delay: &pb.DelayRequest{DelayId: waiting, ExpiresAt: at + 1e12}}}),
		{CreatedAt: at, Kind: &pb.Event_Unlocked{Unlocked: &pb.Unlocked{UnlockedAt: at, Reason: "forked"}}},
	}, Responses: []*pb.Response{
		{CreatedAt: at, JoinSetId: "g:1", AtVersion: 4, Kind: &pb.Response_Child{Child: &pb.ChildFinished{ChildExecutionId: child, Result: []byte(`{"ok":1}`)}}},
		{CreatedAt: at, JoinSetId: "g:1", AtVersion: 99, Kind: &pb.Response_Delay{Delay: &pb.DelayFinished{DelayId: answered}}},
	}}}}
}

// An append may carry responses folded between its events (a fork's copied history):
// each lands where its at_version says, gets the next cursor, answers its delay (whose
// timer goes), and the fork is listed under its original in the same batch.
func TestAppendInterleavedResponses(t *testing.T) {
	ctx := context.Background()
	s := gOpen(t, t.TempDir())
	original, fork := NewExecutionID(time.Unix(0, 100)), NewExecutionID(time.Unix(0, 200))
	gCommit(t, s, gAppend(original, 0, gCreated(100)))
	gCommit(t, s, forkTx(original, fork, 200))
	st, err := s.State(ctx, fork)
	if err != nil {
		t.Fatal(err)
	}
	if st.ForkedFrom != original || st.ForkedAtVersion != 6 || st.ResponseCount != 2 || st.NextVersion != 7 || st.Status != pb.Status_STATUS_PENDING_AT {
		t.Fatalf("fork's state: %v", st)
	}
	rs, err := s.Responses(ctx, fork, 0)
	if err != nil || len(rs) != 2 || rs[0].Cursor != 0 || rs[0].AtVersion != 4 || rs[1].Cursor != 1 || rs[1].AtVersion != 7 {
		t.Fatalf("responses %v %v, want cursors 0, 1 at versions 4, 7", rs, err)
	}
	if _, waiting, _ := s.DelayExpiry(ctx, DelayID(fork, "g:1", 2)); waiting {
		t.Fatal("the answered delay still has its timer")
	}
	if _, waiting, _ := s.DelayExpiry(ctx, DelayID(fork, "g:1", 3)); !waiting {
		t.Fatal("the delay left waiting has no timer")
	}
	if forks, err := s.Forks(ctx, original); err != nil || !slices.Equal(forks, []string{fork}) {
		t.Fatalf("forks of the original: %v %v", forks, err)
	}

	// Responses out of order, or one answered twice, refuse the whole Tx.
	bad := forkTx(original, NewExecutionID(time.Unix(0, 300)), 300)
	bad.Appends[0].Responses[0].AtVersion = 100
	if _, err := s.Commit(ctx, bad); err == nil || !strings.Contains(err.Error(), "out of order") {
		t.Fatalf("responses out of order: %v", err)
	}
	bad = forkTx(original, NewExecutionID(time.Unix(0, 300)), 300)
	bad.Appends[0].Responses[1] = bad.Appends[0].Responses[0]
	if _, err := s.Commit(ctx, bad); err == nil || !strings.Contains(err.Error(), "answered twice") {
		t.Fatalf("a response twice: %v", err)
	}
	if forks, _ := s.Forks(ctx, original); len(forks) != 1 {
		t.Fatalf("a refused fork was listed: %v", forks)
	}
}

// A fork and its original are trees of their own: deleting the fork takes its entry in
// the original's list of forks with it; deleting the original takes its list, and
// leaves its forks.
func TestDeleteForkAndOriginal(t *testing.T) {
	ctx := context.Background()
	s := gOpen(t, t.TempDir())
	original, _ := rTree(t, s, 100, true)
	fork1, fork2 := NewExecutionID(time.Unix(0, 200)), NewExecutionID(time.Unix(0, 300))
	for _, f := range []string{fork1, fork2} {
		tx := forkTx(original, f, 200)
		tx.Appends[0].Responses = tx.Appends[0].Responses[:1]
		tx.Appends[0].Events = append(tx.Appends[0].Events[:4:4], rFinished(200))
		gCommit(t, s, tx)
	}
	if d, err := s.DeleteTrees(ctx, []string{fork1}); err != nil || d.Trees != 1 {
		t.Fatalf("delete fork: %+v %v", d, err)
	}
	if forks, err := s.Forks(ctx, original); err != nil || !slices.Equal(forks, []string{fork2}) {
		t.Fatalf("forks of the original after deleting one: %v %v", forks, err)
	}
	if left := treeKeys(t, s, fork1); len(left) != 0 {
		t.Fatalf("keys of the deleted fork left: %q", left)
	}
	if d, err := s.DeleteTrees(ctx, []string{original}); err != nil || d.Trees != 1 {
		t.Fatalf("delete original: %+v %v", d, err)
	}
	if _, closer, err := s.db.Get(forkKey(original, fork2)); !errors.Is(err, pebble.ErrNotFound) {
		if err == nil {
			closer.Close()
		}
		t.Fatalf("the deleted original's list of forks: %v, want not found", err)
	}
	if st, err := s.State(ctx, fork2); err != nil || st.ForkedFrom != original {
		t.Fatalf("the other fork after its original's deletion: %v %v", st, err)
	}
}

// TestForkRacingDeletion: a fork whose original's tree retention has begun deleting
// (its mark committed first, in the writer's order) or has deleted is refused, so no
// listing of it (a b key) is left under the deleted original.
func TestForkRacingDeletion(t *testing.T) {
	ctx := context.Background()
	s := gOpen(t, t.TempDir())
	original, _ := rTree(t, s, 100, true)
	// The mark step of the original's deletion, as DeleteTrees commits it.
	if err := s.runStep(ctx, true, func(b *pebble.Batch) (func(), error) {
		_ = b.Set(deletingKey(original), nil, nil)
		return func() {
			s.mu.Lock()
			s.deleting[original] = true
			s.mu.Unlock()
		}, nil
	}); err != nil {
		t.Fatal(err)
	}
	fork := NewExecutionID(time.Unix(0, 200))
	if _, err := s.Commit(ctx, forkTx(original, fork, 200)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a fork of an original being deleted: %v, want ErrNotFound", err)
	}
	if d, err := s.DeleteTrees(ctx, []string{original}); err != nil || d.Trees != 1 {
		t.Fatalf("finish the deletion: %+v %v", d, err)
	}
	if left := treeKeys(t, s, original); len(left) != 0 {
		t.Fatalf("keys of the deleted original left: %q", left)
	}
	if _, err := s.Commit(ctx, forkTx(original, fork, 200)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a fork of a deleted original: %v, want ErrNotFound", err)
	}
	if _, err := s.State(ctx, fork); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the refused fork was stored: %v", err)
	}
}

// TestCopiedResponsesOnlyAtCreation: Append.Responses are refused on an existing
// execution (they are checked for duplicates only within the Append, so a response
// delivered before would be delivered again), and the Tx leaves nothing.
func TestCopiedResponsesOnlyAtCreation(t *testing.T) {
	ctx := context.Background()
	s := gOpen(t, t.TempDir())
	original, fork := NewExecutionID(time.Unix(0, 100)), NewExecutionID(time.Unix(0, 200))
	gCommit(t, s, gAppend(original, 0, gCreated(100)))
	tx := forkTx(original, fork, 200)
	first := tx.Appends[0].Responses[0]
	gCommit(t, s, tx)
	before, err := s.State(ctx, fork)
	if err != nil {
		t.Fatal(err)
	}
	again := &Tx{Appends: []Append{{ExecutionID: fork, ExpectedVersion: before.NextVersion,
		Events: []*pb.Event{gLocked("R2", 300)}, Responses: []*pb.Response{first}}}}
	if _, err := s.Commit(ctx, again); !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "only its creation") {
		t.Fatalf("copied responses on an existing execution: %v, want ErrInvalidArgument", err)
	}
	after, err := s.State(ctx, fork)
	if err != nil || after.NextVersion != before.NextVersion || after.ResponseCount != before.ResponseCount {
		t.Fatalf("the refused Tx changed the fork: %v %v", after, err)
	}
}
