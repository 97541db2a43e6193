package events

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"google.golang.org/protobuf/proto"

	"github.com/obelisk-go/obelisk/internal/clip"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
)

// ErrNotFound is returned for an execution that does not exist.
var ErrNotFound = errors.New("execution not found")

// ErrInvalidArgument is wrapped by errors caused by what the caller asked for (a
// malformed cursor), not by the store: the API answers them invalid_argument, not
// internal.
var ErrInvalidArgument = errors.New("invalid argument")

// ErrClosed is returned by a store that has been closed.
var ErrClosed = errors.New("store closed")

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

// Append adds events to one execution's stream.
type Append struct {
	ExecutionID string
	// ExpectedVersion is the version the first event gets: 0 creates the stream.
	ExpectedVersion uint32
	// RunID, when set, must be the run that holds (or last held) the execution's lock.
	RunID  string
	Events []*pb.Event
}

// ResponseAppend delivers a response to an execution. A second delivery with the same
// child or delay ID is ignored, and so is a delivery to an execution that has finished.
type ResponseAppend struct {
	ExecutionID string
	Response    *pb.Response
}

// Tx is applied atomically: all of it or nothing.
type Tx struct {
	Appends   []Append
	Responses []ResponseAppend
	// Logs are guest log lines (logs.go), stored only if the rest of the Tx is.
	Logs []LogAppend
}

// Options configure a PebbleStore.
type Options struct {
	// OnCommit, if set, is called after each durable group commit with the new states of
	// every execution it changed. It runs on the writer goroutine: it must not block and
	// must not call Commit.
	OnCommit func(states []*pb.ExecutionState)
	// OnGroupCommit, if set, is told of every durable group commit: how many
	// transactions and key writes it held and how long the write (and sync) took
	// (metrics). Same rules as OnCommit.
	OnGroupCommit func(txs, writes int, took time.Duration)
	// NoSync turns off syncing commits (tests and benchmarks of other layers only).
	NoSync bool
	// CacheSize is the size of Pebble's block cache (0: DefaultCacheSize), MemTableSize
	// that of a memtable (0: DefaultMemTableSize).
	CacheSize, MemTableSize int64
	Logger                  *slog.Logger
	// FS is the file system the store lives on (nil: the operating system's); tests
	// give an in-memory or fault-injecting one.
	FS vfs.FS
	// MaxLogsPerExecution bounds the log lines kept per execution (0:
	// DefaultMaxLogsPerExecution, negative: none is kept, all are counted); see LogAppend.
	MaxLogsPerExecution int
}

// Pebble's defaults (8 MiB of cache, 4 MiB memtables) are sized for a library, not a
// server: under a load of a few thousand executions, the events and responses that runs
// read back right after writing them had been flushed from the memtable and evicted from
// the cache, and reading them again (block reads, decompression) was ~13% of the
// engine's CPU. With a bigger memtable most such reads are served from memory.
const (
	DefaultCacheSize    = 128 << 20
	DefaultMemTableSize = 64 << 20
)

// PebbleStore is the event store of one node, on an embedded Pebble database.
//
// All writes go through one writer goroutine which applies every waiting Tx against the
// latest states, then commits them in one synced Pebble batch: concurrent committers share
// the sync. Version checks and folds happen there, so they need no locks.
type PebbleStore struct {
	db   *pebble.DB
	dir  string
	opts Options
	reqs chan *commitReq
	done chan struct{}

	failed   chan struct{} // closed when the store fails; failErr is set before
	failErr  error
	failOnce sync.Once

	mu    sync.RWMutex
	cache map[string]*pb.ExecutionState // live (unfinished) states; the writer owns writes

	floors scanFloors
	global globalLog // positions of the global event log (global.go)

	closeOnce sync.Once
}

type commitReq struct {
	tx     *Tx
	result chan commitResult
}

type commitResult struct {
	states map[string]*pb.ExecutionState
	err    error
}

