package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
	"github.com/obelisk-go/obelisk/wasmhost"
)

// Triggers (README, "Triggers"; docs/abi.md, "Triggers"). A trigger is a module whose
// one instance runs TriggerFFQN for as long as it likes: it watches something (reads a
// stream, polls an API) and calls or schedules executions. It is a supervised service of
// its own, "trigger:<name>", whose pass is one run of the guest: when the run ends —
// the guest returned, returned an err, trapped, or its instance could not be made — the
// pass returns when the next run is due, after an exponential backoff with jitter
// (triggerBackoff). A run that lasted RestartBackoffMax or longer resets the backoff: a
// trigger that failed after working for a while is restarted soon. Engine.Close cancels
// runCtx, which kills the guest wherever it is (in a host call such as an HTTP read, or
// a sleep), and the pass returns.
//
// A trigger is not an execution: it leaves nothing in the store itself. What it calls
// or schedules is a top-level execution like one submitted through the API (Submit),
// with an ID the guest may choose: submitting the same ID with the same function and
// parameters again finds the execution made the first time, so a trigger restarted
// after a crash that derives IDs from what it read submits nothing twice. Its log lines
// go to the server's log, with the attribute trigger=<name>.

// TriggerFFQN is the function a trigger's module runs: run: func() -> result<_, string>.
const TriggerFFQN = "obelisk:trigger/main.run"

// Defaults of ComponentConfig.RestartBackoff and RestartBackoffMax.
const (
	DefaultTriggerBackoff    = time.Second
	DefaultTriggerBackoffMax = 5 * time.Minute
)

// triggerBackoff returns the delay before the restart that follows the n-th run in a
// row that ended before lasting max (n ≥ 1): first·2^(n-1), at most max, of which a
// random part, up to half, is left out (r in [0, 1) chooses it), so that triggers failing
// together do not all restart at the same moment.
func triggerBackoff(first, max time.Duration, n int, r float64) time.Duration {
	d := first
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	return d - time.Duration(r*float64(d/2))
}

// trigger is a trigger's service state; it lives outside the service's actor, so a
// restart of the actor (a panic in the host) keeps it.
type trigger struct {
	e    *Engine
	c    *Component
	wake wakeup
	// runs counts the runs since the engine started; failed counts the runs in a row
	// that ended early (see triggerBackoff); next is when the next run is due.
	runs, failed int
	next         time.Time
}

func (e *Engine) newTriggers() []*trigger {
	var ts []*trigger
	for _, c := range e.reg.components {
		if c.Config.Type == Trigger {
			ts = append(ts, &trigger{e: e, c: c})
			e.cfg.Metrics.Triggers(c.Config.Name)
		}
	}
	return ts
}

func (t *trigger) backoffs() (first, max time.Duration) {
	first, max = t.c.Config.RestartBackoff, t.c.Config.RestartBackoffMax
	if first <= 0 {
		first = DefaultTriggerBackoff
	}
	if max <= 0 {
		max = DefaultTriggerBackoffMax
	}
	return first, max
}

// restartDelay counts a run that lasted ran and returns the delay before the next one
// (jitter r in [0, 1)): a run that lasted the cap or longer resets the doubling.
func (t *trigger) restartDelay(ran time.Duration, r float64) time.Duration {
	first, max := t.backoffs()
	if ran >= max {
		t.failed = 0
	}
	t.failed++
	return triggerBackoff(first, max, t.failed, r)
}

// pass runs the trigger once it is due, and returns when it is due again.
func (t *trigger) pass(ctx context.Context) time.Time {
	if time.Now().Before(t.next) {
		return t.next
	}
	t.runs++
	started := time.Now()
	err := t.e.runTrigger(ctx, t.c, t.runs)
	if ctx.Err() != nil {
		return time.Time{} // the engine is stopping
	}
	ran := time.Since(started)
	delay := t.restartDelay(ran, rand.Float64())
	t.next = time.Now().Add(delay)
	outcome, reason := triggerOutcome(err)
	t.e.log.Warn("trigger: the run ended, restarting it after a backoff", "trigger", t.c.Config.Name, "run", t.runs,
		"outcome", outcome, "reason", reason, "ran", ran.Round(time.Millisecond), "backoff", delay.Round(time.Millisecond))
	t.e.cfg.Metrics.TriggerRestart(t.c.Config.Name, outcome)
	return t.next
}

