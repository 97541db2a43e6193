package events

import (
	"context"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// Retention deletes an execution's log with one range deletion: the range must hold
// all of it and nothing of a child, whose ID extends its parent's.
func TestLogKeyRangeIsTheExecutionsOnly(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir(), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	created := func(id string) Append {
		return Append{ExecutionID: id, Events: []*pb.Event{{CreatedAt: 1, Kind: &pb.Event_Created{Created: &pb.Created{Ffqn: "a:b/c.d", Queue: "q", Params: []byte("[]")}}}}}
	}
	line := []LogLine{{Message: "m"}}
	for _, id := range []string{"E_1", "E_1.g:1_1", "E_10"} {
		if _, err := s.Commit(ctx, &Tx{Appends: []Append{created(id)}, Logs: []LogAppend{{ExecutionID: id, Lines: line}}}); err != nil {
			t.Fatal(err)
		}
	}
	start, end := LogKeyRange("E_1")
	if err := s.db.DeleteRange(start, end, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]int{"E_1": 0, "E_1.g:1_1": 1, "E_10": 1} {
		page, err := s.Logs(ctx, id, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Lines) != want || page.Stored != uint64(want) {
			t.Errorf("%s after deleting E_1's range: %d lines, stats %+v; want %d", id, len(page.Lines), page.LogStats, want)
		}
	}
}
