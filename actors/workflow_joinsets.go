package actors

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/obelisk-go/obelisk/events"
	"github.com/obelisk-go/obelisk/internal/clip"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
	"github.com/obelisk-go/obelisk/wasmhost"
)

// The join set operations of a workflow run (docs/abi.md, "Join sets, delays and stubs").
// Every decision a replay must repeat is either derived from the history up to the
// replay cursor (which sets exist, what was requested and taken) or recorded in it (a
// join_next_try's outcome, a stub's outcome); responses are taken in the order they
// arrived, which the response log fixes forever.

func hostErr(kind, format string, args ...any) error {
	return &wasmhost.HostError{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

func (r *workflowRun) addSet(js string) {
	if _, ok := r.sets[js]; !ok {
		r.sets[js] = &runJoinSet{}
		r.setOrder = append(r.setOrder, js)
	}
}

// openSet returns a join set the workflow may submit into or join.
func (r *workflowRun) openSet(js string) (*runJoinSet, error) {
	set, ok := r.sets[js]
	if !ok {
		return nil, hostErr(abi.KindUnknownJoinSet, "join set %q was not created by this workflow", js)
	}
	return set, nil
}

// submittable returns a join set the workflow may submit into: created, not closed.
func (r *workflowRun) submittable(js string) (*runJoinSet, error) {
	set, err := r.openSet(js)
	if err == nil && set.closed {
		err = hostErr(abi.KindJoinSetClosed, "join set %q is closed", js)
	}
	return set, err
}

// take waits for the next response of a join set the workflow has not taken yet, and
// takes it.
func (r *workflowRun) take(ctx context.Context, js string) (*pb.Response, error) {
	set := r.sets[js]
	resp, err := r.awaitArrived(ctx, js, set.taken)
	if err != nil {
		return nil, err
	}
	set.taken++
	if c := resp.GetChild(); c != nil {
		r.processed[c.ChildExecutionId] = resp
	}
	return resp, nil
}

func (r *workflowRun) joinSetCreate(ctx context.Context, req []byte) ([]byte, error) {
	var q abi.JoinSetCreateRequest
	if err := json.Unmarshal(req, &q); err != nil {
		return nil, hostErr(abi.KindBadRequest, "%v", err)
	}
	var js string
	if q.Name != nil {
		if !abi.ValidJoinSetName(*q.Name) {
			return nil, hostErr(abi.KindInvalidName, "join set name %q: want 1 to 64 ASCII letters, digits, '-' or '/'", *q.Name)
		}
		js = "n:" + *q.Name
		if _, ok := r.sets[js]; ok {
			return nil, hostErr(abi.KindConflict, "join set %q already exists", js)
		}
	} else {
		js = fmt.Sprintf("g:%d", r.generated+1)
	}
	want := []*pb.HistoryEvent{{Kind: &pb.HistoryEvent_JoinSetCreate{JoinSetCreate: &pb.JoinSetCreate{JoinSetId: js}}}}
	if err := r.replayOrAppend(ctx, want, nil); err != nil {
		return nil, err
	}
	if q.Name == nil {
		r.generated++
	}
	r.addSet(js)
	return json.Marshal(js)
}

func (r *workflowRun) submit(ctx context.Context, req []byte) ([]byte, error) {
	var q abi.SubmitRequest
	if err := json.Unmarshal(req, &q); err != nil {
		return nil, hostErr(abi.KindBadRequest, "%v", err)
	}
	set, err := r.submittable(q.JoinSet)
	if err != nil {
		return nil, err
	}
	fn, params, err := r.callable(q.FFQN, q.Params)
	if err != nil {
		return nil, err
	}
	if err := checkQueueName(q.Queue); err != nil {
		return nil, hostErr(abi.KindInvalidName, "%v", err)
	}
	var retry *pb.RetryConfig
	if fn.Component != nil { // nil: a replayed request whose function no longer routes (callable)
		if retry, err = retryOverrideOf(q.Retry).retryConfig(&fn.Component.Config); err != nil {
			return nil, hostErr(abi.KindBadRequest, "%v", err)
		}
	}
	child := events.ChildExecutionID(r.id, q.JoinSet, len(set.requests)+1)
	want := []*pb.HistoryEvent{{Kind: &pb.HistoryEvent_JoinSetRequest{JoinSetRequest: &pb.JoinSetRequest{JoinSetId: q.JoinSet,
		Request: &pb.JoinSetRequest_Child{Child: &pb.ChildExecutionRequest{ChildExecutionId: child, Ffqn: q.FFQN, Params: params}}}}}}
	if err := r.replayOrAppend(ctx, want, func(now time.Time) []events.Append {
		created := traced(r.childCreated(now, fn, params, q.JoinSet), r.trace)
		// Neither is part of the history: a replay finds the child created already.
		if q.Queue != "" {
			created.GetCreated().Queue = q.Queue
		}
		if retry != nil {
			created.GetCreated().Retry, created.GetCreated().RetryGiven = retry, retryOverrideOf(q.Retry).given()
		}
		return []events.Append{{ExecutionID: child, Events: []*pb.Event{created}}}
	}); err != nil {
		return nil, err
	}
	set.requests = append(set.requests, runRequest{id: child, ffqn: q.FFQN, fn: fn})
	return json.Marshal(child)
}

// delayRequest records a delay into join set js (in the same transaction as the events
// before it in want) and returns its recorded request, whose expiry is fixed when it is
// first written.
func (r *workflowRun) delayRequest(ctx context.Context, before []*pb.HistoryEvent, js string, index int, spec json.RawMessage, after ...*pb.HistoryEvent) (*pb.DelayRequest, error) {
	replaying := r.pos < len(r.history)
	compact, err := scheduleSpec(spec, !replaying)
	if err != nil {
		return nil, err
	}
	d := &pb.DelayRequest{DelayId: events.DelayID(r.id, js, index), ScheduleAt: compact}
	want := append(append(before, &pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinSetRequest{JoinSetRequest: &pb.JoinSetRequest{
		JoinSetId: js, Request: &pb.JoinSetRequest_Delay{Delay: d}}}}), after...)
	at := len(r.history) + len(before) // where the request lands if appended
	if replaying {
		at = r.pos + len(before)
	}
	if err := r.replayOrAppend(ctx, want, func(now time.Time) []events.Append {
		t, _ := abi.ResolveScheduleAt(d.ScheduleAt, now)
		if limit := r.e.cfg.MaxDelay; limit > 0 && t.Sub(now) > limit {
			t = now.Add(limit)
		}
		d.ExpiresAt = t.UnixNano()
		return nil
	}); err != nil {
		return nil, err
	}
	return r.history[at].GetJoinSetRequest().GetDelay(), nil
}

func (r *workflowRun) submitDelay(ctx context.Context, req []byte) ([]byte, error) {
	var q abi.SubmitDelayRequest
	if err := json.Unmarshal(req, &q); err != nil {
		return nil, hostErr(abi.KindBadRequest, "%v", err)
	}
	set, err := r.submittable(q.JoinSet)
	if err != nil {
		return nil, err
	}
	if len(q.ScheduleAt) == 0 {
		return nil, hostErr(abi.KindBadRequest, "schedule_at is missing")
	}
	d, err := r.delayRequest(ctx, nil, q.JoinSet, len(set.requests)+1, q.ScheduleAt)
	if err != nil {
		return nil, err
	}
	set.requests = append(set.requests, runRequest{id: d.DelayId, delay: true, expires: d.ExpiresAt})
	return json.Marshal(d.DelayId)
}

// responseJSON is how a taken response is shown to the guest.
func responseJSON(resp *pb.Response, ffqnOf func(id string) string) ([]byte, error) {
	if d := resp.GetDelay(); d != nil {
		return json.Marshal(abi.DelayResponse(d.DelayId, d.Cancelled))
	}
	c := resp.GetChild()
	return json.Marshal(abi.ExecutionResponse(c.ChildExecutionId, ffqnOf(c.ChildExecutionId), c.Result))
}

func (r *workflowRun) ffqnOf(js string) func(string) string {
	return func(id string) string {
		for _, req := range r.sets[js].requests {
			if req.id == id {
				return req.ffqn
			}
		}
		return ""
	}
}

func (r *workflowRun) joinNext(ctx context.Context, req []byte) ([]byte, error) {
	var q abi.JoinNextRequest
	if err := json.Unmarshal(req, &q); err != nil {
		return nil, hostErr(abi.KindBadRequest, "%v", err)
	}
	set, err := r.openSet(q.JoinSet)
	if err != nil {
		return nil, err
	}
	if set.taken >= len(set.requests) {
		return nil, hostErr(abi.KindAllProcessed, "every request of join set %q has been taken", q.JoinSet)
	}
	want := []*pb.HistoryEvent{{Kind: &pb.HistoryEvent_JoinNext{JoinNext: &pb.JoinNext{JoinSetId: q.JoinSet, RequestedFfqn: q.FFQN}}}}
	if err := r.replayOrAppend(ctx, want, nil); err != nil {
		return nil, err
	}
	return r.await(ctx, parkedWait{Op: waitJoinNext, JoinSet: q.JoinSet, FFQN: q.FFQN})
}

// finishJoinNext takes the next response of join set js, which must be of ffqn if set.
func (r *workflowRun) finishJoinNext(ctx context.Context, js, ffqn string) ([]byte, error) {
	resp, err := r.take(ctx, js)
	if err != nil {
		return nil, err
	}
	if ffqn != "" {
		got := r.ffqnOf(js)(responseID(resp))
		if got != ffqn {
			if got == "" {
				got = "a delay"
			}
			return nil, hostErr(abi.KindFunctionMismatch, "expected a response of %s, the next one (%s) is of %s", ffqn, responseID(resp), got)
		}
	}
	return responseJSON(resp, r.ffqnOf(js))
}

func responseID(resp *pb.Response) string {
	if d := resp.GetDelay(); d != nil {
		return d.DelayId
	}
	return resp.GetChild().GetChildExecutionId()
}

func (r *workflowRun) joinNextTry(ctx context.Context, req []byte) ([]byte, error) {
	var q abi.JoinNextTryRequest
	if err := json.Unmarshal(req, &q); err != nil {
		return nil, hostErr(abi.KindBadRequest, "%v", err)
	}
	set, err := r.openSet(q.JoinSet)
	if err != nil {
		return nil, err
	}
	if set.taken >= len(set.requests) {
		return nil, hostErr(abi.KindAllProcessed, "every request of join set %q has been taken", q.JoinSet)
	}
	var outcome string
	if r.pos < len(r.history) {
		t := r.history[r.pos].GetJoinNextTry()
		if t == nil || t.JoinSetId != q.JoinSet {
			did := &pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinNextTry{JoinNextTry: &pb.JoinNextTry{JoinSetId: q.JoinSet}}}
			return nil, r.diverged(did, "join_next_try "+q.JoinSet)
		}
		r.pos++
		outcome = t.Outcome
	} else {
		// A poll looks at the world as it is: what the workflow submitted must exist.
		if err := r.flush(ctx, nil, nil, nil); err != nil {
			return nil, err
		}
		if err := r.refreshResponses(ctx); err != nil {
			return nil, err
		}
		outcome = "pending"
		if len(r.arrived[q.JoinSet]) > set.taken {
			outcome = "found"
		}
		ev := &pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinNextTry{JoinNextTry: &pb.JoinNextTry{JoinSetId: q.JoinSet, Outcome: outcome}}}
		if err := r.appendEvents(ctx, []*pb.HistoryEvent{ev}, nil); err != nil {
			return nil, err
		}
	}
	if outcome != "found" {
		return nil, hostErr(abi.KindPending, "no response in join set %q yet", q.JoinSet)
	}
	resp, err := r.take(ctx, q.JoinSet)
	if err != nil {
		return nil, err
	}
	return responseJSON(resp, r.ffqnOf(q.JoinSet))
}

