package actors

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"time"

	"github.com/obelisk-go/obelisk/actors/internal/membudget"
	"github.com/obelisk-go/obelisk/actors/internal/retrybudget"
	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
	"github.com/obelisk-go/obelisk/wasmhost"
	"github.com/obelisk-go/obelisk/wasmhost/wit"
)

// activityRunner runs the executions of WASM activities (run.go): one attempt per run,
// in an instance made before the lock.
type activityRunner struct{ e *Engine }

// prepare makes the attempt's instance, unless the result cache serves the execution:
// a hit needs no instance, so the cache is read first. For a run locked already (eager
// dispatch) the attempt's clock starts first, so that with keepalive its lock is renewed
// while it waits for its instance, and a wait for memory ends with the lock.
func (ar activityRunner) prepare(ctx context.Context, r *run) error {
	c := r.x.comp
	if r.st != nil {
		r.attempt = ar.e.beginAttempt(ctx, c, r.st, r.runID)
	}
	if c.Config.CacheTTL > 0 && r.created == nil {
		// Read here once for the cache and the run; an error is runActivity's to report.
		r.created, _ = ar.e.createdOf(ctx, r.id)
	}
	if c.Config.CacheTTL > 0 && r.created != nil {
		if from, result, ok := ar.e.cachedResult(ctx, c, r.created, r.id); ok {
			r.cached = &cacheHit{from: from, result: result}
			return nil
		}
	}
	var err error
	r.inst, err = ar.e.instantiate(ctx, c, ar.e.activityInstanceConfig(c), r.memory, r.lockUntil())
	return err
}

func (ar activityRunner) run(ctx context.Context, r *run) {
	if r.cached != nil {
		ar.e.finishFromCache(ctx, r.id, r.runID, r.cached.from, r.cached.result)
		return
	}
	inst := r.inst
	r.inst = nil
	ar.e.runActivity(ctx, r.x.comp, r.st, r.runID, inst, r.created, r.attempt)
}

// runActivity runs one attempt of a locked activity in inst (a fresh instance, which it
// closes), killed when its lock expires or max_duration ends, and records the outcome.
// created is the activity's Created event when the caller has it, else nil: it is read.
// a is the attempt begun when the lock was taken, or nil to begin it now (service_keepalives.go).
func (e *Engine) runActivity(ctx context.Context, c *Component, st *pb.ExecutionState, runID string, inst *wasmhost.Instance, created *pb.Created, a *attempt) {
	defer inst.Close(context.WithoutCancel(ctx))
	if a == nil {
		a = e.beginAttempt(ctx, c, st, runID)
	}
	defer e.endAttempt(a) // on every path; ended before the outcome is recorded below
	id := st.ExecutionId
	if created == nil {
		var err error
		if created, err = e.createdOf(ctx, id); err != nil {
			e.log.Error("activity: read created", "execution", id, "err", err)
			return
		}
	}
	fn, _ := c.function(created.Ffqn)
	attempt := st.IntermittentFailures + 1
	logs := newRunLogs(e, id, runID, attempt, false)
	inst.SetLogging(c.runLogging(logs))
	runCtx, span := e.cfg.Tracer.StartAttempt(a.ctx, execOf(id, created), created.Ffqn, runID, int(attempt))
	outcome := "stopped" // shutting down: the lock expires and the attempt is retried
	defer func() { span.End(outcome, outcome != "ok") }()
	out, runErr := inst.Run(runCtx, wasmhost.RunInput{FFQN: created.Ffqn, Params: created.Params, ExecutionID: id, Attempt: int(attempt)})
	runErr = e.explain(a, runErr) // before endAttempt, which ends a.ctx
	e.endAttempt(a)
	if ctx.Err() != nil {
		logs.take() // not stored: the store is closing
		return      // shutting down: the lock expires and the attempt is retried
	}
	outcome = e.recordAttempt(ctx, id, runID, fn, created.Params, out, runErr, logs)
}

// cachedResult returns the ok result that serves an execution of c created by created
// from the activity result cache (CacheTTL), if there is one: the result of the
// execution the cache names, read from its state.
func (e *Engine) cachedResult(ctx context.Context, c *Component, created *pb.Created, self string) (from string, result []byte, ok bool) {
	if c.Config.CacheTTL <= 0 {
		return "", nil, false
	}
	from, ok, err := e.store.CacheGet(ctx, c.ID, created.Ffqn, created.Params, time.Now())
	if err != nil {
		e.log.Warn("activity: read the result cache", "execution", self, "err", err)
		return "", nil, false
	}
	if !ok || from == self {
		return "", nil, false
	}
	// The entry names an execution; what holds that ID now must be the one it named
	// (retention may have deleted it, and a submitter may have reused the ID since).
	st, err := e.store.State(ctx, from)
	if err != nil || st.Status != pb.Status_STATUS_FINISHED || st.ResultKind != pb.ResultKind_RESULT_KIND_OK ||
		st.ComponentId != c.ID || st.Ffqn != created.Ffqn {
		return "", nil, false
	}
	if src, err := e.createdOf(ctx, from); err != nil || !bytes.Equal(src.Params, created.Params) {
		return "", nil, false
	}
	return from, st.Result, true
}

