package verify_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	"github.com/obelisk-go/obelisk/verify"
)

func created(ty pb.ComponentType) *pb.Event {
	return &pb.Event{CreatedAt: 1, Kind: &pb.Event_Created{Created: &pb.Created{Ffqn: "testing:a/b.c", Queue: "q", ScheduledAt: 1, ComponentType: ty}}}
}

// TestRun: every execution is refolded and its chains checked, every workflow
// execution (only those) replayed; each failure is reported with its check, and the
// check goes on after it.
func TestRun(t *testing.T) {
	ctx := context.Background()
	s, err := events.Open(t.TempDir(), events.Options{NoSync: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for id, ty := range map[string]pb.ComponentType{"E_1": pb.ComponentType_COMPONENT_TYPE_WORKFLOW, "E_2": pb.ComponentType_COMPONENT_TYPE_WORKFLOW, "E_3": pb.ComponentType_COMPONENT_TYPE_ACTIVITY_WASM} {
		if _, err := s.Commit(ctx, &events.Tx{Appends: []events.Append{{ExecutionID: id, Events: []*pb.Event{created(ty)}}}}); err != nil {
			t.Fatal(err)
		}
	}
	st, err := s.State(ctx, "E_3")
	if err != nil {
		t.Fatal(err)
	}
	forged := events.CloneState(st)
	forged.Queue = "other"
	if err := s.ForgeStateForTest(ctx, forged); err != nil {
		t.Fatal(err)
	}
	view, err := s.View()
	if err != nil {
		t.Fatal(err)
	}
	defer view.Close()

	var replayed []string
	replay := func(ctx context.Context, st *pb.ExecutionState) error {
		replayed = append(replayed, st.ExecutionId)
		if st.ExecutionId == "E_2" {
			return &verify.DivergenceError{Detail: "at history event 0: persist instead of submit"}
		}
		return nil
	}
	var failures []verify.Failure
	rep, err := verify.Run(ctx, view, verify.Options{Replay: replay}, func(f verify.Failure) error {
		failures = append(failures, f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := verify.Report{Executions: 3, EventsLinked: 3, Workflows: 2, Replayed: 2, ReplayAvailable: true, Failures: 2}
	if rep != want {
		t.Errorf("report %+v, want %+v", rep, want)
	}
	if len(replayed) != 2 || replayed[0] != "E_1" || replayed[1] != "E_2" {
		t.Errorf("replayed %v, want the two workflow executions", replayed)
	}
	if len(failures) != 2 || failures[0].ExecutionID != "E_2" || failures[0].Check != verify.CheckReplay ||
		failures[1].ExecutionID != "E_3" || failures[1].Check != verify.CheckRefold || failures[1].Field != "queue" {
		t.Errorf("failures %+v", failures)
	}

	// An execution the replayer finds not replayable is neither replayed nor failed.
	rep, err = verify.Run(ctx, view, verify.Options{Replay: func(_ context.Context, st *pb.ExecutionState) error {
		if st.ExecutionId == "E_2" {
			return fmt.Errorf("its version is gone: %w", verify.ErrNotReplayable)
		}
		return nil
	}}, func(verify.Failure) error { return nil })
	if err != nil || !rep.ReplayAvailable || rep.Replayed != 1 || rep.Workflows != 2 || rep.Failures != 1 {
		t.Errorf("with E_2 not replayable: %+v, %v", rep, err)
	}

	// Without a replayer, nothing is replayed, and the report says so.
	rep, err = verify.Run(ctx, view, verify.Options{}, func(verify.Failure) error { return nil })
	if err != nil || rep.ReplayAvailable || rep.Replayed != 0 || rep.Workflows != 2 || rep.Failures != 1 {
		t.Errorf("without replay: %+v, %v", rep, err)
	}
}
