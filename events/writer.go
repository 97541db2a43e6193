package events

import (
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// The group-commit writer. Every write of the store goes through Commit, which queues
// its Tx for the one writer goroutine; the writer takes every Tx waiting (up to maxGroup),
// folds each against the latest states (tx.go), and commits the whole group in one Pebble
// batch with one sync, so concurrent committers share the sync's cost.
//
// Invariants the rest of the package relies on:
//   - Only the writer changes the database and the live-state cache; readers never lock
//     out the writer for longer than a map access.
//   - A Tx that fails validation leaves no trace in the batch: its writes, positions and
//     states are added only after it folded cleanly.
//   - A committer is answered only after its group's batch is durable (synced, unless
//     NoSync), and every effect visible to readers (cache, floors, global positions)
//     is published after the commit, never before.
//   - After a failed commit the store is failed (see FailedError): nothing is retried.

type commitReq struct {
	tx *Tx
	// step, instead of a tx, is a step of a deletion (retention.go), committed in a
	// batch of its own, synced if sync.
	step func(b *pebble.Batch) (publish func(), err error)
	sync bool
	// seq, when not 0, is the tx's sequence in a replicated log (applied.go).
	seq uint64
	// took: how long the writer worked on the step (set before its result is sent),
	// the deletion's pacing counts it, not the wait for the writer.
	took   time.Duration
	result chan commitResult
	states map[string]*pb.ExecutionState // the verdict's states, set by send
}

type commitResult struct {
	states map[string]*pb.ExecutionState
	err    error
}

// Commit applies tx durably and returns the new state of every execution it touched.
func (s *PebbleStore) Commit(ctx context.Context, tx *Tx) (states map[string]*pb.ExecutionState, err error) {
	if err := beforeWriter(tx); err != nil {
		return nil, err
	}
	req := &commitReq{tx: tx, result: make(chan commitResult, 1)}
	if err := s.send(ctx, req); err != nil {
		return nil, err
	}
	return req.states, nil
}

// send queues req for the writer and waits for its verdict, which it leaves in req.
func (s *PebbleStore) send(ctx context.Context, req *commitReq) (err error) {
	if err := s.queue(ctx, req); err != nil {
		return err
	}
	// Once queued the request will be applied or rejected; wait for the verdict even if
	// ctx ends, so the caller never mistakes a durable write for a failed one.
	r := <-req.result
	req.states = r.states
	return r.err
}

// queue queues req for the writer.
func (s *PebbleStore) queue(ctx context.Context, req *commitReq) (err error) {
	defer func() {
		if r := recover(); r != nil { // send on closed channel
			err = ErrClosed
		}
	}()
	if err := s.Err(); err != nil {
		return err
	}
	if s.opts.ReadOnly {
		return fmt.Errorf("commit: %w", ErrReadOnly)
	}
	select {
	case s.reqs <- req:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// commitBatch commits a group's batch. Pebble panics, directly or through
// Logger.Fatalf, when its commit pipeline breaks (a WAL it cannot write, close or
// create); the writer turns that into the store's failure instead of dying with it.
func (s *PebbleStore) commitBatch(b *pebble.Batch, wo *pebble.WriteOptions) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("pebble: %v", r)
		}
	}()
	return b.Commit(wo)
}

const maxGroup = 512

func (s *PebbleStore) writer() {
	defer close(s.done)
	buf := make([]*commitReq, 0, maxGroup)
	for first := range s.reqs {
		group := append(buf[:0], first)
	drain:
		for len(group) < maxGroup {
			select {
			case r, ok := <-s.reqs:
				if !ok {
					break drain
				}
				group = append(group, r)
			default:
				break drain
			}
		}
		// A deletion step is committed alone, between the transactions queued before
		// and after it.
		for len(group) > 0 {
			i := 0
			for i < len(group) && group[i].step == nil {
				i++
			}
			if i > 0 {
				s.applyGroup(group[:i])
			}
			if i < len(group) {
				s.applyStep(group[i])
				i++
			}
			group = group[i:]
		}
	}
}

