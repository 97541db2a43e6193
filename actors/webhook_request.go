package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/obelisk-go/obelisk/events"
	"github.com/obelisk-go/obelisk/internal/clip"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
	"github.com/obelisk-go/obelisk/tracing"
	"github.com/obelisk-go/obelisk/wasmhost"
)

// Webhook endpoints (docs/abi.md, "Webhook endpoints"). Each HTTP request runs in a fresh
// instance of the endpoint's module, as the function WebhookHandlerFFQN. A request is
// recorded as an execution only if it does something durable: its first call or
// schedule creates a top-level execution (WebhookRequestFFQN), locked by the request's
// run, in the same transaction as what it did. Its direct calls are child executions in
// one-off join sets, as a workflow's are, whose results are delivered to it as
// responses; when the request ends, the execution finishes with {"ok": {"status": N}}
// (or the handler's err, or an execution failure on a trap or a timeout). Webhook
// executions are never replayed or retried: a request whose process died is finished as
// failed when the engine starts again (abandonWebhooks).

// WebhookHandlerFFQN is the function a webhook endpoint's module runs for every request.
const WebhookHandlerFFQN = "obelisk:webhook/handler.handle"

// WebhookRequestFFQN is the function name of the executions that record the requests of
// the webhook endpoint named endpoint.
func WebhookRequestFFQN(endpoint string) string {
	return "obelisk:webhook/" + endpoint + ".request"
}

// WebhookRequest is one HTTP request for a webhook endpoint.
type WebhookRequest struct {
	// Input is the request as the guest receives it: a JSON object (docs/abi.md)
	// without the body.
	Input json.RawMessage
	// Body is the request's body, which the guest copies into its memory with the
	// request_body_read import, if at all: a body in Input would cost the guest a
	// JSON decoding of all of it before the handler starts.
	Body []byte
	// Method and Path are recorded as the parameters of the request's execution, if
	// it gets one.
	Method, Path string
}

// WebhookResult is what the guest made of a request.
type WebhookResult struct {
	// Output is the guest's result: {"ok": response} or {"err": value}.
	Output json.RawMessage
	// ExecutionID is the request's execution; "" when the request did nothing durable.
	ExecutionID string
}

// webhookComponent returns the webhook endpoint named name, nil if there is none.
func (e *Engine) webhookComponent(name string) *Component {
	cs := e.reg.components // sorted by name
	i := sort.Search(len(cs), func(i int) bool { return cs[i].Config.Name >= name })
	if i < len(cs) && cs[i].Config.Name == name && cs[i].Config.Type == WebhookEndpoint {
		return cs[i]
	}
	return nil
}

