package events_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// TestBeforeCommitRefuses: a group that Options.BeforeCommit refuses is not written, the
// store fails with the refusal as its cause and accepts no later commit, Close closes
// Pebble (the directory can be opened again at once, in the same process), and the
// reopened store holds exactly the commits made before the refusal. This is how
// `obelisk test crash-sim` crashes an engine at a commit boundary.
func TestBeforeCommitRefuses(t *testing.T) {
	ctx := context.Background()
	fs := vfs.NewMem()
	crash := errors.New("crash injected")
	calls := 0
	var seen [][]string
	s, err := events.Open("store", events.Options{FS: fs, Logger: quiet(), BeforeCommit: func(states []*pb.ExecutionState) error {
		calls++
		var ids []string
		for _, st := range states {
			ids = append(ids, st.ExecutionId)
		}
		seen = append(seen, ids)
		if calls > 2 {
			return crash
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	const id = "E_01J0000000000000000000000A"
	for i := range 2 {
		if _, err := s.Commit(ctx, stepTx(id, i, 1)); err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
	}
	if _, err := s.Commit(ctx, stepTx(id, 2, 1)); !errors.Is(err, events.ErrFailed) || !errors.Is(err, crash) {
		t.Fatalf("refused commit: %v, want ErrFailed caused by the refusal", err)
	}
	if _, err := s.Commit(ctx, stepTx(id, 2, 1)); !errors.Is(err, events.ErrFailed) {
		t.Fatalf("commit after the refusal: %v, want ErrFailed", err)
	}
	if calls != 3 {
		t.Errorf("BeforeCommit called %d times, want 3 (the later commit never reaches it)", calls)
	}
	for i, ids := range seen {
		if len(ids) != 1 || ids[0] != id {
			t.Errorf("call %d saw states of %v, want [%s]", i, ids, id)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	r, err := events.Open("store", events.Options{FS: fs, Logger: quiet()})
	if err != nil {
		t.Fatalf("reopen after the refusal: %v", err)
	}
	defer r.Close()
	evs, err := r.Events(ctx, id, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 {
		t.Fatalf("%d events after reopening, want the 2 committed before the refusal", len(evs))
	}
	if _, err := r.Commit(ctx, stepTx(id, 2, 1)); err != nil {
		t.Fatalf("the refused commit, again on the reopened store: %v", err)
	}
}

// TestBeforeCommitSplitsGroup: transactions committed at once, so grouped by the writer,
// are refused from the first one BeforeCommit refuses: exactly those it accepted are
// acknowledged and found after reopening.
func TestBeforeCommitSplitsGroup(t *testing.T) {
	ctx := context.Background()
	fs := vfs.NewMem()
	const accept, total = 5, 40
	var mu sync.Mutex
	calls := 0
	s, err := events.Open("store", events.Options{FS: fs, Logger: quiet(), BeforeCommit: func([]*pb.ExecutionState) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls > accept {
			return errors.New("crash injected")
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	acked := make(chan string, total)
	for i := range total {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("E_01J00000000000000000000%03d", i)
			if _, err := s.Commit(ctx, stepTx(id, 0, 1)); err == nil {
				acked <- id
			} else if !errors.Is(err, events.ErrFailed) {
				t.Errorf("commit %s: %v, want ErrFailed", id, err)
			}
		}()
	}
	wg.Wait()
	close(acked)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := events.Open("store", events.Options{FS: fs, Logger: quiet()})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer r.Close()
	n := 0
	for id := range acked {
		n++
		if _, err := r.State(ctx, id); err != nil {
			t.Errorf("acknowledged %s: %v after reopening", id, err)
		}
	}
	if n != accept {
		t.Errorf("%d commits acknowledged, want %d", n, accept)
	}
	stored := 0
	if err := r.AllStates(ctx, func(*pb.ExecutionState) error { stored++; return nil }); err != nil {
		t.Fatal(err)
	}
	if stored != accept {
		t.Errorf("%d executions stored, want the %d accepted", stored, accept)
	}
}
