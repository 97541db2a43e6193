package events

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// View is a read-only view of the store for a verification of a live store: each
// execution is seen as it was at one moment (a Pebble snapshot), so that its state, its
// logs and their links were committed together, whatever the writer does meanwhile.
// AllStates moves the view to a new snapshot every viewChunk executions, between two
// executions: a snapshot pins the memtables and tables it sees, and one held for a
// verification of a big store (minutes) would keep every flushed memtable and compacted
// table of those minutes on memory and disk. So the executions of different chunks are
// seen at different moments: one created after the verification began may or may not be
// seen. Trees whose deletion had begun are hidden, as from the store's reads. Close it
// when done.
type View struct {
	db       *pebble.DB
	snap     *pebble.Snapshot
	deleting map[string]bool
	// chunk is the number of executions AllStates reads from one snapshot (viewChunk;
	// tests make it small).
	chunk int
	// linkedOnly: the store has linked every item since it was created (chainedKey),
	// so an unlinked item is a broken link, not an old one.
	linkedOnly bool
	// since, when hasSince, is the last global position given before the store was
	// first opened with chains (chainedSinceKey): an execution created after it is
	// linked from its first event, as in a store linked from its start.
	since    uint64
	hasSince bool
}

// viewChunk is how many executions a View's AllStates reads from one snapshot: a few
// seconds of verification at most (replays included), and few enough new snapshots
// that taking them costs nothing next to the checks.
const viewChunk = 1000

// chainedKey marks a store created with hash chains: every item in it is linked.
var chainedKey = key(tagMeta, []byte("chained"))

// chainedSinceKey marks a store written before hash chains existed, upgraded since:
// -> <position:8>, the last global position given before the first Open with chains.
// Every execution whose Created event has a later position was written by the chaining
// writer, so an unlinked item in it is a break, not an old item (View.CheckChains).
// Without the mark, links stripped from a new execution would pass as "unchained".
var chainedSinceKey = key(tagMeta, []byte("chained-since"))

// initChained marks the store, once: a new one as linked from the start (chainedKey),
// one that already holds executions, which may predate the chains, as linked since the
// last position given (chainedSinceKey).
func (s *PebbleStore) initChained() error {
	for _, k := range [][]byte{chainedKey, chainedSinceKey} {
		_, closer, err := s.db.Get(k)
		if err == nil {
			return closer.Close()
		}
		if !errors.Is(err, pebble.ErrNotFound) {
			return fmt.Errorf("read the store's chain mark: %w", err)
		}
	}
	mark, value := chainedKey, []byte(nil)
	if last := s.global.last.Load(); last != 0 {
		mark, value = chainedSinceKey, binary.BigEndian.AppendUint64(nil, last)
	} else {
		prefix := []byte{tagState, 0}
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
		if err != nil {
			return fmt.Errorf("mark the store as chained: %w", err)
		}
		found := it.First()
		if err := errors.Join(it.Error(), it.Close()); err != nil {
			return fmt.Errorf("mark the store as chained: %w", err)
		}
		if found { // executions from before the global log: none has a position
			mark, value = chainedSinceKey, binary.BigEndian.AppendUint64(nil, 0)
		}
	}
	if err := s.db.Set(mark, value, pebble.Sync); err != nil {
		return s.fail(fmt.Errorf("mark the store as chained: %w", err))
	}
	return nil
}

// View opens a view of the store as it is now.
func (s *PebbleStore) View() (*View, error) {
	if err := s.Err(); err != nil {
		return nil, err
	}
	v := &View{db: s.db, chunk: viewChunk}
	if err := v.refresh(); err != nil {
		return nil, fmt.Errorf("open a view of the store: %w", err)
	}
	_, closer, err := v.snap.Get(chainedKey)
	switch {
	case err == nil:
		v.linkedOnly = true
		closer.Close()
	case !errors.Is(err, pebble.ErrNotFound):
		v.Close()
		return nil, fmt.Errorf("open a view of the store: %w", err)
	}
	val, closer, err := v.snap.Get(chainedSinceKey)
	switch {
	case err == nil:
		if len(val) != 8 {
			closer.Close()
			v.Close()
			return nil, fmt.Errorf("open a view of the store: malformed chain mark %x", val)
		}
		v.since, v.hasSince = binary.BigEndian.Uint64(val), true
		closer.Close()
	case !errors.Is(err, pebble.ErrNotFound):
		v.Close()
		return nil, fmt.Errorf("open a view of the store: %w", err)
	}
	return v, nil
}

