package histories

import (
	"context"
	"fmt"
	"testing"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// sliceStore serves Events and Responses from slices and records where each read
// started; the cache calls nothing else.
type sliceStore struct {
	events.Store
	evs   map[string][]*pb.Event
	resps map[string][]*pb.Response
	froms []string
}

func (s *sliceStore) Events(_ context.Context, id string, from uint32, _ int) ([]*pb.Event, error) {
	s.froms = append(s.froms, fmt.Sprintf("%s events %d", id, from))
	return s.evs[id][min(int(from), len(s.evs[id])):], nil
}

func (s *sliceStore) Responses(_ context.Context, id string, from uint32) ([]*pb.Response, error) {
	s.froms = append(s.froms, fmt.Sprintf("%s responses %d", id, from))
	return s.resps[id][min(int(from), len(s.resps[id])):], nil
}

func (s *sliceStore) lastFroms(n int) string { return fmt.Sprint(s.froms[len(s.froms)-n:]) }

// TestCache: a second read asks the store only for what was appended since the first;
// what was handed out earlier does not change; a forgotten or least recently used
// execution is read from the start again.
func TestCache(t *testing.T) {
	ctx := context.Background()
	ev := func(n int64) *pb.Event { return &pb.Event{CreatedAt: n} }
	s := &sliceStore{
		evs:   map[string][]*pb.Event{"a": {ev(1), ev(2)}, "b": {ev(10)}},
		resps: map[string][]*pb.Response{"a": {{}}},
	}
	h := New(1)
	first, _, err := h.Read(ctx, s, "a")
	if err != nil || len(first) != 2 {
		t.Fatalf("Read(a) = %d events, %v", len(first), err)
	}
	s.evs["a"] = append(s.evs["a"], ev(3))
	evs, resps, err := h.Read(ctx, s, "a")
	if err != nil || len(evs) != 3 || evs[2].CreatedAt != 3 || len(resps) != 1 {
		t.Fatalf("second Read(a) = %d events, %d responses, %v", len(evs), len(resps), err)
	}
	if got := s.lastFroms(2); got != "[a events 2 a responses 1]" {
		t.Errorf("second read asked the store for %s, want what follows the cached prefix", got)
	}
	if len(first) != 2 {
		t.Errorf("the first read's slice changed to %d events", len(first))
	}

	if _, _, err := h.Read(ctx, s, "b"); err != nil { // evicts a: max is 1
		t.Fatal(err)
	}
	if _, _, err := h.Read(ctx, s, "a"); err != nil {
		t.Fatal(err)
	}
	if got := s.lastFroms(2); got != "[a events 0 a responses 0]" {
		t.Errorf("after a was evicted, its read asked for %s, want it from the start", got)
	}
	h.Forget("a")
	if _, _, err := h.Read(ctx, s, "a"); err != nil {
		t.Fatal(err)
	}
	if got := s.lastFroms(2); got != "[a events 0 a responses 0]" {
		t.Errorf("after Forget(a), its read asked for %s, want it from the start", got)
	}
}
