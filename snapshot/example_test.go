package snapshot_test

import (
	"fmt"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	"github.com/obelisk-go/obelisk/snapshot"
)

// A workflow calls a child and waits (events v0..v4); the child's response arrives while
// the stream is at version 5, so the store gives it at_version 5; then the workflow
// finishes (v5). Refold interleaves the two logs by at_version, and a snapshot taken
// before the response, continued with FoldFrom, ends in the same state.
func ExampleRefold() {
	history := func(at int64, h *pb.HistoryEvent) *pb.Event {
		return &pb.Event{CreatedAt: at, Kind: &pb.Event_History{History: h}}
	}
	evs := []*pb.Event{
		{CreatedAt: 1, Kind: &pb.Event_Created{Created: &pb.Created{Ffqn: "testing:fibo-workflow/workflow.fiboa", Queue: "fibo-workflow", ScheduledAt: 1}}},
		{CreatedAt: 2, Kind: &pb.Event_Locked{Locked: &pb.Locked{RunId: "Run_1", LockExpiresAt: 1000}}},
		history(3, &pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinSetCreate{JoinSetCreate: &pb.JoinSetCreate{JoinSetId: "o:1-fibo"}}}),
		history(3, &pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinSetRequest{JoinSetRequest: &pb.JoinSetRequest{JoinSetId: "o:1-fibo",
			Request: &pb.JoinSetRequest_Child{Child: &pb.ChildExecutionRequest{ChildExecutionId: "E_1.o:1-fibo_1"}}}}}),
		history(4, &pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinNext{JoinNext: &pb.JoinNext{JoinSetId: "o:1-fibo", RunExpiresAt: 4}}}),
		{CreatedAt: 60, Kind: &pb.Event_Finished{Finished: &pb.Finished{Result: []byte(`{"ok":55}`)}}},
	}
	responses := []*pb.Response{{CreatedAt: 50, JoinSetId: "o:1-fibo", Cursor: 0, AtVersion: 5,
		Kind: &pb.Response_Child{Child: &pb.ChildFinished{ChildExecutionId: "E_1.o:1-fibo_1", Result: []byte(`{"ok":55}`)}}}}

	st, err := snapshot.Refold("E_1", evs, responses)
	if err != nil {
		panic(err)
	}
	fmt.Println(events.StatusName(st.Status), st.NextVersion, st.ResponseCount, string(st.Result))

	// A snapshot of the first five events, before the response.
	before, _ := snapshot.Refold("E_1", evs[:5], nil)
	snap := snapshot.Take(before)
	fmt.Println(events.StatusName(snap.State.Status), snap.Version, snap.ResponseCursor)
	again, err := snapshot.FoldFrom(snap, evs[snap.Version:], responses[snap.ResponseCursor:])
	if err != nil {
		panic(err)
	}
	fmt.Println(snapshot.Compare("E_1", st, again) == nil)
	// Output:
	// finished 6 1 {"ok":55}
	// blocked_by_join_set 5 0
	// true
}
