package events

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/cockroachdb/pebble/v2"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// The read-model indexes (key layout in keys.go) and the scans that drive scheduling.
//
// The state key of an execution (its folded ExecutionState) and its index entries are
// written in the same batch as the events that changed it, so after a crash they never
// disagree with the streams. Each index holds exactly the executions in one condition:
// p (pending and due, per queue) while Runnable, t (lock expiry) while locked, u
// (deadline) while DeadlineOpen, l (live)
// until finished; c (created), k (children) and b (forks) are written once and never move; f
// (finished, top-level only) is written when it finishes, for retention. The
// time-ordered ones (p, t, w) are scanned from their floors (floor.go).

// writeIndexes moves an execution's index entries from old to st (old nil: new execution)
// and appends to ds what the move of its pending entry changes in the pending counts
// (pending.go): the counts are derived from the entry written, so they cannot disagree
// with the index. A pending entry's value is the execution's function, so that an
// executor can pass over the functions it does not serve without reading their states
// (DuePending).
func writeIndexes(b *pebble.Batch, old, st *pb.ExecutionState, ds []pendingDelta) []pendingDelta {
	was, is := Runnable(old), Runnable(st)
	// The entry's key holds the queue and the due time; the counts change only when the
	// entry comes, goes or changes queue.
	requeued := was && is && old.Queue != st.Queue
	rekeyed := requeued || was && is && old.PendingAt != st.PendingAt
	if was && (!is || rekeyed) {
		_ = b.Delete(pendingKey(old.Queue, old.PendingAt, old.ExecutionId), nil)
	}
	if is && (!was || rekeyed) {
		_ = b.Set(pendingKey(st.Queue, st.PendingAt, st.ExecutionId), []byte(st.Ffqn), nil)
	}
	if was && (!is || requeued) {
		// Drained: left to run or finish, not paused or moved (PendingStats.Left).
		drained := st.Status == pb.Status_STATUS_LOCKED || st.Status == pb.Status_STATUS_FINISHED
		ds = append(ds, pendingDelta{old.Queue, -1, drained})
	}
	if is && (!was || requeued) {
		ds = append(ds, pendingDelta{st.Queue, +1, false})
	}
	locked := func(s *pb.ExecutionState) bool { return s != nil && s.Status == pb.Status_STATUS_LOCKED }
	if wasLocked, isLocked := locked(old), locked(st); wasLocked != isLocked || isLocked && old.LockExpiresAt != st.LockExpiresAt {
		if wasLocked {
			_ = b.Delete(timerKey(old.LockExpiresAt, old.ExecutionId), nil)
		}
		if isLocked {
			_ = b.Set(timerKey(st.LockExpiresAt, st.ExecutionId), nil, nil)
		}
	}
	// A deadline never changes: its entry only comes and goes with DeadlineOpen, so a
	// commit that flips nothing builds no key.
	if was, is := DeadlineOpen(old), DeadlineOpen(st); was != is {
		if is {
			_ = b.Set(deadlineKey(st.Deadline, st.ExecutionId), nil, nil)
		} else {
			_ = b.Delete(deadlineKey(old.Deadline, old.ExecutionId), nil)
		}
	}
	if (old == nil || old.Status != pb.Status_STATUS_FINISHED) && st.Status == pb.Status_STATUS_FINISHED {
		_ = b.Delete(liveKey(st.ExecutionId), nil)
		if IsTopLevel(st.ExecutionId) {
			_ = b.Set(finishedKey(st.ComponentId, st.FinishedAt, st.ExecutionId), nil, nil)
		}
	}
	if old == nil {
		if st.Status != pb.Status_STATUS_FINISHED {
			_ = b.Set(liveKey(st.ExecutionId), nil, nil)
		}
		_ = b.Set(createdKey(st.CreatedAt, st.ExecutionId), nil, nil)
		if st.ParentId != "" {
			_ = b.Set(childKey(st.ParentId, st.ExecutionId), nil, nil)
		}
		if st.ForkedFrom != "" {
			_ = b.Set(forkKey(st.ForkedFrom, st.ExecutionId), nil, nil)
		}
	}
	return ds
}

// Index names for scanFloors.
const timerIndex = "t"

const delayIndex = "w"

const cacheIndex = "H" // the result cache's expiry keys (cache.go)

const deadlineIndex = "u"

// DeadlineOpen reports whether st has a deadline still to enforce: it has one, has not
// finished, and no cancellation was requested (the canceller finishes it then, so the
// deadline has nothing left to do and must not fire again).
func DeadlineOpen(st *pb.ExecutionState) bool {
	return st != nil && st.Deadline != 0 && st.Status != pb.Status_STATUS_FINISHED && !st.CancelRequested
}

func pendingIndex(queue string) string { return "p/" + queue }

// Pending is an execution that is pending and due in a queue, with its function.
type Pending struct {
	ID, FFQN string
}

