package events_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// TestStoreDeadlines: a deadline in Created is folded into the state and indexed while
// the execution is open; the index lets go of it when the execution finishes or its
// cancellation is requested (the canceller finishes it then: the deadline must not fire
// again), and it survives a reopen of the store.
func TestStoreDeadlines(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir, events.Options{Logger: quiet()})
	withDeadline := func(at int64) *pb.Event {
		ev := createdEv("testing:a/b.c", "q", 1, 1)
		ev.GetCreated().Deadline = at
		return ev
	}
	mustCommit(t, s, appendTx("E_A", 0, "", withDeadline(300)))
	mustCommit(t, s, appendTx("E_B", 0, "", withDeadline(100)))
	mustCommit(t, s, appendTx("E_C", 0, "", withDeadline(200)))
	mustCommit(t, s, appendTx("E_N", 0, "", createdEv("testing:a/b.c", "q", 1, 1))) // no deadline
	if st := mustState(t, s, "E_A"); st.Deadline != 300 {
		t.Fatalf("state deadline %d, want 300", st.Deadline)
	}
	due := func(s events.Store, now int64) ([]string, int64) {
		t.Helper()
		d, next, err := s.ExpiredDeadlines(ctx, time.Unix(0, now), 10)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, x := range d {
			ids = append(ids, x.ID)
		}
		if next.IsZero() {
			return ids, 0
		}
		return ids, next.UnixNano()
	}
	if ids, next := due(s, 99); ids != nil || next != 100 {
		t.Fatalf("at 99: %v next %d, want none next 100", ids, next)
	}
	if ids, next := due(s, 250); !slices.Equal(ids, []string{"E_B", "E_C"}) || next != 300 {
		t.Fatalf("at 250: %v next %d", ids, next)
	}
	// Finished, or being cancelled: no longer the deadline's to stop.
	mustCommit(t, s, appendTx("E_B", 1, "", finishedEv(5, `{"ok":null}`)))
	mustCommit(t, s, appendTx("E_C", 1, "", &pb.Event{CreatedAt: 5, Kind: &pb.Event_CancelRequested{CancelRequested: &pb.CancelRequested{DeadlineExceeded: true}}}))
	if ids, _ := due(s, 1000); !slices.Equal(ids, []string{"E_A"}) {
		t.Fatalf("after finish and cancel: %v, want [E_A]", ids)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, events.Options{Logger: quiet()})
	if ids, next := due(s, 299); ids != nil || next != 300 {
		t.Fatalf("after reopen: %v next %d, want none next 300", ids, next)
	}
}