// errTriggerReturned: the guest's run function returned ok.
var errTriggerReturned = errors.New("the trigger returned")

// triggerErr is the err value the guest's run function returned.
type triggerErr struct{ value json.RawMessage }

func (e *triggerErr) Error() string { return "the trigger returned err " + string(e.value) }

// triggerOutcome names how a run ended (the metric's outcome) and why.
func triggerOutcome(err error) (outcome, reason string) {
	var te *triggerErr
	var trap *wasmhost.TrapError
	switch {
	case errors.Is(err, errTriggerReturned):
		return "returned", err.Error()
	case errors.As(err, &te):
		return "err", err.Error()
	case errors.As(err, &trap):
		return "trapped", trap.Error()
	}
	return "failed", err.Error()
}

// runTrigger runs the trigger's guest once, until it ends or ctx does. The error says
// how it ended: errTriggerReturned, a *triggerErr, a *wasmhost.TrapError, or another
// error (no instance could be made, the host aborted it).
func (e *Engine) runTrigger(ctx context.Context, c *Component, run int) error {
	memory, err := e.admitRun(ctx, c)
	if err != nil {
		return fmt.Errorf("trigger %q: waiting for guest memory: %w", c.Config.Name, err)
	}
	defer memory.Close() // after the instance is closed (deferred below)
	cfg := wasmhost.InstanceConfig{Kind: wasmhost.KindActivity, Handler: &triggerHost{e: e, c: c}, HTTP: c.http,
		Logger: e.log.With("trigger", c.Config.Name)}
	inst, err := e.instantiate(ctx, c, cfg, memory, time.Time{})
	if err != nil {
		return fmt.Errorf("trigger %q: instantiate: %w", c.Config.Name, err)
	}
	defer inst.Close(context.WithoutCancel(ctx))
	inst.SetLogging(c.runLogging(nil)) // not an execution: the server's log only
	e.log.Info("trigger: started", "trigger", c.Config.Name, "run", run)
	out, err := inst.Run(ctx, wasmhost.RunInput{FFQN: TriggerFFQN, Attempt: run})
	if err != nil {
		return err
	}
	r, err := events.ParseResult(out)
	if err != nil {
		return &wasmhost.TrapError{Message: fmt.Sprintf("invalid result of %s: %v", TriggerFFQN, err)}
	}
	if r.Kind == pb.ResultKind_RESULT_KIND_OK {
		return errTriggerReturned
	}
	return &triggerErr{r.Value}
}

// triggerHost answers a trigger's host calls beyond log and http (which wasmhost
// answers): call, schedule, get_status, execution_id_generate and kv, as for a webhook
// endpoint, except that what it calls or schedules is a top-level execution (it has no
// execution of its own to be the parent), with the ID the guest chose if it did.
type triggerHost struct {
	e *Engine
	c *Component
}

// HostCall implements wasmhost.HostHandler.
func (h *triggerHost) HostCall(ctx context.Context, op string, req []byte) ([]byte, error) {
	switch op {
	case abi.OpCall:
		return h.call(ctx, req)
	case abi.OpSchedule:
		return h.schedule(ctx, req)
	case abi.OpGetStatus:
		return h.e.getStatusOp(ctx, req)
	case abi.OpExecutionIDGenerate:
		return json.Marshal(events.NewExecutionID(time.Now()))
	case abi.OpKV:
		return h.e.kvDirect(ctx, req)
	}
	return nil, hostErr(abi.KindUnsupportedOp, "operation %q is not available to triggers", op)
}

