package replicated_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/obelisk-go/obelisk/events"
	"github.com/obelisk-go/obelisk/events/replicated"
)

// TestStreamLost: a node whose local store applied a stream refuses to go on with a
// stream that is not the one it applied, or that lost entries, instead of skipping
// what it missed (its state would fork from the other nodes').
func TestStreamLost(t *testing.T) {
	c := startCluster(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nc, err := nats.Connect("nats://" + c.cfgs[0].Listen)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	const stream = "LOST"
	lastSeq := func() uint64 {
		t.Helper()
		st, err := js.Stream(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		return st.CachedInfo().State.LastSeq
	}
	open := func(dir string) (*replicated.Store, error) {
		return replicated.Open(ctx, dir, replicated.Options{Conn: nc, Stream: stream, Logger: quiet(), Pebble: events.Options{NoSync: true, Logger: quiet()}})
	}
	wantOpenErr := func(dir, want string) {
		t.Helper()
		s, err := open(dir)
		if err == nil {
			s.Close()
			t.Fatalf("opened; want an error saying %q", want)
		}
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("got %v, want an error saying %q", err, want)
		}
	}

	a := t.TempDir()
	s := c.open(t, 0, stream, a)
	if err := runTree(ctx, s, "E_1"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	k := lastSeq()

	// Another node goes on; an entry a did not apply is removed.
	b := c.open(t, 0, stream, t.TempDir())
	if err := runTree(ctx, b, "E_2"); err != nil {
		t.Fatal(err)
	}
	b.Close()
	m := lastSeq()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteMsg(ctx, k+2); err != nil {
		t.Fatal(err)
	}
	s, err = open(a)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WaitApplied(ctx); err == nil || !strings.Contains(err.Error(), "entries removed") {
		t.Fatalf("applied a stream with entry %d removed: %v", k+2, err)
	}
	s.Close()

	// The entries a resumes at are purged.
	if err := st.Purge(ctx, jetstream.WithPurgeSequence(m)); err != nil {
		t.Fatal(err)
	}
	wantOpenErr(a, "the stream starts at")

	// The stream is deleted: Open creates it again, empty.
	if err := js.DeleteStream(ctx, stream); err != nil {
		t.Fatal(err)
	}
	wantOpenErr(a, "the stream ends at 0")

	// Another node fills the new stream beyond a's position.
	b = c.open(t, 0, stream, t.TempDir())
	for i := 0; lastSeq() < m; i++ {
		if err := runTree(ctx, b, "E_"+string(rune('A'+i))); err != nil {
			t.Fatal(err)
		}
	}
	b.Close()
	wantOpenErr(a, "deleted and created again")
}

// TestStreamDroppingEntries: a stream configured to drop entries is refused.
func TestStreamDroppingEntries(t *testing.T) {
	c := startCluster(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc, err := nats.Connect("nats://" + c.cfgs[0].Listen)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "AGED", Subjects: []string{"AGED.tx"}, MaxAge: time.Hour}); err != nil {
		t.Fatal(err)
	}
	_, err = replicated.Open(ctx, t.TempDir(), replicated.Options{Conn: nc, Stream: "AGED", Logger: quiet()})
	if err == nil || !strings.Contains(err.Error(), "discard") {
		t.Fatalf("a stream dropping entries opened: %v", err)
	}
	if _, err := js.UpdateStream(ctx, jetstream.StreamConfig{Name: "AGED", Subjects: []string{"AGED.tx"}, MaxAge: time.Hour, Discard: jetstream.DiscardNew}); err != nil {
		t.Fatal(err)
	}
	_, err = replicated.Open(ctx, t.TempDir(), replicated.Options{Conn: nc, Stream: "AGED", Logger: quiet()})
	if err == nil || !strings.Contains(err.Error(), "limits set") {
		t.Fatalf("a stream dropping entries opened: %v", err)
	}
}
