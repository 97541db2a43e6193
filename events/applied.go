package events

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// Applying a replicated log. A cluster's store (events/replicated) keeps one totally
// ordered log of transactions and has every node apply it, in log order, to its own
// PebbleStore through the same writer and fold as a local Commit: the fold is a pure
// function of the stored state and the Tx, so every node that applied the same prefix
// holds the same states, positions and read models, and decides the same outcome (new
// states, or the same conflict) for the next entry.
//
// A log position numbers each Tx of the log, increasing (the replicated store numbers
// the Txs of an entry by the entry's sequence and their index in it). The writer
// records the position of the last Tx it decided in m\0log-applied, in the batch that
// holds that Tx's writes; an entry that failed validation is recorded
// too (with the next batch, or a batch of its own), since it was decided. A node that
// restarts resumes after it, and the writer refuses an entry at or before it: nothing is
// applied twice.

// appliedKey holds the position of the last log entry applied (ApplyLogged).
var appliedKey = key(tagMeta, []byte("log-applied"))

// ErrAlreadyApplied is returned for a log entry at or before the last one applied.
var ErrAlreadyApplied = errors.New("log entry already applied")

// Applying is a log entry queued by ApplyLogged; Wait returns its outcome.
type Applying struct{ req *commitReq }

// Wait blocks until the writer decided the entry and returns what Commit would have: the
// new states, or why the Tx was refused.
func (a *Applying) Wait() (map[string]*pb.ExecutionState, error) {
	r := <-a.req.result
	return r.states, r.err
}

// ApplyLogged queues tx as the Tx at position seq (from 1, increasing) of a replicated
// log, and returns without waiting for it, so that the entries of a log
// share group commits as concurrent Commits do. Entries are decided in the order they
// are queued; the caller queues them in log order from one goroutine.
func (s *PebbleStore) ApplyLogged(ctx context.Context, seq uint64, tx *Tx) (*Applying, error) {
	if seq == 0 {
		return nil, fmt.Errorf("apply log entry: sequence 0")
	}
	if err := beforeWriter(tx); err != nil {
		return nil, fmt.Errorf("apply log entry %d: %w", seq, err)
	}
	req := &commitReq{tx: tx, seq: seq, result: make(chan commitResult, 1)}
	if err := s.queue(ctx, req); err != nil {
		return nil, fmt.Errorf("apply log entry %d: %w", seq, err)
	}
	return &Applying{req: req}, nil
}

// RecordApplied records seq as the last log entry applied, for an entry applied outside
// ApplyLogged (a deletion, DeleteTrees, which takes several batches of its own). It is
// idempotent: an older seq changes nothing.
func (s *PebbleStore) RecordApplied(ctx context.Context, seq uint64) error {
	return s.runStep(ctx, true, func(b *pebble.Batch) (func(), error) {
		if seq <= s.applied {
			return nil, nil
		}
		_ = b.Set(appliedKey, binary.BigEndian.AppendUint64(nil, seq), nil)
		return func() { s.applied = seq }, nil
	})
}

// LastApplied returns the position of the last log entry applied (0: none). It reads
// the database: for opening a log's consumer, not for a hot path.
func (s *PebbleStore) LastApplied() (uint64, error) {
	v, closer, err := s.db.Get(appliedKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read the last applied log entry: %w", err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, fmt.Errorf("read the last applied log entry: malformed value %x", v)
	}
	return binary.BigEndian.Uint64(v), nil
}

// initApplied reads the last applied log entry at Open, for the writer's check.
func (s *PebbleStore) initApplied() error {
	seq, err := s.LastApplied()
	s.applied = seq
	return err
}

// logIDKey holds the identity of the log the positions in appliedKey are of (the
// replicated store's stream): a position means nothing in another log.
var logIDKey = key(tagMeta, []byte("log-id"))

// LogID returns the identity of the log this store applies, recorded by SetLogID ("":
// none yet).
func (s *PebbleStore) LogID() (string, error) {
	v, closer, err := s.db.Get(logIDKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read the applied log's identity: %w", err)
	}
	defer closer.Close()
	return string(v), nil
}

// SetLogID records id as the identity of the log this store applies, synced.
func (s *PebbleStore) SetLogID(ctx context.Context, id string) error {
	err := s.runStep(ctx, true, func(b *pebble.Batch) (func(), error) {
		return nil, b.Set(logIDKey, []byte(id), nil)
	})
	if err != nil {
		return fmt.Errorf("record the applied log's identity: %w", err)
	}
	return nil
}
