package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	"github.com/obelisk-go/obelisk/test/harness"
)

// TestNondeterminismDetected gives the server a recorded history that the workflow's code
// does not reproduce: fiboa(1, 2) is recorded as having called fibo(5) first, while the
// code calls fibo(1). Recovering the execution replays it and must finish it with
// nondeterminism_detected instead of continuing. A history the code does reproduce (the
// second execution, recorded as calling fibo(1) and getting 7) continues from the
// recorded answer without running the child again.
func TestNondeterminismDetected(t *testing.T) {
	t.Parallel()
	now := time.Now()
	bad := events.NewExecutionID(now)
	good := events.NewExecutionID(now.Add(time.Millisecond))
	s := harness.Start(t, harness.Options{Prepare: func(dir string) {
		store, err := events.Open(dir, events.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		record := func(id, calledParams string) {
			child := events.ChildExecutionID(id, "o:1-fibo", 1)
			at := now.UnixNano()
			ev := func(e *pb.Event) *pb.Event { at++; e.CreatedAt = at; return e }
			hist := func(h *pb.HistoryEvent) *pb.Event { return ev(&pb.Event{Kind: &pb.Event_History{History: h}}) }
			evs := []*pb.Event{
				ev(&pb.Event{Kind: &pb.Event_Created{Created: &pb.Created{Ffqn: "testing:fibo-workflow/workflow.fiboa", Params: []byte("[1,2]"),
					ScheduledAt: at, ComponentType: pb.ComponentType_COMPONENT_TYPE_WORKFLOW, Queue: "fibo_workflow", ComponentId: "workflow:fibo_workflow:sha256:0"}}}),
				ev(&pb.Event{Kind: &pb.Event_Locked{Locked: &pb.Locked{ExecutorId: "Exr_gone", RunId: "Run_gone", LockExpiresAt: at + int64(time.Hour),
					Retry: &pb.RetryConfig{UnlimitedRetries: true, RetryExpBackoff: int64(time.Millisecond)}}}}),
				hist(&pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinSetCreate{JoinSetCreate: &pb.JoinSetCreate{JoinSetId: "o:1-fibo"}}}),
				hist(&pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinSetRequest{JoinSetRequest: &pb.JoinSetRequest{JoinSetId: "o:1-fibo",
					Request: &pb.JoinSetRequest_Child{Child: &pb.ChildExecutionRequest{ChildExecutionId: child, Ffqn: "testing:fibo/fibo.fibo", Params: []byte(calledParams)}}}}}),
				hist(&pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinNext{JoinNext: &pb.JoinNext{JoinSetId: "o:1-fibo", RequestedFfqn: "testing:fibo/fibo.fibo", RunExpiresAt: at}}}),
			}
			childEvs := []*pb.Event{
				ev(&pb.Event{Kind: &pb.Event_Created{Created: &pb.Created{Ffqn: "testing:fibo/fibo.fibo", Params: []byte(calledParams), ParentId: id, ParentJoinSetId: "o:1-fibo",
					ScheduledAt: at, ComponentType: pb.ComponentType_COMPONENT_TYPE_ACTIVITY_WASM, Queue: "fibo"}}}),
				ev(&pb.Event{Kind: &pb.Event_Locked{Locked: &pb.Locked{ExecutorId: "Exr_gone", RunId: "Run_child", LockExpiresAt: at + int64(time.Hour)}}}),
			}
			// A recorded answer the real fibo(1) would never give: replay must use it.
			childEvs = append(childEvs, ev(&pb.Event{Kind: &pb.Event_Finished{Finished: &pb.Finished{Result: []byte(`{"ok":7}`)}}}))
			ctx := context.Background()
			if _, err := store.Commit(ctx, &events.Tx{Appends: []events.Append{{ExecutionID: id, Events: evs}, {ExecutionID: child, Events: childEvs[:2]}}}); err != nil {
				t.Fatal(err)
			}
			if _, err := store.Commit(ctx, &events.Tx{
				Appends: []events.Append{{ExecutionID: child, ExpectedVersion: 2, Events: childEvs[2:]}},
				Responses: []events.ResponseAppend{{ExecutionID: id, Response: &pb.Response{CreatedAt: at, JoinSetId: "o:1-fibo",
					Kind: &pb.Response_Child{Child: &pb.ChildFinished{ChildExecutionId: child, Result: []byte(`{"ok":7}`)}}}}},
			}); err != nil {
				t.Fatal(err)
			}
		}
		record(bad, "[5]")
		record(good, "[1]")
	}})

	res := s.Result(bad, time.Minute)
	var r struct {
		Failure struct{ Kind, Reason string } `json:"execution_failure"`
	}
	if err := json.Unmarshal([]byte(res), &r); err != nil || r.Failure.Kind != "nondeterminism_detected" {
		t.Fatalf("result %s, want execution_failure nondeterminism_detected", res)
	}
	if !strings.Contains(r.Failure.Reason, "[5]") || !strings.Contains(r.Failure.Reason, "[1]") {
		t.Errorf("the reason should show what was recorded and what the code did: %q", r.Failure.Reason)
	}
	// 7 (recorded) + fib(1) = 8.
	harness.JSONEq(t, s.Result(good, time.Minute), `{"ok":8}`)
	if n := harness.CountKind(s.Events(events.ChildExecutionID(good, "o:1-fibo", 1)), "locked"); n != 1 {
		t.Errorf("the recorded child was locked %d times; replay must not run it again", n)
	}
}

