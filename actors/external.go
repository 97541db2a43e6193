package actors

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/obelisk-go/obelisk/events"
	"github.com/obelisk-go/obelisk/internal/clip"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// External workers.
//
// A worker is a process outside the server that does executions of functions it
// declares, through the API (LockForWorker, RenewForWorker, CompleteForWorker). It may
// take the executions of activity stubs (which the server never runs) and of activities
// whose required_labels this server's executors lack (runsHere), and only if its own
// labels include the component's required ones.
//
// Nothing of a worker lives in the server between its calls. Its lock is the store's
// lock: a Locked event of a run ID of its own with an expiry, committed through the
// execution's actor as an executor's is. A renewal is a Locked event of the same run, as
// a keepalive is; the outcome is recorded as an activity attempt's (activityOutcomeTx:
// an err or a failure is retried by the component's policy). A worker that dies is
// noticed when its lock expires: the timer service records the timeout and the retry
// (expireTx), as for any run of a dead node. A call of a run that no longer holds the
// lock is refused, so a late worker cannot overwrite what a retry did.

// Bounds of worker requests.
const (
	// MinWorkerLock and MaxWorkerLock bound the lock a worker asks for.
	MinWorkerLock = 100 * time.Millisecond
	MaxWorkerLock = 24 * time.Hour
	// DefaultWorkerLock is a worker's lock when it asks for none and the component sets
	// no lock_expiry (an activity stub).
	DefaultWorkerLock = time.Minute
	// MaxWorkerBatch bounds the executions one LockForWorker call locks.
	MaxWorkerBatch = 100
	// MaxWorkerWait bounds how long LockForWorker waits for an execution to become due:
	// idle workers poll at most this often, and an answer comes before common proxies'
	// idle timeouts.
	MaxWorkerWait = 30 * time.Second
)

// WorkerLockRequest is what a worker asks LockForWorker for.
type WorkerLockRequest struct {
	// Worker names the worker in the Locked events (executor "worker:<name>").
	Worker string
	// FFQNs are the functions it does.
	FFQNs []string
	// Queue is where it looks; "" means each function's component's queue.
	Queue string
	// Labels are the worker's; they must include the required_labels of the components
	// of FFQNs.
	Labels []string
	// LockDuration is how long each lock lasts unless renewed; 0 means the component's
	// lock_expiry, else DefaultWorkerLock.
	LockDuration time.Duration
	// Max is how many executions to lock at most (0 means 1).
	Max int
	// Wait is how long to wait for one when none is due (at most MaxWorkerWait).
	Wait time.Duration
}

// WorkerTask is an execution locked for a worker.
type WorkerTask struct {
	ExecutionID, RunID, FFQN string
	Params                   json.RawMessage
	// Attempt counts from 1.
	Attempt       uint32
	LockExpiresAt time.Time
	// LockDuration is how long the lock lasts from when it was taken: a worker times its
	// renewals by it, on its own clock, which need not agree with the server's.
	LockDuration time.Duration
	// TraceParent and TraceState are the trace context of the attempt's span (empty
	// when tracing is off): the span is the server's, emitted when the run completes or
	// its lock expires; the worker's own spans go under it.
	TraceParent, TraceState string
}

// workerWaits wakes the LockForWorker calls waiting for an execution to become pending
// in one of their queues. Each new pending execution wakes one waiter that does its
// function (in the order they began waiting), not all of them: of a herd woken for one
// execution, all but one would scan the queue for nothing. onCommit pays one atomic load
// while no worker waits.
type workerWaits struct {
	waiting atomic.Int32
	mu      sync.Mutex
	byKey   map[waitKey][]chan waitKey // the waiters' channels (buffered, 1), oldest first
}

// waitKey is what a waiter waits for: a pending execution of a function in a queue.
type waitKey struct{ queue, ffqn string }

