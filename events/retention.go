package events

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/obelisk-go/obelisk/internal/clip"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// Retention: deleting finished execution trees (a top-level execution with every
// descendant, response, delay, guest log line and global log entry of it).
//
// Invariant: a read sees a tree whole or not at all, and a crash changes that only
// forward. A deletion is a sequence of writer requests (so none of it races a commit of
// the tree), and the WAL keeps them in order, so a crash leaves a prefix of it:
//
//  1. mark, markChunk roots per request: checks each root (top level, finished, no live
//     descendant, no waiting delay) and writes x\0<root>. From this commit on the tree
//     is hidden: every read answers as if it did not exist, and the writer refuses any
//     Tx touching it (hidden; the marks live in memory too, loaded at Open).
//  2. derived points, in chunks of at most deleteChunk keys (unsynced, short, so
//     foreground commits wait little): the keys that are not under the tree's prefixes,
//     found from the ones that are: the c keys of its executions (from its s keys), the g
//     keys of its events (from its q keys) and the root's f key. Long runs of
//     consecutive g keys go first, as a few range deletions (globalRuns).
//  3. the tree's own keys (every key under its prefixes in the treeTags tables), in
//     chunks likewise.
//  4. synced: the marks removed, and m\0global-last raised so that no position is ever
//     given twice.
//
// Step 2 ends before step 3 begins, so until step 3 the s and q keys are all there and
// while it runs every derived key of a deleted s or q key is gone already: after a
// restart the mark is still present, FinishedTrees lists the marked tree first, and
// DeleteTrees finishes it from what is left. Nothing else ever removes a mark.
//
// Point deletions, not range deletions: a range tombstone in the memtable costs every
// read until the memtable is flushed (the memtable's tombstones are fragmented again
// after each one added), and a pass adds one per table and tree, thousands in all; the
// foreground calls of the retention benchmark stalled for 15-25 ms behind them. Point
// tombstones cost only the reads that land on them, and the compaction after the pass
// (CompactDeleted) drops them. Keys written once (keys.go; nearly all of a tree's) are
// deleted with SingleDelete: such a tombstone and its Set cancel out in the first
// compaction that holds both, instead of the tombstone being carried to the bottom level.

// writtenOnce reports whether k is in a table whose keys are Set at most once in the
// store's life and never overwritten (keys.go lists them), so that SingleDelete is a
// correct deletion of it. A SingleDelete of a key Set twice would leave the first value
// to come back once the SingleDelete and the newer Set meet in a compaction and cancel
// out; for a key Set once it is a Delete that vanishes with that Set instead of going
// on down to the bottom of the LSM. The other keys of a tree (its states, rewritten by
// every commit, the counts of its log, its snapshots, its forks and the f entry, which
// Open may write again) are deleted with Delete.
func writtenOnce(k []byte) bool {
	switch k[0] {
	case tagEvent, tagPosition, tagGlobal, tagResponse, tagDedupe, tagCreated, tagChild:
		return true
	case tagLog:
		return bytes.IndexByte(k[2:], 0) >= 0 // a line, o\0<id>\0<seq>; not the counts, o\0<id>
	}
	return false
}

// treeTags are the tables whose keys of one tree all start with <tag>\0<root> (see
// keys.go): a tree's deletion is one range per table. A new per-execution table is one
// more tag here.
var treeTags = []byte{tagEvent, tagResponse, tagDedupe, tagState, tagChild, tagLive, tagPosition, tagDelayAt, tagLog, tagFork, tagSnapshot}

// deleteChunk bounds the point deletions of one writer request, markChunk the roots one
// mark request checks (each a few reads inside the writer): both keep a foreground
// commit's wait behind a deletion's request well under a millisecond or so.
const (
	deleteChunk = 1024
	markChunk   = 32
)

// ErrNotDeletable is wrapped by DeleteTrees' refusals: the execution is not top-level,
// or its tree has not finished.
var ErrNotDeletable = errors.New("cannot delete")

// FinishedTree is a top-level execution whose whole tree has finished.
type FinishedTree struct {
	Root        string
	ComponentID string
	// FinishedAt is when the last execution of the tree finished.
	FinishedAt time.Time
	// Executions is the number of executions of the tree, the root included.
	Executions int
	// Deleting: its deletion was interrupted (a crash); it is hidden already.
	Deleting bool
}