// cacheHit is what the result cache serves a run: the execution whose result it is.
type cacheHit struct {
	from   string
	result []byte
}

// finishFromCache finishes locked run runID of activity id with the result of
// execution from, which the result cache served.
func (e *Engine) finishFromCache(ctx context.Context, id, runID, from string, result []byte) {
	_, err := e.change(ctx, id, func(st *pb.ExecutionState) (*events.Tx, error) {
		if st == nil || st.Status != pb.Status_STATUS_LOCKED || st.RunId != runID {
			return nil, nil
		}
		tx := e.finishTx(st, result, time.Now())
		tx.Appends[0].Events[0].GetFinished().CachedFrom = from
		return tx, nil
	})
	if err != nil {
		e.log.Error("activity: finish from the result cache", "execution", id, "err", err)
		return
	}
	e.cfg.Metrics.ActivityAttempt("cached")
}

// recordAttempt records the outcome of run runID of activity id, out and runErr as
// Instance.Run returned them, unless the run no longer holds the lock, with the lines
// the attempt logged (logs, which may be nil). It returns the outcome recorded
// (attemptOutcome), "lock_lost" if none was, "store_failed" if the commit failed.
func (e *Engine) recordAttempt(ctx context.Context, id, runID string, fn Function, params, out []byte, runErr error, logs *runLogs) string {
	lines := logs.take()
	outcome, logged := "", false
	_, err := e.change(ctx, id, func(st *pb.ExecutionState) (*events.Tx, error) {
		outcome, logged = "", false
		if st != nil && st.RunId == runID && finishedAtDeadline(st) {
			// The deadline service's commit came first, stopping this very attempt: its
			// outcome is the deadline, not a lost lock.
			outcome = "deadline_exceeded"
			return nil, nil
		}
		if st == nil || st.Status != pb.Status_STATUS_LOCKED || st.RunId != runID {
			return nil, nil // the lock expired meanwhile; the timer service has dealt with it
		}
		now := time.Now()
		tx := e.activityOutcomeTx(st, fn, out, runErr, now)
		tx.Logs, logged = lines, true
		outcome = attemptOutcome(tx)
		if c := fn.Component; outcome == "ok" && c != nil && c.Config.CacheTTL > 0 {
			tx.Cache = append(tx.Cache, events.CachePut{ComponentID: st.ComponentId, FFQN: st.Ffqn, Params: params,
				ExecutionID: st.ExecutionId, ExpiresAt: now.Add(c.Config.CacheTTL).UnixNano()})
		}
		return tx, nil
	})
	if err != nil {
		e.log.Error("activity: record outcome", "execution", id, "err", err)
		outcome = "store_failed"
	} else if outcome != "" {
		e.cfg.Metrics.ActivityAttempt(outcome)
		if logged {
			lines = nil // stored with the outcome
		}
	} else {
		outcome = "lock_lost"
	}
	e.storeLogs(ctx, lines)
	logs.storeRest(ctx)
	return outcome
}

// finishedAtDeadline reports whether st finished as deadline_exceeded.
func finishedAtDeadline(st *pb.ExecutionState) bool {
	if st.Status != pb.Status_STATUS_FINISHED {
		return false
	}
	r, err := events.ParseResult(st.Result)
	return err == nil && r.Failure != nil && r.Failure.Kind == events.FailureDeadlineExceeded
}

// failInstantiate records, as a failed attempt of the locked run runID, that its instance
// could not be made. Left to the lock's expiry, the attempt would end "timed out" and
// the reason would be in the log only.
func (e *Engine) failInstantiate(ctx context.Context, c *Component, id, runID string, err error) {
	e.log.Error("executor: instantiate", "component", c.Config.Name, "execution", id, "err", err)
	e.recordAttempt(ctx, id, runID, Function{}, nil, nil, fmt.Errorf("instantiating the activity: %w", err), nil)
}