// RunWebhook handles one request of the webhook endpoint named endpoint in a fresh
// instance. ctx bounds it (without a deadline, the endpoint's LockExpiry does): when it
// ends the guest is killed. The error is, to be told apart with errors.Is / errors.As:
// ctx's error (context.DeadlineExceeded for a timeout); a *wasmhost.TrapError when the
// guest failed on its own; anything else for an internal failure. The result is
// returned with the error when the request was recorded (its ExecutionID).
func (e *Engine) RunWebhook(ctx context.Context, endpoint string, req *WebhookRequest) (*WebhookResult, error) {
	c := e.webhookComponent(endpoint)
	if c == nil {
		return nil, fmt.Errorf("no webhook endpoint %q", endpoint)
	}
	if _, ok := ctx.Deadline(); !ok && c.Config.LockExpiry > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Config.LockExpiry)
		defer cancel()
	}
	// The run's own context: a cancellation of the request's execution stops it.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	now := time.Now()
	r := &webhookRun{e: e, c: c, id: events.NewExecutionID(now), runID: events.NewRunID(now), stop: stop}
	if e.cfg.Tracer.Enabled() {
		// The request's execution joins the caller's trace (traceparent header); its
		// children join the execution's.
		r.incoming = e.incomingTrace(ctx)
		r.trace = e.childTrace(r.id, &pb.Created{TraceParent: r.incoming.parent, TraceState: r.incoming.state})
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = now.Add(time.Minute)
	}
	r.lockExpires = deadline.Add(lockGrace)
	r.params, _ = json.Marshal([]map[string]string{{"method": req.Method, "path": req.Path}})
	cfg := wasmhost.InstanceConfig{Kind: wasmhost.KindActivity, Handler: r, RequestBody: req.Body, HTTP: c.http}
	// The request's instance counts in the guest memory budget like a run's; waiting for
	// room is bounded by the request's time (run_memory.go).
	memory, err := e.admitRun(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("webhook endpoint %q: waiting for guest memory: %w", endpoint, err)
	}
	defer memory.Close() // after the instance is closed (deferred below)
	inst, err := e.instantiate(ctx, c, cfg, memory, time.Time{})
	if err != nil {
		return nil, fmt.Errorf("webhook endpoint %q: instantiate: %w", endpoint, err)
	}
	defer inst.Close(context.WithoutCancel(ctx))
	params := make([]byte, 0, len(req.Input)+2)
	params = append(append(append(params, '['), req.Input...), ']')
	inst.SetLogging(c.runLogging(nil)) // a request is not an execution yet: the server's log only
	exec := tracing.Exec{ID: r.id, TraceParent: r.incoming.parent, TraceState: r.incoming.state}
	runCtx, span := e.cfg.Tracer.StartAttempt(ctx, exec, WebhookHandlerFFQN, r.runID, 1)
	out, runErr := inst.Run(runCtx, wasmhost.RunInput{FFQN: WebhookHandlerFFQN, Params: params, ExecutionID: r.id, Attempt: 1})
	switch {
	case !r.created:
		span.Discard() // no execution: nothing in the trace to hang it on
	case runErr != nil:
		span.End("failed", true)
	default:
		span.End("ok", false)
	}
	if !r.created {
		return &WebhookResult{Output: out}, runErr
	}
	defer e.runs.remove(r.runID)
	defer e.active.remove(r.id)
	r.finish(ctx, out, runErr)
	return &WebhookResult{Output: out, ExecutionID: r.id}, runErr
}

// webhookRun is one request of a webhook endpoint: it answers the guest's host calls
// and records the request's execution once the guest does something durable.
type webhookRun struct {
	e           *Engine
	c           *Component
	id, runID   string
	params      []byte // of the execution: [{"method", "path"}]
	lockExpires time.Time
	stop        context.CancelFunc

	created bool
	version uint32 // the next version of the execution's stream
	// incoming is the caller's trace context, for the execution's Created; trace is its
	// children's (actors/tracing.go).
	incoming, trace traceContext
	oneOff          int
}

// HostCall answers the guest's host calls (wasmhost.HostHandler); log and http are
// answered by wasmhost.
func (r *webhookRun) HostCall(ctx context.Context, op string, req []byte) ([]byte, error) {
	switch op {
	case abi.OpCall:
		return r.call(ctx, req)
	case abi.OpSchedule:
		return r.schedule(ctx, req)
	case abi.OpGetStatus:
		return r.e.getStatusOp(ctx, req)
	case abi.OpExecutionIDGenerate:
		return json.Marshal(events.NewExecutionID(time.Now()))
	case abi.OpKV:
		return r.e.kvDirect(ctx, req)
	}
	return nil, hostErr(abi.KindUnsupportedOp, "operation %q is not available to webhook endpoints", op)
}

// commit writes history events of the request's execution, with extra appends of other
// streams, in one transaction; the first one creates the execution, locked by this run.
func (r *webhookRun) commit(ctx context.Context, now time.Time, hist []*pb.HistoryEvent, extra ...events.Append) error {
	var evs []*pb.Event
	if !r.created {
		// The request becomes work the server accepted here, so it is admitted here: its
		// first child or schedule must find room in its queue (admission.go); later
		// ones belong to an admitted request and are created past the limits.
		for _, a := range extra {
			if c := a.Events[0].GetCreated(); c != nil {
				release, err := r.e.admit(c.Queue, now)
				if err != nil {
					return fmt.Errorf("%w: webhook request: %w", wasmhost.ErrAbort, r.e.refused(err))
				}
				defer release()
			}
		}
		// Registered before the execution exists, so that no cancellation is missed.
		r.e.runs.add(r.runID)
		r.e.active.add(r.id, r.stop)
		evs = append(evs,
			traced(createdEvent(now, r.c, WebhookRequestFFQN(r.c.Config.Name), r.params, "", ""), r.incoming),
			lockedEvent(r.e.executor, r.c, r.runID, now, r.lockExpires, &pb.RetryConfig{})) // never retried
	}
	for _, h := range hist {
		evs = append(evs, &pb.Event{CreatedAt: now.UnixNano(), Kind: &pb.Event_History{History: h}})
	}
	app := events.Append{ExecutionID: r.id, ExpectedVersion: r.version, Events: evs}
	if r.created {
		app.RunID = r.runID
	}
	if _, err := r.e.commitDispatching(ctx, &events.Tx{Appends: append([]events.Append{app}, extra...)}, now); err != nil {
		if !r.created {
			r.e.runs.remove(r.runID)
			r.e.active.remove(r.id)
		}
		var ce *events.ConflictError
		if errors.As(err, &ce) && ce.ExecutionID != r.id {
			return hostErr(abi.KindConflict, "execution %s already exists", ce.ExecutionID)
		}
		// The request's execution was taken away (cancelled), or the store failed: stop.
		return fmt.Errorf("%w: record webhook request %s: %w", wasmhost.ErrAbort, r.id, err)
	}
	r.created = true
	r.version += uint32(len(evs))
	return nil
}