// refresh moves the view to a new snapshot of the store, with its deletion marks.
func (v *View) refresh() error {
	snap := v.db.NewSnapshot()
	deleting := map[string]bool{}
	prefix := []byte{tagDeleting, 0}
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		snap.Close()
		return fmt.Errorf("read deletion marks: %w", err)
	}
	for it.First(); it.Valid(); it.Next() {
		deleting[string(it.Key()[len(prefix):])] = true
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		snap.Close()
		return fmt.Errorf("read deletion marks: %w", err)
	}
	if v.snap != nil {
		if err := v.snap.Close(); err != nil {
			snap.Close()
			return err
		}
	}
	v.snap, v.deleting = snap, deleting
	return nil
}

// linkedFromStart reports whether the execution id was created with chains: the store
// was, or the position of its Created event is past the chained-since mark. One
// without a position was created before the global log, long before the chains.
func (v *View) linkedFromStart(id string) (bool, error) {
	if v.linkedOnly || !v.hasSince {
		return v.linkedOnly, nil
	}
	val, closer, err := v.snap.Get(positionKey(id, 0))
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read the position of %s's first event: %w", id, err)
	}
	defer closer.Close()
	return len(val) == 8 && binary.BigEndian.Uint64(val) > v.since, nil
}

// Close releases the view.
func (v *View) Close() error { return v.snap.Close() }

func (v *View) hidden(id string) bool {
	return len(v.deleting) > 0 && v.deleting[treeRoot(id)]
}

// AllStates calls fn for every execution of the view, in execution ID order, moving the
// view to a new snapshot every chunk executions (before the call for the next one: fn
// and what it reads of the view see the snapshot its state was read from).
func (v *View) AllStates(ctx context.Context, fn func(*pb.ExecutionState) error) error {
	from := []byte{tagState, 0}
	for {
		next, err := scanStatesFrom(ctx, v.snap, from, v.chunk, v.hidden, fn)
		if err != nil || next == nil {
			return err
		}
		if err := v.refresh(); err != nil {
			return fmt.Errorf("scan states: move the view on: %w", err)
		}
		from = next
	}
}

// Events returns the events of a stream from version from, at most limit (0 = all).
func (v *View) Events(ctx context.Context, id string, from uint32, limit int) ([]*pb.Event, error) {
	if v.hidden(id) {
		return nil, nil
	}
	return readEvents(v.snap, id, from, limit)
}

// Responses returns the response log of an execution from cursor from.
func (v *View) Responses(ctx context.Context, id string, from uint32) ([]*pb.Response, error) {
	if v.hidden(id) {
		return nil, nil
	}
	return readResponses(v.snap, id, from)
}

// CheckChains checks the hash chains of the events and responses of the execution of
// st, a state of the view (chain.go): every link, in order, and the state's links. A
// broken chain is a *ChainBreakError naming the first broken link; any other error is a
// failure to read. The counts say how many items were checked, and how many were
// stored before chains existed (unchained).
func (v *View) CheckChains(ctx context.Context, st *pb.ExecutionState) (evs, responses ChainCounts, err error) {
	if err := ctx.Err(); err != nil {
		return evs, responses, err
	}
	linkedOnly, err := v.linkedFromStart(st.ExecutionId)
	if err != nil {
		return evs, responses, err
	}
	return checkChains(v.snap, st, linkedOnly)
}

// Viewer is a store that can open a View of itself (PebbleStore can).
type Viewer interface {
	View() (*View, error)
}

var _ Viewer = (*PebbleStore)(nil)
