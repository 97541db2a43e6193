package events

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

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
	read                   map[wal.NumWAL]bool
}

func newWALOps() *walOps {
	return &walOps{sets: map[string]int{}, dels: map[string]int{}, singleDels: map[string]int{}, read: map[wal.NumWAL]bool{}}
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
				kind, k, _, ok, err := br.Next()
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
