package events

import (
	"context"
	"time"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// Store is what the engine needs of an event store. Everything above package events
// depends on this interface only, so that the one-node PebbleStore and a cluster's shared
// store (KurrentDB) are interchangeable. Implementations must give Commit the semantics
// documented on PebbleStore.Commit: all of a Tx or nothing, durable when it returns,
// expected versions and run IDs checked, duplicate or late responses dropped, and read
// models that never disagree with the streams.
type Store interface {
	// Commit applies tx durably and returns the new state of every execution it touched.
	Commit(ctx context.Context, tx *Tx) (map[string]*pb.ExecutionState, error)
	// State returns the current state of an execution (ErrNotFound wrapped if none).
	State(ctx context.Context, id string) (*pb.ExecutionState, error)
	// Events returns a stream's events from version from, at most limit (0 = all).
	Events(ctx context.Context, id string, from uint32, limit int) ([]*pb.Event, error)
	// Responses returns an execution's response log from cursor from.
	Responses(ctx context.Context, id string, from uint32) ([]*pb.Response, error)
	// DuePending returns executions of a queue due at now, of the functions serves
	// accepts (nil: all), and the next due time.
	DuePending(ctx context.Context, queue string, now time.Time, limit int, serves func(ffqn string) bool) ([]Pending, time.Time, error)
	// PendingStats returns how many executions queue's pending index holds and how
	// many left it since the store opened ("" sums every queue), from memory (pending.go).
	PendingStats(queue string) PendingStats
	// ExpiredLocks returns locked executions whose lock expired at now, and the next expiry.
	ExpiredLocks(ctx context.Context, now time.Time, limit int) ([]string, time.Time, error)
	// ExpiredDelays returns delays that expired at now and were not answered, and the
	// next expiry.
	ExpiredDelays(ctx context.Context, now time.Time, limit int) ([]Due, time.Time, error)
	// ExpiredDeadlines returns executions whose deadline passed at now and that are still
	// open (DeadlineOpen), and the next deadline.
	ExpiredDeadlines(ctx context.Context, now time.Time, limit int) ([]Due, time.Time, error)
	// DelayExpiry returns a delay's expiry and whether it still waits for its answer.
	DelayExpiry(ctx context.Context, id string) (time.Time, bool, error)
	// Children returns the IDs of an execution's children.
	Children(ctx context.Context, parent string) ([]string, error)
	// Forks returns the executions forked from id, oldest first.
	Forks(ctx context.Context, id string) ([]string, error)
	// List returns executions matching f, newest first.
	List(ctx context.Context, f ListFilter) (ListPage, error)
	// LiveStates calls fn for every execution that has not finished.
	LiveStates(ctx context.Context, fn func(*pb.ExecutionState) error) error
	// AllStates calls fn for every execution.
	AllStates(ctx context.Context, fn func(*pb.ExecutionState) error) error
	// EventsFrom returns the events of every stream in commit order from global position
	// from (the first event is 1), at most limit (0 = all committed), and the last
	// position it looked at. Positions never change and are never reused; those of
	// deleted trees are skipped (PositionedEvent.Skipped counts them).
	EventsFrom(ctx context.Context, from uint64, limit int) (_ []PositionedEvent, through uint64, _ error)
	// LastPosition returns the global position of the last committed event (0 if none).
	LastPosition() uint64
	// WaitPosition blocks until an event after position after is committed and returns
	// the last position, or until ctx ends or the store closes.
	WaitPosition(ctx context.Context, after uint64) (uint64, error)
	// FinishedTrees calls fn for the top-level executions whose whole tree finished, by
	// component, those finished before cutoff(component) oldest first (retention.go).
	FinishedTrees(ctx context.Context, cutoff func(componentID string) time.Time, fn func(FinishedTree) (bool, error)) error
	// DeleteTrees deletes finished top-level execution trees (retention.go).
	DeleteTrees(ctx context.Context, roots []string) (Deleted, error)
	// CompactDeleted compacts what deletions emptied, so that its space comes back.
	CompactDeleted(ctx context.Context) error
	// Logs returns an execution's log lines from sequence number from, at most limit
	// (0 = all), and its counts (logs.go).
	Logs(ctx context.Context, id string, from uint64, limit int) (LogPage, error)
	// LogStats returns the counts of an execution's log.
	LogStats(ctx context.Context, id string) (LogStats, error)
	// Snapshots returns an execution's workflow memory snapshots, newest first, and
	// SnapshotBlob the blob of one, checked against its digest (snapshots.go).
	Snapshots(ctx context.Context, id string) ([]SnapshotEntry, error)
	SnapshotBlob(ctx context.Context, id string, e SnapshotEntry) ([]byte, error)
	// KVGet returns the value of bucket/key and whether it exists (kv.go).
	KVGet(ctx context.Context, bucket, key string) (string, bool, error)
	// KVList returns up to limit entries of bucket whose keys start with prefix and sort
	// after cursor ("" = from the start), in key order, and the cursor of the next page
	// ("" = end). limit <= 0 means DefaultKVListLimit; it is capped at MaxKVListLimit.
	KVList(ctx context.Context, bucket, prefix, cursor string, limit int) ([]KVEntry, string, error)
	// Schedules returns the records of every periodic schedule, by name (schedules.go).
	Schedules(ctx context.Context) ([]*pb.CronSchedule, error)
	// CacheGet returns the execution whose ok result serves calls of ffqn with params on
	// componentID at now, if any (cache.go).
	CacheGet(ctx context.Context, componentID, ffqn string, params []byte, now time.Time) (string, bool, error)
	// HasCacheEntries reports whether the result cache holds any entry.
	HasCacheEntries() (bool, error)
	// SweepCache deletes up to limit cache entries expired at now; it returns how many.
	SweepCache(ctx context.Context, now time.Time, limit int) (int, error)
	// Failed is closed when the store can no longer be trusted to persist (a failed
	// write or sync); Err then returns why, an error matching ErrFailed.
	Failed() <-chan struct{}
	// Err returns the store's failure, nil while it has not failed.
	Err() error
	// Close releases the store.
	Close() error
}

var _ Store = (*PebbleStore)(nil)