// subscribe returns a channel that receives the key of a pending execution of one of
// keys when it is committed and this waiter is the one woken for it, and the function
// that ends the subscription. A wake-up that arrives but is not received before the end
// is passed on to another waiter of its key, so that it is not lost.
func (w *workerWaits) subscribe(keys []waitKey) (<-chan waitKey, func()) {
	ch := make(chan waitKey, 1)
	w.waiting.Add(1) // before the channel is registered: no notify after it is skipped
	w.mu.Lock()
	if w.byKey == nil {
		w.byKey = map[waitKey][]chan waitKey{}
	}
	for _, k := range keys {
		w.byKey[k] = append(w.byKey[k], ch)
	}
	w.mu.Unlock()
	return ch, func() {
		w.mu.Lock()
		for _, k := range keys {
			chs := slices.DeleteFunc(w.byKey[k], func(c chan waitKey) bool { return c == ch })
			if len(chs) == 0 {
				delete(w.byKey, k)
			} else {
				w.byKey[k] = chs
			}
		}
		select {
		case k := <-ch:
			// Woken for an execution it will not look for: another waiter of that key
			// takes the wake-up.
			w.wakeOne(k)
		default:
		}
		w.mu.Unlock()
		w.waiting.Add(-1)
	}
}

// notify wakes one waiter for a new pending execution of ffqn in queue.
func (w *workerWaits) notify(queue, ffqn string) {
	if w.waiting.Load() == 0 {
		return
	}
	w.mu.Lock()
	w.wakeOne(waitKey{queue, ffqn})
	w.mu.Unlock()
}

// wakeOne wakes the oldest waiter of k not woken yet; false if there is none. w.mu is
// held.
func (w *workerWaits) wakeOne(k waitKey) bool {
	for _, ch := range w.byKey[k] {
		select {
		case ch <- k:
			return true
		default: // woken already, for another execution
		}
	}
	return false
}

// workerPins remembers the executions that a worker's lock found pinned to a version
// no worker, or not every worker, may do (a function exported by several versions, one
// of them run by this server or requiring other labels): without it every pass of every
// worker would read their states again, through their actors, to pass over them. An
// entry is forgotten when its execution's state is next committed (onCommit), so that
// a move to another version is seen. onCommit pays one atomic load while it is empty.
type workerPins struct {
	n  atomic.Int32 // len(m)
	mu sync.RWMutex
	m  map[string]string // execution ID -> the ID of the component it is pinned to
}

// maxWorkerPins bounds workerPins: at the bound it starts over (a pass then reads again
// what it forgot).
const maxWorkerPins = 1 << 14

// get returns the component execution id is pinned to, if it is remembered.
func (w *workerPins) get(id string) (string, bool) {
	if w.n.Load() == 0 {
		return "", false
	}
	w.mu.RLock()
	defer w.mu.RUnlock()
	c, ok := w.m[id]
	return c, ok
}

// put remembers that execution id is pinned to component.
func (w *workerPins) put(id, component string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil || len(w.m) >= maxWorkerPins {
		w.m = map[string]string{}
	}
	w.m[id] = component
	w.n.Store(int32(len(w.m)))
}

// forget drops what is remembered of execution id.
func (w *workerPins) forget(id string) {
	if w.n.Load() == 0 {
		return
	}
	// Every commit comes here while anything is remembered: most of them for executions
	// that are not, which a read lock settles without contending with the others.
	w.mu.RLock()
	_, ok := w.m[id]
	w.mu.RUnlock()
	if !ok {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.m, id)
	w.n.Store(int32(len(w.m)))
}

// workerMay reports whether the worker of plan p may do an execution of ffqn pinned to
// component componentID: a function it does, of a version left to workers, whose
// required labels it has. A version pinned by the execution may be another than the
// deployed one the plan checked.
func (e *Engine) workerMay(p *workerPlan, componentID, ffqn string) bool {
	fn, ok := e.reg.functionOf(componentID, ffqn)
	return ok && p.fns[ffqn] && e.forWorkers(fn.Component) && hasLabels(p.req.Labels, fn.Component.Config.RequiredLabels)
}

// hasLabels reports whether have includes every label of want.
func hasLabels(have, want []string) bool {
	for _, l := range want {
		if !slices.Contains(have, l) {
			return false
		}
	}
	return true
}

// missingLabels are the labels of want that have lacks.
func missingLabels(have, want []string) []string {
	var out []string
	for _, l := range want {
		if !slices.Contains(have, l) {
			out = append(out, l)
		}
	}
	return out
}