func (e *Engine) activityInstanceConfig(c *Component) wasmhost.InstanceConfig {
	return wasmhost.InstanceConfig{Kind: wasmhost.KindActivity, HTTP: c.http, Handler: activityHost{e}}
}

// activityHost answers the host calls of activities beyond log and http, which wasmhost
// answers itself: the built-in KV store's.
type activityHost struct{ e *Engine }

// HostCall implements wasmhost.HostHandler.
func (h activityHost) HostCall(ctx context.Context, op string, req []byte) ([]byte, error) {
	if op == abi.OpKV {
		return h.e.kvDirect(ctx, req)
	}
	return nil, hostErr(abi.KindUnsupportedOp, "operation %q is not available to activities", op)
}

// instantiate makes an instance, at most GOMAXPROCS at a time: instantiation is pure CPU,
// and a crowd of them would only make each one slower. Its memory is then counted in
// memory (nil: in no budget), from what was reserved for it first, waiting for what it
// holds beyond that (not in the crowd: the instances being made must not wait for
// memory that those waiting for their turn hold) until ctx ends or, for a run locked
// already, its lock expires (lockExpires; zero: none).
func (e *Engine) instantiate(ctx context.Context, c *Component, cfg wasmhost.InstanceConfig, memory *membudget.Account, lockExpires time.Time) (*wasmhost.Instance, error) {
	return e.instantiateWith(ctx, c, cfg.Kind, memory, lockExpires, func() (*wasmhost.Instance, error) {
		return c.module.Instantiate(ctx, cfg)
	})
}

