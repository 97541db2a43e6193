package events_test

import (
	"context"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// TestPendingStats: the in-memory counts follow every transition in and out of the
// pending index (created, due later, locked, retried, paused, unpaused, finished), and a
// reopened store, whose counts are rebuilt from the index, agrees with them.
func TestPendingStats(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, events.Options{NoSync: true})
	want := func(s *events.PebbleStore, queue string, pending int) {
		t.Helper()
		if got := s.PendingStats(queue); got.Pending != pending {
			t.Errorf("queue %q: pending %d, want %d", queue, got.Pending, pending)
		}
		if queue == "" {
			return
		}
		due, _, err := s.DuePending(context.Background(), queue, time.Unix(0, 1<<62), 1000, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(due) != pending {
			t.Errorf("queue %q: %d in the index, counted %d", queue, len(due), pending)
		}
	}
	for _, c := range []struct {
		id, queue string
		at        int64
	}{{"E_a", "q", 10}, {"E_b", "q", 20}, {"E_c", "q", 1000}, {"E_o", "other", 5}} {
		mustCommit(t, s, appendTx(c.id, 0, "", createdEv("testing:a/b.c", c.queue, 1, c.at)))
	}
	want(s, "q", 3) // due later (E_c) counts too: it waits in the queue
	want(s, "other", 1)
	want(s, "", 4)
	want(s, "nobody", 0)

	mustCommit(t, s, appendTx("E_a", 1, "", lockedEv("R1", 40, 500)))
	want(s, "q", 2)
	if left := s.PendingStats("q").Left; left != 1 {
		t.Errorf("left %d after a lock, want 1", left)
	}
	// A retry waits in the queue again.
	mustCommit(t, s, appendTx("E_a", 2, "R1", &pb.Event{CreatedAt: 41, Kind: &pb.Event_TemporarilyFailed{TemporarilyFailed: &pb.TemporarilyFailed{BackoffExpiresAt: 60}}}))
	want(s, "q", 3)
	mustCommit(t, s, appendTx("E_b", 1, "", pausedEv(2)))
	want(s, "q", 2)
	mustCommit(t, s, appendTx("E_b", 2, "", &pb.Event{CreatedAt: 3, Kind: &pb.Event_Unpaused{Unpaused: &pb.Unpaused{}}}))
	want(s, "q", 3)
	mustCommit(t, s, appendTx("E_o", 1, "", lockedEv("R2", 40, 500), finishedEv(41, `{"ok":1}`)))
	want(s, "other", 0)
	// Created and locked in one transaction (eager dispatch): never pending.
	mustCommit(t, s, appendTx("E_e", 0, "", createdEv("testing:a/b.c", "q", 1, 1), lockedEv("R3", 2, 500)))
	want(s, "q", 3)
	want(s, "", 3)

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, events.Options{NoSync: true})
	want(s, "q", 3)
	want(s, "other", 0)
	want(s, "", 3)
	if left := s.PendingStats("q").Left; left != 0 {
		t.Errorf("left %d after reopening, want 0 (counted since the store opened)", left)
	}
}