// TestNondeterminismChangedOrder: race submits the sleep activity, then a delay, into
// one join set. A recorded history with the two requests the other way round (the delay
// first) is not what the code does, and replaying it finishes the execution with
// nondeterminism_detected, naming both.
func TestNondeterminismChangedOrder(t *testing.T) {
	t.Parallel()
	now := time.Now()
	id := events.NewExecutionID(now)
	s := harness.Start(t, harness.Options{Prepare: func(dir string) {
		store, err := events.Open(dir, events.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		at := now.UnixNano()
		ev := func(e *pb.Event) *pb.Event { at++; e.CreatedAt = at; return e }
		hist := func(h *pb.HistoryEvent) *pb.Event { return ev(&pb.Event{Kind: &pb.Event_History{History: h}}) }
		delay := events.DelayID(id, "g:1", 1)
		child := events.ChildExecutionID(id, "g:1", 2)
		evs := []*pb.Event{
			ev(&pb.Event{Kind: &pb.Event_Created{Created: &pb.Created{Ffqn: "testing:sleep-workflow/workflow.race", Params: []byte("[10,600000]"),
				ScheduledAt: at, ComponentType: pb.ComponentType_COMPONENT_TYPE_WORKFLOW, Queue: "sleep_workflow", ComponentId: "workflow:sleep_workflow:sha256:0"}}}),
			ev(&pb.Event{Kind: &pb.Event_Locked{Locked: &pb.Locked{ExecutorId: "Exr_gone", RunId: "Run_gone", LockExpiresAt: at + int64(time.Hour),
				Retry: &pb.RetryConfig{UnlimitedRetries: true, RetryExpBackoff: int64(time.Millisecond)}}}}),
			hist(&pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinSetCreate{JoinSetCreate: &pb.JoinSetCreate{JoinSetId: "g:1"}}}),
			hist(&pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinSetRequest{JoinSetRequest: &pb.JoinSetRequest{JoinSetId: "g:1",
				Request: &pb.JoinSetRequest_Delay{Delay: &pb.DelayRequest{DelayId: delay, ExpiresAt: at + int64(10*time.Minute), ScheduleAt: []byte(`{"in":{"milliseconds":600000}}`)}}}}}),
			hist(&pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinSetRequest{JoinSetRequest: &pb.JoinSetRequest{JoinSetId: "g:1",
				Request: &pb.JoinSetRequest_Child{Child: &pb.ChildExecutionRequest{ChildExecutionId: child, Ffqn: "testing:sleep/sleep.sleep", Params: []byte("[10]")}}}}}),
		}
		childEvs := []*pb.Event{ev(&pb.Event{Kind: &pb.Event_Created{Created: &pb.Created{Ffqn: "testing:sleep/sleep.sleep", Params: []byte("[10]"),
			ParentId: id, ParentJoinSetId: "g:1", ScheduledAt: at, ComponentType: pb.ComponentType_COMPONENT_TYPE_ACTIVITY_WASM, Queue: "sleep"}}})}
		if _, err := store.Commit(context.Background(), &events.Tx{Appends: []events.Append{{ExecutionID: id, Events: evs}, {ExecutionID: child, Events: childEvs}}}); err != nil {
			t.Fatal(err)
		}
	}})
	res := s.Result(id, time.Minute)
	var r struct {
		Failure struct{ Kind, Reason string } `json:"execution_failure"`
	}
	if err := json.Unmarshal([]byte(res), &r); err != nil || r.Failure.Kind != "nondeterminism_detected" {
		t.Fatalf("result %s, want execution_failure nondeterminism_detected", res)
	}
	if !strings.Contains(r.Failure.Reason, "delay") || !strings.Contains(r.Failure.Reason, "testing:sleep/sleep.sleep") {
		t.Errorf("the reason should show the recorded delay and the submitted activity: %q", r.Failure.Reason)
	}
	// The workflow finished: nothing waits for its children any more, but they still
	// finish (the activity runs; the delay's answer is dropped).
	harness.JSONEq(t, s.Result(events.ChildExecutionID(id, "g:1", 2), time.Minute), `{"ok":null}`)
}