// runsHere reports whether this server's executors run c's executions: its type has a
// runner and the server's labels include c's required ones.
func (e *Engine) runsHere(c *Component) bool {
	return e.runnerFor(c.Config.Type) != nil && c.Config.Type != ActivityStub && hasLabels(e.cfg.Labels, c.Config.RequiredLabels)
}

// forWorkers reports whether workers may take c's executions: an activity stub's, or an
// activity's that this server does not run.
func (e *Engine) forWorkers(c *Component) bool {
	return c.Config.Type == ActivityStub || c.Config.Type == ActivityWasm && !e.runsHere(c)
}

// workerPlan is a checked WorkerLockRequest.
type workerPlan struct {
	req    WorkerLockRequest
	fns    map[string]bool
	queues []string
	keys   []waitKey // what it waits for: each function in its queue
}

// checkWorkerLock refuses a lock duration a worker asks for (0: none) out of bounds.
func checkWorkerLock(d time.Duration) error {
	if d != 0 && (d < MinWorkerLock || d > MaxWorkerLock) {
		return &InvalidArgumentError{fmt.Errorf("lock_duration = %s: want %s to %s (0 means the component's lock_expiry)", d, MinWorkerLock, MaxWorkerLock)}
	}
	return nil
}

// workerLock is how long a worker's lock of an execution of c lasts: what the worker
// asked for, else c's lock_expiry, else DefaultWorkerLock. Each execution of a batch
// gets its own component's.
func workerLock(requested time.Duration, c *Component) time.Duration {
	return cmp.Or(requested, c.Config.LockExpiry, DefaultWorkerLock)
}

func (e *Engine) planWorkerLock(req WorkerLockRequest) (*workerPlan, error) {
	invalid := func(format string, args ...any) error {
		return &InvalidArgumentError{fmt.Errorf(format, args...)}
	}
	if len(req.FFQNs) == 0 {
		return nil, invalid("ffqns: name at least one function the worker does")
	}
	switch {
	case req.Max < 0 || req.Max > MaxWorkerBatch:
		return nil, invalid("max_executions = %d: want 1 to %d (0 means 1)", req.Max, MaxWorkerBatch)
	case req.Max == 0:
		req.Max = 1
	}
	if err := checkWorkerLock(req.LockDuration); err != nil {
		return nil, err
	}
	if err := checkQueueName(req.Queue); err != nil {
		return nil, &InvalidArgumentError{err}
	}
	req.Wait = min(max(req.Wait, 0), MaxWorkerWait)
	p := &workerPlan{req: req, fns: map[string]bool{}}
	for _, ffqn := range req.FFQNs {
		fn, err := e.reg.route(nil, ffqn, "")
		if err != nil {
			return nil, err
		}
		c := fn.Component
		if !e.forWorkers(c) {
			return nil, &FailedPreconditionError{fmt.Sprintf("%s is run by this server's executor (component %q, %s): workers take the functions of activity stubs and of activities whose required_labels the server lacks",
				ffqn, c.Config.Name, c.Config.Type)}
		}
		if miss := missingLabels(req.Labels, c.Config.RequiredLabels); len(miss) > 0 {
			return nil, &FailedPreconditionError{fmt.Sprintf("%s: component %q requires the labels %q (required_labels), which the worker lacks: %q",
				ffqn, c.Config.Name, c.Config.RequiredLabels, miss)}
		}
		p.fns[ffqn] = true
		q := cmp.Or(req.Queue, c.Config.QueueName())
		if !slices.Contains(p.queues, q) {
			p.queues = append(p.queues, q)
		}
		if k := (waitKey{q, ffqn}); !slices.Contains(p.keys, k) {
			p.keys = append(p.keys, k)
		}
	}
	return p, nil
}

