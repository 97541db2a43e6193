package events

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/obelisk-go/obelisk/internal/clip"
)

// A finished execution is never resumed: its snapshots are dropped by the commit that
// finishes it (finishedSnapshotOps), and a snapshot of an execution that has finished
// (a run's, committed after the cancellation that ended it) is not stored
// (snapshotOps). Retention would otherwise keep them as long as the execution.

// finishedSnapshotOps returns the deletions of the snapshots (index entries and blobs) of
// execution id: the stored ones, and those an earlier Tx of the group put (still only in
// the batch; deleting a key twice is harmless).
func (g *groupState) finishedSnapshotOps(id string) ([]kv, error) {
	prefix := append(key(tagSnapshot, []byte(id)), 0) // not the keys of its children (id.<join set>_<n>)
	it, err := g.s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, fmt.Errorf("drop the snapshots of %s: %w", clip.String(id), err)
	}
	defer it.Close()
	var ops []kv
	for ok := it.First(); ok; ok = it.Next() {
		ops = append(ops, kv{k: append([]byte(nil), it.Key()...), del: true})
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("drop the snapshots of %s: %w", clip.String(id), err)
	}
	for _, e := range g.snaps[id] {
		ops = append(ops, kv{k: snapshotIndexKey(id, e.Position), del: true}, kv{k: snapshotBlobKey(id, e.Digest), del: true})
	}
	return ops, nil
}
