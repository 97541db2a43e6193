package events

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// A logged Tx whose fold fails to read the store (here a state it cannot decode) is
// this node's failure, not a refusal the other nodes share: its position is not
// recorded and the store fails, instead of the node skipping a Tx the others applied.
func TestApplyLoggedReadFailure(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir(), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	apply := func(seq uint64, tx *Tx) error {
		a, err := s.ApplyLogged(ctx, seq, tx)
		if err != nil {
			t.Fatal(err)
		}
		_, err = a.Wait()
		return err
	}
	created := &pb.Event{CreatedAt: 1, Kind: &pb.Event_Created{Created: &pb.Created{Ffqn: "a:b/c.d", Queue: "q", Params: []byte("[]")}}}
	if err := apply(1, &Tx{Appends: []Append{{ExecutionID: "E_1", Events: []*pb.Event{created}}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Set(stateKey("E_1"), []byte("\xff\xff\xff"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	delete(s.cache, "E_1")
	s.mu.Unlock()
	locked := &pb.Event{CreatedAt: 2, Kind: &pb.Event_Locked{Locked: &pb.Locked{ExecutorId: "Exr_test", RunId: "R1", LockExpiresAt: 100}}}
	if err := apply(2, &Tx{Appends: []Append{{ExecutionID: "E_1", ExpectedVersion: 1, Events: []*pb.Event{locked}}}}); !errors.Is(err, ErrFailed) {
		t.Fatalf("a logged Tx that could not read the store: %v, want the store failed", err)
	}
	if last, err := s.LastApplied(); err != nil || last != 1 {
		t.Fatalf("last applied %d, %v; want 1 (entry 2 undecided)", last, err)
	}
}

func TestDecidedRefusal(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&ConflictError{ExecutionID: "E_1"}, true},
		{&KVConflictError{Bucket: "b", Key: "k"}, true},
		{fmt.Errorf("respond to E_1: %w", ErrNotFound), true},
		{fmt.Errorf("schedule: %w", ErrInvalidArgument), true},
		{errors.New("event not allowed in this status"), true}, // the fold's own checks
		{fmt.Errorf("kv set: read: %w", readFailed(errors.New("disk"))), false},
		{&FailedError{Dir: "d", Err: errors.New("disk")}, false},
		{ErrClosed, false},
	} {
		if got := decidedRefusal(tc.err); got != tc.want {
			t.Errorf("decidedRefusal(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