// DuePending returns up to limit executions of a queue that are pending and due at now,
// earliest first, and the due time of the first one not yet due (zero if none). serves,
// if not nil, says which functions the caller runs: executions of the others are passed
// over (they stay pending and do not count towards limit), so that they cannot hold up
// the rest of the queue.
func (s *PebbleStore) DuePending(ctx context.Context, queue string, now time.Time, limit int, serves func(ffqn string) bool) (due []Pending, next time.Time, err error) {
	prefix := append(key(tagPending, []byte(queue)), 0)
	err = s.scanTimeIndex(pendingIndex(queue), prefix, now, func(id string, at time.Time, value []byte) (bool, error) {
		if len(due) >= limit {
			return false, nil
		}
		p := Pending{ID: id, FFQN: string(value)}
		if p.FFQN == "" { // written before entries carried their function
			st, err := s.State(ctx, id)
			if err != nil {
				return false, err
			}
			p.FFQN = st.Ffqn
		}
		if serves == nil || serves(p.FFQN) {
			due = append(due, p)
		}
		return true, nil
	}, &next)
	return due, next, err
}

// ExpiredLocks returns up to limit locked executions whose lock expired at or before now,
// and the expiry of the first lock that has not (zero if none).
func (s *PebbleStore) ExpiredLocks(ctx context.Context, now time.Time, limit int) (ids []string, next time.Time, err error) {
	err = s.scanTimeIndex(timerIndex, []byte{tagTimer, 0}, now, func(id string, _ time.Time, _ []byte) (bool, error) {
		if len(ids) >= limit {
			return false, nil
		}
		ids = append(ids, id)
		return true, nil
	}, &next)
	return ids, next, err
}

// Due is a timer that is due: a delay's ID and when it expired.
type Due struct {
	ID string
	At time.Time
}

// ExpiredDelays returns up to limit delays that expired at or before now and have not
// been answered, and the expiry of the first one that has not (zero if none).
func (s *PebbleStore) ExpiredDelays(ctx context.Context, now time.Time, limit int) ([]Due, time.Time, error) {
	return s.expired(delayIndex, []byte{tagDelay, 0}, now, limit)
}

// ExpiredDeadlines returns up to limit executions whose deadline passed at or before now
// and that are still open (DeadlineOpen), and the first deadline that has not passed
// (zero if none).
func (s *PebbleStore) ExpiredDeadlines(ctx context.Context, now time.Time, limit int) ([]Due, time.Time, error) {
	return s.expired(deadlineIndex, []byte{tagDeadline, 0}, now, limit)
}

// expired returns up to limit entries of a time index due at now, and the time of the
// first one not due (zero if none).
func (s *PebbleStore) expired(index string, prefix []byte, now time.Time, limit int) ([]Due, time.Time, error) {
	var due []Due
	var next time.Time
	err := s.scanTimeIndex(index, prefix, now, func(id string, at time.Time, _ []byte) (bool, error) {
		if len(due) >= limit {
			return false, nil
		}
		due = append(due, Due{ID: id, At: at})
		return true, nil
	}, &next)
	return due, next, err
}

// DelayExpiry returns when a delay expires, and whether it is still waiting (requested,
// not answered).
func (s *PebbleStore) DelayExpiry(ctx context.Context, id string) (time.Time, bool, error) {
	v, closer, err := s.db.Get(delayAtKey(id))
	if errors.Is(err, pebble.ErrNotFound) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("read delay %s: %w", id, err)
	}
	defer closer.Close()
	return time.Unix(0, int64(binary.BigEndian.Uint64(v))), true, nil
}

// scanTimeIndex scans an index whose keys are prefix<time:8>\0<id>, from its floor,
// calling visit with each entry due at now, in time order, until visit returns false;
// next is set to the time of the first entry not due (left zero if none was reached).
// The id is all of the key after its time (an execution ID, a delay ID, the cache's h
// key).
func (s *PebbleStore) scanTimeIndex(index string, prefix []byte, now time.Time, visit func(id string, at time.Time, value []byte) (bool, error), next *time.Time) (err error) {
	if err := s.Err(); err != nil {
		return err
	}
	from := s.floors.startScan(index)
	first := int64(math.MaxInt64)
	defer func() {
		if err == nil {
			s.floors.endScan(index, first)
		}
	}()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: append(append([]byte(nil), prefix...), u64(max(from, 0))...), UpperBound: prefixEnd(prefix)})
	if err != nil {
		return fmt.Errorf("scan index %s: %w", index, err)
	}
	defer it.Close()
	nowNanos := now.UnixNano()
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		at := int64(binary.BigEndian.Uint64(k[len(prefix) : len(prefix)+8]))
		first = min(first, at)
		if at > nowNanos {
			*next = time.Unix(0, at)
			return it.Error()
		}
		more, err := visit(string(k[len(prefix)+9:]), time.Unix(0, at), it.Value())
		if err != nil {
			return fmt.Errorf("scan index %s: %w", index, err)
		}
		if !more {
			break
		}
	}
	return it.Error()
}
