package events

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
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
	// snapshot whose prefix no longer matches the history must not be used. Only
	// snapshots stored before Version existed have one: newer ones are checked by their
	// Link, which costs one read instead of hashing the whole prefix.
	Prefix []byte
	// ComponentID is the component the execution ran on when it was taken.
	ComponentID string
	// Version is the length of the execution's event stream when the snapshot was
	// taken: the history up to Position is in the events before it, and the events from
	// it on are all a run resumed from the snapshot has to read. 0 in snapshots stored
	// before it existed.
	Version uint32
	// Link is the hash chain link (chain.go) of event Version-1, set by the store: it
	// covers every event up to it, so while that event carries it, the history up to
	// the snapshot is the one it was taken after.
	Link []byte
	// Current is set by Snapshots: event Version-1 carries Link. Always false when
	// Version is 0 (check Prefix).
	Current bool
	// Check is the CRC-32C of the blob, set by the store with Version (0 without):
	// SnapshotBlob checks it instead of hashing the blob again with SHA-256.
	Check uint32
}

// SnapshotPut stores a snapshot of an execution (Tx.Snapshots).
type SnapshotPut struct {
	ExecutionID string
	Entry       SnapshotEntry // Digest is set by the store
	Blob        []byte

	// The blob's SHA-256 (hex) and CRC-32C, computed by Commit before the Tx reaches
	// the writer (prepareSnapshots).
	digest   string
	check    uint32
	prepared bool
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
	if e.Version > 0 {
		// Appended: an entry without them is one stored before they existed.
		b = binary.AppendUvarint(b, uint64(e.Version))
		b = binary.AppendUvarint(b, uint64(len(e.Link)))
		b = append(b, e.Link...)
		b = binary.AppendUvarint(b, uint64(e.Check))
	}
	return b
}

func decodeSnapshotEntry(b []byte) (SnapshotEntry, error) {
	r := logReader{b: b}
	e := SnapshotEntry{Position: uint32(r.uvarint())}
	e.Digest = r.str()
	e.Prefix = []byte(r.str())
	e.ComponentID = r.str()
	if len(r.b) > 0 && !r.bad {
		e.Version = uint32(r.uvarint())
		e.Link = []byte(r.str())
		e.Check = uint32(r.uvarint())
	}
	return e, r.done()
}

// eventLink returns the link of event v-1 of the stream of st (whose stored state or
// the group's overlay it is).
func (g *groupState) eventLink(st *pb.ExecutionState, v uint32) ([]byte, error) {
	switch {
	case v == 0 || v > st.NextVersion:
		return nil, fmt.Errorf("version %d is not within the stream's %d events", v, st.NextVersion)
	case v == st.NextVersion && len(st.EventChain) > 0:
		return st.EventChain, nil
	}
	return storedEventLink(g.s.db, st.ExecutionId, v-1)
}

// storedEventLink returns the link of the stored event v of execution id.
func storedEventLink(r pebble.Reader, id string, v uint32) ([]byte, error) {
	val, closer, err := r.Get(eventKey(id, v))
	if err != nil {
		return nil, fmt.Errorf("event %d: %w", v, err)
	}
	defer closer.Close()
	_, link, linked, err := splitLink(val)
	if err == nil && !linked {
		err = errors.New("not linked (stored before hash chains)")
	}
	if err != nil {
		return nil, fmt.Errorf("event %d: %w", v, err)
	}
	return bytes.Clone(link), nil
}

// prepareSnapshots computes the digest and the CRC-32C of each blob of tx's snapshots,
// on the committer's goroutine: hashing a blob of megabytes would hold up the writer,
// and every commit of its group with it.
// again prepares them all anew (Commit: the caller may have changed a blob since an
// earlier commit of the Tx).
func prepareSnapshots(tx *Tx, again bool) {
	for i := range tx.Snapshots {
		p := &tx.Snapshots[i]
		if p.prepared && !again {
			continue
		}
		sum := sha256.Sum256(p.Blob)
		p.digest = hex.EncodeToString(sum[:])
		p.check = crc32.Checksum(p.Blob, castagnoli)
		p.prepared = true
	}
}