// callable checks that the endpoint may call ffqn with params (it imports it) and
// returns the function and the compacted params.
func (r *webhookRun) callable(ffqn string, raw json.RawMessage) (Function, []byte, error) {
	return r.e.callable(r.c, ffqn, raw, true)
}

// call runs a child execution in a one-off join set and waits for its result.
func (r *webhookRun) call(ctx context.Context, req []byte) ([]byte, error) {
	var q abi.CallRequest
	if err := json.Unmarshal(req, &q); err != nil {
		return nil, hostErr(abi.KindBadRequest, "%v", err)
	}
	if q.ExecutionID != "" {
		return nil, callIDRefused("webhook endpoint")
	}
	fn, params, err := r.callable(q.FFQN, q.Params)
	if err != nil {
		return nil, err
	}
	r.oneOff++
	js, child, hist := directCall(r.id, r.oneOff, q.FFQN, params)
	// The run waits in memory until its lock expires (the request's deadline).
	hist[2].GetJoinNext().RunExpiresAt = r.lockExpires.UnixNano()
	now := time.Now()
	if err := r.commit(ctx, now, hist, events.Append{ExecutionID: child, Events: []*pb.Event{traced(createdEvent(now, fn.Component, fn.Fn.FFQN(), params, r.id, js), r.trace)}}); err != nil {
		return nil, err
	}
	st, err := r.e.WaitFinished(ctx, child)
	if err != nil {
		return nil, err // ctx ended: the guest is stopped
	}
	return st.Result, nil
}

// schedule creates a new top-level execution of any deployed function (optionally with
// the ID given, e.g. one from execution_id_generate), recorded in the request's
// execution, and does not wait for it.
func (r *webhookRun) schedule(ctx context.Context, req []byte) ([]byte, error) {
	var q abi.ScheduleRequest
	if err := json.Unmarshal(req, &q); err != nil {
		return nil, hostErr(abi.KindBadRequest, "%v", err)
	}
	fn, params, err := r.e.scheduleTarget(r.c, q.FFQN, q.Params, true)
	if err != nil {
		return nil, err
	}
	spec, err := scheduleSpec(q.ScheduleAt, false)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	at, err := abi.ResolveScheduleAt(spec, now)
	if err != nil {
		return nil, hostErr(abi.KindBadRequest, "schedule_at: %v", err)
	}
	id := q.ExecutionID
	if id == "" {
		id = events.NewExecutionID(now)
	} else if id, err = events.CanonicalTopLevelID(id); err != nil {
		return nil, hostErr(abi.KindBadRequest, "%v", err)
	}
	sc := &pb.Schedule{ExecutionId: id, Ffqn: q.FFQN, Params: params, ScheduleAt: spec, ScheduledAt: at.UnixNano()}
	hist := []*pb.HistoryEvent{{Kind: &pb.HistoryEvent_Schedule{Schedule: sc}}}
	created := traced(r.e.scheduledCreated(now, fn, params, at, r.id), r.trace)
	if err := r.commit(ctx, now, hist, events.Append{ExecutionID: id, Events: []*pb.Event{created}}); err != nil {
		return nil, err
	}
	return json.Marshal(id)
}

