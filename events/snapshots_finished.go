package events

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/obelisk-go/obelisk/internal/clip"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// A finished execution is never resumed: its snapshots are dropped by the commit that
// finishes it (finishedSnapshotOps), and a snapshot of an execution that has finished
// (a run's, committed after the cancellation that ended it) is not stored
// (unfinishedSnapshots). Retention would otherwise keep them as long as the execution.

// finishedSnapshotOps returns the deletions of the stored snapshots (index entries and
// blobs) of execution id.
func (s *PebbleStore) finishedSnapshotOps(id string) ([]kv, error) {
	prefix := append(key(tagSnapshot, []byte(id)), 0) // not the keys of its children (id.<join set>_<n>)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
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
	return ops, nil
}

// unfinishedSnapshots returns puts without the snapshots of executions that have
// finished (in overlay, the group's states after this tx's appends, or stored).
func (g *groupState) unfinishedSnapshots(puts []SnapshotPut, overlay map[string]*pb.ExecutionState) ([]SnapshotPut, error) {
	keep := puts[:0:0]
	for _, p := range puts {
		st := overlay[p.ExecutionID]
		if st == nil {
			var err error
			if st, err = g.get(p.ExecutionID); err != nil {
				return nil, fmt.Errorf("store snapshot of %s: %w", clip.String(p.ExecutionID), err)
			}
		}
		if st.GetStatus() != pb.Status_STATUS_FINISHED {
			keep = append(keep, p) // a missing execution: snapshotOps refuses it
		}
	}
	return keep, nil
}