// Deleted tells what DeleteTrees did.
type Deleted struct {
	Trees, Executions, Events int
	// Refused holds the roots that were not deleted, and why (ErrNotFound or
	// ErrNotDeletable wrapped).
	Refused map[string]error
}

// treeRoot returns the top-level execution of an execution ID (its part before the
// first '.').
func treeRoot(id string) string {
	if i := strings.IndexByte(id, '.'); i >= 0 {
		return id[:i]
	}
	return id
}

// hidden reports whether id's tree is being deleted.
func (s *PebbleStore) hidden(id string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.deleting) > 0 && s.deleting[treeRoot(id)]
}

// initDeleting loads the marks of interrupted deletions at Open.
func (s *PebbleStore) initDeleting() error {
	s.deleting = map[string]bool{}
	prefix := []byte{tagDeleting, 0}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return fmt.Errorf("read deletion marks: %w", err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		s.deleting[string(it.Key()[len(prefix):])] = true
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("read deletion marks: %w", err)
	}
	return nil
}

// finishedIndexedKey marks a store whose f index holds every finished top-level
// execution: one written before the index existed gets it built once, at Open.
var finishedIndexedKey = key(tagMeta, []byte("finished-indexed"))

// initFinished builds the f index of a store written before it existed. An empty store
// is left as it is (the next Open looks again, at no cost).
func (s *PebbleStore) initFinished() error {
	_, closer, err := s.db.Get(finishedIndexedKey)
	if err == nil {
		return closer.Close()
	}
	if !errors.Is(err, pebble.ErrNotFound) {
		return fmt.Errorf("index finished executions: %w", err)
	}
	prefix := []byte{tagState, 0}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return fmt.Errorf("index finished executions: %w", err)
	}
	defer it.Close()
	b := s.db.NewBatch()
	defer b.Close()
	found := false
	for it.First(); it.Valid(); it.Next() {
		found = true
		id := string(it.Key()[len(prefix):])
		if !IsTopLevel(id) {
			continue
		}
		st := &pb.ExecutionState{}
		if err := proto.Unmarshal(it.Value(), st); err != nil {
			return fmt.Errorf("index finished executions: decode state %q: %w", id, err)
		}
		if st.Status == pb.Status_STATUS_FINISHED {
			_ = b.Set(finishedKey(st.ComponentId, st.FinishedAt, id), nil, nil)
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("index finished executions: %w", err)
	}
	if !found {
		return nil
	}
	_ = b.Set(finishedIndexedKey, nil, nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return s.fail(fmt.Errorf("index finished executions: %w", err))
	}
	return nil
}

// span is a key range [start, end).
type span struct{ start, end []byte }

// treeSpans returns the ranges of a table that hold a tree's keys: the root's own
// (<tag>\0<root> itself and what follows it after a 0 separator, 0 being the smallest
// byte) and its descendants' (<tag>\0<root>. and on). The y table is keyed by delay ID:
// a tree's delays are Delay_<root's ULID>.<join-set>_<n>...
func treeSpans(tag byte, root string) []span {
	if tag == tagDelayAt {
		p := key(tagDelayAt, []byte(DelayPrefix+strings.TrimPrefix(root, TopLevelPrefix)+"."))
		return []span{{p, prefixEnd(p)}}
	}
	own := key(tag, []byte(root))
	desc := key(tag, []byte(root+"."))
	return []span{{own, prefixEnd(append(bytes.Clone(own), 0))}, {desc, prefixEnd(desc)}}
}

// treeReader reads trees' keys through one iterator per table, each reused from span to
// span with new bounds: making a Pebble iterator costs more than re-bounding one (tens
// of microseconds against a few, with a few memtables and levels), and a deletion reads
// some twenty spans of every tree. An iterator sees the store as it was when it was
// made: a reader is made where that view is the right one (inside a writer step, or for
// hidden trees, which nothing writes) and closed after the batch it serves.
type treeReader struct {
	db  *pebble.DB
	its map[byte]*pebble.Iterator
}

func (s *PebbleStore) newTreeReader() *treeReader {
	return &treeReader{db: s.db, its: map[byte]*pebble.Iterator{}}
}

