package events_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// dirContents maps every file under dir to its contents.
func dirContents(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		files[path] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func sameContents(t *testing.T, before, after map[string]string) {
	t.Helper()
	for name, b := range before {
		a, ok := after[name]
		switch {
		case !ok:
			t.Errorf("%s was removed", name)
		case a != b:
			t.Errorf("%s was changed", name)
		}
	}
	for name := range after {
		if _, ok := before[name]; !ok {
			t.Errorf("%s was created", name)
		}
	}
}

// TestOpenReadOnly: a read-only store reads what was committed (also what is only in
// the WAL), refuses writes, and leaves every file of its directory as it was, also for
// a store without the record of its WALs (which a read-write Open writes).
func TestOpenReadOnly(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "store")
	s, err := events.Open(dir, events.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	createWorkflow(t, s, "E_1")
	want := proto.CloneOf(mustState(t, s, "E_1"))
	mustCommit(t, s, appendTx("E_2", 0, "", createdEv("testing:a/b.c", "q", 1, 1), lockedEv("R1", 2, 1000), finishedEv(3, `{"ok":1}`)))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "OBELISK-WALS")); err != nil {
		t.Fatal(err)
	}
	before := dirContents(t, dir)

	ro, err := events.Open(dir, events.Options{Logger: quiet(), ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := mustState(t, ro, "E_1"); !proto.Equal(got, want) {
		t.Errorf("read-only state %v, want %v", got, want)
	}
	n := 0
	if err := ro.AllStates(ctx, func(*pb.ExecutionState) error { n++; return nil }); err != nil || n != 2 {
		t.Errorf("AllStates: %d states, %v", n, err)
	}
	if _, err := ro.Commit(ctx, appendTx("E_3", 0, "", createdEv("testing:a/b.c", "q", 1, 1))); !errors.Is(err, events.ErrReadOnly) {
		t.Errorf("commit to a read-only store: %v", err)
	}
	if _, err := ro.DeleteTrees(ctx, []string{"E_2"}); !errors.Is(err, events.ErrReadOnly) {
		t.Errorf("delete from a read-only store: %v", err)
	}
	if err := ro.ForgeStateForTest(ctx, want); !errors.Is(err, events.ErrReadOnly) {
		t.Errorf("forge in a read-only store: %v", err)
	}
	// The lock is shared with read-write stores, also within one process.
	if _, err := events.Open(dir, events.Options{Logger: quiet()}); !errors.Is(err, events.ErrLocked) {
		t.Errorf("open of a store open read-only: %v, want ErrLocked", err)
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	sameContents(t, before, dirContents(t, dir))

	// Closed, the lock is released.
	s = openStore(t, dir, events.Options{})
	if _, err := events.Open(dir, events.Options{Logger: quiet(), ReadOnly: true}); !errors.Is(err, events.ErrLocked) {
		t.Errorf("read-only open of an open store: %v, want ErrLocked", err)
	}
}

// TestOpenReadOnlyNoStore: a read-only open of a folder without a store fails saying
// so, and creates nothing there.
func TestOpenReadOnlyNoStore(t *testing.T) {
	empty := t.TempDir()
	missing := filepath.Join(empty, "missing")
	for _, dir := range []string{missing, empty} {
		_, err := events.Open(dir, events.Options{Logger: quiet(), ReadOnly: true})
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("read-only open of %s: %v, want fs.ErrNotExist", dir, err)
		}
	}
	if ls, err := os.ReadDir(empty); err != nil || len(ls) != 0 {
		t.Errorf("the folder holds %v after a failed read-only open (%v)", ls, err)
	}
}

// TestForgeStateForTest: a forged state is what reads return (also of a live, cached
// execution), and it is persisted.
func TestForgeStateForTest(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := events.Open(dir, events.Options{NoSync: true, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	createWorkflow(t, s, "E_1")
	forged := proto.CloneOf(mustState(t, s, "E_1"))
	forged.Status = pb.Status_STATUS_FINISHED
	if err := s.ForgeStateForTest(ctx, forged); err != nil {
		t.Fatal(err)
	}
	if got := mustState(t, s, "E_1"); got.Status != pb.Status_STATUS_FINISHED {
		t.Errorf("status after forging: %v", got.Status)
	}
	if err := s.ForgeStateForTest(ctx, &pb.ExecutionState{ExecutionId: "E_9"}); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("forging an unknown execution: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, events.Options{NoSync: true})
	if got := mustState(t, s, "E_1"); got.Status != pb.Status_STATUS_FINISHED {
		t.Errorf("status after a reopen: %v", got.Status)
	}
}

// TestReadOnlyView: the view reads the store's data, every write through it fails with
// ErrReadOnly and changes nothing, and closing it leaves the store open.
func TestReadOnlyView(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	createWorkflow(t, s, "E_1")
	want := proto.CloneOf(mustState(t, s, "E_1"))
	v := events.ReadOnlyView(s)
	if got, err := v.State(ctx, "E_1"); err != nil || !proto.Equal(got, want) {
		t.Errorf("state through the view %v (%v), want %v", got, err, want)
	}
	if _, err := v.Commit(ctx, appendTx("E_2", 0, "", createdEv("testing:a/b.c", "q", 1, 1))); !errors.Is(err, events.ErrReadOnly) {
		t.Errorf("commit through the view: %v, want ErrReadOnly", err)
	}
	if _, err := v.DeleteTrees(ctx, []string{"E_1"}); !errors.Is(err, events.ErrReadOnly) {
		t.Errorf("delete through the view: %v, want ErrReadOnly", err)
	}
	if err := v.CompactDeleted(ctx); !errors.Is(err, events.ErrReadOnly) {
		t.Errorf("compact through the view: %v, want ErrReadOnly", err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.State(ctx, "E_2"); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("E_2 after a refused commit: %v, want not found", err)
	}
	if got := mustState(t, s, "E_1"); !proto.Equal(got, want) {
		t.Errorf("state after the view closed %v, want %v", got, want)
	}
}
