package events

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	"github.com/obelisk-go/obelisk/internal/clip"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// Workflow memory snapshots (the actors take them; the store keeps them with their
// execution, so that retention's tree deletion drops them with it):
//
//	n\0<id>\0b\0<digest>        a snapshot's blob, content-addressed (sha256, hex)
//	n\0<id>\0i\0<position:4>   index: the snapshot taken at history position -> SnapshotEntry
//
// An execution keeps its MaxSnapshotsPerExecution newest snapshots: writing one deletes
// the older ones, blobs included. The keys are <tag>\0<id>\0..., so they are among the
// keys of the execution's tree (treeTags).
const tagSnapshot = 'n'

// MaxSnapshotsPerExecution is how many snapshots an execution keeps: the newest, and
// the one before it in case the newest does not fit the history any more.
const MaxSnapshotsPerExecution = 2

// SnapshotEntry describes one stored snapshot of an execution.
type SnapshotEntry struct {
	// Position is the number of history events the snapshot was taken after.
	Position uint32
	// Digest is the sha256 of the blob, hex.
	Digest string
	// Prefix is a digest of the history up to Position, computed by the taker; a
	// snapshot whose prefix no longer matches the history must not be used.
	Prefix []byte
	// ComponentID is the component the execution ran on when it was taken.
	ComponentID string
}

// SnapshotPut stores a snapshot of an execution (Tx.Snapshots).
type SnapshotPut struct {
	ExecutionID string
	Entry       SnapshotEntry // Digest is set by the store
	Blob        []byte
}

func snapshotIndexPrefix(id string) []byte { return key(tagSnapshot, []byte(id), []byte("i")) }
func snapshotIndexKey(id string, pos uint32) []byte {
	return key(tagSnapshot, []byte(id), []byte("i"), u32(pos))
}
func snapshotBlobKey(id, digest string) []byte {
	return key(tagSnapshot, []byte(id), []byte("b"), []byte(digest))
}

func encodeSnapshotEntry(e SnapshotEntry) []byte {
	var b []byte
	b = binary.AppendUvarint(b, uint64(e.Position))
	for _, s := range [][]byte{[]byte(e.Digest), e.Prefix, []byte(e.ComponentID)} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

func decodeSnapshotEntry(b []byte) (SnapshotEntry, error) {
	r := logReader{b: b}
	e := SnapshotEntry{Position: uint32(r.uvarint())}
	e.Digest = r.str()
	e.Prefix = []byte(r.str())
	e.ComponentID = r.str()
	return e, r.done()
}

// snapshotOps returns the writes that store tx's snapshots and drop the ones they
// supersede. A snapshot of an execution that does not exist (or is being deleted) is
// refused, as a log line is.
func (g *groupState) snapshotOps(puts []SnapshotPut, overlay map[string]*pb.ExecutionState) ([]kv, error) {
	var ops []kv
	for _, p := range puts {
		if overlay[p.ExecutionID] == nil {
			st, err := g.get(p.ExecutionID)
			if err != nil {
				return nil, fmt.Errorf("store snapshot of %s: %w", clip.String(p.ExecutionID), err)
			}
			if st == nil {
				return nil, fmt.Errorf("store snapshot of %s: %w", clip.String(p.ExecutionID), ErrNotFound)
			}
		}
		sum := sha256.Sum256(p.Blob)
		e := p.Entry
		e.Digest = hex.EncodeToString(sum[:])
		old, err := g.s.snapshotEntries(p.ExecutionID)
		if err != nil {
			return nil, err
		}
		keep := []SnapshotEntry{e}
		for _, o := range old {
			if o.Position != e.Position && len(keep) < MaxSnapshotsPerExecution {
				keep = append(keep, o)
			}
		}
		for _, o := range old {
			kept := slices.ContainsFunc(keep[1:], func(k SnapshotEntry) bool { return k.Position == o.Position })
			if kept {
				continue
			}
			ops = append(ops, kv{k: snapshotIndexKey(p.ExecutionID, o.Position), del: true})
			if !slices.ContainsFunc(keep, func(k SnapshotEntry) bool { return k.Digest == o.Digest }) {
				ops = append(ops, kv{k: snapshotBlobKey(p.ExecutionID, o.Digest), del: true})
			}
		}
		ops = append(ops,
			kv{k: snapshotBlobKey(p.ExecutionID, e.Digest), v: p.Blob},
			kv{k: snapshotIndexKey(p.ExecutionID, e.Position), v: encodeSnapshotEntry(e)})
	}
	return ops, nil
}

// snapshotEntries returns an execution's snapshot entries, newest (highest position)
// first.
func (s *PebbleStore) snapshotEntries(id string) ([]SnapshotEntry, error) {
	prefix := snapshotIndexPrefix(id)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, fmt.Errorf("snapshots of %s: %w", clip.String(id), err)
	}
	defer it.Close()
	var out []SnapshotEntry
	for ok := it.Last(); ok; ok = it.Prev() {
		e, err := decodeSnapshotEntry(it.Value())
		if err != nil {
			return nil, fmt.Errorf("snapshot entry %q of %s: %w", it.Key(), clip.String(id), err)
		}
		out = append(out, e)
	}
	return out, it.Error()
}

// Snapshots returns the snapshot entries of an execution, newest first.
func (s *PebbleStore) Snapshots(ctx context.Context, id string) ([]SnapshotEntry, error) {
	if err := s.Err(); err != nil {
		return nil, err
	}
	if s.hidden(id) {
		return nil, nil
	}
	return s.snapshotEntries(id)
}

// ErrSnapshotCorrupt is wrapped by SnapshotBlob's error for a blob whose digest does not
// match its contents.
var ErrSnapshotCorrupt = errors.New("snapshot blob does not match its digest")

// SnapshotBlob returns the blob of an execution's snapshot entry, checked against its
// digest (ErrNotFound wrapped if missing, ErrSnapshotCorrupt if it does not match).
func (s *PebbleStore) SnapshotBlob(ctx context.Context, id string, e SnapshotEntry) ([]byte, error) {
	if err := s.Err(); err != nil {
		return nil, err
	}
	if s.hidden(id) {
		return nil, fmt.Errorf("snapshot %s of %s: %w", e.Digest, clip.String(id), ErrNotFound)
	}
	v, closer, err := s.db.Get(snapshotBlobKey(id, e.Digest))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, fmt.Errorf("snapshot %s of %s: %w", e.Digest, clip.String(id), ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot %s of %s: %w", e.Digest, clip.String(id), err)
	}
	blob := bytes.Clone(v)
	closer.Close()
	if sum := sha256.Sum256(blob); hex.EncodeToString(sum[:]) != e.Digest {
		return nil, fmt.Errorf("snapshot %s of %s: %w", e.Digest, clip.String(id), ErrSnapshotCorrupt)
	}
	return blob, nil
}