// Open opens (or creates) the store in dir.
func Open(dir string, opts Options) (*PebbleStore, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.CacheSize == 0 {
		opts.CacheSize = DefaultCacheSize
	}
	if opts.MemTableSize == 0 {
		opts.MemTableSize = DefaultMemTableSize
	}
	if opts.FS == nil {
		opts.FS = vfs.Default
	}
	if err := opts.FS.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open event store %s: %w", dir, err)
	}
	rec, fresh, err := checkWALs(opts.FS, dir, opts.Logger)
	if err != nil {
		return nil, fmt.Errorf("open event store %s: %w", dir, err)
	}
	if fresh {
		if err := rec.write(); err != nil {
			return nil, fmt.Errorf("open event store %s: %w", dir, err)
		}
	}
	s := &PebbleStore{dir: dir, opts: opts, reqs: make(chan *commitReq, 1024), done: make(chan struct{}), failed: make(chan struct{}), cache: map[string]*pb.ExecutionState{}}
	s.floors.m = map[string]*floor{}
	cache := pebble.NewCache(opts.CacheSize)
	defer cache.Unref() // the DB holds its own reference
	db, err := pebble.Open(dir, &pebble.Options{
		FS: &storeFS{FS: opts.FS, rec: rec, fail: s.fail}, Logger: pebbleLogger{l: opts.Logger, fatal: s.fail}, Cache: cache, MemTableSize: uint64(opts.MemTableSize),
	})
	if err != nil {
		return nil, fmt.Errorf("open event store %s: %w", dir, nameWAL(dir, err))
	}
	s.db = db
	if err := s.Err(); err != nil { // the disk failed while Pebble opened
		return nil, err
	}
	if err := s.initGlobal(); err != nil {
		db.Close()
		return nil, err
	}
	go s.writer()
	return s, nil
}

// Close stops the writer and closes Pebble. Commits after Close fail with ErrClosed.
// A failed store leaves Pebble as the failure left it (its files stay open until the
// process exits): closing it could hang or panic on that state, and would write to a
// disk that has failed.
func (s *PebbleStore) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.reqs)
		<-s.done
		if s.Err() == nil {
			err = s.db.Close()
		}
	})
	return err
}