func (s *PebbleStore) applyGroup(group []*commitReq) {
	if err := s.Err(); err != nil {
		for _, req := range group {
			req.result <- commitResult{err: err}
		}
		return
	}
	g := &groupState{s: s, orig: map[string]*pb.ExecutionState{}, working: map[string]*pb.ExecutionState{}, dedupe: map[string]bool{}, delays: map[string]int64{}, logs: map[string]LogStats{}, kv: map[string]kvValue{}, snaps: map[string][]SnapshotEntry{}}
	batch := s.db.NewBatch()
	defer batch.Close()
	type ok struct {
		req *commitReq
		ids []string
	}
	var oks []ok
	pos := s.global.last.Load() // the last global position; the group's events follow
	var refused error           // Options.BeforeCommit, or a failed read of a logged Tx, refused group[i:]
	applied := s.applied        // the last log entry decided (applied.go)
	for i, req := range group {
		if req.seq != 0 {
			if req.seq <= applied {
				req.result <- commitResult{err: fmt.Errorf("apply log entry %d (applied through %d): %w", req.seq, applied, ErrAlreadyApplied)}
				continue
			}
			// Decided from here on, whether it folds or not; a refusal below undoes it.
			applied = req.seq
		}
		// KV first: a KV conflict, the likely refusal of a KV Tx, must leave no trace
		// in the group, and apply records the responses it delivers.
		kvOps, kvValues, err := g.kvOps(req.tx)
		var schedOps, ops []kv
		var overlay map[string]*pb.ExecutionState
		var logStats map[string]LogStats
		if err == nil {
			schedOps, err = scheduleOps(req.tx)
		}
		if err == nil {
			ops, overlay, logStats, err = g.apply(req.tx)
		}
		if err == nil && s.opts.BeforeCommit != nil {
			refused = s.opts.BeforeCommit(slices.Collect(maps.Values(overlay)))
		}
		if err != nil && req.seq != 0 && !decidedRefusal(err) {
			// Not the Tx's refusal but this node's failure: its position stays
			// undecided, and the store stops, so as not to skip a Tx the other nodes
			// applied.
			refused = fmt.Errorf("apply log entry %d: %w", req.seq, err)
		}
		if refused != nil {
			group = group[i:]
			applied = s.applied
			for _, o := range oks {
				applied = max(applied, o.req.seq)
			}
			break
		}
		if err != nil {
			req.result <- commitResult{err: err}
			continue
		}
		ops = append(ops, kvOps...)
		ops = append(ops, schedOps...)
		for id, st := range logStats {
			g.logs[id] = st
		}
		for k, v := range kvValues {
			g.kv[k] = v
		}
		ids := make([]string, 0, len(overlay))
		for id, st := range overlay {
			g.working[id] = st
			ids = append(ids, id)
		}
		for _, o := range ops {
			if o.del {
				_ = batch.Delete(o.k, nil)
			} else {
				_ = batch.Set(o.k, o.v, nil)
			}
		}
		pos = indexEvents(batch, req.tx, pos)
		oks = append(oks, ok{req, ids})
	}
	if refused != nil {
		// The transactions before the refused one are committed as usual, then the
		// store stops: a crash right after them.
		defer s.refuse(group, refused)
	}
	if applied != s.applied {
		_ = batch.Set(appliedKey, binary.BigEndian.AppendUint64(nil, applied), nil)
	} else if len(oks) == 0 {
		return
	}
	changed := make([]*pb.ExecutionState, 0, len(g.working))
	var pending []pendingDelta
	var deadlines []int64 // deadline entries added: not those of every commit of an open one
	for id, st := range g.working {
		old := g.orig[id]
		if st == old {
			continue
		}
		if DeadlineOpen(st) && !DeadlineOpen(old) { // as writeIndexes adds its entry
			deadlines = append(deadlines, st.Deadline)
		}
		pending = writeIndexes(batch, old, st, pending)
		b, _ := proto.Marshal(st)
		_ = batch.Set(stateKey(id), b, nil)
		changed = append(changed, st)
	}
	wo := pebble.Sync
	if s.opts.NoSync {
		wo = pebble.NoSync
	}
	started := time.Now()
	err := s.commitBatch(batch, wo)
	if err == nil {
		// The disk failed during the commit (the record of WALs, a sync Pebble
		// retried): what it wrote cannot be vouched for.
		err = s.Err()
	}
	if err != nil {
		// What reached the disk is unknown, and Pebble's state after a failed write or
		// sync is undefined: no retry, no further commit (see FailedError).
		err = s.fail(fmt.Errorf("commit %d transactions: %w", len(oks), err))
		for _, o := range oks {
			o.req.result <- commitResult{err: err}
		}
		return
	}
	if s.opts.OnGroupCommit != nil && len(oks) > 0 { // not a batch of a log position alone
		s.opts.OnGroupCommit(len(oks), int(batch.Count()), time.Since(started))
	}
	s.applied = applied
	s.publishPositions(pos)
	s.pending.apply(pending)
	for _, st := range changed {
		if Runnable(st) {
			s.floors.added(pendingIndex(st.Queue), st.PendingAt)
		}
		if st.Status == pb.Status_STATUS_LOCKED {
			s.floors.added(timerIndex, st.LockExpiresAt)
		}
	}
	for _, t := range deadlines {
		s.floors.added(deadlineIndex, t)
	}
	for _, t := range g.delayTimes {
		s.floors.added(delayIndex, t)
	}
	for _, t := range g.cacheTimes {
		s.floors.added(cacheIndex, t)
	}
	s.mu.Lock()
	for _, st := range changed {
		if st.Status == pb.Status_STATUS_FINISHED {
			delete(s.cache, st.ExecutionId)
		} else {
			s.cache[st.ExecutionId] = st
		}
	}
	s.mu.Unlock()
	for _, o := range oks {
		states := make(map[string]*pb.ExecutionState, len(o.ids))
		for _, id := range o.ids {
			states[id] = g.working[id]
		}
		o.req.result <- commitResult{states: states}
	}
	if s.opts.OnCommit != nil {
		s.opts.OnCommit(changed)
	}
}

// refuse fails the store because Options.BeforeCommit refused the first transaction of
// group, and answers them all with the failure.
func (s *PebbleStore) refuse(group []*commitReq, refusal error) {
	cause := fmt.Errorf("commit refused: %w", refusal)
	err := s.fail(cause)
	if fe, ok := err.(*FailedError); ok && fe.Err == cause {
		s.refusedErr = err // the store's failure is this refusal, not an earlier fault
	}
	for _, req := range group {
		req.result <- commitResult{err: err}
	}
}

// beforeWriter does what Commit does to a Tx before queueing it: the work of the writer
// that needs nothing of the store's state, done on the committer's goroutine, as the
// writer is the one goroutine every commit of the store waits for.
func beforeWriter(tx *Tx) error {
	prepareSnapshots(tx, true)
	return prepareEvents(tx, true)
}