// instantiateWith is instantiate with the instance made by make (of kind).
func (e *Engine) instantiateWith(ctx context.Context, c *Component, kind wasmhost.Kind, memory *membudget.Account, lockExpires time.Time, make func() (*wasmhost.Instance, error)) (*wasmhost.Instance, error) {
	inst, err := e.instantiateBounded(ctx, kind, make)
	if err != nil || memory == nil {
		return inst, err
	}
	c.lastSize.Store(inst.MemorySize())
	mctx := ctx
	if !lockExpires.IsZero() {
		var cancel context.CancelFunc
		mctx, cancel = context.WithDeadline(ctx, lockExpires)
		defer cancel()
	}
	if err := inst.CountMemoryIn(mctx, memory); err != nil {
		inst.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return inst, nil
}

// instantiateBounded makes an instance, waiting for a turn among the GOMAXPROCS at a time.
func (e *Engine) instantiateBounded(ctx context.Context, kind wasmhost.Kind, make func() (*wasmhost.Instance, error)) (*wasmhost.Instance, error) {
	select {
	case e.instantiating <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-e.instantiating }()
	started := time.Now()
	inst, err := make()
	if err == nil {
		e.cfg.Metrics.InstanceStart(kind.String(), time.Since(started))
	}
	return inst, err
}

var errTimedOut = errors.New("timed out")

// attemptOutcome names what an activity attempt's outcome transaction records (metrics).
func attemptOutcome(tx *events.Tx) string {
	return eventOutcome(tx.Appends[0].Events[0])
}

// eventOutcome is attemptOutcome of the event that records an attempt's outcome.
func eventOutcome(ev *pb.Event) string {
	switch k := ev.Kind.(type) {
	case *pb.Event_TemporarilyFailed:
		if k.TemporarilyFailed.Detail != nil {
			return "retried_err"
		}
		return "retried_failure"
	case *pb.Event_TemporarilyTimedOut:
		return "retried_timeout"
	case *pb.Event_Unlocked:
		return "retried_memory"
	case *pb.Event_Finished:
		r, _ := events.ParseResult(k.Finished.Result)
		switch {
		case r.Kind == pb.ResultKind_RESULT_KIND_OK:
			return "ok"
		case r.Kind == pb.ResultKind_RESULT_KIND_ERR:
			return "err"
		case r.Failure != nil && r.Failure.Kind == events.FailureTimedOut:
			return "timed_out"
		case r.Failure != nil && r.Failure.Kind == events.FailureDeadlineExceeded:
			return "deadline_exceeded"
		}
		return "failed"
	}
	return "unknown"
}

// activityOutcomeTx decides what an attempt's outcome means: finished, or retried later
// (not past the execution's deadline: noRetryPastDeadline).
func (e *Engine) activityOutcomeTx(st *pb.ExecutionState, fn Function, out []byte, runErr error, now time.Time) *events.Tx {
	return e.noRetryPastDeadline(st, e.attemptOutcomeTx(st, fn, out, runErr, now), now)
}

// attemptOutcomeTx is activityOutcomeTx without the deadline.
func (e *Engine) attemptOutcomeTx(st *pb.ExecutionState, fn Function, out []byte, runErr error, now time.Time) *events.Tx {
	if runErr == nil {
		r, err := events.ParseResult(out)
		switch {
		case err != nil:
			runErr = fmt.Errorf("activity returned an invalid result: %w", err)
		case r.Kind == pb.ResultKind_RESULT_KIND_OK:
			fn.Component.budgetRecord(st.Ffqn, false, now)
			return e.finishTx(st, out, now)
		case r.Kind == pb.ResultKind_RESULT_KIND_ERR:
			if wit.IsPermanentError(fn.Fn.Result, r.Value) {
				fn.Component.budgetRecord(st.Ffqn, false, now) // it answered: no retry would help
				return e.finishTx(st, out, now)
			}
			backoff, held, ok := e.retryAfter(st, fn, now)
			if ok {
				return appendTx(st, "", &pb.Event{CreatedAt: now.UnixNano(), Kind: &pb.Event_TemporarilyFailed{TemporarilyFailed: &pb.TemporarilyFailed{
					BackoffExpiresAt: now.Add(backoff).UnixNano(), Reason: withHold("activity returned an error", held), Detail: r.Value,
				}}})
			}
			return e.finishReasonTx(st, out, held, now)
		default:
			runErr = fmt.Errorf("activity returned an execution failure")
		}
	}
	if errors.Is(runErr, wasmhost.ErrMemoryBudget) {
		return memoryRetryTx(st, now, runErr)
	}
	if errors.Is(runErr, errTimedOut) {
		why := "activity exceeded its lock expiry"
		var te *timeoutError
		if errors.As(runErr, &te) {
			why = te.reason
		}
		backoff, held, ok := e.retryAfter(st, fn, now)
		if ok {
			return appendTx(st, "", &pb.Event{CreatedAt: now.UnixNano(), Kind: &pb.Event_TemporarilyTimedOut{TemporarilyTimedOut: &pb.TemporarilyTimedOut{
				BackoffExpiresAt: now.Add(backoff).UnixNano(), Reason: withHold(why, held),
			}}})
		}
		return e.finishReasonTx(st, events.FailureResult(events.FailureTimedOut, withHold(why, held)), held, now)
	}
	backoff, held, ok := e.retryAfter(st, fn, now)
	if ok {
		return appendTx(st, "", &pb.Event{CreatedAt: now.UnixNano(), Kind: &pb.Event_TemporarilyFailed{TemporarilyFailed: &pb.TemporarilyFailed{
			BackoffExpiresAt: now.Add(backoff).UnixNano(), Reason: withHold(runErr.Error(), held),
		}}})
	}
	return e.finishReasonTx(st, events.FailureResult(events.FailureUncategorized, withHold(runErr.Error(), held)), held, now)
}

// retryAfter decides the retry of a failed attempt of fn: ok and after what delay, or
// not (no retries left, or the retry budget skips it). held is the retry budget's
// reason when it changed the decision (a longer delay, or no retry), else "".
func (e *Engine) retryAfter(st *pb.ExecutionState, fn Function, now time.Time) (delay time.Duration, held string, ok bool) {
	delay, ok = retryBackoff(st)
	b := fn.Component.budgetRecord(st.Ffqn, true, now)
	if !ok || b == nil {
		return delay, "", ok
	}
	s := b.State(st.Ffqn, now)
	if !s.Exhausted {
		return delay, "", true
	}
	cfg := b.Config()
	held = fmt.Sprintf("retry budget exhausted: %d of the %d attempts of %s in the last %s failed (max_failure_share %v)",
		s.Failures, s.Attempts, st.Ffqn, cfg.Window, cfg.MaxFailureShare)
	e.cfg.Metrics.RetryBudget(fn.Component.Config.Name, string(cfg.Action))
	if cfg.Action == RetryBudgetSkip {
		return 0, held, false
	}
	// Held for a window or up to twice as long, spread per execution: retries held
	// together must not all come back at once, which would trip the budget again.
	hold := cfg.Window + time.Duration(seededUniform(st.ExecutionId, st.IntermittentFailures+1)*float64(cfg.Window))
	return max(delay, hold), held, true
}

// withHold adds the retry budget's reason, if any, to why an attempt failed.
func withHold(why, held string) string {
	if held == "" {
		return why
	}
	return why + "; " + held
}

// budgetRecord counts an attempt of ffqn in the component's retry budget, if it has
// one, and returns the budget (nil if none).
func (c *Component) budgetRecord(ffqn string, failed bool, now time.Time) *retrybudget.Budget {
	if c == nil || c.budget == nil {
		return nil
	}
	c.budget.Record(ffqn, failed, now)
	return c.budget
}

// memoryRetryTx unlocks an execution whose run stopped because the node's guest memory
// budget had no room for it (err wraps wasmhost.ErrMemoryBudget; run_memory.go). The shortage
// is the node's, not the guest's: the execution is pending again after its first retry
// delay (retry_exp_backoff), and the attempt counts neither against max_retries nor
// towards the next one's backoff.
func memoryRetryTx(st *pb.ExecutionState, now time.Time, err error) *events.Tx {
	return appendTx(st, "", &pb.Event{CreatedAt: now.UnixNano(), Kind: &pb.Event_Unlocked{Unlocked: &pb.Unlocked{
		UnlockedAt: now.Add(time.Duration(st.Retry.GetRetryExpBackoff())).UnixNano(), Reason: err.Error(),
	}}})
}

// retryBackoff: whether another attempt is allowed and after what delay. With n the
// number of the retry (1 for the second attempt), it is allowed iff n <= max_retries, after
// retry_exp_backoff * 2^(n-1).
func retryBackoff(st *pb.ExecutionState) (time.Duration, bool) {
	r := st.Retry
	if r == nil {
		return 0, false
	}
	n := st.IntermittentFailures + 1
	if !r.UnlimitedRetries && n > r.MaxRetries {
		return 0, false
	}
	shift := min(n-1, 30)
	return jittered(time.Duration(r.RetryExpBackoff)<<shift, r.RetryJitter, st.ExecutionId, n), true
}

// jittered scales the delay of retry n of execution id by a factor in [1-jitter,
// 1+jitter]. The factor is drawn from a generator seeded by the execution and the
// retry, not from a shared one: the same failure always waits the same time (a replay, a
// test, a second node computing it agree), while executions that fail together spread
// out.
func jittered(d time.Duration, jitter float64, id string, n uint32) time.Duration {
	if jitter <= 0 || d <= 0 {
		return d
	}
	u := seededUniform(id, n)
	return time.Duration(float64(d) * (1 + min(jitter, 1)*(2*u-1)))
}

// seededUniform is a number in [0, 1) drawn for retry n of execution id: always the
// same for them, independent between executions.
func seededUniform(id string, n uint32) float64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	return rand.New(rand.NewPCG(h.Sum64(), uint64(n))).Float64()
}

