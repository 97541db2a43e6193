package events

import (
	"context"
	"errors"
	"testing"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

func scheduleNames(t *testing.T, s *PebbleStore) map[string]*pb.CronSchedule {
	t.Helper()
	list, err := s.Schedules(context.Background())
	if err != nil {
		t.Fatalf("schedules: %v", err)
	}
	out := map[string]*pb.CronSchedule{}
	for _, sc := range list {
		out[sc.Name] = sc
	}
	return out
}

// TestSchedulesWithTheExecution: a schedule's record is stored with the execution of
// the same Tx, or not at all when the Tx is refused; records survive a reopen and a
// delete removes one.
func TestSchedulesWithTheExecution(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := gOpen(t, dir)
	rec := func(name, last string) *pb.CronSchedule {
		return &pb.CronSchedule{Name: name, Cron: "* * * * *", Ffqn: "a:b/c.d", LastExecutionId: last}
	}
	if _, err := s.Commit(ctx, &Tx{
		Appends:   []Append{{ExecutionID: "E_1", Events: []*pb.Event{schedCreated(1)}}},
		Schedules: []ScheduleWrite{{Name: "a", Schedule: rec("a", "E_1")}, {Name: "b", Schedule: rec("b", "")}},
	}); err != nil {
		t.Fatal(err)
	}
	// E_1 exists: this Tx is refused, and so is its schedule write.
	_, err := s.Commit(ctx, &Tx{
		Appends:   []Append{{ExecutionID: "E_1", Events: []*pb.Event{schedCreated(2)}}},
		Schedules: []ScheduleWrite{{Name: "a", Schedule: rec("a", "E_2")}},
	})
	var conflict *ConflictError
	if !errors.As(err, &conflict) {
		t.Fatalf("second create of E_1: got %v, want a conflict", err)
	}
	if got := scheduleNames(t, s)["a"].GetLastExecutionId(); got != "E_1" {
		t.Fatalf("after a refused Tx: a's last execution is %q, want E_1", got)
	}
	// A bad record refuses its whole Tx.
	if _, err := s.Commit(ctx, &Tx{
		Appends:   []Append{{ExecutionID: "E_3", Events: []*pb.Event{schedCreated(3)}}},
		Schedules: []ScheduleWrite{{Name: "", Schedule: rec("", "E_3")}},
	}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("empty name: got %v, want invalid argument", err)
	}
	if _, err := s.State(ctx, "E_3"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("E_3 of a refused Tx: got %v, want not found", err)
	}
	if _, err := s.Commit(ctx, &Tx{Schedules: []ScheduleWrite{{Name: "b", Delete: true}}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = gOpen(t, dir)
	got := scheduleNames(t, s)
	if len(got) != 1 || got["a"].GetLastExecutionId() != "E_1" {
		t.Fatalf("after reopen: %v, want only a, last fired E_1", got)
	}
}

func schedCreated(at int64) *pb.Event {
	return &pb.Event{CreatedAt: at, Kind: &pb.Event_Created{Created: &pb.Created{Ffqn: "a:b/c.d", Queue: "q", ScheduledAt: at, Params: []byte("[]")}}}
}
