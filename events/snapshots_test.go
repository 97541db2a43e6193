package events

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// TestSnapshots: an execution keeps its MaxSnapshotsPerExecution newest snapshots, blobs
// of the older ones are deleted, a blob that does not match its digest is reported, and
// a snapshot of an execution that does not exist is refused with the rest of its Tx.
func TestSnapshots(t *testing.T) {
	ctx := context.Background()
	s := gOpen(t, t.TempDir())
	id := NewExecutionID(time.Unix(0, 100))
	gCommit(t, s, gAppend(id, 0, gCreated(100)))
	var entries []SnapshotEntry
	for pos := uint32(10); pos <= 30; pos += 10 {
		blob := []byte(fmt.Sprintf("memory at %d", pos))
		gCommit(t, s, &Tx{Snapshots: []SnapshotPut{{ExecutionID: id, Entry: SnapshotEntry{Position: pos, Prefix: []byte{byte(pos)}, ComponentID: "comp"}, Blob: blob}}})
		es, err := s.Snapshots(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		entries = es
		if got, err := s.SnapshotBlob(ctx, id, es[0]); err != nil || string(got) != string(blob) {
			t.Fatalf("newest blob at %d: %q %v", pos, got, err)
		}
	}
	if len(entries) != MaxSnapshotsPerExecution || entries[0].Position != 30 || entries[1].Position != 20 {
		t.Fatalf("entries %+v, want positions 30 and 20", entries)
	}
	if e := entries[0]; string(e.Prefix) != "\x1e" || e.ComponentID != "comp" || len(e.Digest) != 64 {
		t.Fatalf("entry %+v does not hold what was put", e)
	}
	sum := sha256.Sum256([]byte("memory at 10"))
	first := SnapshotEntry{Position: 10, Digest: hex.EncodeToString(sum[:])}
	if _, err := s.SnapshotBlob(ctx, id, first); !errors.Is(err, ErrNotFound) {
		t.Fatalf("blob of the superseded snapshot: %v, want ErrNotFound", err)
	}

	// A corrupt blob.
	if err := s.db.Set(snapshotBlobKey(id, entries[0].Digest), []byte("flipped"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SnapshotBlob(ctx, id, entries[0]); !errors.Is(err, ErrSnapshotCorrupt) {
		t.Fatalf("corrupt blob: %v, want ErrSnapshotCorrupt", err)
	}

	// A snapshot of nothing.
	missing := NewExecutionID(time.Unix(0, 200))
	_, err := s.Commit(ctx, &Tx{Appends: []Append{{ExecutionID: id, ExpectedVersion: 1, Events: []*pb.Event{rFinished(101)}}}, Snapshots: []SnapshotPut{{ExecutionID: missing, Blob: []byte("x")}}})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("snapshot of a missing execution: %v, want ErrNotFound", err)
	}
	if st, err := s.State(ctx, id); err != nil || st.NextVersion != 1 {
		t.Fatalf("the refused Tx left %v %v", st, err)
	}
}

// TestSnapshotVersionLink: a snapshot taken at a version of the stream is stored with
// that event's link, listed as current while the event carries it, and not current once
// the event is no longer the one it was taken after; its blob is checked by its CRC-32C;
// a version beyond the stream is refused with the rest of its Tx; an entry stored before
// versions existed still decodes (without a version, so never current: its prefix
// digest is checked instead, and its blob's SHA-256).
func TestSnapshotVersionLink(t *testing.T) {
	ctx := context.Background()
	s := gOpen(t, t.TempDir())
	id := NewExecutionID(time.Unix(0, 100))
	gCommit(t, s, gAppend(id, 0, gCreated(100), gLocked("Run_1", 101)))
	put := func(pos, version uint32) error {
		_, err := s.Commit(ctx, &Tx{Snapshots: []SnapshotPut{{ExecutionID: id, Blob: []byte(fmt.Sprintf("at %d", pos)),
			Entry: SnapshotEntry{Position: pos, Version: version, ComponentID: "comp"}}}})
		return err
	}
	if err := put(1, 1); err != nil { // not the last event: its link is read
		t.Fatal(err)
	}
	if err := put(2, 2); err != nil { // the last: the state's link
		t.Fatal(err)
	}
	es, err := s.Snapshots(ctx, id)
	if err != nil || len(es) != 2 {
		t.Fatalf("snapshots %+v %v", es, err)
	}
	st, err := s.State(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	first, err := storedEventLink(s.db, id, 0)
	if err != nil {
		t.Fatal(err)
	}
	if e := es[0]; e.Version != 2 || !bytes.Equal(e.Link, st.EventChain) || !e.Current {
		t.Fatalf("entry at the stream's end %+v, want version 2, the state's link %x, current", e, st.EventChain)
	}
	if e := es[1]; e.Version != 1 || !bytes.Equal(e.Link, first) || !e.Current {
		t.Fatalf("entry at version 1 %+v, want the first event's link %x, current", e, first)
	}

	// The second event replaced (as a bad restore or an edit would): the snapshot
	// taken after it does not fit any more; the one before it still does.
	v, closer, err := s.db.Get(eventKey(id, 1))
	if err != nil {
		t.Fatal(err)
	}
	other := bytes.Clone(v)
	closer.Close()
	other[len(other)-1] ^= 1 // in the link
	if err := s.db.Set(eventKey(id, 1), other, nil); err != nil {
		t.Fatal(err)
	}
	if es, err = s.Snapshots(ctx, id); err != nil || es[0].Current || !es[1].Current {
		t.Fatalf("after the event changed: %+v %v, want the newest not current, the older current", es, err)
	}

	// Its blob is checked by its CRC-32C.
	if blob, err := s.SnapshotBlob(ctx, id, es[1]); err != nil || string(blob) != "at 1" || es[1].Check == 0 {
		t.Fatalf("blob of %+v: %q %v", es[1], blob, err)
	}
	if err := s.db.Set(snapshotBlobKey(id, es[1].Digest), []byte("at 2"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SnapshotBlob(ctx, id, es[1]); !errors.Is(err, ErrSnapshotCorrupt) {
		t.Fatalf("damaged blob: %v, want ErrSnapshotCorrupt", err)
	}

	if err := put(3, 5); err == nil || !strings.Contains(err.Error(), "not within the stream") {
		t.Fatalf("a snapshot beyond the stream: %v, want refused", err)
	}

	legacy := encodeSnapshotEntry(SnapshotEntry{Position: 7, Digest: "d", Prefix: []byte("p"), ComponentID: "c"})
	if e, err := decodeSnapshotEntry(legacy); err != nil || e.Version != 0 || e.Link != nil || string(e.Prefix) != "p" || e.ComponentID != "c" {
		t.Fatalf("an entry without a version decodes as %+v %v", e, err)
	}
	if _, err := decodeSnapshotEntry(append(legacy, 0x80)); err == nil {
		t.Fatal("a truncated version decodes")
	}
}

// TestSnapshotsInOneGroup: snapshots of one execution stored by several Txs of one
// writer group keep its index at MaxSnapshotsPerExecution, and no entry is left
// pointing at a blob a later Tx of the group deleted (the second Tx sees the first's
// snapshot, not only what the database holds).
func TestSnapshotsInOneGroup(t *testing.T) {
	ctx := context.Background()
	s := gOpen(t, t.TempDir())
	id := NewExecutionID(time.Unix(0, 100))
	gCommit(t, s, gAppend(id, 0, gCreated(100)))
	put := func(pos uint32, blob string) *Tx {
		return &Tx{Snapshots: []SnapshotPut{{ExecutionID: id, Blob: []byte(blob), Entry: SnapshotEntry{Position: pos, Prefix: []byte{byte(pos)}, ComponentID: "comp"}}}}
	}
	gCommit(t, s, put(5, "B"))
	gCommit(t, s, put(10, "A"))
	// In one group: position 20 with the blob of position 5 (which it drops, keeping
	// the blob), then position 30, which must drop 10, not 5 again with its blob.
	for i, err := range group(s, put(20, "B"), put(30, "D")) {
		if err != nil {
			t.Fatalf("tx %d: %v", i, err)
		}
	}
	es, err := s.Snapshots(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var positions []uint32
	for _, e := range es {
		positions = append(positions, e.Position)
		if _, err := s.SnapshotBlob(ctx, id, e); err != nil {
			t.Errorf("snapshot at %d: %v", e.Position, err)
		}
	}
	if fmt.Sprint(positions) != "[30 20]" {
		t.Fatalf("positions %v, want [30 20]", positions)
	}
	sum := sha256.Sum256([]byte("A"))
	if _, err := s.SnapshotBlob(ctx, id, SnapshotEntry{Position: 10, Digest: hex.EncodeToString(sum[:])}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("blob of the dropped snapshot at 10: %v, want ErrNotFound", err)
	}
}