func (r *workflowRun) get(req []byte) ([]byte, error) {
	var q abi.GetRequest
	if err := json.Unmarshal(req, &q); err != nil {
		return nil, hostErr(abi.KindBadRequest, "%v", err)
	}
	resp, ok := r.processed[q.ExecutionID]
	if !ok {
		return nil, hostErr(abi.KindNotFound, "execution %s is not among the responses this workflow has taken", q.ExecutionID)
	}
	return resp.GetChild().Result, nil
}

func (r *workflowRun) joinSetClose(ctx context.Context, req []byte) ([]byte, error) {
	var q abi.JoinSetCloseRequest
	if err := json.Unmarshal(req, &q); err != nil {
		return nil, hostErr(abi.KindBadRequest, "%v", err)
	}
	if _, err := r.openSet(q.JoinSet); err != nil {
		return nil, err
	}
	if err := r.closeSet(ctx, q.JoinSet); err != nil {
		return nil, err
	}
	return []byte("null"), nil
}

// closeSet closes a join set: what has not been taken and can be cancelled (activities,
// stubs, delays) is cancelled, then every remaining response is awaited and taken, each
// recorded as a closing join_next. Cancelling comes first and again on every replay of
// the close (it is idempotent), so a crash between the two cannot leave a child running
// that the workflow meant to cancel.
func (r *workflowRun) closeSet(ctx context.Context, js string) error {
	set := r.sets[js]
	if set.closed {
		return nil
	}
	set.closed = true
	if set.taken == len(set.requests) {
		return nil
	}
	// Responses are taken in arrival order, not request order: what is open is what
	// the taken responses do not answer.
	taken := map[string]bool{}
	for _, resp := range r.arrived[js][:set.taken] {
		taken[responseID(resp)] = true
	}
	var open []runRequest
	for _, req := range set.requests {
		if !taken[req.id] {
			open = append(open, req)
		}
	}
	// What is to be cancelled must exist first.
	if err := r.flush(ctx, nil, nil, nil); err != nil {
		return err
	}
	if err := r.refreshResponses(ctx); err != nil {
		return err
	}
	arrived := map[string]bool{}
	for _, resp := range r.arrived[js] {
		arrived[responseID(resp)] = true
	}
	for _, req := range open {
		if arrived[req.id] || !req.delay && r.childIsWorkflow(ctx, req) {
			continue
		}
		if err := r.fx.cancel(ctx, r, req.id); err != nil {
			return fmt.Errorf("close join set %s: cancel %s: %w", js, req.id, err)
		}
	}
	want := make([]*pb.HistoryEvent, len(open))
	for i := range open {
		want[i] = &pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinNext{JoinNext: &pb.JoinNext{JoinSetId: js, Closing: true}}}
	}
	if err := r.replayOrAppend(ctx, want, nil); err != nil {
		return err
	}
	for range open {
		if _, err := r.take(ctx, js); err != nil {
			return err
		}
	}
	return nil
}