// getStatusOp answers the get_status op of webhook endpoints and triggers: the status
// of any execution, {"status": s} and, once finished, "result".
func (e *Engine) getStatusOp(ctx context.Context, req []byte) ([]byte, error) {
	var q abi.GetStatusRequest
	if err := json.Unmarshal(req, &q); err != nil {
		return nil, hostErr(abi.KindBadRequest, "%v", err)
	}
	if q.ExecutionID == "" {
		return nil, hostErr(abi.KindBadRequest, "execution_id is missing")
	}
	id, err := events.CanonicalID(q.ExecutionID) // often straight from a request's URL
	if err != nil {
		return nil, hostErr(abi.KindBadRequest, "%v", err)
	}
	st, err := e.store.State(ctx, id)
	if errors.Is(err, events.ErrNotFound) {
		return nil, hostErr(abi.KindNotFound, "execution %s not found", clip.String(id))
	}
	if err != nil {
		return nil, err
	}
	resp := abi.Status{Status: events.StatusName(st.Status), Paused: st.Paused, CancelRequested: st.CancelRequested}
	if st.Status == pb.Status_STATUS_FINISHED {
		resp.Result = st.Result
	}
	return json.Marshal(resp)
}

// finish records the outcome of a recorded request: {"ok": {"status": N}} for a
// response, the guest's err, or an execution failure.
func (r *webhookRun) finish(ctx context.Context, out []byte, runErr error) {
	result := webhookOutcome(out, runErr)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_, err := r.e.change(ctx, r.id, func(st *pb.ExecutionState) (*events.Tx, error) {
		if st == nil || st.Status == pb.Status_STATUS_FINISHED || st.RunId != r.runID {
			return nil, nil // cancelled meanwhile: the cancellation recorded the result
		}
		tx := r.e.finishTx(st, result, time.Now())
		tx.Appends[0].RunID = r.runID
		return tx, nil
	})
	if err != nil {
		r.e.log.Warn("webhook: record the outcome of a request", "execution", r.id, "err", err)
	}
}

func webhookOutcome(out []byte, runErr error) []byte {
	var trap *wasmhost.TrapError
	switch {
	case runErr == nil:
		r, err := events.ParseResult(out)
		if err != nil || r.Kind == pb.ResultKind_RESULT_KIND_UNSPECIFIED {
			return events.FailureResult(events.FailureUncategorized, fmt.Sprintf("invalid webhook response: %v", err))
		}
		if r.Kind != pb.ResultKind_RESULT_KIND_OK {
			return out // the handler's err
		}
		var resp struct {
			Status int `json:"status"`
		}
		if err := json.Unmarshal(r.Value, &resp); err != nil {
			return events.FailureResult(events.FailureUncategorized, "invalid webhook response: "+err.Error())
		}
		if resp.Status == 0 {
			resp.Status = 200
		}
		b, _ := json.Marshal(map[string]map[string]int{"ok": {"status": resp.Status}})
		return b
	case errors.Is(runErr, context.DeadlineExceeded):
		return events.FailureResult(events.FailureTimedOut, "the request exceeded its request_timeout")
	case errors.As(runErr, &trap):
		return events.FailureResult(events.FailureUncategorized, trap.Error())
	case errors.Is(runErr, context.Canceled):
		return events.FailureResult(events.FailureUncategorized, "the request was abandoned (client gone, or the server stopping)")
	}
	return events.FailureResult(events.FailureUncategorized, runErr.Error())
}

// abandonWebhooks finishes the executions of webhook requests whose runs died with an
// earlier process: a request is never resumed (its client is gone).
func (e *Engine) abandonWebhooks(ctx context.Context, ids []string) error {
	for _, id := range ids {
		_, err := e.change(ctx, id, func(st *pb.ExecutionState) (*events.Tx, error) {
			if st == nil || st.Status == pb.Status_STATUS_FINISHED {
				return nil, nil
			}
			return e.finishTx(st, events.FailureResult(events.FailureTimedOut, "the server stopped while it handled the request"), time.Now()), nil
		})
		if err != nil {
			return fmt.Errorf("finish webhook request %s: %w", id, err)
		}
	}
	if len(ids) > 0 {
		e.log.Info("finished the webhook requests of a previous run", "executions", len(ids))
	}
	return nil
}
