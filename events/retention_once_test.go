package events

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/wal"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// walOps counts, per key, the Sets, Deletes and SingleDeletes in the WAL files of a
// store, read after each Close (Open may flush what it replayed and delete the WAL):
// with a store small enough that no memtable fills, every write is seen once.
type walOps struct {
	sets, dels, singleDels map[string]int
	rangeDels              map[[2]string]int // [start, end)
	read                   map[wal.NumWAL]bool
}

func newWALOps() *walOps {
	return &walOps{sets: map[string]int{}, dels: map[string]int{}, singleDels: map[string]int{}, rangeDels: map[[2]string]int{}, read: map[wal.NumWAL]bool{}}
}

// add counts the writes of the WALs of the closed store in dir not read before.
func (ops *walOps) add(t *testing.T, dir string) {
	t.Helper()
	logs, err := wal.Scan(wal.Dir{FS: vfs.Default, Dirname: dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(logs) == 0 {
		t.Fatal("no WAL in the store")
	}
	for _, l := range logs {
		if ops.read[l.Num] {
			continue
		}
		ops.read[l.Num] = true
		rr := l.OpenForRead()
		for {
			r, _, err := rr.NextRecord()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					t.Fatalf("read WAL %s: %v", l, err)
				}
				break
			}
			data, err := io.ReadAll(r)
			if err != nil {
				t.Fatalf("read WAL %s: %v", l, err)
			}
			var b pebble.Batch
			if err := b.SetRepr(data); err != nil {
				t.Fatalf("decode a batch of WAL %s: %v", l, err)
			}
			br := b.Reader()
			for {
				kind, k, v, ok, err := br.Next()
				if err != nil {
					t.Fatalf("decode a batch of WAL %s: %v", l, err)
				}
				if !ok {
					break
				}
				switch kind {
				case pebble.InternalKeyKindSet:
					ops.sets[string(k)]++
				case pebble.InternalKeyKindDelete:
					ops.dels[string(k)]++
				case pebble.InternalKeyKindSingleDelete:
					ops.singleDels[string(k)]++
				case pebble.InternalKeyKindRangeDelete:
					ops.rangeDels[[2]string{string(k), string(v)}]++
				default:
					t.Fatalf("WAL %s: a %v of %q: the store writes only sets and deletions", l, kind, k)
				}
			}
		}
		rr.Close()
	}
}