// call submits a top-level execution of a function the trigger imports and waits for
// its result. An execution ID the guest gives that exists with the same function and
// parameters is waited for, not created again.
func (h *triggerHost) call(ctx context.Context, req []byte) ([]byte, error) {
	var q abi.CallRequest
	if err := json.Unmarshal(req, &q); err != nil {
		return nil, hostErr(abi.KindBadRequest, "%v", err)
	}
	fn, params, err := h.e.callable(h.c, q.FFQN, q.Params, true)
	if err != nil {
		return nil, err
	}
	// To the component the trigger's requires routed it to (registry.route).
	id, err := h.submit(ctx, q.ExecutionID, q.FFQN, params, OfComponent(fn.Component.ID))
	if err != nil {
		return nil, err
	}
	st, err := h.e.WaitFinished(ctx, id)
	if err != nil {
		return nil, err // ctx ended: the guest is stopped
	}
	return st.Result, nil
}

// callIDRefused answers a call with an execution_id from a component whose calls make
// child executions, whose IDs derive from their parent's: only a trigger's calls take one.
func callIDRefused(who string) error {
	return hostErr(abi.KindBadRequest, "call: execution_id is for triggers: a %s's call is a child execution, whose ID derives from its parent's", who)
}

// schedule submits a top-level execution of any deployed function but an activity
// stub's, due at schedule_at, and does not wait for it.
func (h *triggerHost) schedule(ctx context.Context, req []byte) ([]byte, error) {
	var q abi.ScheduleRequest
	if err := json.Unmarshal(req, &q); err != nil {
		return nil, hostErr(abi.KindBadRequest, "%v", err)
	}
	fn, params, err := h.e.scheduleTarget(h.c, q.FFQN, q.Params, true)
	if err != nil {
		return nil, err
	}
	spec, err := scheduleSpec(q.ScheduleAt, false)
	if err != nil {
		return nil, err
	}
	at, err := abi.ResolveScheduleAt(spec, time.Now())
	if err != nil {
		return nil, hostErr(abi.KindBadRequest, "schedule_at: %v", err)
	}
	id, err := h.submit(ctx, q.ExecutionID, q.FFQN, params, dueAt(at), OfComponent(fn.Component.ID))
	if err != nil {
		return nil, err
	}
	return json.Marshal(id)
}

// submit creates the execution through Submit, the API's path, and turns its errors
// into host errors. Into a full queue (max_pending) it waits until the execution is
// admitted: the trigger's call blocks, so it takes no more from its source meanwhile
// (backpressure), and nothing it took is lost. It asks again after the retry delay the
// refusal advises, or after a second if that is sooner: the advice, an estimate from the
// queue's recent drain, is for remote clients; asking in process costs one Submit.
func (h *triggerHost) submit(ctx context.Context, wantID, ffqn string, params []byte, opts ...SubmitOption) (string, error) {
	id, _, err := h.e.Submit(ctx, wantID, ffqn, params, opts...)
	for {
		var full *ResourceExhaustedError
		if !errors.As(err, &full) {
			break
		}
		t := time.NewTimer(min(full.RetryAfter, time.Second))
		select {
		case <-ctx.Done():
			t.Stop()
			return "", fmt.Errorf("%w: trigger %q: submit %s: %w", wasmhost.ErrAbort, h.c.Config.Name, ffqn, err)
		case <-t.C:
		}
		id, _, err = h.e.Submit(ctx, wantID, ffqn, params, opts...)
	}
	var exists *ExistsError
	var invalid *InvalidArgumentError
	var notFound *FunctionNotFoundError
	switch {
	case errors.As(err, &exists):
		return "", hostErr(abi.KindConflict, "%v", err)
	case errors.As(err, &invalid):
		return "", hostErr(abi.KindBadRequest, "%v", err)
	case errors.As(err, &notFound):
		return "", hostErr(abi.KindFunctionNotFound, "%v", err)
	case err != nil:
		return "", fmt.Errorf("%w: trigger %q: submit %s: %w", wasmhost.ErrAbort, h.c.Config.Name, ffqn, err)
	}
	return id, nil
}
