package events

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// The store's directory lock, and what Options.ReadOnly changes: a read-only store is
// for inspecting the store of a stopped server (`obelisk server verify`), so it must
// leave the directory exactly as it found it, and it shares the lock with the server so
// that it never reads a store that is being written.

// lockDir takes the lock of the store in dir, for Pebble to open it with. Pebble would
// take it itself, but then a lock held elsewhere would be an error like any other:
// taken here, it is told apart (ErrLocked) and the caller can say what to do about it.
func lockDir(fsys vfs.FS, dir string) (*pebble.Lock, error) {
	lock, err := pebble.LockDirectory(dir, fsys)
	if err == nil {
		return lock, nil
	}
	// vfs.FS.Lock fails with a *PathError when it cannot create the lock file; any other
	// failure (EAGAIN or EACCES from fcntl, or Pebble's own "held by current process")
	// means that the file is locked.
	var pe *os.PathError
	if errors.As(err, &pe) {
		return nil, fmt.Errorf("lock: %w", err)
	}
	return nil, fmt.Errorf("%w: %w", ErrLocked, err)
}

// checkExists returns an error matching fs.ErrNotExist unless dir holds a Pebble store.
// A read-only open checks it first: Pebble would create the lock file (in any
// directory) before finding out that there is no store to read.
func checkExists(fsys vfs.FS, dir string) error {
	desc, err := pebble.Peek(dir, fsys)
	if err != nil {
		return fmt.Errorf("no event store here: %w", err)
	}
	if !desc.Exists {
		return fmt.Errorf("no event store here (no MANIFEST): %w", fs.ErrNotExist)
	}
	return nil
}

// readOnlyFS is the file system of a read-only store: every operation that would
// change the directory fails, so that what Options.ReadOnly promises does not rest on
// Pebble's read-only mode alone.
type readOnlyFS struct{ vfs.FS }

func refuse(op, name string) error {
	return fmt.Errorf("%s %s: %w", op, name, ErrReadOnly)
}

func (readOnlyFS) Create(name string, _ vfs.DiskWriteCategory) (vfs.File, error) {
	return nil, refuse("create", name)
}

func (readOnlyFS) Link(_, newname string) error { return refuse("link", newname) }

func (readOnlyFS) OpenReadWrite(name string, _ vfs.DiskWriteCategory, _ ...vfs.OpenOption) (vfs.File, error) {
	return nil, refuse("open for writing", name)
}

func (readOnlyFS) Remove(name string) error    { return refuse("remove", name) }
func (readOnlyFS) RemoveAll(name string) error { return refuse("remove", name) }
func (readOnlyFS) Rename(_, newname string) error {
	return refuse("rename to", newname)
}

func (readOnlyFS) ReuseForWrite(_, newname string, _ vfs.DiskWriteCategory) (vfs.File, error) {
	return nil, refuse("reuse for writing", newname)
}

func (readOnlyFS) MkdirAll(dir string, _ os.FileMode) error { return refuse("create directory", dir) }

// ReadOnlyView returns a view of s that reads what s reads and cannot write: every
// write (Commit, DeleteTrees, CompactDeleted) fails with ErrReadOnly, and Close leaves
// s open. A shadow replay (actors/replay.go) runs against it, so that no path of the
// run it reuses can change the store, whatever it tries.
func ReadOnlyView(s Store) Store { return readOnlyView{s} }

type readOnlyView struct{ Store }

func (readOnlyView) Commit(context.Context, *Tx) (map[string]*pb.ExecutionState, error) {
	return nil, fmt.Errorf("commit: %w", ErrReadOnly)
}

func (readOnlyView) DeleteTrees(context.Context, []string) (Deleted, error) {
	return Deleted{}, fmt.Errorf("delete trees: %w", ErrReadOnly)
}

func (readOnlyView) SweepCache(context.Context, time.Time, int) (int, error) {
	return 0, fmt.Errorf("sweep the result cache: %w", ErrReadOnly)
}

func (readOnlyView) CompactDeleted(context.Context) error {
	return fmt.Errorf("compact: %w", ErrReadOnly)
}

// Close does nothing: the view does not own the store it reads.
func (readOnlyView) Close() error { return nil }
