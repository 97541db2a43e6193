package events

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/obelisk-go/obelisk/internal/clip"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// Reads of single executions (state, events, responses) and listings (children, List,
// live and all states). Reads see only committed batches (the writer publishes to the
// live-state cache after its commit). Pebble may show a write whose sync failed, so the
// reads of one execution (loadState, Events, Responses) answer nothing once the store
// has failed. A tree being deleted (retention.go) is hidden from every read.

// loadState returns an execution's state: from the cache while it is live, else decoded
// from its s key.
func (s *PebbleStore) loadState(id string) (*pb.ExecutionState, error) {
	// Pebble may show a write whose sync failed: a failed store shows nothing.
	if err := s.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	st, ok := s.cache[id]
	gone := len(s.deleting) > 0 && s.deleting[treeRoot(id)]
	s.mu.RUnlock()
	if gone {
		return nil, ErrNotFound // its tree is being deleted (retention.go)
	}
	if ok {
		return st, nil
	}
	v, closer, err := s.db.Get(stateKey(id))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, readFailed(fmt.Errorf("read state of %s: %w", id, err))
	}
	defer closer.Close()
	st = &pb.ExecutionState{}
	if err := proto.Unmarshal(v, st); err != nil {
		return nil, readFailed(fmt.Errorf("decode state of %s: %w", id, err))
	}
	return st, nil
}

// State returns the current state of an execution. The returned value must not be
// modified.
func (s *PebbleStore) State(ctx context.Context, id string) (*pb.ExecutionState, error) {
	st, err := s.loadState(id)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("state of %s: %w", clip.String(id), ErrNotFound)
	}
	return st, err
}

// Events returns the events of a stream from version from, at most limit (0 = all).
func (s *PebbleStore) Events(ctx context.Context, id string, from uint32, limit int) ([]*pb.Event, error) {
	if err := s.Err(); err != nil {
		return nil, err
	}
	if s.hidden(id) {
		return nil, nil
	}
	return readEvents(s.db, id, from, limit)
}

// readEvents reads a stream's events from version from, at most limit (0 = all), from r
// (the database or a snapshot of it), their links cleared (chain.go).
func readEvents(r pebble.Reader, id string, from uint32, limit int) ([]*pb.Event, error) {
	// The bound ends with the separator: a child's ID extends its parent's, and its
	// stream must not be read as the rest of the parent's.
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: eventKey(id, from), UpperBound: prefixEnd(append(key(tagEvent, []byte(id)), 0))})
	if err != nil {
		return nil, fmt.Errorf("read events of %s: %w", id, err)
	}
	defer it.Close()
	var out []*pb.Event
	for it.First(); it.Valid() && (limit <= 0 || len(out) < limit); it.Next() {
		ev := &pb.Event{}
		if err := unmarshalStored(it.Value(), ev); err != nil {
			return nil, fmt.Errorf("decode event %s v%d: %w", id, from+uint32(len(out)), err)
		}
		out = append(out, ev)
	}
	return out, it.Error()
}

// Responses returns the response log of an execution from cursor from.
func (s *PebbleStore) Responses(ctx context.Context, id string, from uint32) ([]*pb.Response, error) {
	if err := s.Err(); err != nil {
		return nil, err
	}
	if s.hidden(id) {
		return nil, nil
	}
	return readResponses(s.db, id, from)
}

// readResponses reads an execution's response log from cursor from, from r, their links
// cleared (chain.go).
func readResponses(r pebble.Reader, id string, from uint32) ([]*pb.Response, error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: responseKey(id, from), UpperBound: prefixEnd(append(key(tagResponse, []byte(id)), 0))})
	if err != nil {
		return nil, fmt.Errorf("read responses of %s: %w", id, err)
	}
	defer it.Close()
	var out []*pb.Response
	for it.First(); it.Valid(); it.Next() {
		r := &pb.Response{}
		if err := unmarshalStored(it.Value(), r); err != nil {
			return nil, fmt.Errorf("decode response of %s: %w", id, err)
		}
		out = append(out, r)
	}
	return out, it.Error()
}

// Children returns the IDs of an execution's children, in ID order.
func (s *PebbleStore) Children(ctx context.Context, parent string) ([]string, error) {
	if s.hidden(parent) {
		return nil, nil
	}
	prefix := append(key(tagChild, []byte(parent)), 0)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, fmt.Errorf("list children of %s: %w", parent, err)
	}
	defer it.Close()
	var out []string
	for it.First(); it.Valid(); it.Next() {
		out = append(out, string(it.Key()[len(prefix):]))
	}
	return out, it.Error()
}

// Forks returns the IDs of the executions forked from id (Engine.Fork), oldest first.
func (s *PebbleStore) Forks(ctx context.Context, id string) ([]string, error) {
	if s.hidden(id) {
		return nil, nil
	}
	prefix := append(key(tagFork, []byte(id)), 0)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, fmt.Errorf("list forks of %s: %w", id, err)
	}
	defer it.Close()
	var out []string
	for it.First(); it.Valid(); it.Next() {
		out = append(out, string(it.Key()[len(prefix):]))
	}
	return out, it.Error()
}