// closeAll closes the join sets a returning workflow left open, the newest first.
func (r *workflowRun) closeAll(ctx context.Context) error {
	for i := len(r.setOrder) - 1; i >= 0; i-- {
		if err := r.closeSet(ctx, r.setOrder[i]); err != nil {
			return err
		}
	}
	return nil
}

func (r *workflowRun) sleep(ctx context.Context, req []byte) ([]byte, error) {
	var q abi.SleepRequest
	if err := json.Unmarshal(req, &q); err != nil {
		return nil, hostErr(abi.KindBadRequest, "%v", err)
	}
	if len(q.ScheduleAt) == 0 {
		return nil, hostErr(abi.KindBadRequest, "schedule_at is missing")
	}
	r.oneOff++
	js := events.OneOffJoinSetID(r.oneOff, "sleep")
	create := &pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinSetCreate{JoinSetCreate: &pb.JoinSetCreate{JoinSetId: js}}}
	next := &pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinNext{JoinNext: &pb.JoinNext{JoinSetId: js}}}
	d, err := r.delayRequest(ctx, []*pb.HistoryEvent{create}, js, 1, q.ScheduleAt, next)
	if err != nil {
		return nil, err
	}
	r.addSet(js)
	r.sets[js].requests = append(r.sets[js].requests, runRequest{id: d.DelayId, delay: true, expires: d.ExpiresAt})
	return r.await(ctx, parkedWait{Op: waitSleep, JoinSet: js, DelayID: d.DelayId, ExpiresAt: d.ExpiresAt})
}

