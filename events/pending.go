package events

import (
	"bytes"
	"fmt"
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// Pending counts: how many executions each queue's pending index holds (Runnable: waiting
// to run, now or at a later due time such as a retry's), kept in memory by the writer as
// it moves index entries, so that admission control (the engine's max_pending) costs no
// scan. They are rebuilt from the index when the store opens, so a crash or SIGKILL
// cannot leave them wrong: the index is written in the same batch as the states.

// PendingStats is a queue's (or every queue's) pending count.
type PendingStats struct {
	// Pending is how many executions are in the pending index now.
	Pending int
	// Left is how many left it since the store opened to run or finish (locked, or
	// finished, e.g. cancelled): its drain, from which a retry delay is estimated. An
	// execution paused or moved to another queue is not drained: it did not make room
	// by being served, and a pause undone or a move back would count twice.
	Left uint64
}

// pendingCounts are the counts of the pending index, by queue and in all.
type pendingCounts struct {
	mu      sync.Mutex
	byQueue map[string]*PendingStats
	total   PendingStats
}

// pendingDelta is what one commit changes in a queue's count (made by writeIndexes).
type pendingDelta struct {
	queue   string
	add     int  // +1 entered, -1 left
	drained bool // left to run or finish (PendingStats.Left)
}

func (c *pendingCounts) apply(ds []pendingDelta) {
	if len(ds) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range ds {
		q := c.byQueue[d.queue]
		if q == nil {
			q = &PendingStats{}
			c.byQueue[d.queue] = q
		}
		q.Pending += d.add
		c.total.Pending += d.add
		if d.drained {
			q.Left++
			c.total.Left++
		}
	}
}

// PendingStats returns the pending count of queue; "" sums every queue. A queue nothing
// was ever pending in has zero counts.
func (s *PebbleStore) PendingStats(queue string) PendingStats {
	s.pending.mu.Lock()
	defer s.pending.mu.Unlock()
	if queue == "" {
		return s.pending.total
	}
	if q := s.pending.byQueue[queue]; q != nil {
		return *q
	}
	return PendingStats{}
}

// initPending counts the pending index by queue (at Open: one pass over the index,
// whose entries are the executions waiting to run, not the whole store).
func (s *PebbleStore) initPending() error {
	s.pending.byQueue = map[string]*PendingStats{}
	prefix := []byte{tagPending, 0}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return fmt.Errorf("count pending executions: %w", err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		rest := it.Key()[len(prefix):]
		name := string(rest[:bytes.IndexByte(rest, 0)]) // queue names hold no 0 byte
		q := s.pending.byQueue[name]
		if q == nil {
			q = &PendingStats{}
			s.pending.byQueue[name] = q
		}
		q.Pending++
		s.pending.total.Pending++
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("count pending executions: %w", err)
	}
	return nil
}