// LockForWorker locks, for an external worker, up to req.Max due executions of the
// functions it does, waiting up to req.Wait for one when none is due. No execution is
// not an error: the worker asks again.
func (e *Engine) LockForWorker(ctx context.Context, req WorkerLockRequest) ([]WorkerTask, error) {
	p, err := e.planWorkerLock(req)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(p.req.Wait)
	for {
		woken, done := e.workerWaits.subscribe(p.keys)
		tasks, next, err := e.lockForWorker(ctx, p)
		if err != nil && len(tasks) > 0 {
			// The executions locked before the error are the worker's now: refused,
			// they would wait for their locks to expire and cost an attempt each.
			e.log.Warn("worker lock: locked some of a batch, then failed", "worker", p.req.Worker, "locked", len(tasks), "err", err)
			err = nil
		}
		if err != nil || len(tasks) > 0 {
			done()
			return tasks, err
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			done()
			return nil, nil
		}
		if !next.IsZero() {
			wait = min(wait, max(time.Until(next), time.Millisecond))
		}
		t := time.NewTimer(wait)
		select {
		case <-woken:
		case <-t.C:
		case <-ctx.Done():
		case <-e.runCtx.Done():
		}
		t.Stop()
		done()
		if ctx.Err() != nil || e.runCtx.Err() != nil {
			return nil, nil
		}
	}
}

// lockForWorker makes one pass over p's queues. next is when the first pending
// execution of them that is not due yet becomes due (zero: none known).
func (e *Engine) lockForWorker(ctx context.Context, p *workerPlan) (tasks []WorkerTask, next time.Time, err error) {
	serves := func(ffqn string) bool { return p.fns[ffqn] }
	for _, q := range p.queues {
		want := p.req.Max - len(tasks)
		if want <= 0 {
			break
		}
		// Executions pinned to a version the worker may not do are passed over; so that
		// they cannot hide those behind them, the scan looks further by as many.
		for limit := want; ; {
			due, n, err := e.store.DuePending(ctx, q, time.Now(), limit, serves)
			if err != nil {
				return tasks, next, fmt.Errorf("scan pending of queue %s: %w", q, err)
			}
			if !n.IsZero() && (next.IsZero() || n.Before(next)) {
				next = n
			}
			passed := 0
			for _, d := range due {
				if len(tasks) == p.req.Max {
					break
				}
				if c, ok := e.workerPins.get(d.ID); ok && !e.workerMay(p, c, d.FFQN) {
					passed++
					continue
				}
				t, ok, err := e.lockOneForWorker(ctx, p, d.ID)
				if err != nil {
					return tasks, next, err
				}
				if ok {
					tasks = append(tasks, t)
				} else if _, pinned := e.workerPins.get(d.ID); pinned {
					passed++
				}
			}
			if len(due) < limit || passed == 0 || len(tasks) == p.req.Max || limit >= want+maxWorkerPassOver {
				break
			}
			limit = min(limit+passed, want+maxWorkerPassOver)
		}
	}
	return tasks, next, nil
}

// maxWorkerPassOver bounds how many executions pinned to other versions one pass over a
// queue looks past.
const maxWorkerPassOver = 1000

// lockOneForWorker locks execution id for a worker, unless it is no longer pending and
// due, or its component is not one the worker may do (workerMay; remembered in
// workerPins).
func (e *Engine) lockOneForWorker(ctx context.Context, p *workerPlan, id string) (WorkerTask, bool, error) {
	runID := events.NewRunID(time.Now())
	executor := workerExecutor
	if p.req.Worker != "" {
		executor += ":" + clip.String(p.req.Worker)
	}
	var lock time.Duration
	st, err := e.change(ctx, id, func(st *pb.ExecutionState) (*events.Tx, error) {
		now := time.Now()
		if !events.Runnable(st) || st.PendingAt > now.UnixNano() {
			return nil, errNotRunnable
		}
		if !e.workerMay(p, st.ComponentId, st.Ffqn) {
			if _, ok := e.reg.byID[st.ComponentId]; ok {
				// Remembered in the actor, before any later commit of it can forget it.
				e.workerPins.put(id, st.ComponentId)
			}
			return nil, errNotRunnable
		}
		fn, _ := e.reg.functionOf(st.ComponentId, st.Ffqn)
		c := fn.Component
		lock = workerLock(p.req.LockDuration, c)
		return appendTx(st, "", lockedEvent(executor, c, runID, now, now.Add(lock), c.Config.retryConfig(st.SubmittedRetry))), nil
	})
	if errors.Is(err, errNotRunnable) {
		return WorkerTask{}, false, nil
	}
	if err != nil {
		return WorkerTask{}, false, fmt.Errorf("lock %s: %w", id, err)
	}
	created, err := e.createdOf(ctx, id)
	if err != nil {
		// Locked but unreadable: its lock expires into a retry.
		return WorkerTask{}, false, fmt.Errorf("read %s: %w", id, err)
	}
	tp, ts := e.cfg.Tracer.WorkerAttemptContext(execOf(id, created), runID)
	return WorkerTask{ExecutionID: id, RunID: runID, FFQN: st.Ffqn, Params: created.Params,
		Attempt: st.IntermittentFailures + 1, LockExpiresAt: time.Unix(0, st.LockExpiresAt), LockDuration: lock,
		TraceParent: tp, TraceState: ts}, true, nil
}

