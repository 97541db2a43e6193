package events

// White-box tests of the global event log: they call applyGroup directly to build groups
// deterministically (the writer goroutine is idle meanwhile, blocked on its queue).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

func gOpen(t testing.TB, dir string) *PebbleStore {
	t.Helper()
	s, err := Open(dir, Options{NoSync: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func gCreated(at int64) *pb.Event {
	return &pb.Event{CreatedAt: at, Kind: &pb.Event_Created{Created: &pb.Created{Ffqn: "testing:a/b.c", Queue: "q", ScheduledAt: at, Params: []byte("[]")}}}
}

func gLocked(run string, at int64) *pb.Event {
	return &pb.Event{CreatedAt: at, Kind: &pb.Event_Locked{Locked: &pb.Locked{ExecutorId: "Exr_test", RunId: run, LockExpiresAt: 1e15}}}
}

func gPersist(at int64) *pb.Event {
	return &pb.Event{CreatedAt: at, Kind: &pb.Event_History{History: &pb.HistoryEvent{Kind: &pb.HistoryEvent_Persist{Persist: &pb.Persist{Kind: "random_u64", Value: []byte("1")}}}}}
}

func gAppend(id string, v uint32, evs ...*pb.Event) *Tx {
	return &Tx{Appends: []Append{{ExecutionID: id, ExpectedVersion: v, Events: evs}}}
}

func gCommit(t testing.TB, s *PebbleStore, tx *Tx) {
	t.Helper()
	if _, err := s.Commit(context.Background(), tx); err != nil {
		t.Fatalf("commit: %v", err)
	}
}

type idv struct {
	id string
	v  uint32
}

// checkLog reads the whole log and checks that it holds exactly want, at positions
// 1..len(want), each the event stored at its (execution, version).
func checkLog(t *testing.T, s *PebbleStore, want []idv) {
	t.Helper()
	ctx := context.Background()
	if last := s.LastPosition(); last != uint64(len(want)) {
		t.Fatalf("last position %d, want %d", last, len(want))
	}
	got, _, err := s.EventsFrom(ctx, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d events in the log, want %d: %v", len(got), len(want), got)
	}
	for i, pe := range got {
		if pe.Position != uint64(i+1) || pe.ExecutionID != want[i].id || pe.Version != want[i].v {
			t.Fatalf("log[%d] = %d %s v%d, want %d %s v%d", i, pe.Position, pe.ExecutionID, pe.Version, i+1, want[i].id, want[i].v)
		}
		evs, err := s.Events(ctx, pe.ExecutionID, pe.Version, 1)
		if err != nil || len(evs) != 1 {
			t.Fatalf("stored event %s v%d: %v", pe.ExecutionID, pe.Version, err)
		}
		if !proto.Equal(evs[0], pe.Event) {
			t.Fatalf("position %d: event %v, stored %v", pe.Position, pe.Event, evs[0])
		}
	}
}

// group applies txs as one group, as the writer does, and returns each tx's error.
func group(s *PebbleStore, txs ...*Tx) []error {
	reqs := make([]*commitReq, len(txs))
	for i, tx := range txs {
		reqs[i] = &commitReq{tx: tx, result: make(chan commitResult, 1)}
	}
	s.applyGroup(reqs)
	errs := make([]error, len(txs))
	for i, r := range reqs {
		errs[i] = (<-r.result).err
	}
	return errs
}

// TestGlobalGroupPositions: the events of a group get consecutive positions in batch
// order; failed txs in the middle of the group get none, and leave no gap.
func TestGlobalGroupPositions(t *testing.T) {
	s := gOpen(t, t.TempDir())
	if s.LastPosition() != 0 {
		t.Fatalf("empty store at position %d", s.LastPosition())
	}
	gCommit(t, s, gAppend("E_A", 0, gCreated(1)))
	errs := group(s,
		gAppend("E_B", 0, gCreated(2), gLocked("R1", 2)),
		gAppend("E_A", 5, gPersist(3)), // conflict
		&Tx{Responses: []ResponseAppend{{ExecutionID: "E_A", Response: &pb.Response{CreatedAt: 3, JoinSetId: "g:1",
			Kind: &pb.Response_Child{Child: &pb.ChildFinished{ChildExecutionId: "E_A.g:1_1", Result: []byte(`{"ok":1}`)}}}}}}, // no events
		&Tx{Appends: []Append{
			{ExecutionID: "E_A", ExpectedVersion: 1, Events: []*pb.Event{gLocked("R2", 4)}},
			{ExecutionID: "E_C", Events: []*pb.Event{gCreated(4)}},
		}},
		gAppend("E_D", 0, gCreated(5), gCreated(5)), // first event valid, second not: all fails
		gAppend("E_B", 0, gCreated(5)),              // exists
		&Tx{Appends: []Append{{ExecutionID: "E_B", ExpectedVersion: 2, RunID: "R1", Events: []*pb.Event{gPersist(6), gPersist(6)}}}},
	)
	for i, wantErr := range []bool{false, true, false, false, true, true, false} {
		if (errs[i] != nil) != wantErr {
			t.Fatalf("tx %d: error %v", i, errs[i])
		}
	}
	want := []idv{{"E_A", 0}, {"E_B", 0}, {"E_B", 1}, {"E_A", 1}, {"E_C", 0}, {"E_B", 2}, {"E_B", 3}}
	checkLog(t, s, want)

	// A group where every tx fails, then one that only responds: no positions.
	errs = group(s, gAppend("E_A", 9, gPersist(7)), gAppend("E_C", 0, gCreated(7)))
	if errs[0] == nil || errs[1] == nil {
		t.Fatalf("bad txs committed: %v", errs)
	}
	gCommit(t, s, &Tx{Responses: []ResponseAppend{{ExecutionID: "E_C", Response: &pb.Response{CreatedAt: 7, JoinSetId: "g:1",
		Kind: &pb.Response_Delay{Delay: &pb.DelayFinished{DelayId: "Delay_x"}}}}}})
	checkLog(t, s, want)
	gCommit(t, s, gAppend("E_C", 1, gLocked("R3", 8)))
	checkLog(t, s, append(want, idv{"E_C", 1}))
}

// TestGlobalReopen: a reopened store continues the numbering.
func TestGlobalReopen(t *testing.T) {
	dir := t.TempDir()
	s := gOpen(t, dir)
	gCommit(t, s, gAppend("E_A", 0, gCreated(1), gLocked("R1", 1)))
	gCommit(t, s, gAppend("E_B", 0, gCreated(1)))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.WaitPosition(context.Background(), 3); !errors.Is(err, ErrClosed) {
		t.Fatalf("wait on a closed store: %v", err)
	}
	s = gOpen(t, dir)
	if s.LastPosition() != 3 {
		t.Fatalf("reopened at position %d, want 3", s.LastPosition())
	}
	gCommit(t, s, &Tx{Appends: []Append{{ExecutionID: "E_A", ExpectedVersion: 2, RunID: "R1", Events: []*pb.Event{gPersist(2)}}}})
	gCommit(t, s, gAppend("E_B", 1, gLocked("R2", 2)))
	checkLog(t, s, []idv{{"E_A", 0}, {"E_A", 1}, {"E_B", 0}, {"E_A", 2}, {"E_B", 1}})
}

// TestGlobalEventsFromPaging reads the log in pages.
func TestGlobalEventsFromPaging(t *testing.T) {
	ctx := context.Background()
	s := gOpen(t, t.TempDir())
	const n = 25
	for i := range 5 {
		id := fmt.Sprintf("E_%d", i)
		gCommit(t, s, gAppend(id, 0, gCreated(1), gLocked("R", 1)))
		gCommit(t, s, &Tx{Appends: []Append{{ExecutionID: id, ExpectedVersion: 2, RunID: "R", Events: []*pb.Event{gPersist(2), gPersist(2), gPersist(2)}}}})
	}
	var all []PositionedEvent
	for from := uint64(1); ; {
		page, _, err := s.EventsFrom(ctx, from, 7)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		if len(page) > 7 {
			t.Fatalf("page of %d", len(page))
		}
		all = append(all, page...)
		from = page[len(page)-1].Position + 1
	}
	if len(all) != n {
		t.Fatalf("%d events, want %d", len(all), n)
	}
	for i, pe := range all {
		if pe.Position != uint64(i+1) {
			t.Fatalf("event %d at position %d", i, pe.Position)
		}
	}
	if got, _, _ := s.EventsFrom(ctx, 0, 3); len(got) != 3 || got[0].Position != 1 {
		t.Fatalf("from 0: %v", got)
	}
	if got, _, _ := s.EventsFrom(ctx, n, 0); len(got) != 1 || got[0].Position != n {
		t.Fatalf("from the last: %v", got)
	}
	if got, _, err := s.EventsFrom(ctx, n+1, 0); err != nil || len(got) != 0 {
		t.Fatalf("after the last: %v %v", got, err)
	}
}

// TestGlobalFollow: a subscriber that reads and waits while many committers race (so
// that groups form) sees every event once, in an order consistent with every stream.
func TestGlobalFollow(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := gOpen(t, t.TempDir())
	const writers, steps = 8, 60
	const total = writers * (steps + 2)

	got := make(chan []PositionedEvent, 1)
	go func() {
		var out []PositionedEvent
		var last uint64
		for len(out) < total {
			page, _, err := s.EventsFrom(ctx, last+1, 50)
			if err != nil {
				t.Error(err)
				break
			}
			if len(page) == 0 {
				if _, err := s.WaitPosition(ctx, last); err != nil {
					t.Error(err)
					break
				}
				continue
			}
			out = append(out, page...)
			last = page[len(page)-1].Position
		}
		got <- out
	}()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("E_W%d", w)
			gCommit(t, s, gAppend(id, 0, gCreated(1), gLocked("R", 1)))
			for v := uint32(2); v < steps+2; v++ {
				gCommit(t, s, &Tx{Appends: []Append{{ExecutionID: id, ExpectedVersion: v, RunID: "R", Events: []*pb.Event{gPersist(2)}}}})
			}
		}()
	}
	wg.Wait()
	out := <-got
	if len(out) != total {
		t.Fatalf("subscriber got %d events, want %d", len(out), total)
	}
	next := map[string]uint32{}
	for i, pe := range out {
		if pe.Position != uint64(i+1) {
			t.Fatalf("event %d at position %d", i, pe.Position)
		}
		if pe.Version != next[pe.ExecutionID] {
			t.Fatalf("position %d: %s v%d, want v%d", pe.Position, pe.ExecutionID, pe.Version, next[pe.ExecutionID])
		}
		next[pe.ExecutionID]++
	}
	// Waiting for a position not reached yet ends with the context.
	short, cancelShort := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancelShort()
	if _, err := s.WaitPosition(short, total); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait past the end: %v", err)
	}
	if last, err := s.WaitPosition(ctx, total-1); err != nil || last != total {
		t.Fatalf("wait for a committed position: %d %v", last, err)
	}
}

