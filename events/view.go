package events

import (
	"context"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// View is a consistent, read-only view of the whole store at one moment (a Pebble
// snapshot): what a verification of a live store reads, so that the states, the logs
// and the links it compares were committed together, whatever the writer does
// meanwhile. Trees whose deletion had begun are hidden, as from the store's reads.
// Close it when done: it pins what it sees.
type View struct {
	snap     *pebble.Snapshot
	deleting map[string]bool
	// linkedOnly: the store has linked every item since it was created (chainedKey),
	// so an unlinked item is a broken link, not an old one.
	linkedOnly bool
}

// chainedKey marks a store created with hash chains: every item in it is linked.
var chainedKey = key(tagMeta, []byte("chained"))

// initChained marks a new store as linked from the start (chainedKey). A store that
// already holds executions is not marked: they may predate the chains.
func (s *PebbleStore) initChained() error {
	if s.global.last.Load() != 0 {
		return nil
	}
	prefix := []byte{tagState, 0}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return fmt.Errorf("mark the store as chained: %w", err)
	}
	found := it.First()
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return fmt.Errorf("mark the store as chained: %w", err)
	}
	if found {
		return nil
	}
	if err := s.db.Set(chainedKey, nil, pebble.Sync); err != nil {
		return s.fail(fmt.Errorf("mark the store as chained: %w", err))
	}
	return nil
}

// View opens a consistent view of the store as it is now.
func (s *PebbleStore) View() (*View, error) {
	if err := s.Err(); err != nil {
		return nil, err
	}
	v := &View{snap: s.db.NewSnapshot(), deleting: map[string]bool{}}
	prefix := []byte{tagDeleting, 0}
	it, err := v.snap.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		v.Close()
		return nil, fmt.Errorf("open a view of the store: %w", err)
	}
	for it.First(); it.Valid(); it.Next() {
		v.deleting[string(it.Key()[len(prefix):])] = true
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		v.Close()
		return nil, fmt.Errorf("open a view of the store: read deletion marks: %w", err)
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
	return v, nil
}

// Close releases the view.
func (v *View) Close() error { return v.snap.Close() }

func (v *View) hidden(id string) bool {
	return len(v.deleting) > 0 && v.deleting[treeRoot(id)]
}

// AllStates calls fn for every execution of the view, in execution ID order.
func (v *View) AllStates(ctx context.Context, fn func(*pb.ExecutionState) error) error {
	return scanStates(ctx, v.snap, v.hidden, fn)
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
	return checkChains(v.snap, st, v.linkedOnly)
}

// Viewer is a store that can open a View of itself (PebbleStore can).
type Viewer interface {
	View() (*View, error)
}

var _ Viewer = (*PebbleStore)(nil)
