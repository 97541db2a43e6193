package events

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
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