// ListFilter selects executions for List.
type ListFilter struct {
	FFQNPrefix   string
	Status       pb.Status // STATUS_UNSPECIFIED = any
	TopLevelOnly bool
	Limit        int
	// Before continues a listing: only executions created before this cursor (a value of
	// ListPage.Next).
	Before string
}

// ListPage is one page of List, newest first.
type ListPage struct {
	States []*pb.ExecutionState
	Next   string // cursor of the next page; empty at the end
}

// List returns executions matching f, newest first.
func (s *PebbleStore) List(ctx context.Context, f ListFilter) (ListPage, error) {
	if f.Limit <= 0 {
		f.Limit = 20
	}
	lower := []byte{tagCreated, 0}
	upper := prefixEnd(lower)
	if f.Before != "" {
		b, err := hex.DecodeString(f.Before)
		if err != nil || len(b) < 2 || b[0] != tagCreated {
			return ListPage{}, fmt.Errorf("list executions: cursor %s is not a next_cursor of a listing: %w", clip.Quote(f.Before), ErrInvalidArgument)
		}
		upper = b
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return ListPage{}, fmt.Errorf("list executions: %w", err)
	}
	defer it.Close()
	var page ListPage
	for it.Last(); it.Valid(); it.Prev() {
		if err := ctx.Err(); err != nil {
			return ListPage{}, err
		}
		id := lastPart(it.Key())
		if f.TopLevelOnly && !IsTopLevel(id) {
			continue
		}
		st, err := s.loadState(id)
		if errors.Is(err, ErrNotFound) {
			continue // its tree is being deleted, or was since the iterator opened
		}
		if err != nil {
			return ListPage{}, err
		}
		if f.Status != pb.Status_STATUS_UNSPECIFIED && st.Status != f.Status {
			continue
		}
		if len(st.Ffqn) < len(f.FFQNPrefix) || st.Ffqn[:len(f.FFQNPrefix)] != f.FFQNPrefix {
			continue
		}
		if len(page.States) == f.Limit {
			// The next page starts strictly before the last returned key.
			last := page.States[len(page.States)-1]
			page.Next = hex.EncodeToString(createdKey(last.CreatedAt, last.ExecutionId))
			break
		}
		page.States = append(page.States, st)
	}
	return page, it.Error()
}

// LiveStates calls fn for every execution that has not finished (used at start-up to
// recover locks and deliveries), in execution ID order, reading only those (the live
// index), not every execution ever run.
func (s *PebbleStore) LiveStates(ctx context.Context, fn func(*pb.ExecutionState) error) error {
	prefix := []byte{tagLive, 0}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return fmt.Errorf("scan live executions: %w", err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		id := string(it.Key()[len(prefix):])
		if s.hidden(id) {
			continue
		}
		st, err := s.loadState(id)
		if err != nil {
			return fmt.Errorf("live execution %s: %w", id, err)
		}
		if err := fn(st); err != nil {
			return err
		}
	}
	return it.Error()
}

// AllStates calls fn for every execution, finished or not, in execution ID order. Like
// LiveStates it reads the persisted states, not the cache.
func (s *PebbleStore) AllStates(ctx context.Context, fn func(*pb.ExecutionState) error) error {
	return scanStates(ctx, s.db, s.hidden, fn)
}

// scanStates calls fn for every persisted state in r, in execution ID order, but those
// of the trees hidden says are being deleted.
func scanStates(ctx context.Context, r pebble.Reader, hidden func(id string) bool, fn func(*pb.ExecutionState) error) error {
	_, err := scanStatesFrom(ctx, r, []byte{tagState, 0}, 0, hidden, fn)
	return err
}

// scanStatesFrom is scanStates from the state key from on, for at most limit states (0:
// all). It returns the key to go on from, nil once it has read the last state.
func scanStatesFrom(ctx context.Context, r pebble.Reader, from []byte, limit int, hidden func(id string) bool, fn func(*pb.ExecutionState) error) (next []byte, err error) {
	prefix := []byte{tagState, 0}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: from, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, fmt.Errorf("scan states: %w", err)
	}
	defer it.Close()
	n := 0
	for it.First(); it.Valid(); it.Next() {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if limit > 0 && n == limit {
			return bytes.Clone(it.Key()), it.Error()
		}
		if hidden(string(it.Key()[len(prefix):])) {
			continue
		}
		st := &pb.ExecutionState{}
		if err := proto.Unmarshal(it.Value(), st); err != nil {
			return nil, fmt.Errorf("decode state %q: %w", lastPart(it.Key()), err)
		}
		n++
		if err := fn(st); err != nil {
			return nil, err
		}
	}
	return nil, it.Error()
}