func (r *treeReader) close() {
	for _, it := range r.its {
		it.Close()
	}
}

func (r *treeReader) iter(tag byte) (*pebble.Iterator, error) {
	if it, ok := r.its[tag]; ok {
		return it, nil
	}
	it, err := r.db.NewIter(nil)
	if err != nil {
		return nil, err
	}
	r.its[tag] = it
	return it, nil
}

// scan calls fn with every key and value of a tree in a table, in order, until fn
// returns errStopScan (scan then returns nil) or another error. Each span is scanned
// within bounds set on the iterator (SetBounds), not by comparing keys after a seek: a
// seek skips every deleted key it meets until a live one, and the live and delay
// tables are mostly deleted keys (every finished execution's), so an unbounded seek
// into an empty span would walk the rest of the table.
func (r *treeReader) scan(tag byte, root string, fn func(k, v []byte) error) error {
	it, err := r.iter(tag)
	if err != nil {
		return err
	}
	for _, sp := range treeSpans(tag, root) {
		it.SetBounds(sp.start, sp.end)
		for valid := it.First(); valid; valid = it.Next() {
			if err := fn(it.Key(), it.Value()); err == errStopScan {
				return nil
			} else if err != nil {
				return err
			}
		}
		if err := it.Error(); err != nil {
			return err
		}
	}
	return nil
}

var errStopScan = errors.New("stop the scan")

// first returns the first key of a tree in a table (nil if none).
func (r *treeReader) first(tag byte, root string) ([]byte, error) {
	var k []byte
	err := r.scan(tag, root, func(key, _ []byte) error {
		k = bytes.Clone(key)
		return errStopScan
	})
	return k, err
}

// scanTree calls fn with every key and value of a tree in a table.
func (s *PebbleStore) scanTree(tag byte, root string, fn func(k, v []byte) error) error {
	r := s.newTreeReader()
	defer r.close()
	return r.scan(tag, root, fn)
}

// checkFinished returns why root's tree cannot be deleted (an error wrapping
// ErrNotFound or ErrNotDeletable), or nil.
func (s *PebbleStore) checkFinished(r *treeReader, root string) error {
	if !IsTopLevel(root) || !strings.HasPrefix(root, TopLevelPrefix) {
		return fmt.Errorf("%w %s: not a top-level execution (delete its root %s)", ErrNotDeletable, clip.Quote(root), treeRoot(root))
	}
	st, err := s.loadState(root)
	if err != nil {
		return fmt.Errorf("delete %s: %w", clip.Quote(root), err)
	}
	if st.Status != pb.Status_STATUS_FINISHED {
		return fmt.Errorf("%w %s: it has not finished (status %s)", ErrNotDeletable, root, StatusName(st.Status))
	}
	k, err := r.first(tagLive, root)
	if err != nil {
		return fmt.Errorf("delete %s: scan live executions: %w", root, err)
	}
	if k != nil {
		return fmt.Errorf("%w %s: its descendant %s has not finished", ErrNotDeletable, root, k[2:])
	}
	k, err = r.first(tagDelayAt, root)
	if err != nil {
		return fmt.Errorf("delete %s: scan delays: %w", root, err)
	}
	if k != nil {
		return fmt.Errorf("%w %s: its delay %s has not expired", ErrNotDeletable, root, k[2:])
	}
	return nil
}

// runStep has the writer apply one step of a deletion in a batch of its own: apply
// writes to the batch and returns what to publish once it committed.
func (s *PebbleStore) runStep(ctx context.Context, sync bool, apply func(b *pebble.Batch) (func(), error)) error {
	_, err := s.runTimedStep(ctx, sync, apply)
	return err
}

// runTimedStep is runStep, and also returns how long the writer worked on the step.
func (s *PebbleStore) runTimedStep(ctx context.Context, sync bool, apply func(b *pebble.Batch) (func(), error)) (time.Duration, error) {
	req := &commitReq{step: apply, sync: sync, result: make(chan commitResult, 1)}
	err := s.send(ctx, req)
	return req.took, err
}

// applyStep is the writer's side of runStep.
func (s *PebbleStore) applyStep(req *commitReq) {
	began := time.Now()
	r := s.stepResult(req)
	req.took = time.Since(began)
	req.result <- r
}