// TestWrittenOnce checks the invariant retention's SingleDeletes rely on (writtenOnce):
// through trees with children, delays, responses delivered again, log lines and
// snapshots, a deletion and a reopening, no key of a written-once table is Set twice; and
// the deletion removed each of them with a SingleDelete, every other key of the tree
// with a Delete.
func TestWrittenOnce(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := gOpen(t, dir)
	kept, _ := rTree(t, s, 100, true)
	root, child := rTree(t, s, 200, true)
	open, _ := rTree(t, s, 300, false)
	// Responses delivered again (an at-least-once sender): to a live execution, to a
	// finished one. Neither may write its response or dedupe key again.
	again := func(to string, at int64) *Tx {
		return &Tx{Responses: []ResponseAppend{
			{ExecutionID: to, Response: &pb.Response{CreatedAt: at, JoinSetId: "g:1", Kind: &pb.Response_Delay{Delay: &pb.DelayFinished{DelayId: DelayID(to, "g:1", 2)}}}},
			{ExecutionID: to, Response: &pb.Response{CreatedAt: at, JoinSetId: "g:1", Kind: &pb.Response_Child{Child: &pb.ChildFinished{ChildExecutionId: ChildExecutionID(to, "g:1", 1), Result: []byte(`{"ok":2}`)}}}},
		}}
	}
	gCommit(t, s, again(open, 301))
	gCommit(t, s, again(open, 302))
	gCommit(t, s, again(kept, 103))
	// A reopening (Open writes its own keys: the finished index, the chain mark).
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ops := newWALOps()
	ops.add(t, dir)
	s = gOpen(t, dir)
	gCommit(t, s, again(root, 203))
	if d, err := s.DeleteTrees(ctx, []string{root}); err != nil || d.Trees != 1 {
		t.Fatalf("delete %s: %+v %v", root, d, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	ops.add(t, dir)
	for k, n := range ops.sets {
		if writtenOnce([]byte(k)) && n > 1 {
			t.Errorf("%q is in a written-once table (writtenOnce) but was Set %d times: SingleDelete would bring its first value back", k, n)
		}
	}
	ulid := strings.TrimPrefix(root, TopLevelPrefix)
	treeKey := func(k string) bool {
		if k[0] == tagGlobal { // its value names the execution: find it through the tree's q keys
			return false
		}
		return strings.Contains(k, ulid)
	}
	singled := map[byte]int{}
	deleted := map[string]bool{}
	for k := range ops.dels {
		deleted[k] = true
	}
	for k := range ops.singleDels {
		deleted[k] = true
	}
	for k := range deleted {
		if !treeKey(k) || strings.ContainsRune("lptwy", rune(k[0])) {
			continue // not the deleted tree's, or deleted during its life
		}
		if ops.dels[k] > 0 && ops.singleDels[k] > 0 {
			t.Errorf("%q was both Deleted and SingleDeleted", k)
		}
		switch once := writtenOnce([]byte(k)); {
		case once && ops.singleDels[k] == 0:
			t.Errorf("%q (written once) was deleted with Delete, want SingleDelete", k)
		case !once && ops.singleDels[k] > 0:
			t.Errorf("%q (not written once) was deleted with SingleDelete, want Delete", k)
		case once:
			singled[k[0]]++
		}
	}
	globals := 0
	for k := range ops.singleDels {
		if k[0] == tagGlobal {
			globals++
		}
	}
	// The deleted tree's 8 events (the root's 6, the child's 2) each have a g and a q key.
	if globals != 8 {
		t.Errorf("%d global keys SingleDeleted, want the tree's 8", globals)
	}
	for _, tag := range []byte{tagEvent, tagPosition, tagResponse, tagDedupe, tagCreated, tagChild, tagLog} {
		if singled[tag] == 0 {
			t.Errorf("no key of table %c of the deleted tree was SingleDeleted", tag)
		}
	}
	if ops.dels[string(stateKey(root))] == 0 || ops.dels[string(stateKey(child))] == 0 {
		t.Errorf("the deleted tree's states were not deleted with Delete")
	}
}

func TestGlobalRuns(t *testing.T) {
	var sorted [][]byte
	sorted = append(sorted, createdKey(5, "E_a"), dedupeKey("E_a", "E_a.b"))
	next := uint64(1)
	want := map[uint64]bool{} // the first positions of the runs to be ranges
	for _, n := range []int{70, 10, 100, 64, 63, 65, 200} {
		if n == 70 || n == 100 || n == 65 || n == 200 {
			want[next] = true
		}
		for range n {
			sorted = append(sorted, globalKey(next))
			next++
		}
		next++ // a gap: a position of another tree
	}
	sorted = append(sorted, positionKey("E_a", 1))
	slices.SortFunc(sorted, bytes.Compare)
	rest, ranges := globalRuns(sorted)
	if len(ranges) != maxGlobalRanges {
		t.Fatalf("%d ranges, want the %d longest runs", len(ranges), maxGlobalRanges)
	}
	covered := 0
	for i, sp := range ranges {
		from := binary.BigEndian.Uint64(sp.start[2:])
		to := binary.BigEndian.Uint64(sp.end[2:])
		if !want[from] {
			t.Errorf("range %d starts at position %d, not at one of the 4 longest runs", i, from)
		}
		if i > 0 && bytes.Compare(ranges[i-1].end, sp.start) > 0 {
			t.Errorf("ranges out of order: %q then %q", ranges[i-1].start, sp.start)
		}
		covered += int(to - from)
	}
	if covered != 70+100+65+200 {
		t.Errorf("the ranges cover %d positions, want %d", covered, 70+100+65+200)
	}
	if len(rest)+covered != len(sorted) {
		t.Fatalf("%d keys left + %d in ranges, want %d", len(rest), covered, len(sorted))
	}
	for _, k := range rest {
		for _, sp := range ranges {
			if bytes.Compare(k, sp.start) >= 0 && bytes.Compare(k, sp.end) < 0 {
				t.Errorf("%q left as a point but inside range [%q, %q)", k, sp.start, sp.end)
			}
		}
	}
	if !slices.IsSortedFunc(rest, bytes.Compare) {
		t.Error("the keys left are not sorted")
	}
	short := [][]byte{globalKey(1), globalKey(2), stateKey("E_a")}
	if rest, ranges := globalRuns(short); len(ranges) != 0 || len(rest) != 3 {
		t.Errorf("short run: %d ranges, %d keys left; want none and 3", len(ranges), len(rest))
	}
}

// TestDeleteTreesGlobalRange: trees created one after another have consecutive global
// positions, whose g keys go in one range deletion; a position of a kept execution in
// the middle of deleted trees' positions ends a run, and keeps its g key.
func TestDeleteTreesGlobalRange(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := gOpen(t, dir)
	var roots []string
	for i := range 15 { // 8 events each: 5 trees (40 positions), then 10 (80)
		if i == 5 {
			gCommit(t, s, gAppend(NewExecutionID(time.Unix(0, 150)), 0, gCreated(150)))
		}
		root, _ := rTree(t, s, int64(200+i), true)
		roots = append(roots, root)
	}
	kept, _ := rTree(t, s, 400, true)
	before, _, err := s.EventsFrom(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := s.DeleteTrees(ctx, roots); err != nil || d.Trees != 15 || d.Events != 120 {
		t.Fatalf("delete: %+v %v", d, err)
	}
	for _, root := range roots {
		if left := treeKeys(t, s, root); len(left) != 0 {
			t.Fatalf("keys of deleted %s left: %q", root, left)
		}
	}
	after, _, err := s.EventsFrom(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	// What is left of the global log: the kept execution between the runs and the kept
	// tree, at their positions.
	var want []PositionedEvent
	for _, e := range before {
		if !slices.Contains(roots, treeRoot(e.ExecutionID)) {
			want = append(want, e)
		}
	}
	if len(after) != len(want) || len(want) != 1+8 {
		t.Fatalf("global log after the deletion: %d events, want %d (1 + the kept tree's 8)", len(after), len(want))
	}
	for i := range want {
		if after[i].Position != want[i].Position || after[i].ExecutionID != want[i].ExecutionID {
			t.Fatalf("global log after the deletion, #%d: %s at %d, want %s at %d", i, after[i].ExecutionID, after[i].Position, want[i].ExecutionID, want[i].Position)
		}
	}
	if after[0].Skipped != 40 || after[1].Skipped != 80 {
		t.Fatalf("skipped positions before the events left: %d and %d, want 40 and 80", after[0].Skipped, after[1].Skipped)
	}
	if treeRoot(after[len(after)-1].ExecutionID) != kept {
		t.Fatalf("the last event left is of %s, want the kept tree %s", after[len(after)-1].ExecutionID, kept)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ops := newWALOps()
	ops.add(t, dir)
	if len(ops.rangeDels) != 1 {
		t.Fatalf("%d range deletions, want 1 (the 10 trees' 80 positions; the 5 before the kept one hold 40)", len(ops.rangeDels))
	}
	for r := range ops.rangeDels {
		from := binary.BigEndian.Uint64([]byte(r[0])[2:])
		to := binary.BigEndian.Uint64([]byte(r[1])[2:])
		if to-from != 80 {
			t.Fatalf("the range deletion covers positions [%d, %d), want 80 of them", from, to)
		}
	}
}
