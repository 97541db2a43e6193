package events_test

import (
	"context"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// TestCache: an entry serves until it expires, a newer put replaces it, and a sweep
// deletes what expired, including a replaced entry's old expiry, but not a live one.
func TestCache(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	const comp, ffqn = "activity_wasm:a:sha256:00", "t:p/i.f"
	t0 := time.Unix(1000, 0)
	put := func(id string, params string, expires time.Time) {
		t.Helper()
		tx := &events.Tx{
			Appends: []events.Append{{ExecutionID: id, Events: []*pb.Event{createdEv(ffqn, "q", t0.UnixNano(), t0.UnixNano())}}},
			Cache:   []events.CachePut{{ComponentID: comp, FFQN: ffqn, Params: []byte(params), ExecutionID: id, ExpiresAt: expires.UnixNano()}},
		}
		if _, err := s.Commit(ctx, tx); err != nil {
			t.Fatal(err)
		}
	}
	get := func(params string, now time.Time) string {
		t.Helper()
		id, ok, err := s.CacheGet(ctx, comp, ffqn, []byte(params), now)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return "miss"
		}
		return id
	}
	a, b, c := events.NewExecutionID(t0), events.NewExecutionID(t0.Add(time.Millisecond)), events.NewExecutionID(t0.Add(2*time.Millisecond))
	put(a, "[1]", t0.Add(10*time.Second))
	put(c, "[2]", t0.Add(100*time.Second))
	if got := get("[1]", t0.Add(5*time.Second)); got != a {
		t.Fatalf("[1] before its expiry: %s, want %s", got, a)
	}
	if got := get("[1]", t0.Add(10*time.Second)); got != "miss" {
		t.Fatalf("[1] at its expiry: %s, want a miss", got)
	}
	if got, _, _ := s.CacheGet(ctx, "activity_wasm:a:sha256:01", ffqn, []byte("[1]"), t0); got != "" {
		t.Fatalf("another component version: %s, want a miss", got)
	}
	put(b, "[1]", t0.Add(20*time.Second)) // replaces a's entry
	if got := get("[1]", t0.Add(15*time.Second)); got != b {
		t.Fatalf("[1] after a newer put: %s, want %s", got, b)
	}
	// At 15s, a's old expiry is due: the sweep deletes it alone, b's entry stays.
	if n, err := s.SweepCache(ctx, t0.Add(15*time.Second), 100); err != nil || n != 1 {
		t.Fatalf("sweep at 15s: %d, %v; want 1 (a's stale expiry)", n, err)
	}
	if got := get("[1]", t0.Add(15*time.Second)); got != b {
		t.Fatalf("[1] after the sweep at 15s: %s, want %s", got, b)
	}
	// At 30s b's entry is due; with a limit of 1 the sweep stops after it.
	if n, err := s.SweepCache(ctx, t0.Add(30*time.Second), 1); err != nil || n != 1 {
		t.Fatalf("sweep at 30s: %d, %v", n, err)
	}
	if got := get("[1]", t0); got != "miss" {
		t.Fatalf("[1] after its entry was swept: %s, want a miss (even before its expiry)", got)
	}
	if got := get("[2]", t0.Add(30*time.Second)); got != c {
		t.Fatalf("[2], not due: %s, want %s", got, c)
	}
	if n, err := s.SweepCache(ctx, t0.Add(30*time.Second), 100); err != nil || n != 0 {
		t.Fatalf("sweep with nothing due: %d, %v", n, err)
	}
	// The sweeps start at the index's floor, past what they deleted: an entry put later
	// with an earlier expiry than those lowers the floor and is swept too.
	d := events.NewExecutionID(t0.Add(3 * time.Millisecond))
	put(d, "[3]", t0.Add(12*time.Second))
	if n, err := s.SweepCache(ctx, t0.Add(30*time.Second), 100); err != nil || n != 1 {
		t.Fatalf("sweep of an entry put below the floor: %d, %v; want 1", n, err)
	}
	if got := get("[3]", t0); got != "miss" {
		t.Fatalf("[3] after its entry was swept: %s, want a miss", got)
	}
}