func (s *PebbleStore) stepResult(req *commitReq) commitResult {
	if err := s.Err(); err != nil {
		return commitResult{err: err}
	}
	batch := s.db.NewBatch()
	defer batch.Close()
	publish, err := req.step(batch)
	if err != nil || batch.Empty() {
		return commitResult{err: err}
	}
	wo := pebble.NoSync
	if req.sync && !s.opts.NoSync {
		wo = pebble.Sync
	}
	started := time.Now()
	err = s.commitBatch(batch, wo)
	if err == nil {
		err = s.Err()
	}
	if err != nil {
		err = s.fail(fmt.Errorf("commit a deletion: %w", err))
		return commitResult{err: err}
	}
	if s.opts.OnGroupCommit != nil {
		s.opts.OnGroupCommit(1, int(batch.Count()), time.Since(started))
	}
	if publish != nil {
		publish()
	}
	return commitResult{}
}

// DeleteTrees deletes the trees of the given top-level executions, each one whole, and
// those whose deletion a crash interrupted. A root that does not exist, is not
// top-level or whose tree has anything unfinished is refused (Deleted.Refused) and left
// as it is. The deletion is bounded: a few hundred roots at a time is the intended use.
func (s *PebbleStore) DeleteTrees(ctx context.Context, roots []string) (Deleted, error) {
	d := Deleted{Refused: map[string]error{}}
	var marked []string
	var p pacer
	for len(roots) > 0 {
		chunk := roots[:min(len(roots), markChunk)]
		roots = roots[len(chunk):]
		took, err := s.runTimedStep(ctx, false, func(b *pebble.Batch) (func(), error) {
			var fresh []string
			r := s.newTreeReader() // inside the step: it sees every commit before it
			defer r.close()
			for _, root := range chunk {
				if s.hidden(root) && IsTopLevel(root) {
					marked = append(marked, root)
					continue
				}
				if err := s.checkFinished(r, root); err != nil {
					d.Refused[root] = err
					continue
				}
				_ = b.Set(deletingKey(root), nil, nil)
				marked = append(marked, root)
				fresh = append(fresh, root)
			}
			return func() {
				s.mu.Lock()
				for _, r := range fresh {
					s.deleting[r] = true
				}
				s.mu.Unlock()
			}, nil
		})
		if err != nil {
			return d, err
		}
		p.step(took)
		if err := p.rest(ctx); err != nil {
			return d, err
		}
	}
	if len(marked) == 0 {
		return d, nil
	}
	// The trees are hidden and frozen: what to delete can be read outside the writer.
	var derived, own [][]byte
	r := s.newTreeReader()
	defer r.close()
	slices.Sort(marked) // the reader's seeks then go forward
	for _, root := range marked {
		p.read()
		n, evs, keys, err := s.treePoints(r, root)
		if err != nil {
			return d, err
		}
		d.Trees++
		d.Executions += n
		d.Events += evs
		derived = append(derived, keys...)
		for _, tag := range treeTags {
			if err := r.scan(tag, root, func(k, _ []byte) error {
				own = append(own, bytes.Clone(k))
				return nil
			}); err != nil {
				return d, fmt.Errorf("delete %s: read its keys: %w", root, err)
			}
		}
		p.worked()
		if err := p.rest(ctx); err != nil {
			return d, err
		}
	}
	// Sorted: Pebble inserts a batch into the memtable's skiplist in the batch's order,
	// reusing the last insert's position, so sorted keys cost a fraction of scattered
	// ones (the inserts are most of a deletion's work).
	slices.SortFunc(derived, bytes.Compare)
	slices.SortFunc(own, bytes.Compare)
	derived, ranges := globalRuns(derived)
	if len(ranges) > 0 {
		took, err := s.runTimedStep(ctx, false, func(b *pebble.Batch) (func(), error) {
			for _, sp := range ranges {
				_ = b.DeleteRange(sp.start, sp.end, nil)
			}
			return func() {
				for _, sp := range ranges {
					s.compact.add(sp.start, sp.end)
				}
			}, nil
		})
		if err != nil {
			return d, err
		}
		p.step(took)
	}
	for _, keys := range [][][]byte{derived, own} { // derived first: see the invariant
		for len(keys) > 0 {
			chunk := keys[:min(len(keys), deleteChunk)]
			keys = keys[len(chunk):]
			took, err := s.runTimedStep(ctx, false, func(b *pebble.Batch) (func(), error) {
				for _, k := range chunk {
					if writtenOnce(k) {
						_ = b.SingleDelete(k, nil)
					} else {
						_ = b.Delete(k, nil)
					}
				}
				return func() {
					// The chunk is sorted: one range per table (its first byte) covers it.
					for i := 0; i < len(chunk); {
						j := i
						for j+1 < len(chunk) && chunk[j+1][0] == chunk[i][0] {
							j++
						}
						s.compact.add(chunk[i], append(bytes.Clone(chunk[j]), 0))
						i = j + 1
					}
				}, nil
			})
			if err != nil {
				return d, err
			}
			p.step(took)
			if err := p.rest(ctx); err != nil {
				return d, err
			}
		}
	}
	err := s.runStep(ctx, true, func(b *pebble.Batch) (func(), error) {
		for _, root := range marked {
			_ = b.Delete(deletingKey(root), nil)
		}
		_ = b.Set(globalLastKey, binary.BigEndian.AppendUint64(nil, s.global.last.Load()), nil)
		return func() {
			s.mu.Lock()
			for _, r := range marked {
				delete(s.deleting, r)
			}
			s.mu.Unlock()
		}, nil
	})
	return d, err
}