// workerExecutor is the executor ID of a worker's lock, followed by ":<name>" when the
// worker names itself. Server executors' IDs start with "Exr_".
const workerExecutor = "worker"

// heldByWorker reports whether st's lock is an external worker's.
func heldByWorker(st *pb.ExecutionState) bool {
	return st.ExecutorId == workerExecutor || strings.HasPrefix(st.ExecutorId, workerExecutor+":")
}

// lockLostError refuses a call of a worker's run that no longer holds its lock.
func lockLostError(id, runID string, st *pb.ExecutionState) error {
	why := "it is no longer locked"
	switch {
	case st == nil:
		why = "it does not exist"
	case st.Status == pb.Status_STATUS_FINISHED:
		why = "it finished"
	case st.Status == pb.Status_STATUS_LOCKED:
		why = "another run holds it"
	case st.CancelRequested:
		why = "it was cancelled"
	}
	return &FailedPreconditionError{fmt.Sprintf("lock lost: run %s of execution %s no longer holds its lock (%s): its lock expired, and it was retried or timed out", runID, id, why)}
}

// RenewForWorker extends the lock of a worker's run runID of execution id to lock from
// now (0: the lock LockForWorker would take) and returns when it now expires and how
// long it lasts. A run that no longer holds the lock is refused
// (FailedPreconditionError): its worker should stop.
func (e *Engine) RenewForWorker(ctx context.Context, id, runID string, lock time.Duration) (expires time.Time, d time.Duration, err error) {
	if err := checkWorkerLock(lock); err != nil {
		return time.Time{}, 0, err
	}
	_, err = e.change(ctx, id, func(st *pb.ExecutionState) (*events.Tx, error) {
		if st == nil || st.Status != pb.Status_STATUS_LOCKED || st.RunId != runID {
			return nil, lockLostError(id, runID, st)
		}
		fn, ok := e.reg.functionOf(st.ComponentId, st.Ffqn)
		if !ok {
			return nil, lockLostError(id, runID, st)
		}
		c := fn.Component
		now := time.Now()
		d = workerLock(lock, c)
		expires = now.Add(d)
		return appendTx(st, runID, lockedEvent(st.ExecutorId, c, runID, now, expires, c.Config.retryConfig(st.SubmittedRetry))), nil
	})
	if err != nil {
		return time.Time{}, 0, err
	}
	return expires, d, nil
}

