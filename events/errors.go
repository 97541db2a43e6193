package events

import (
	"errors"
	"fmt"

	"github.com/obelisk-go/obelisk/internal/clip"
)

// ErrNotFound is returned for an execution that does not exist.
var ErrNotFound = errors.New("execution not found")

// ErrInvalidArgument is wrapped by errors caused by what the caller asked for (a
// malformed cursor), not by the store: the API answers them invalid_argument, not
// internal.
var ErrInvalidArgument = errors.New("invalid argument")

// ErrClosed is returned by a store that has been closed.
var ErrClosed = errors.New("store closed")

// ErrLocked is matched by the error of Open for a store that another process (a running
// server) or another PebbleStore of this process has open.
var ErrLocked = errors.New("the event store is locked by another process (a server running on it?)")

// ErrReadOnly is matched by the error of every write to a store opened with
// Options.ReadOnly.
var ErrReadOnly = errors.New("the event store is open read-only")

// ErrFailed is matched (errors.Is) by every error of a store that has failed to write:
// see FailedError.
var ErrFailed = errors.New("event store failed")

// FailedError is the error of a store whose write or sync failed. Pebble's state after
// a failed write or fsync is unknown (what the disk kept cannot be told), so the store
// stops there: the commits of the failed group, and every commit and read after, fail
// with this error, and nothing is retried. Reopening the directory (on a healthy disk)
// recovers exactly what was acknowledged.
type FailedError struct {
	Dir string
	Err error
}

func (e *FailedError) Error() string {
	return fmt.Sprintf("event store %s failed, it accepts no more commits or reads: %v", e.Dir, e.Err)
}

// Unwrap makes the error match ErrFailed and the cause.
func (e *FailedError) Unwrap() []error { return []error{ErrFailed, e.Err} }

// readError is a read of the store that failed while a Tx was folded: unlike a refusal,
// it says nothing of the Tx, only of this node's disk, and another node folding the
// same Tx decides otherwise.
type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

func readFailed(err error) error { return &readError{err: err} }

// decidedRefusal tells whether err, the refusal of a Tx by the fold, is the Tx's: the
// same on every node that applied the same log before it, so that a logged Tx's
// position is recorded with it. A failed read, or the store failed or closed, is this
// node's: recording the position would skip a Tx the other nodes applied.
func decidedRefusal(err error) bool {
	var re *readError
	return !errors.As(err, &re) && !errors.Is(err, ErrFailed) && !errors.Is(err, ErrClosed)
}

// ErrConflict is matched (errors.Is) by ConflictError and KVConflictError: a Tx refused
// because something it expected (a stream's version, a run's lock, a key's value) is no
// longer so. Nothing of the Tx was written; the caller may read again and retry.
var ErrConflict = errors.New("conflict")

// ConflictError is returned when an append's expected version is not the stream's next
// version (Actual), or when the run that appends no longer holds the lock.
type ConflictError struct {
	ExecutionID string
	Expected    uint32
	Actual      uint32
	Reason      string
}

func (e *ConflictError) Error() string {
	if e.Reason != "" {
		return fmt.Sprintf("append %s v%d: conflict: %s", e.ExecutionID, e.Expected, e.Reason)
	}
	return fmt.Sprintf("append %s v%d: conflict: stream is at v%d", e.ExecutionID, e.Expected, e.Actual)
}

// Is makes the error match ErrConflict.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// KVConflictError is returned when a KVWrite or KVCheck of a Tx finds its key's value not
// as expected: the whole Tx is refused.
type KVConflictError struct {
	Bucket, Key string
	// ExpectedPresent and Expected are what the Tx expected (absent when
	// ExpectedPresent is false), Present and Actual what the key held.
	ExpectedPresent, Present bool
	Expected, Actual         string
}

func (e *KVConflictError) Error() string {
	return fmt.Sprintf("kv %s/%s: conflict: expected %s, found %s", clip.Quote(e.Bucket), clip.Quote(e.Key),
		kvDescribe(e.ExpectedPresent, e.Expected), kvDescribe(e.Present, e.Actual))
}

// Is makes the error match ErrConflict.
func (e *KVConflictError) Is(target error) bool { return target == ErrConflict }

func kvDescribe(present bool, v string) string {
	if !present {
		return "no value"
	}
	return "value " + clip.Quote(v)
}