// A batch of trees created together holds long runs of consecutive global positions
// (their events were committed together), and the g keys of such a run are all the
// g keys between its ends: one range deletion removes them, where point deletions
// would write a tombstone for each (a quarter of a tree's keys). Only long runs, and
// only a few per DeleteTrees: range tombstones in the memtable cost every read a little
// (see the invariant), so they must stay few.
const (
	minGlobalRun    = 64
	maxGlobalRanges = 4
)

// globalRuns takes the longest runs of consecutive positions (at most maxGlobalRanges,
// each of minGlobalRun or more) out of the g keys of sorted, and returns the keys left
// and the ranges that delete the runs.
func globalRuns(sorted [][]byte) (rest [][]byte, ranges []span) {
	lo, _ := slices.BinarySearchFunc(sorted, []byte{tagGlobal}, bytes.Compare)
	hi, _ := slices.BinarySearchFunc(sorted, []byte{tagGlobal + 1}, bytes.Compare)
	pos := func(i int) uint64 { return binary.BigEndian.Uint64(sorted[i][2:]) }
	type run struct{ from, to int } // sorted[from:to]
	var runs []run
	for i := lo; i < hi; {
		j := i + 1
		for j < hi && pos(j) == pos(j-1)+1 {
			j++
		}
		if j-i >= minGlobalRun {
			runs = append(runs, run{i, j})
		}
		i = j
	}
	if len(runs) == 0 {
		return sorted, nil
	}
	slices.SortFunc(runs, func(a, b run) int { return (b.to - b.from) - (a.to - a.from) })
	runs = runs[:min(len(runs), maxGlobalRanges)]
	slices.SortFunc(runs, func(a, b run) int { return a.from - b.from })
	rest = make([][]byte, 0, len(sorted))
	at := 0
	for _, r := range runs {
		rest = append(rest, sorted[at:r.from]...)
		ranges = append(ranges, span{sorted[r.from], globalKey(pos(r.to-1) + 1)})
		at = r.to
	}
	return append(rest, sorted[at:]...), ranges
}

// pacer makes a deletion rest after its work, a quarter as long as the work took: a
// deletion takes at most about four fifths of a core and of the writer's time, so that on
// a small machine the foreground's commits and runs are slowed by a pass, not stalled
// behind it. The work is the deletion's reads and the writer's time on its steps, not
// the waits for the writer behind foreground commits (those cost no CPU, and counting
// them would slow a pass most when the foreground is busiest, for nothing).
type pacer struct {
	work  time.Duration // since the last rest
	since time.Time     // start of the reads in progress
}

// read starts a piece of reading; worked ends it.
func (p *pacer) read()   { p.since = time.Now() }
func (p *pacer) worked() { p.work += time.Since(p.since) }

