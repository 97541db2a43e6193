package events_test

import (
	"context"
	"errors"
	"testing"

	"github.com/obelisk-go/obelisk/events"
)

func applyLogged(t *testing.T, s *events.PebbleStore, seq uint64, tx *events.Tx) error {
	t.Helper()
	a, err := s.ApplyLogged(context.Background(), seq, tx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.Wait()
	return err
}

// TestApplyLogged: the last applied log entry is recorded with the entry's writes, a
// refused entry is recorded as decided, and an entry at or before the last applied one,
// before or after a reopen, is refused without a trace.
func TestApplyLogged(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, events.Options{NoSync: true})
	if err := applyLogged(t, s, 1, appendTx("E_1", 0, "", createdEv("testing:a/b.c", "q", 1, 1))); err != nil {
		t.Fatal(err)
	}
	var ce *events.ConflictError
	if err := applyLogged(t, s, 2, appendTx("E_1", 0, "", createdEv("testing:a/b.c", "q", 1, 1))); !errors.As(err, &ce) {
		t.Fatalf("a second creation: %v", err)
	}
	if last, err := s.LastApplied(); err != nil || last != 2 {
		t.Fatalf("last applied %d, %v; want 2 (the refused entry was decided)", last, err)
	}
	again := appendTx("E_1", 1, "", lockedEv("R1", 2, 100))
	if err := applyLogged(t, s, 2, again); !errors.Is(err, events.ErrAlreadyApplied) {
		t.Fatalf("entry 2 again: %v", err)
	}
	if st := mustState(t, s, "E_1"); st.NextVersion != 1 {
		t.Fatalf("an entry applied twice: v%d", st.NextVersion)
	}
	if err := applyLogged(t, s, 3, again); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, events.Options{NoSync: true})
	if last, err := s.LastApplied(); err != nil || last != 3 {
		t.Fatalf("after reopen: last applied %d, %v; want 3", last, err)
	}
	if err := applyLogged(t, s, 3, again); !errors.Is(err, events.ErrAlreadyApplied) {
		t.Fatalf("entry 3 after reopen: %v", err)
	}
	if err := s.RecordApplied(context.Background(), 7); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordApplied(context.Background(), 5); err != nil {
		t.Fatal(err)
	}
	if last, _ := s.LastApplied(); last != 7 {
		t.Fatalf("last applied %d after RecordApplied 7 then 5", last)
	}
	if err := applyLogged(t, s, 6, again); !errors.Is(err, events.ErrAlreadyApplied) {
		t.Fatalf("entry 6 after 7 recorded: %v", err)
	}
	if st := mustState(t, s, "E_1"); st.NextVersion != 2 || st.RunId != "R1" {
		t.Fatalf("state %v", st)
	}
}
