package events

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// The global event log numbers every appended event, of every stream, in commit order:
// positions 1, 2, 3, ... without gaps, for subscribers that follow everything (WatchEvents)
// and resume from the last position they saw. Retention (retention.go) deletes the
// positions of the trees it deletes: readers skip them and say how many they skipped;
// a position is never given twice (the last one given is kept in m\0global-last when
// its g key goes).
//
// The writer gives each event of a group the next position, in batch order, while it
// builds the group's batch, and writes g\0<position> -> <version><id> in that same batch:
// an event and its position are stored together or not at all, and a tx that fails in a
// group gets no positions (its events are not in the batch). The counter lives in memory
// (initialised at Open from the last g key) and advances only when the batch commits.
//
// Readers see positions up to the last one published: the writer publishes a group's
// positions after its batch has committed (synced, unless NoSync), so a subscriber never
// sees an event that a crash could take back. Publishing closes a broadcast channel that
// WaitPosition waits on; it costs the writer nothing when nobody waits.
//
// Responses (the per-execution response logs) are not events and have no positions.
// Events stored before the log existed (a store written by an older version) have none
// either: the log starts with the first event appended since.

// PositionedEvent is an event with its place in the global log.
type PositionedEvent struct {
	Position    uint64
	ExecutionID string
	Version     uint32
	Event       *pb.Event
	// Skipped is how many positions just before this one were deleted by retention
	// (since the previous event returned, or since the position asked for).
	Skipped uint64
}

// globalLog is the store's view of the global log.
type globalLog struct {
	last atomic.Uint64 // last published position; only the writer stores it

	mu      sync.Mutex
	changed chan struct{} // closed (and replaced) when last advances, if armed
	armed   bool          // someone took changed: wake them
}

// initGlobal reads the last position at Open.
func (s *PebbleStore) initGlobal() error {
	s.global.changed = make(chan struct{})
	prefix := []byte{tagGlobal, 0}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return fmt.Errorf("read the global log: %w", err)
	}
	defer it.Close()
	if it.Last() {
		k := it.Key()
		if len(k) != len(prefix)+8 {
			return fmt.Errorf("read the global log: malformed key %q", k)
		}
		s.global.last.Store(binary.BigEndian.Uint64(k[len(prefix):]))
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("read the global log: %w", err)
	}
	// Retention may have deleted the last g keys: the position they had stays taken.
	v, closer, err := s.db.Get(globalLastKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the global log's last position: %w", err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return fmt.Errorf("read the global log's last position: malformed value %x", v)
	}
	s.global.last.Store(max(s.global.last.Load(), binary.BigEndian.Uint64(v)))
	return nil
}

// indexEvents gives the events of tx the positions after last, in batch order, writing
// their g keys to b, and returns the new last position. Called by the writer for each tx
// it adds to the batch.
func indexEvents(b *pebble.Batch, tx *Tx, last uint64) uint64 {
	for _, a := range tx.Appends {
		for i := range a.Events {
			last++
			v := make([]byte, 4, 4+len(a.ExecutionID))
			binary.BigEndian.PutUint32(v, a.ExpectedVersion+uint32(i))
			_ = b.Set(globalKey(last), append(v, a.ExecutionID...), nil)
			// The way back from the event to its position, for retention to delete it.
			_ = b.Set(positionKey(a.ExecutionID, a.ExpectedVersion+uint32(i)), binary.BigEndian.AppendUint64(nil, last), nil)
		}
	}
	return last
}

// publishPositions makes the positions up to last visible, after their batch committed,
// and wakes WaitPosition. Without waiters it costs an atomic store and a lock.
func (s *PebbleStore) publishPositions(last uint64) {
	if last == s.global.last.Load() {
		return
	}
	s.global.last.Store(last)
	s.global.mu.Lock()
	if s.global.armed {
		close(s.global.changed)
		s.global.changed, s.global.armed = make(chan struct{}), false
	}
	s.global.mu.Unlock()
}

// LastPosition returns the position of the last committed event (0 if none).
func (s *PebbleStore) LastPosition() uint64 { return s.global.last.Load() }

// WaitPosition blocks until an event after position after has been committed, and
// returns the last position; or until ctx ends, the store closes (ErrClosed) or it
// fails (its FailedError).
func (s *PebbleStore) WaitPosition(ctx context.Context, after uint64) (uint64, error) {
	for {
		s.global.mu.Lock()
		ch := s.global.changed
		s.global.armed = true
		s.global.mu.Unlock()
		if last := s.global.last.Load(); last > after {
			return last, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-s.done:
			return 0, ErrClosed
		case <-s.failed:
			return 0, s.Err()
		}
	}
}

// EventsFrom returns the events of every stream from global position from (the first
// event is 1) in position order, at most limit of them (0 = all committed), and the last
// position it looked at (through): a caller continues from through+1 even when every
// position it looked at had been deleted by retention. A deleted position is skipped and
// counted in the Skipped of the next event returned.
func (s *PebbleStore) EventsFrom(ctx context.Context, from uint64, limit int) (_ []PositionedEvent, through uint64, _ error) {
	from = max(from, 1)
	last := s.global.last.Load()
	if from > last {
		return nil, from - 1, nil
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: globalKey(from), UpperBound: globalKey(last + 1)})
	if err != nil {
		return nil, 0, fmt.Errorf("read the global log from %d: %w", from, err)
	}
	defer it.Close()
	prefix := len(globalKey(0)) - 8
	var out []PositionedEvent
	next := from // the first position not accounted for
	for it.First(); it.Valid() && (limit <= 0 || len(out) < limit); it.Next() {
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		k, v := it.Key(), it.Value()
		if len(k) != prefix+8 || len(v) < 4 {
			return nil, 0, fmt.Errorf("read the global log: malformed entry %q", k)
		}
		pe := PositionedEvent{Position: binary.BigEndian.Uint64(k[prefix:]), Version: binary.BigEndian.Uint32(v), ExecutionID: string(v[4:])}
		if s.hidden(pe.ExecutionID) {
			continue // its tree is being deleted: counted as skipped with the rest
		}
		b, closer, err := s.db.Get(eventKey(pe.ExecutionID, pe.Version))
		if errors.Is(err, pebble.ErrNotFound) {
			continue // retention deleted the tree since the iterator opened
		}
		if err != nil {
			return nil, 0, fmt.Errorf("event %s v%d of position %d: %w", pe.ExecutionID, pe.Version, pe.Position, err)
		}
		pe.Event = &pb.Event{}
		err = unmarshalStored(b, pe.Event)
		closer.Close()
		if err != nil {
			return nil, 0, fmt.Errorf("decode event %s v%d: %w", pe.ExecutionID, pe.Version, err)
		}
		pe.Skipped = pe.Position - next
		next = pe.Position + 1
		out = append(out, pe)
	}
	if err := it.Error(); err != nil {
		return nil, 0, fmt.Errorf("read the global log from %d: %w", from, err)
	}
	if limit > 0 && len(out) == limit {
		return out, next - 1, nil
	}
	return out, last, nil
}