// step counts a writer step's work.
func (p *pacer) step(took time.Duration) { p.work += took }

func (p *pacer) rest(ctx context.Context) error {
	if p.work < time.Millisecond {
		return nil // pieces add up until a rest is worth a timer (whose resolution is coarse)
	}
	t := time.NewTimer(p.work / 4)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
	}
	p.work = 0
	return nil
}

// treePoints reads a hidden tree's keys that are not under its prefixes, and counts its
// executions and events.
func (s *PebbleStore) treePoints(r *treeReader, root string) (executions, evs int, keys [][]byte, err error) {
	err = r.scan(tagState, root, func(k, v []byte) error {
		st := &pb.ExecutionState{}
		if err := proto.Unmarshal(v, st); err != nil {
			return fmt.Errorf("decode state %q: %w", lastPart(k), err)
		}
		executions++
		keys = append(keys, createdKey(st.CreatedAt, st.ExecutionId))
		if st.ExecutionId == root && st.Status == pb.Status_STATUS_FINISHED {
			keys = append(keys, finishedKey(st.ComponentId, st.FinishedAt, root))
		}
		if st.ForkedFrom != "" {
			// A fork is a tree of its own; its original, in another, lists it.
			keys = append(keys, forkKey(st.ForkedFrom, st.ExecutionId))
		}
		return nil
	})
	if err != nil {
		return 0, 0, nil, fmt.Errorf("delete %s: read states: %w", root, err)
	}
	err = r.scan(tagPosition, root, func(k, v []byte) error {
		if len(v) == 8 {
			keys = append(keys, globalKey(binary.BigEndian.Uint64(v)))
		}
		evs++
		return nil
	})
	if err != nil {
		return 0, 0, nil, fmt.Errorf("delete %s: read positions: %w", root, err)
	}
	return executions, evs, keys, nil
}

// FinishedTrees calls fn for every top-level execution whose whole tree has finished,
// component by component, oldest root first: those whose root finished before
// cutoff(its component ID), and whose newest finish is before it too. Trees whose
// deletion was interrupted come first, whatever their time. fn returns false to stop.
func (s *PebbleStore) FinishedTrees(ctx context.Context, cutoff func(componentID string) time.Time, fn func(FinishedTree) (bool, error)) error {
	s.mu.RLock()
	var marked []string
	for r := range s.deleting {
		marked = append(marked, r)
	}
	s.mu.RUnlock()
	for _, r := range marked {
		if more, err := fn(FinishedTree{Root: r, Deleting: true}); err != nil || !more {
			return err
		}
	}
	prefix := []byte{tagFinished, 0}
	open := func() (*pebble.Iterator, *treeReader, error) {
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
		if err != nil {
			return nil, nil, fmt.Errorf("scan finished executions: %w", err)
		}
		return it, s.newTreeReader(), nil
	}
	it, r, err := open()
	if err != nil {
		return err
	}
	defer func() {
		if it != nil {
			it.Close()
			r.close()
		}
	}()
	listed := 0
	for valid := it.First(); valid; {
		k := it.Key()
		rest := k[len(prefix):]
		i := bytes.IndexByte(rest, 0)
		if i < 0 || len(rest) < i+1+8+1 {
			return fmt.Errorf("scan finished executions: malformed key %q", k)
		}
		comp := string(rest[:i])
		compPrefix := append(append([]byte(nil), prefix...), rest[:i+1]...)
		before := cutoff(comp).UnixNano()
		for valid && bytes.HasPrefix(it.Key(), compPrefix) {
			if err := ctx.Err(); err != nil {
				return err
			}
			k := it.Key()
			at := int64(binary.BigEndian.Uint64(k[len(compPrefix):]))
			if at >= before {
				break
			}
			root := lastPart(k)
			t, ok, err := s.treeSummary(r, root, comp)
			if err != nil {
				return err
			}
			if !ok || t.FinishedAt.UnixNano() >= before {
				valid = it.Next()
				continue
			}
			if more, err := fn(t); err != nil || !more {
				return err
			}
			if listed++; listed%reopenEvery == 0 {
				// An iterator pins the memtables and files it began with: one kept for a
				// whole pass (fn deletes what it lists) would hold every memtable flushed
				// meanwhile. Start afresh after what was listed.
				after := bytes.Clone(k)
				it.Close()
				r.close()
				if it, r, err = open(); err != nil {
					return err
				}
				if valid = it.SeekGE(after); valid && bytes.Equal(it.Key(), after) {
					valid = it.Next()
				}
				continue
			}
			valid = it.Next()
		}
		valid = it.SeekGE(prefixEnd(compPrefix))
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("scan finished executions: %w", err)
	}
	return nil
}

