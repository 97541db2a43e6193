package replicated_test

import (
	"context"
	"fmt"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
)

// Event constructors (times in nanoseconds).

func createdEv(ffqn, queue string, at, scheduled int64) *pb.Event {
	return &pb.Event{CreatedAt: at, Kind: &pb.Event_Created{Created: &pb.Created{Ffqn: ffqn, Queue: queue, ScheduledAt: scheduled, Params: []byte("[]")}}}
}

func lockedEv(run string, at, expires int64) *pb.Event {
	return &pb.Event{CreatedAt: at, Kind: &pb.Event_Locked{Locked: &pb.Locked{ExecutorId: "Exr_test", RunId: run, LockExpiresAt: expires}}}
}

func historyEv(at int64, h *pb.HistoryEvent) *pb.Event {
	return &pb.Event{CreatedAt: at, Kind: &pb.Event_History{History: h}}
}

func finishedEv(at int64, result string) *pb.Event {
	return &pb.Event{CreatedAt: at, Kind: &pb.Event_Finished{Finished: &pb.Finished{Result: []byte(result)}}}
}

func appendTx(id string, v uint32, runID string, evs ...*pb.Event) *events.Tx {
	return &events.Tx{Appends: []events.Append{{ExecutionID: id, ExpectedVersion: v, RunID: runID, Events: evs}}}
}

// treeCommits is the number of commits of runTree.
const treeCommits = 5

// treeTxs returns the commits of a workflow p that calls one child activity and
// finishes: its creation and lock, the child's creation with the request (and a log
// line), the child's lock, the child's result with the parent's response (a result
// cache entry and a KV write too), the parent's join and finish.
func treeTxs(p string) []*events.Tx {
	js := "g:1"
	child := events.ChildExecutionID(p, js, 1)
	return []*events.Tx{
		appendTx(p, 0, "", createdEv("testing:wf/ifc.fn", "q", 1, 1), lockedEv("R_"+p, 2, 1_000_000),
			historyEv(3, &pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinSetCreate{JoinSetCreate: &pb.JoinSetCreate{JoinSetId: js}}})),
		{
			Appends: []events.Append{
				{ExecutionID: child, Events: []*pb.Event{func() *pb.Event {
					ev := createdEv("testing:child/ifc.fn", "q", 4, 4)
					ev.GetCreated().ParentId, ev.GetCreated().ParentJoinSetId = p, js
					return ev
				}()}},
				{ExecutionID: p, ExpectedVersion: 3, RunID: "R_" + p, Events: []*pb.Event{historyEv(4, &pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinSetRequest{JoinSetRequest: &pb.JoinSetRequest{
					JoinSetId: js, Request: &pb.JoinSetRequest_Child{Child: &pb.ChildExecutionRequest{ChildExecutionId: child}}}}})}},
			},
			Logs: []events.LogAppend{{ExecutionID: p, Lines: []events.LogLine{{Time: 4, Level: abi.LogInfo, Attempt: 1, RunID: "R_" + p, Message: "calling " + child}}}},
		},
		appendTx(child, 1, "", lockedEv("R_"+child, 5, 1_000_000)),
		{
			Appends:   []events.Append{{ExecutionID: child, ExpectedVersion: 2, RunID: "R_" + child, Events: []*pb.Event{finishedEv(6, `{"ok":1}`)}}},
			Responses: []events.ResponseAppend{{ExecutionID: p, Response: &pb.Response{CreatedAt: 6, JoinSetId: js, Kind: &pb.Response_Child{Child: &pb.ChildFinished{ChildExecutionId: child, Result: []byte(`{"ok":1}`)}}}}},
			Cache:     []events.CachePut{{ComponentID: "comp", FFQN: "testing:child/ifc.fn", Params: []byte(p), ExecutionID: child, ExpiresAt: 1 << 62}},
			KV:        []events.KVWrite{{Bucket: "b", Key: p, Value: "done"}},
		},
		appendTx(p, 4, "R_"+p,
			historyEv(7, &pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinNext{JoinNext: &pb.JoinNext{JoinSetId: js, RunExpiresAt: 1_000_000}}}),
			finishedEv(8, `{"ok":2}`)),
	}
}

// runTree commits the tree of workflow p through s.
func runTree(ctx context.Context, s events.Store, p string) error {
	for i, tx := range treeTxs(p) {
		if _, err := s.Commit(ctx, tx); err != nil {
			return fmt.Errorf("tree %s, commit %d: %w", p, i, err)
		}
	}
	return nil
}
