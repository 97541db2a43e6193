package events

import (
	"context"
	"testing"
	"time"
)

// TestDuePendingEntryWithoutFunction: a pending entry written before entries carried
// their function (an empty value) is read as its execution's function, from its state.
func TestDuePendingEntryWithoutFunction(t *testing.T) {
	s := gOpen(t, t.TempDir())
	gCommit(t, s, gAppend("E_old", 0, gCreated(10)))
	k := pendingKey("q", 10, "E_old")
	if v, closer, err := s.db.Get(k); err != nil {
		t.Fatalf("the pending entry: %v", err)
	} else {
		if string(v) != "testing:a/b.c" {
			t.Errorf("pending entry's value %q, want the function", v)
		}
		closer.Close()
	}
	if err := s.db.Set(k, nil, nil); err != nil { // as an older version wrote it
		t.Fatal(err)
	}
	due, _, err := s.DuePending(context.Background(), "q", time.Unix(0, 100), 10, func(ffqn string) bool { return ffqn == "testing:a/b.c" })
	if err != nil {
		t.Fatal(err)
	}
	if len(due) != 1 || due[0] != (Pending{ID: "E_old", FFQN: "testing:a/b.c"}) {
		t.Errorf("due: %v", due)
	}
}