// reopenEvery is how many trees FinishedTrees lists before it makes its iterators
// again (a retention batch's worth).
const reopenEvery = 256

// treeSummary returns a tree's summary, ok false if anything in it is unfinished (or it
// is being deleted).
func (s *PebbleStore) treeSummary(r *treeReader, root, comp string) (FinishedTree, bool, error) {
	t := FinishedTree{Root: root, ComponentID: comp}
	if s.hidden(root) {
		return t, false, nil
	}
	for _, tag := range []byte{tagLive, tagDelayAt} {
		k, err := r.first(tag, root)
		if err != nil {
			return t, false, fmt.Errorf("check the tree of %s: %w", root, err)
		}
		if k != nil {
			return t, false, nil
		}
	}
	var newest int64
	unfinished := errors.New("unfinished")
	err := r.scan(tagState, root, func(k, v []byte) error {
		st := &pb.ExecutionState{}
		if err := proto.Unmarshal(v, st); err != nil {
			return fmt.Errorf("decode state %q: %w", lastPart(k), err)
		}
		if st.Status != pb.Status_STATUS_FINISHED {
			return unfinished
		}
		newest = max(newest, st.FinishedAt)
		t.Executions++
		return nil
	})
	if errors.Is(err, unfinished) {
		return t, false, nil
	}
	if err != nil {
		return t, false, fmt.Errorf("check the tree of %s: %w", root, err)
	}
	t.FinishedAt = time.Unix(0, newest)
	return t, t.Executions > 0, nil
}

// compactSpans collects, per table, the smallest and the largest key deleted since the
// last CompactDeleted: the range to compact. Trees deleted together are near each other
// in every table (ULIDs and creation times sort by time, positions by commit), so the
// range is mostly what was deleted.
type compactSpans struct {
	mu sync.Mutex
	m  map[byte][2][]byte
}

// add records that keys in [start, end) were deleted.
func (c *compactSpans) add(start, end []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[byte][2][]byte{}
	}
	sp, ok := c.m[start[0]]
	if !ok || bytes.Compare(start, sp[0]) < 0 {
		sp[0] = bytes.Clone(start)
	}
	if !ok || bytes.Compare(end, sp[1]) > 0 {
		sp[1] = bytes.Clone(end)
	}
	c.m[start[0]] = sp
}

// CompactDeleted compacts the key ranges that deletions emptied since it last ran, so
// that the space they held comes back to the file system.
func (s *PebbleStore) CompactDeleted(ctx context.Context) error {
	s.compact.mu.Lock()
	spans := s.compact.m
	s.compact.m = nil
	s.compact.mu.Unlock()
	for _, sp := range spans {
		// Not parallelized: on a small machine its subcompactions would take every core
		// from the foreground.
		if err := s.db.Compact(ctx, sp[0], sp[1], false); err != nil {
			return fmt.Errorf("compact deleted range %q: %w", sp[0], err)
		}
	}
	return nil
}

// Background is the work Pebble has done in the background since the store opened:
// memtable flushes and compactions, and the bytes they wrote. A retention pass reports
// what it caused (its tombstones are flushed and compacted like any write).
type Background struct {
	Flushes, Compactions int64
	FlushedBytes         uint64
	CompactedBytes       uint64
}

// Background returns the store's background work so far. It asks Pebble for its
// metrics, which takes its locks: once per pass, not on a hot path.
func (s *PebbleStore) Background() Background {
	m := s.db.Metrics()
	b := Background{Flushes: m.Flush.Count, Compactions: m.Compact.Count}
	for _, l := range m.Levels {
		b.FlushedBytes += l.TableBytesFlushed
		b.CompactedBytes += l.TableBytesCompacted
	}
	return b
}