// snapshotOps returns the writes that store puts (a Tx's snapshots, prepared; those of
// finished executions left out) and drop the ones they
// supersede, and the index of each execution they changed, which the group adopts if
// the Tx is committed (groupState.snaps): the snapshots of the Txs before it in its
// group are not in the database yet, and must count against MaxSnapshotsPerExecution
// too. A snapshot of an execution that does not exist (or is being deleted) is refused,
// as a log line is.
func (g *groupState) snapshotOps(puts []SnapshotPut, overlay map[string]*pb.ExecutionState) ([]kv, map[string][]SnapshotEntry, error) {
	if len(puts) == 0 {
		return nil, nil, nil
	}
	var ops []kv
	index := map[string][]SnapshotEntry{}
	for _, p := range puts {
		st := overlay[p.ExecutionID]
		if st == nil {
			var err error
			if st, err = g.get(p.ExecutionID); err != nil {
				return nil, nil, fmt.Errorf("store snapshot of %s: %w", clip.String(p.ExecutionID), err)
			}
			if st == nil {
				return nil, nil, fmt.Errorf("store snapshot of %s: %w", clip.String(p.ExecutionID), ErrNotFound)
			}
		}
		if st.Status == pb.Status_STATUS_FINISHED {
			continue // never resumed: not stored (snapshots_finished.go)
		}
		e := p.Entry
		e.Digest = p.digest
		e.Current, e.Check = false, 0
		if e.Version > 0 {
			e.Check = p.check
			link, err := g.eventLink(st, e.Version)
			if err != nil {
				return nil, nil, fmt.Errorf("store snapshot of %s at version %d: %w", clip.String(p.ExecutionID), e.Version, err)
			}
			e.Link = link
		}
		old, ok := index[p.ExecutionID]
		if !ok {
			var err error
			if old, err = g.snapshotIndex(p.ExecutionID); err != nil {
				return nil, nil, err
			}
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
		slices.SortFunc(keep, func(a, b SnapshotEntry) int { return cmp.Compare(b.Position, a.Position) })
		index[p.ExecutionID] = keep
	}
	return ops, index, nil
}

// snapshotIndex returns the snapshot entries of an execution as the group left them:
// those the group's Txs stored, else those in the database, newest first.
func (g *groupState) snapshotIndex(id string) ([]SnapshotEntry, error) {
	if es, ok := g.snaps[id]; ok {
		return es, nil
	}
	return snapshotEntries(g.s.db, id)
}

// snapshotEntries returns an execution's snapshot entries in r, newest (highest
// position) first, without Current (which costs a read of an event each).
func snapshotEntries(r pebble.Reader, id string) ([]SnapshotEntry, error) {
	prefix := snapshotIndexPrefix(id)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
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
	out, err := snapshotEntries(s.db, id)
	if err != nil {
		return nil, err
	}
	for i, e := range out {
		if e.Version > 0 {
			// A missing or different link is an answer (not current), not a failure.
			link, err := storedEventLink(s.db, id, e.Version-1)
			out[i].Current = err == nil && bytes.Equal(link, e.Link)
		}
	}
	return out, nil
}

// castagnoli is the CRC-32C table (computed by the CPU where it can: ~20 times faster than
// SHA-256 here).
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrSnapshotCorrupt is wrapped by SnapshotBlob's error for a blob whose digest does not
// match its contents.
var ErrSnapshotCorrupt = errors.New("snapshot blob does not match its digest")

// SnapshotBlob returns the blob of an execution's snapshot entry, checked against its
// CRC-32C, or its digest for an entry without one (ErrNotFound wrapped if missing,
// ErrSnapshotCorrupt if it does not match).
//
// The check is against damage, not forgery: whoever can rewrite the blob can rewrite its
// entry too. A CRC-32C detects damage as well as SHA-256 does, and costs 0.1 ms instead
// of 1 ms for a 1.5 MB blob (Pebble checksums what it reads from its files, not what its
// memtables hold).
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
	var ok bool
	if e.Version > 0 {
		ok = crc32.Checksum(blob, castagnoli) == e.Check
	} else {
		sum := sha256.Sum256(blob)
		ok = hex.EncodeToString(sum[:]) == e.Digest
	}
	if !ok {
		return nil, fmt.Errorf("snapshot %s of %s: %w", e.Digest, clip.String(id), ErrSnapshotCorrupt)
	}
	return blob, nil
}