// Commit applies tx durably and returns the new state of every execution it touched.
func (s *PebbleStore) Commit(ctx context.Context, tx *Tx) (states map[string]*pb.ExecutionState, err error) {
	req := &commitReq{tx: tx, result: make(chan commitResult, 1)}
	defer func() {
		if r := recover(); r != nil { // send on closed channel
			states, err = nil, ErrClosed
		}
	}()
	if err := s.Err(); err != nil {
		return nil, err
	}
	select {
	case s.reqs <- req:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	// Once queued the tx will be applied or rejected; wait for the verdict even if ctx
	// ends, so the caller never mistakes a durable write for a failed one.
	r := <-req.result
	return r.states, r.err
}

// Failed is closed when the store has failed (see FailedError); Err then returns why.
func (s *PebbleStore) Failed() <-chan struct{} { return s.failed }

// Err returns the store's *FailedError once it has failed, nil before.
func (s *PebbleStore) Err() error {
	select {
	case <-s.failed:
		return s.failErr
	default:
		return nil
	}
}

// fail puts the store in its failed state (once: the first cause is kept) and returns
// its FailedError.
func (s *PebbleStore) fail(err error) error {
	s.failOnce.Do(func() {
		s.failErr = &FailedError{Dir: s.dir, Err: err}
		s.opts.Logger.Error("event store failed: refusing every further commit", "dir", s.dir, "err", err)
		close(s.failed)
	})
	return s.failErr
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
	group := make([]*commitReq, 0, maxGroup)
	for first := range s.reqs {
		group = append(group[:0], first)
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
		s.applyGroup(group)
	}
}

// groupState is the writer's view while applying one group.
type groupState struct {
	s       *PebbleStore
	orig    map[string]*pb.ExecutionState // as persisted before the group; nil = did not exist
	working map[string]*pb.ExecutionState
	dedupe  map[string]bool
	// delays requested in this group (delay ID -> expiry; -1 once answered), which the
	// database does not show yet.
	delays map[string]int64
	// delayTimes are the expiries of the delay keys this group adds (for the floors).
	delayTimes []int64
	// logs are the log counts this group changed (logs.go).
	logs map[string]LogStats
}

func (g *groupState) get(id string) (*pb.ExecutionState, error) {
	if st, ok := g.working[id]; ok {
		return st, nil
	}
	st, err := g.s.loadState(id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	g.orig[id] = st
	g.working[id] = st
	return st, nil
}

// kv is one write of a batch: a set, or a delete.
type kv struct {
	k, v []byte
	del  bool
}

func (s *PebbleStore) applyGroup(group []*commitReq) {
	if err := s.Err(); err != nil {
		for _, req := range group {
			req.result <- commitResult{err: err}
		}
		return
	}
	g := &groupState{s: s, orig: map[string]*pb.ExecutionState{}, working: map[string]*pb.ExecutionState{}, dedupe: map[string]bool{}, delays: map[string]int64{}, logs: map[string]LogStats{}}
	batch := s.db.NewBatch()
	defer batch.Close()
	type ok struct {
		req *commitReq
		ids []string
	}
	var oks []ok
	pos := s.global.last.Load() // the last global position; the group's events follow
	for _, req := range group {
		ops, overlay, err := g.apply(req.tx)
		if err != nil {
			req.result <- commitResult{err: err}
			continue
		}
		logOps, logStats, err := g.logOps(req.tx.Logs, overlay)
		if err != nil {
			req.result <- commitResult{err: err}
			continue
		}
		ops = append(ops, logOps...)
		for id, st := range logStats {
			g.logs[id] = st
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
	if len(oks) == 0 {
		return
	}
	changed := make([]*pb.ExecutionState, 0, len(g.working))
	for id, st := range g.working {
		old := g.orig[id]
		if st == old {
			continue
		}
		writeIndexes(batch, old, st)
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
	if s.opts.OnGroupCommit != nil {
		s.opts.OnGroupCommit(len(oks), int(batch.Count()), time.Since(started))
	}
	s.publishPositions(pos)
	for _, st := range changed {
		if Runnable(st) {
			s.floors.added(pendingIndex(st.Queue), st.PendingAt)
		}
		if st.Status == pb.Status_STATUS_LOCKED {
			s.floors.added(timerIndex, st.LockExpiresAt)
		}
	}
	for _, t := range g.delayTimes {
		s.floors.added(delayIndex, t)
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

// apply validates and folds one tx against the group's working states, returning the
// writes and the new states without changing the group (a failed tx leaves no trace).
func (g *groupState) apply(tx *Tx) ([]kv, map[string]*pb.ExecutionState, error) {
	overlay := map[string]*pb.ExecutionState{}
	get := func(id string) (*pb.ExecutionState, error) {
		if st, ok := overlay[id]; ok {
			return st, nil
		}
		return g.get(id)
	}
	var ops []kv
	var newDedupe []string
	var newDelays []*pb.DelayRequest
	answered := map[string]bool{}
	for _, a := range tx.Appends {
		st, err := get(a.ExecutionID)
		if err != nil {
			return nil, nil, fmt.Errorf("append %s: %w", a.ExecutionID, err)
		}
		next := uint32(0)
		if st != nil {
			next = st.NextVersion
		} else if a.ExpectedVersion != 0 {
			return nil, nil, fmt.Errorf("append %s v%d: %w", a.ExecutionID, a.ExpectedVersion, ErrNotFound)
		}
		if a.ExpectedVersion != next {
			return nil, nil, &ConflictError{ExecutionID: a.ExecutionID, Expected: a.ExpectedVersion, Actual: next}
		}
		if a.RunID != "" && (st == nil || st.RunId != a.RunID) {
			holder := ""
			if st != nil {
				holder = st.RunId
			}
			return nil, nil, &ConflictError{ExecutionID: a.ExecutionID, Expected: a.ExpectedVersion, Actual: next,
				Reason: fmt.Sprintf("run %s does not hold the lock (held by %q)", a.RunID, holder)}
		}
		for i, ev := range a.Events {
			v := a.ExpectedVersion + uint32(i)
			nst, err := Fold(a.ExecutionID, st, v, ev)
			if err != nil {
				return nil, nil, err
			}
			b, err := proto.Marshal(ev)
			if err != nil {
				return nil, nil, fmt.Errorf("append %s v%d: marshal: %w", a.ExecutionID, v, err)
			}
			ops = append(ops, kv{k: eventKey(a.ExecutionID, v), v: b})
			if d := ev.GetHistory().GetJoinSetRequest().GetDelay(); d != nil {
				ops = append(ops, kv{k: delayKey(d.ExpiresAt, d.DelayId)}, kv{k: delayAtKey(d.DelayId), v: u64(d.ExpiresAt)})
				newDelays = append(newDelays, d)
			}
			st = nst
		}
		overlay[a.ExecutionID] = st
	}
	for _, r := range tx.Responses {
		respID := responseID(r.Response)
		if d := r.Response.GetDelay(); d != nil && !answered[d.DelayId] {
			// The delay's timer goes with its first answer, even one that is dropped.
			delOps, err := g.forgetDelay(d.DelayId, newDelays)
			if err != nil {
				return nil, nil, err
			}
			ops = append(ops, delOps...)
			answered[d.DelayId] = true
		}
		dk := string(dedupeKey(r.ExecutionID, respID))
		if g.dedupe[dk] || slicesContains(newDedupe, dk) {
			continue
		}
		if _, closer, err := g.s.db.Get([]byte(dk)); err == nil {
			closer.Close()
			continue
		} else if !errors.Is(err, pebble.ErrNotFound) {
			return nil, nil, fmt.Errorf("respond to %s: %w", r.ExecutionID, err)
		}
		st, err := get(r.ExecutionID)
		if err != nil {
			return nil, nil, fmt.Errorf("respond to %s: %w", r.ExecutionID, err)
		}
		if st == nil {
			return nil, nil, fmt.Errorf("respond to %s: %w", r.ExecutionID, ErrNotFound)
		}
		if st.Status == pb.Status_STATUS_FINISHED {
			// Nothing can consume it any more; refusing it would refuse the sender's own
			// events in the same Tx (a child's Finished) forever.
			continue
		}
		resp := proto.CloneOf(r.Response)
		resp.Cursor = st.ResponseCount
		resp.AtVersion = st.NextVersion
		nst, err := FoldResponse(st, resp)
		if err != nil {
			return nil, nil, err
		}
		b, _ := proto.Marshal(resp)
		ops = append(ops, kv{k: responseKey(r.ExecutionID, resp.Cursor), v: b}, kv{k: []byte(dk), v: u32(resp.Cursor)})
		newDedupe = append(newDedupe, dk)
		overlay[r.ExecutionID] = nst
	}
	for _, dk := range newDedupe {
		g.dedupe[dk] = true
	}
	for _, d := range newDelays {
		g.delays[d.DelayId] = d.ExpiresAt
		g.delayTimes = append(g.delayTimes, d.ExpiresAt)
	}
	for id := range answered {
		g.delays[id] = -1
	}
	return ops, overlay, nil
}

// forgetDelay returns the deletes of a delay's timer keys, wherever the delay was
// requested: in this tx (requested), earlier in the group, or in the database.
func (g *groupState) forgetDelay(id string, requested []*pb.DelayRequest) ([]kv, error) {
	for _, d := range requested {
		if d.DelayId == id {
			return []kv{{delayKey(d.ExpiresAt, id), nil, true}, {delayAtKey(id), nil, true}}, nil
		}
	}
	if at, ok := g.delays[id]; ok {
		if at < 0 {
			return nil, nil
		}
		return []kv{{delayKey(at, id), nil, true}, {delayAtKey(id), nil, true}}, nil
	}
	v, closer, err := g.s.db.Get(delayAtKey(id))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read delay %s: %w", id, err)
	}
	at := int64(binary.BigEndian.Uint64(v))
	closer.Close()
	return []kv{{delayKey(at, id), nil, true}, {delayAtKey(id), nil, true}}, nil
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func responseID(r *pb.Response) string {
	switch k := r.Kind.(type) {
	case *pb.Response_Child:
		return k.Child.ChildExecutionId
	case *pb.Response_Delay:
		return k.Delay.DelayId
	}
	return ""
}

// writeIndexes moves an execution's index entries from old to st (old nil: new execution).
func writeIndexes(b *pebble.Batch, old, st *pb.ExecutionState) {
	pend := func(s *pb.ExecutionState) []byte {
		if !Runnable(s) {
			return nil
		}
		return pendingKey(s.Queue, s.PendingAt, s.ExecutionId)
	}
	timer := func(s *pb.ExecutionState) []byte {
		if s == nil || s.Status != pb.Status_STATUS_LOCKED {
			return nil
		}
		return timerKey(s.LockExpiresAt, s.ExecutionId)
	}
	for _, f := range []func(*pb.ExecutionState) []byte{pend, timer} {
		ok, nk := f(old), f(st)
		if string(ok) == string(nk) {
			continue
		}
		if ok != nil {
			_ = b.Delete(ok, nil)
		}
		if nk != nil {
			_ = b.Set(nk, nil, nil)
		}
	}
	if (old == nil || old.Status != pb.Status_STATUS_FINISHED) && st.Status == pb.Status_STATUS_FINISHED {
		_ = b.Delete(liveKey(st.ExecutionId), nil)
	}
	if old == nil {
		if st.Status != pb.Status_STATUS_FINISHED {
			_ = b.Set(liveKey(st.ExecutionId), nil, nil)
		}
		_ = b.Set(createdKey(st.CreatedAt, st.ExecutionId), nil, nil)
		if st.ParentId != "" {
			_ = b.Set(childKey(st.ParentId, st.ExecutionId), nil, nil)
		}
	}
}

func (s *PebbleStore) loadState(id string) (*pb.ExecutionState, error) {
	// Pebble may show a write whose sync failed: a failed store shows nothing.
	if err := s.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	st, ok := s.cache[id]
	s.mu.RUnlock()
	if ok {
		return st, nil
	}
	v, closer, err := s.db.Get(stateKey(id))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read state of %s: %w", id, err)
	}
	defer closer.Close()
	st = &pb.ExecutionState{}
	if err := proto.Unmarshal(v, st); err != nil {
		return nil, fmt.Errorf("decode state of %s: %w", id, err)
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
	// The bound ends with the separator: a child's ID extends its parent's, and its
	// stream must not be read as the rest of the parent's.
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: eventKey(id, from), UpperBound: prefixEnd(append(key(tagEvent, []byte(id)), 0))})
	if err != nil {
		return nil, fmt.Errorf("read events of %s: %w", id, err)
	}
	defer it.Close()
	var out []*pb.Event
	for it.First(); it.Valid() && (limit <= 0 || len(out) < limit); it.Next() {
		ev := &pb.Event{}
		if err := proto.Unmarshal(it.Value(), ev); err != nil {
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
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: responseKey(id, from), UpperBound: prefixEnd(append(key(tagResponse, []byte(id)), 0))})
	if err != nil {
		return nil, fmt.Errorf("read responses of %s: %w", id, err)
	}
	defer it.Close()
	var out []*pb.Response
	for it.First(); it.Valid(); it.Next() {
		r := &pb.Response{}
		if err := proto.Unmarshal(it.Value(), r); err != nil {
			return nil, fmt.Errorf("decode response of %s: %w", id, err)
		}
		out = append(out, r)
	}
	return out, it.Error()
}

// Index names for scanFloors.
const timerIndex = "t"

const delayIndex = "w"

func pendingIndex(queue string) string { return "p/" + queue }

// DuePending returns up to limit executions of a queue that are pending and due at now,
// earliest first, and the due time of the first one not yet due (zero if none).
func (s *PebbleStore) DuePending(ctx context.Context, queue string, now time.Time, limit int) (ids []string, next time.Time, err error) {
	prefix := append(key(tagPending, []byte(queue)), 0)
	return s.scanTimeIndex(pendingIndex(queue), prefix, now, limit, nil)
}

// ExpiredLocks returns up to limit locked executions whose lock expired at or before now,
// and the expiry of the first lock that has not (zero if none).
func (s *PebbleStore) ExpiredLocks(ctx context.Context, now time.Time, limit int) (ids []string, next time.Time, err error) {
	return s.scanTimeIndex(timerIndex, []byte{tagTimer, 0}, now, limit, nil)
}

// Due is a timer that is due: a delay's ID and when it expired.
type Due struct {
	ID string
	At time.Time
}

// ExpiredDelays returns up to limit delays that expired at or before now and have not
// been answered, and the expiry of the first one that has not (zero if none).
func (s *PebbleStore) ExpiredDelays(ctx context.Context, now time.Time, limit int) ([]Due, time.Time, error) {
	var at []time.Time
	ids, next, err := s.scanTimeIndex(delayIndex, []byte{tagDelay, 0}, now, limit, &at)
	due := make([]Due, len(ids))
	for i, id := range ids {
		due[i] = Due{ID: id, At: at[i]}
	}
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

// scanTimeIndex scans an index whose keys are prefix<time:8>\0<id>, from its floor; the
// times of the IDs go to times if it is not nil.
func (s *PebbleStore) scanTimeIndex(index string, prefix []byte, now time.Time, limit int, times *[]time.Time) (ids []string, next time.Time, err error) {
	if err := s.Err(); err != nil {
		return nil, time.Time{}, err
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
		return nil, time.Time{}, fmt.Errorf("scan index %s: %w", index, err)
	}
	defer it.Close()
	nowNanos := now.UnixNano()
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		at := int64(binary.BigEndian.Uint64(k[len(prefix) : len(prefix)+8]))
		first = min(first, at)
		if at > nowNanos {
			return ids, time.Unix(0, at), it.Error()
		}
		if len(ids) >= limit {
			break
		}
		ids = append(ids, lastPart(k))
		if times != nil {
			*times = append(*times, time.Unix(0, at))
		}
	}
	return ids, time.Time{}, it.Error()
}

// Children returns the IDs of an execution's children, in ID order.
func (s *PebbleStore) Children(ctx context.Context, parent string) ([]string, error) {
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
	prefix := []byte{tagState, 0}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return fmt.Errorf("scan states: %w", err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		st := &pb.ExecutionState{}
		if err := proto.Unmarshal(it.Value(), st); err != nil {
			return fmt.Errorf("decode state %q: %w", lastPart(it.Key()), err)
		}
		if err := fn(st); err != nil {
			return err
		}
	}
	return it.Error()
}

// pebbleLogger logs Pebble's messages; a fatal one fails the store (Pebble gives up on
// its state) before Pebble's goroutine panics.
type pebbleLogger struct {
	l     *slog.Logger
	fatal func(error) error
}

func (p pebbleLogger) Infof(format string, args ...any)  { p.l.Debug(fmt.Sprintf(format, args...)) }
func (p pebbleLogger) Errorf(format string, args ...any) { p.l.Error(fmt.Sprintf(format, args...)) }
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.fatal(errors.New(msg))
	panic(msg)
}