// CompleteForWorker records the outcome of a worker's run runID of execution id: a
// result ({"ok": v} or {"err": v}, type-checked against the function's WIT) or, if
// failure is not empty, a failure (the worker could not do it). An err or a failure is
// retried as an activity's would be. It returns what was recorded, as the activity
// attempt metric names it ("ok", "err", "retried_err", "retried_failure", "failed").
// A run that no longer holds the lock is refused (FailedPreconditionError), unless this
// is the completion it recorded, sent again: that is answered as it was the first time.
func (e *Engine) CompleteForWorker(ctx context.Context, id, runID string, result json.RawMessage, failure string) (string, error) {
	var compact bytes.Buffer
	switch {
	case len(bytes.TrimSpace(result)) > 0 && failure != "":
		return "", &InvalidArgumentError{errors.New("give either result_json or failure, not both")}
	case failure != "":
	case len(bytes.TrimSpace(result)) == 0:
		return "", &InvalidArgumentError{errors.New(`result_json ({"ok": v} or {"err": v}) or failure is required`)}
	default:
		if err := json.Compact(&compact, result); err != nil {
			return "", &InvalidArgumentError{fmt.Errorf("result_json: %w", err)}
		}
	}
	st, err := e.store.State(ctx, id)
	if errors.Is(err, events.ErrNotFound) {
		return "", &NotFoundError{id}
	}
	if err != nil {
		return "", err
	}
	var runErr error
	if failure != "" {
		runErr = fmt.Errorf("worker failed: %s", clip.String(failure))
	}
	if st.Status != pb.Status_STATUS_LOCKED || st.RunId != runID {
		// This run's completion, sent again by a worker that lost the answer to the
		// first, is answered as the first was: refusing it would look like a lost lock.
		if outcome, ok, err := e.recordedCompletion(ctx, id, runID, compact.Bytes(), runErr); err != nil || ok {
			return outcome, err
		}
		return "", lockLostError(id, runID, st)
	}
	fn, ok := e.reg.functionOf(st.ComponentId, st.Ffqn)
	if !ok {
		return "", fmt.Errorf("execution %s: no component %s exports %s", id, st.ComponentId, st.Ffqn)
	}
	if runErr == nil {
		if msg := checkWrittenResult(fn, compact.Bytes()); msg != "" {
			return "", &InvalidArgumentError{fmt.Errorf("execution %s (%s): %s", id, st.Ffqn, msg)}
		}
	}
	outcome := ""
	_, err = e.changeRun(ctx, id, func(st *pb.ExecutionState) (*events.Tx, error) {
		if st == nil || st.Status != pb.Status_STATUS_LOCKED || st.RunId != runID {
			return nil, lockLostError(id, runID, st)
		}
		tx := e.activityOutcomeTx(st, fn, compact.Bytes(), runErr, time.Now())
		outcome = attemptOutcome(tx)
		return tx, nil
	})
	if err != nil {
		return "", err
	}
	e.cfg.Metrics.ActivityAttempt(outcome)
	return outcome, nil
}

// recordedCompletion finds what run runID of execution id recorded when its worker
// completed it, if that completion was this one (result, or the failure runErr): the
// outcome as CompleteForWorker answered it. ok is false when the run recorded another
// outcome, or none (its lock expired or the execution was cancelled first).
func (e *Engine) recordedCompletion(ctx context.Context, id, runID string, result []byte, runErr error) (outcome string, ok bool, err error) {
	evs, err := e.store.Events(ctx, id, 0, 0)
	if err != nil {
		return "", false, fmt.Errorf("read the events of %s: %w", id, err)
	}
	// The event after the run's last Locked (a renewal is one too) is its outcome.
	var after *pb.Event
	for i := len(evs) - 2; i >= 0; i-- {
		if l := evs[i].GetLocked(); l != nil && l.RunId == runID {
			after = evs[i+1]
			break
		}
	}
	if after == nil {
		return "", false, nil
	}
	same := false
	switch k := after.Kind.(type) {
	case *pb.Event_TemporarilyFailed:
		if runErr != nil {
			same = k.TemporarilyFailed.Detail == nil && heldOrNot(k.TemporarilyFailed.Reason, runErr.Error())
		} else if r, err := events.ParseResult(result); err == nil && r.Kind == pb.ResultKind_RESULT_KIND_ERR {
			same = bytes.Equal(k.TemporarilyFailed.Detail, r.Value)
		}
	case *pb.Event_Finished:
		if runErr != nil {
			r, err := events.ParseResult(k.Finished.Result)
			same = err == nil && r.Failure != nil && heldOrNot(r.Failure.Reason, runErr.Error())
		} else {
			// Returned: the err the deadline rule kept while finishing deadline_exceeded.
			same = bytes.Equal(k.Finished.Result, result) || bytes.Equal(k.Finished.Returned, result)
		}
	}
	if !same {
		return "", false, nil
	}
	return eventOutcome(after), true, nil
}

// heldOrNot reports whether reason is why, with or without a retry budget's hold
// (withHold).
func heldOrNot(reason, why string) bool {
	return reason == why || strings.HasPrefix(reason, why+"; ")
}