// TestGroupRefusedForLogsLeavesNoResponse: a Tx refused for its log lines (of an
// execution that does not exist) delivers nothing, and a later Tx of the same group
// delivering the same response is not taken for a duplicate.
func TestGroupRefusedForLogsLeavesNoResponse(t *testing.T) {
	s := gOpen(t, t.TempDir())
	gCommit(t, s, gAppend("E_A", 0, gCreated(1)))
	resp := func() ResponseAppend {
		return ResponseAppend{ExecutionID: "E_A", Response: &pb.Response{CreatedAt: 2, JoinSetId: "g:1",
			Kind: &pb.Response_Child{Child: &pb.ChildFinished{ChildExecutionId: "E_A.g:1_1", Result: []byte(`{"ok":1}`)}}}}
	}
	errs := group(s,
		&Tx{Responses: []ResponseAppend{resp()}, Logs: []LogAppend{{ExecutionID: "E_nobody", Lines: []LogLine{{Message: "x"}}}}},
		&Tx{Responses: []ResponseAppend{resp()}},
	)
	if errs[0] == nil || errs[1] != nil {
		t.Fatalf("errors %v: want the first Tx refused, the second committed", errs)
	}
	rs, err := s.Responses(context.Background(), "E_A", 0)
	if err != nil || len(rs) != 1 {
		t.Fatalf("responses %v, %v: want the one the second Tx delivered", rs, err)
	}
}