// finishSleep takes the answer of a sleep's delay (its one-off join set js).
func (r *workflowRun) finishSleep(ctx context.Context, js, delayID string, expiresAt int64) ([]byte, error) {
	resp, err := r.take(ctx, js)
	if err != nil {
		return nil, err
	}
	r.sets[js].closed = true
	if resp.GetDelay().GetCancelled() {
		return nil, hostErr(abi.KindCancelled, "delay %s was cancelled", delayID)
	}
	t := time.Unix(0, expiresAt)
	return json.Marshal(abi.Woke{Seconds: t.Unix(), Nanoseconds: int64(t.Nanosecond())})
}

// stub writes the result of a stub activity's execution, recorded with the outcome the
// workflow was told (a replay tells it again and writes nothing).
func (r *workflowRun) stub(ctx context.Context, req []byte) ([]byte, error) {
	var q abi.StubRequest
	if err := json.Unmarshal(req, &q); err != nil {
		return nil, hostErr(abi.KindBadRequest, "%v", err)
	}
	var result bytes.Buffer
	if err := json.Compact(&result, q.Result); err != nil {
		return nil, hostErr(abi.KindBadRequest, "result: %v", err)
	}
	answer := func(outcome string) ([]byte, error) {
		switch outcome {
		case "ok":
			return []byte("null"), nil
		case abi.KindConflict:
			return nil, hostErr(abi.KindConflict, "execution %s already has another result", q.ExecutionID)
		case abi.KindExecutionNotFound:
			return nil, hostErr(abi.KindExecutionNotFound, "no execution %s of a stub activity", q.ExecutionID)
		}
		return nil, hostErr(outcome, "stub %s: %s", q.ExecutionID, outcome)
	}
	if r.pos < len(r.history) {
		s := r.history[r.pos].GetStub()
		if s == nil || s.TargetExecutionId != q.ExecutionID || !bytes.Equal(s.Result, result.Bytes()) {
			did := &pb.HistoryEvent{Kind: &pb.HistoryEvent_Stub{Stub: &pb.Stub{TargetExecutionId: q.ExecutionID, Result: result.Bytes()}}}
			return nil, r.diverged(did, fmt.Sprintf("stub %s with %s", q.ExecutionID, clip.String(result.String())))
		}
		r.pos++
		return answer(s.Outcome)
	}
	// The target may have been submitted by this run and not be written yet.
	if err := r.flush(ctx, nil, nil, nil); err != nil {
		return nil, err
	}
	// The target may change under us (another stub, a cancellation): retry on conflict.
	for attempt := 0; ; attempt++ {
		ev := &pb.Stub{TargetExecutionId: q.ExecutionID, Result: result.Bytes()}
		var extra []events.Append
		var responses []events.ResponseAppend
		st, fn, err := r.e.stubTarget(ctx, q.ExecutionID)
		switch {
		case err != nil:
			return nil, err
		case st == nil:
			ev.Outcome = abi.KindExecutionNotFound
		default:
			if msg := checkWrittenResult(fn, result.Bytes()); msg != "" {
				// Not recorded: the same call fails the same way on every replay.
				return nil, hostErr(abi.KindTypeCheck, "stub %s: %s", q.ExecutionID, msg)
			}
			switch {
			case st.Status == pb.Status_STATUS_FINISHED && bytes.Equal(st.Result, result.Bytes()):
				ev.Outcome = "ok"
			case st.Status == pb.Status_STATUS_FINISHED:
				ev.Outcome = abi.KindConflict
			default:
				ev.Outcome = "ok"
				tx := r.e.finishTx(st, result.Bytes(), time.Now())
				extra, responses = tx.Appends, tx.Responses
			}
		}
		h := &pb.HistoryEvent{Kind: &pb.HistoryEvent_Stub{Stub: ev}}
		err = r.appendTx(ctx, []*pb.HistoryEvent{h}, extra, responses)
		var ce *events.ConflictError
		if err != nil && errors.As(err, &ce) && ce.ExecutionID == q.ExecutionID && attempt < 5 {
			continue
		}
		if err != nil {
			return nil, err
		}
		return answer(ev.Outcome)
	}
}

// childIsWorkflow reports whether the child request req is a workflow's execution: by
// the function it was routed to, or, when a replay could not route it any more
// (callable), by the child's state.
func (r *workflowRun) childIsWorkflow(ctx context.Context, req runRequest) bool {
	if req.fn.Component != nil {
		return req.fn.Component.Config.Type == Workflow
	}
	st, err := r.e.store.State(ctx, req.id)
	return err == nil && st.ComponentType == pb.ComponentType_COMPONENT_TYPE_WORKFLOW
}