// noRetriesLeft is the reason of the failure that ends an execution whose last attempt
// failed (what) for why with no retries left: "attempt 3 timed out: lock expired after
// 1s; no retries left (max_retries 2)".
func noRetriesLeft(st *pb.ExecutionState, what, why string) string {
	return fmt.Sprintf("attempt %d %s: %s; no retries left (max_retries %d)", st.IntermittentFailures+1, what, why, st.Retry.GetMaxRetries())
}

func appendTx(st *pb.ExecutionState, runID string, evs ...*pb.Event) *events.Tx {
	return &events.Tx{Appends: []events.Append{{ExecutionID: st.ExecutionId, ExpectedVersion: st.NextVersion, RunID: runID, Events: evs}}}
}

// finishTx finishes an execution and, for a child, delivers its result to the parent in
// the same transaction.
func (e *Engine) finishTx(st *pb.ExecutionState, result []byte, now time.Time) *events.Tx {
	return e.finishReasonTx(st, result, "", now)
}

// finishReasonTx is finishTx with the reason why the execution finished although its
// retry policy allowed another attempt (Finished.reason; "" if it did not).
func (e *Engine) finishReasonTx(st *pb.ExecutionState, result []byte, reason string, now time.Time) *events.Tx {
	tx := appendTx(st, "", &pb.Event{CreatedAt: now.UnixNano(), Kind: &pb.Event_Finished{Finished: &pb.Finished{Result: result, Reason: reason}}})
	if st.ParentId != "" {
		tx.Responses = append(tx.Responses, events.ResponseAppend{ExecutionID: st.ParentId, Response: &pb.Response{
			CreatedAt: now.UnixNano(), JoinSetId: st.ParentJoinSetId,
			Kind: &pb.Response_Child{Child: &pb.ChildFinished{ChildExecutionId: st.ExecutionId, Result: result}},
		}})
	}
	return tx
}

func (e *Engine) createdOf(ctx context.Context, id string) (*pb.Created, error) {
	evs, err := e.store.Events(ctx, id, 0, 1)
	if err != nil {
		return nil, err
	}
	if len(evs) == 0 || evs[0].GetCreated() == nil {
		return nil, fmt.Errorf("execution %s has no created event", id)
	}
	return evs[0].GetCreated(), nil
}
