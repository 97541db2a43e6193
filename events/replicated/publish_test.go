package replicated_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/obelisk-go/obelisk/events"
	"github.com/obelisk-go/obelisk/events/replicated"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// TestCommitOutlivesCtx: a Commit handed to the log answers with the Tx's verdict even
// when its ctx ends before this node applied it: the Tx is applied all the same, and
// an error would tell its caller otherwise.
func TestCommitOutlivesCtx(t *testing.T) {
	c := startCluster(t, 1)
	nc, err := nats.Connect("nats://" + c.cfgs[0].Listen)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var block atomic.Bool
	reached, release := make(chan struct{}), make(chan struct{})
	hook := func([]*pb.ExecutionState) error {
		if block.CompareAndSwap(true, false) {
			close(reached)
			<-release
		}
		return nil
	}
	octx, ocancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer ocancel()
	s, err := replicated.Open(octx, t.TempDir(), replicated.Options{Conn: nc, Stream: "CTX", Logger: quiet(), Pebble: events.Options{NoSync: true, Logger: quiet(), BeforeCommit: hook}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	txs := treeTxs("E_1")
	if _, err := s.Commit(octx, txs[0]); err != nil {
		t.Fatal(err)
	}
	block.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-reached
		cancel()
		time.Sleep(50 * time.Millisecond)
		close(release)
	}()
	if _, err := s.Commit(ctx, txs[1]); err != nil {
		t.Fatalf("a Tx applied answered %v", err)
	}
}

// TestPublishGivesUp: a publish unacknowledged for half the stream's duplicate window
// fails the store rather than be retried past it (where a retry of an entry that did
// land would store it twice).
func TestPublishGivesUp(t *testing.T) {
	c := startCluster(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc, err := nats.Connect("nats://"+c.cfgs[0].Listen, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "SHORT", Subjects: []string{"SHORT.tx"}, Storage: jetstream.FileStorage,
		Duplicates: 2 * time.Second, Discard: jetstream.DiscardNew}); err != nil {
		t.Fatal(err)
	}
	s, err := replicated.Open(ctx, t.TempDir(), replicated.Options{Conn: nc, Stream: "SHORT", PublishTimeout: 200 * time.Millisecond, Logger: quiet(), Pebble: events.Options{NoSync: true, Logger: quiet()}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c.stop(0)
	start := time.Now()
	_, err = s.Commit(ctx, treeTxs("E_1")[0])
	if !errors.Is(err, events.ErrFailed) || !strings.Contains(err.Error(), "duplicate window") {
		t.Fatalf("got %v after %v, want the store failed for a publish unacknowledged in the duplicate window", err, time.Since(start))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("gave up after %v, the duplicate window is 2s", d)
	}
}
