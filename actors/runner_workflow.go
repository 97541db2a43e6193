package actors

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/obelisk-go/obelisk/actors/internal/membudget"
	"github.com/obelisk-go/obelisk/events"
	"github.com/obelisk-go/obelisk/internal/clip"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
	"github.com/obelisk-go/obelisk/wasmhost"
	"github.com/obelisk-go/obelisk/wasmhost/wit"
)

// errInterrupted stops a workflow instance that must wait but may not stay in memory; the
// workflow is replayed when the response arrives.
var errInterrupted = errors.New("workflow interrupted: waiting for a response")

// errLockLost: another run holds the execution now; this one must stop quietly.
var errLockLost = errors.New("workflow run lost its lock")

// NondeterminismError: the workflow made a host call that differs from its history.
type NondeterminismError struct {
	Detail string
	// Index is the history event where the workflow diverged; Recorded is that event
	// (nil past the end of the history), Produced what the workflow did instead (nil
	// when it returned while the history had more).
	Index              int
	Recorded, Produced *pb.HistoryEvent
	// Step is where the host call that diverged began recording (Index, unless it
	// records several events together: a direct call, a sleep, a join set's close).
	Step int
}

// diverged is the nondeterminism of the workflow producing h (did, in words) where
// the history recorded r.history[r.pos].
func (r *workflowRun) diverged(h *pb.HistoryEvent, did string) *NondeterminismError {
	return &NondeterminismError{Detail: fmt.Sprintf("at history event %d: recorded %s, the workflow now did %s", r.pos, describe(r.history[r.pos]), did),
		Index: r.pos, Recorded: r.history[r.pos], Produced: h, Step: r.pos}
}

func (e *NondeterminismError) Error() string { return "nondeterminism detected: " + e.Detail }

// workflowRun is one run of a workflow: it replays the recorded history, then continues
// it, answering the guest's host calls.
type workflowRun struct {
	e           *Engine
	c           *Component
	id, runID   string
	created     *pb.Created
	createdAt   int64        // of the Created event
	trace       traceContext // of its children and scheduled executions (childTrace)
	version     uint32       // the next version this run appends
	lockExpires time.Time
	history     []*pb.HistoryEvent // recorded, then appended by this run
	pos         int                // replay cursor in history
	// returned is the result the guest ended with (its output, checked, or a trap's
	// failure), once it has: what the run records after closing and flushing.
	returned   []byte
	responses  map[string]*pb.Response
	respCursor uint32
	oneOff     int
	deadline   *deadline

	// Join sets as the workflow sees them at the replay cursor: what it requested, what
	// it took. arrived holds every response known, per join set, in arrival (cursor)
	// order: the n-th join_next of a set takes arrived[set][n], on every replay.
	sets      map[string]*runJoinSet
	setOrder  []string // creation order
	generated int      // g:<n> join sets created
	arrived   map[string][]*pb.Response
	processed map[string]*pb.Response // responses taken, by child ID (for get)

	// History recorded by this run but not written yet (see appendEvents), and the
	// appends of other streams that go with it.
	pending        []*pb.HistoryEvent
	pendingAppends []events.Append
	// logs are the lines the guest logged, to be written with its progress (run_logs.go).
	logs *runLogs

	// memory is what the run's instance holds of the guest memory budget (run_memory.go).
	memory *membudget.Account
	// fx is where the run's effects go: the engine's store and services (liveEffects),
	// or a shadow replay's sandbox, which only reads (replay.go).
	fx runEffects
	// wait is the rest of the host call the workflow waits in while waiting is set: the
	// instance can then be snapshotted (workflow_snapshots.go); snapshotAt is the
	// history position of the execution's newest snapshot (0: none).
	wait       parkedWait
	waiting    bool
	snapshotAt int
}

// runEffects is what a workflow run does beyond replaying its history: the one seam
// between the run path and the world, so that a shadow replay (replay.go) runs the same
// code with effects that cannot write.
type runEffects interface {
	// commit writes tx, the run's buffered history and what goes with it (flush).
	commit(ctx context.Context, r *workflowRun, tx *events.Tx, now time.Time) error
	// await returns the n-th response of join set js, which has not arrived as far as r
	// knows: it writes what r buffered, then waits for the response or interrupts r.
	await(ctx context.Context, r *workflowRun, js string, n int) (*pb.Response, error)
	// refresh adds to r the responses that arrived since it last looked.
	refresh(ctx context.Context, r *workflowRun) error
	// cancel cancels request id, which a closing join set of r leaves open.
	cancel(ctx context.Context, r *workflowRun, id string) error
}

// liveEffects are the effects of a run of the engine: on its store, its timers, its
// resident instances.
type liveEffects struct{}

func (liveEffects) commit(ctx context.Context, r *workflowRun, tx *events.Tx, now time.Time) error {
	_, err := r.e.commitDispatching(ctx, tx, now)
	return err
}

func (liveEffects) cancel(ctx context.Context, r *workflowRun, id string) error {
	_, err := r.e.Cancel(ctx, id)
	return err
}

// runJoinSet is one join set of a run.
type runJoinSet struct {
	requests []runRequest
	taken    int
	closed   bool
}

// runRequest is a child execution (ffqn set) or a delay submitted into a join set.
type runRequest struct {
	id, ffqn string
	fn       Function
	delay    bool
	expires  int64 // a delay's expiry
}

// workflowRunner runs the executions of workflows (run.go). It prepares nothing before
// the lock: a workflow's instance is made for the history the lock lets it read, and a
// run that spent much of its lock on instantiating renews the lock before replaying.
type workflowRunner struct{ e *Engine }

func (workflowRunner) prepare(context.Context, *run) error { return nil }

func (wr workflowRunner) run(ctx context.Context, r *run) {
	wr.e.runWorkflow(ctx, r.x.comp, r.st, r.runID, r.memory)
}

// runWorkflow runs the workflow locked by st with run runID, in an instance whose guest
// memory is counted in memory.
func (e *Engine) runWorkflow(ctx context.Context, c *Component, st *pb.ExecutionState, runID string, memory *membudget.Account) {
	id := st.ExecutionId
	// Locked already: a wait for memory (the instance holds more than was reserved)
	// ends with the lock.
	r, inst, err := e.resumeFromSnapshot(ctx, c, st, runID, memory)
	if err != nil {
		e.log.Error("workflow: read history", "execution", id, "err", err)
		return
	}
	r.trace = e.childTrace(id, r.created)
	outcome, failed := "stopped", false // a run that records nothing: a later one replays
	ctx, span := e.cfg.Tracer.StartAttempt(ctx, execOf(id, r.created), r.created.Ffqn, runID, int(st.IntermittentFailures)+1)
	defer func() { span.End(outcome, failed) }()
	if inst == nil {
		inst, err = e.instantiate(ctx, c, r.instanceConfig(), memory, r.lockExpires)
	}
	if err != nil {
		if errors.Is(err, wasmhost.ErrMemoryBudget) && ctx.Err() == nil {
			e.retryForMemory(ctx, id, runID, err)
		} else if ctx.Err() == nil {
			e.log.Error("workflow: instantiate", "execution", id, "err", err)
		}
		return
	}
	defer inst.Close(context.WithoutCancel(ctx))
	if time.Until(r.lockExpires) < c.Config.LockExpiry/2 {
		// Instantiating took most of the lock (a loaded machine): renew it before replaying.
		if err := r.flush(ctx, nil, nil, nil); err != nil {
			return
		}
	}
	r.deadline = newDeadline(ctx, r.lockExpires)
	defer r.deadline.stop()
	inst.SetLogging(c.runLogging(r.logs))
	out, runErr := r.play(r.deadline.ctx, inst)
	returnedAt := time.Now() // against the deadline: a result returned before it is recorded
	if errors.Is(runErr, wasmhost.ErrMemoryBudget) {
		// The node's shortage, not the workflow's failure: nothing it left open is
		// closed, and a later run replays it.
		if ctx.Err() == nil {
			e.retryForMemory(ctx, id, runID, runErr)
		}
		return
	}
	var trap *wasmhost.TrapError
	var result []byte
	var nd *NondeterminismError
	switch {
	case runErr == nil:
		result = checkedResult(out)
	case errors.As(runErr, &nd):
		result = events.FailureResult(events.FailureNondeterminismDetected, nd.Detail)
	case errors.Is(runErr, errInterrupted):
		outcome = "waiting"
		return // nothing to record: a later run replays
	case errors.Is(runErr, errLockLost), ctx.Err() != nil:
		return // nothing to record: a later run replays
	case r.deadline.ctx.Err() != nil:
		// The run outlived its lock (a loop, a long computation) and has stopped: record
		// that now, as a timeout or (if it made progress) an unlock, instead of leaving it
		// to the timer service, which waits a grace for live runs. A later run replays.
		e.expireOwnLock(ctx, id, runID)
		outcome, failed = "timed_out", true
		return
	case errors.As(runErr, &trap):
		result = events.FailureResult(events.FailureUncategorized, trap.Error())
	default:
		var ce *events.ConflictError
		if errors.As(runErr, &ce) {
			return
		}
		result = events.FailureResult(events.FailureUncategorized, runErr.Error())
	}
	e.histories.Forget(id)
	lines, finished, recorded := r.logs.take(), false, result
	_, err = e.change(ctx, id, func(st *pb.ExecutionState) (*events.Tx, error) {
		finished = false
		if st == nil || st.RunId != runID || st.Status == pb.Status_STATUS_FINISHED || st.CancelRequested {
			return nil, nil // the cancellation records the result
		}
		var tx *events.Tx
		tx, recorded = e.workflowFinishTx(st, result, returnedAt, time.Now())
		tx.Appends[0].RunID = runID
		tx.Logs, finished = lines, true
		return tx, nil
	})
	if err != nil {
		finished = false
		e.log.Warn("workflow: record result", "execution", id, "err", err)
	}
	if finished {
		res, _ := events.ParseResult(recorded)
		outcome, failed = events.ResultKindName(res.Kind), res.Kind != pb.ResultKind_RESULT_KIND_OK
	}
	if !finished {
		e.storeLogs(ctx, lines)
	}
}

// workflowFinishTx finishes workflow st with what it returned (result) at returnedAt,
// and says which result it records. Returned at or past its deadline, the result is what
// the workflow made of the deadline (often of its children's deadline_exceeded, which
// reached it then): the deadline decides, as it would have a moment later, and what the
// workflow returned is kept in the event (Finished.returned). A result returned before
// the deadline is recorded, even if this commit lands after it.
func (e *Engine) workflowFinishTx(st *pb.ExecutionState, result []byte, returnedAt, now time.Time) (*events.Tx, []byte) {
	if !deadlinePassed(st, returnedAt) {
		return e.finishTx(st, result, now), result
	}
	recorded := deadlineResult(st)
	tx := e.finishTx(st, recorded, now)
	tx.Appends[0].Events[0].GetFinished().Returned = result
	return tx, recorded
}

// newWorkflowRun returns the run runID of the workflow locked by st, its history and
// responses read.
func (e *Engine) newWorkflowRun(ctx context.Context, c *Component, st *pb.ExecutionState, runID string, memory *membudget.Account) (*workflowRun, error) {
	evs, resps, err := e.histories.Read(ctx, e.store, st.ExecutionId)
	if err != nil {
		return nil, err
	}
	return e.makeWorkflowRun(c, st, runID, memory, evs, resps, 0)
}

// makeWorkflowRun returns the run runID of the workflow locked by st with the history
// of evs and the response log resps. With skipped > 0, evs[0] is the Created event and
// the rest the stream from a version before which skipped history events were recorded:
// the run's history then holds nil for them, and must resume at or after them.
func (e *Engine) makeWorkflowRun(c *Component, st *pb.ExecutionState, runID string, memory *membudget.Account, evs []*pb.Event, resps []*pb.Response, skipped int) (*workflowRun, error) {
	id := st.ExecutionId
	if len(evs) == 0 || evs[0].GetCreated() == nil {
		return nil, fmt.Errorf("the history of %s does not start with a Created event", clip.String(id))
	}
	r := &workflowRun{
		e: e, c: c, id: id, runID: runID, created: evs[0].GetCreated(), version: st.NextVersion,
		lockExpires: time.Unix(0, st.LockExpiresAt), responses: map[string]*pb.Response{}, memory: memory,
		sets: map[string]*runJoinSet{}, arrived: map[string][]*pb.Response{}, processed: map[string]*pb.Response{},
		logs: newRunLogs(e, id, runID, 1, true), fx: liveEffects{},
	}
	if skipped > 0 {
		r.history = make([]*pb.HistoryEvent, skipped, skipped+len(evs))
		r.createdAt = evs[0].CreatedAt
		evs = evs[1:]
	}
	r.load(evs, resps)
	return r, nil
}

// load sets the run's history and responses from the execution's events and response
// log.
func (r *workflowRun) load(evs []*pb.Event, resps []*pb.Response) {
	if len(evs) > 0 && r.createdAt == 0 {
		r.createdAt = evs[0].CreatedAt
	}
	for _, ev := range evs {
		if h := ev.GetHistory(); h != nil {
			r.history = append(r.history, h)
		}
	}
	r.addResponses(resps)
}

// instanceConfig is the configuration of the run's instance: its seed and clock are
// the execution's, the same on every run and replay (a fork's seed is its root
// original's: see guestID).
func (r *workflowRun) instanceConfig() wasmhost.InstanceConfig {
	h := fnv.New64a()
	h.Write([]byte(r.guestID()))
	return wasmhost.InstanceConfig{Kind: wasmhost.KindWorkflow, Handler: r, Seed: h.Sum64(), ClockStart: time.Unix(0, r.createdAt)}
}

// guestID is the execution ID the guest sees as its own and its random source is seeded
// from: the execution's, or, for a fork, its root original's (Created.seed_id), under
// which the fork's copied prefix was recorded, so that the prefix replays (a value the
// guest derived from its ID or its random bytes, passed to a child, is in it). See
// docs/RATIONALE.md, "A fork runs under its original's ID".
func (r *workflowRun) guestID() string {
	if s := r.created.GetSeedId(); s != "" {
		return s
	}
	return r.id
}

// play runs the workflow in inst: it replays the history, continues it, and, when the
// workflow returns (or traps), closes what it left open and writes what it did. It
// returns the guest's output and the run's error.
func (r *workflowRun) play(ctx context.Context, inst *wasmhost.Instance) ([]byte, error) {
	out, runErr := inst.Run(ctx, wasmhost.RunInput{FFQN: r.created.Ffqn, Params: r.created.Params, ExecutionID: r.guestID(), Attempt: 1})
	if errors.Is(runErr, wasmhost.ErrMemoryBudget) {
		return nil, runErr
	}
	var trap *wasmhost.TrapError
	switch {
	case runErr == nil:
		r.returned = checkedResult(out)
	case errors.As(runErr, &trap):
		r.returned = events.FailureResult(events.FailureUncategorized, trap.Error())
	}
	if runErr == nil || errors.As(runErr, &trap) {
		// No child outlives its parent: close what the workflow left open.
		if err := r.closeAll(ctx); err != nil {
			runErr = err
		}
	}
	if runErr == nil || errors.As(runErr, &trap) {
		// What the workflow did before returning is written before its result.
		if err := r.flush(ctx, nil, nil, nil); err != nil {
			runErr = err
		}
	}
	if runErr == nil && r.pos < len(r.history) {
		runErr = &NondeterminismError{Detail: fmt.Sprintf("the workflow returned, but its history has %d more recorded events", len(r.history)-r.pos),
			Index: r.pos, Recorded: r.history[r.pos], Step: r.pos}
	}
	return out, runErr
}

// checkedResult is the result a workflow's output records: the output, or a failure
// if it is not a result document.
func checkedResult(out []byte) []byte {
	if _, err := events.ParseResult(out); err != nil {
		return events.FailureResult(events.FailureUncategorized, err.Error())
	}
	return out
}

// retryForMemory unlocks the workflow locked by run runID, which stopped because the
// guest memory budget had no room for it (memoryRetryTx): it is not a failure of the
// workflow, and a later run replays it.
func (e *Engine) retryForMemory(ctx context.Context, id, runID string, cause error) {
	e.log.Warn("workflow: out of guest memory budget; retrying", "execution", id, "err", cause)
	_, err := e.change(ctx, id, func(st *pb.ExecutionState) (*events.Tx, error) {
		if st == nil || st.Status != pb.Status_STATUS_LOCKED || st.RunId != runID {
			return nil, nil // the lock expired meanwhile; the timer service has dealt with it
		}
		return memoryRetryTx(st, time.Now(), cause), nil
	})
	if err != nil && ctx.Err() == nil {
		e.log.Warn("workflow: unlock for memory", "execution", id, "err", err)
	}
}

// expireOwnLock records that the lock of run runID, which has stopped, expired.
func (e *Engine) expireOwnLock(ctx context.Context, id, runID string) {
	_, err := e.change(ctx, id, func(st *pb.ExecutionState) (*events.Tx, error) {
		if st == nil || st.RunId != runID {
			return nil, nil
		}
		return e.expireTx(st, time.Now(), false)
	})
	if err != nil && ctx.Err() == nil {
		e.log.Warn("workflow: expire lock", "execution", id, "err", err)
	}
}

// Replaying reports whether the workflow is replaying its history (wasmhost.Replayer):
// its host calls are then not recorded in the attempt's span again.
func (r *workflowRun) Replaying() bool { return r.pos < len(r.history) }

// HostCall answers the guest's host calls (wasmhost.HostHandler).
func (r *workflowRun) HostCall(ctx context.Context, op string, req []byte) ([]byte, error) {
	switch op {
	case abi.OpCall:
		return r.call(ctx, req)
	case abi.OpRandomU64, abi.OpRandomString, abi.OpExecutionIDGenerate:
		return r.persist(ctx, op, req)
	case abi.OpSchedule:
		return r.schedule(ctx, req)
	case abi.OpJoinSetCreate:
		return r.joinSetCreate(ctx, req)
	case abi.OpSubmit:
		return r.submit(ctx, req)
	case abi.OpSubmitDelay:
		return r.submitDelay(ctx, req)
	case abi.OpJoinNext:
		return r.joinNext(ctx, req)
	case abi.OpJoinNextTry:
		return r.joinNextTry(ctx, req)
	case abi.OpGet:
		return r.get(req)
	case abi.OpJoinSetClose:
		return r.joinSetClose(ctx, req)
	case abi.OpSleep:
		return r.sleep(ctx, req)
	case abi.OpStub:
		return r.stub(ctx, req)
	case abi.OpKV:
		return r.kv(ctx, req)
	}
	return nil, hostErr(abi.KindUnsupportedOp, "operation %q is not available to workflows", op)
}

// kv runs a function of the built-in KV component as a call: a child execution, so that
// its answer is recorded and replay reuses it.
func (r *workflowRun) kv(ctx context.Context, req []byte) ([]byte, error) {
	var q abi.KVRequest
	if err := json.Unmarshal(req, &q); err != nil {
		return nil, hostErr(abi.KindBadRequest, "kv: %v", err)
	}
	return r.callFunction(ctx, abi.CallRequest{FFQN: abi.KVInterface + "." + q.Fn, Params: q.Params})
}

func (r *workflowRun) call(ctx context.Context, req []byte) ([]byte, error) {
	var q abi.CallRequest
	if err := json.Unmarshal(req, &q); err != nil {
		return nil, hostErr(abi.KindBadRequest, "%v", err)
	}
	if q.ExecutionID != "" {
		return nil, callIDRefused("workflow")
	}
	return r.callFunction(ctx, q)
}

// callFunction calls q.FFQN as a child execution and waits for its result.
func (r *workflowRun) callFunction(ctx context.Context, q abi.CallRequest) ([]byte, error) {
	fn, params, err := r.callable(q.FFQN, q.Params)
	if err != nil {
		return nil, err
	}
	r.oneOff++
	js, child, want := directCall(r.id, r.oneOff, q.FFQN, params)
	if err := r.replayOrAppend(ctx, want, func(now time.Time) []events.Append {
		return []events.Append{{ExecutionID: child, Events: []*pb.Event{traced(r.childCreated(now, fn, params, js), r.trace)}}}
	}); err != nil {
		return nil, err
	}
	r.addSet(js)
	r.sets[js].requests = append(r.sets[js].requests, runRequest{id: child, ffqn: q.FFQN, fn: fn})
	return r.await(ctx, parkedWait{Op: waitCall, JoinSet: js})
}

// childCreated is the Created event of a child of fn in join set js. The child inherits
// the workflow's deadline, read from the workflow's own Created event, never from the
// clock: a replay that finds the child missing (a crash before the commit) creates the
// same one.
func (r *workflowRun) childCreated(now time.Time, fn Function, params []byte, js string) *pb.Event {
	ev := createdEvent(now, fn.Component, fn.Fn.FFQN(), params, r.id, js)
	c := ev.GetCreated()
	c.Deadline = inheritDeadline(c.Deadline, r.created.GetDeadline())
	return ev
}

// finishCall takes the response of a direct call's child (its one-off join set js).
func (r *workflowRun) finishCall(ctx context.Context, js string) ([]byte, error) {
	resp, err := r.take(ctx, js)
	if err != nil {
		return nil, err
	}
	r.sets[js].closed = true
	return resp.GetChild().Result, nil
}

// callable checks that the workflow may call or submit ffqn with params, and returns the
// function and the compacted params. Replayed calls were checked when they were
// recorded; a difference from the recording is nondeterminism, found when it is matched.
func (r *workflowRun) callable(ffqn string, raw json.RawMessage) (Function, []byte, error) {
	replaying := r.pos < len(r.history)
	fn, params, err := r.e.callable(r.c, ffqn, raw, !replaying)
	if err != nil && replaying && r.recordedRequest(ffqn) {
		// The call was routed when it was recorded, and its child exists: a route that
		// no longer resolves (a retired version's import, undeployed since) does not
		// change what the history did. The function is then unknown (Function{}). A
		// call that was refused then (not recorded) is refused again, as it was.
		if params, cerr := compactParams(raw); cerr == nil {
			return Function{}, params, nil
		}
	}
	return fn, params, err
}

// recordedRequest reports whether the history, where the replay stands, records a
// request of a child of ffqn: next (a submit into a join set), or after the creation of
// its one-off join set (a direct call).
func (r *workflowRun) recordedRequest(ffqn string) bool {
	for _, h := range r.history[r.pos:min(r.pos+2, len(r.history))] {
		if c := h.GetJoinSetRequest().GetChild(); c != nil && c.Ffqn == ffqn {
			return true
		}
	}
	return false
}

// compactParams returns params (JSON, "" for none) compacted.
func compactParams(raw json.RawMessage) ([]byte, error) {
	if len(raw) == 0 {
		raw = json.RawMessage("[]")
	}
	var params bytes.Buffer
	if err := json.Compact(&params, raw); err != nil {
		return nil, hostErr(abi.KindBadRequest, "params: %v", err)
	}
	return params.Bytes(), nil
}

// callable checks that component c may call or submit ffqn with params (type-checked
// if check) and returns the function and the compacted params.
func (e *Engine) callable(c *Component, ffqn string, raw json.RawMessage, check bool) (Function, []byte, error) {
	if !c.mayCall(ffqn) {
		return Function{}, nil, hostErr(abi.KindFunctionNotFound, "function %s is not imported by component %q", ffqn, c.Config.Name)
	}
	fn, err := e.reg.route(c, ffqn, "")
	if err != nil {
		return Function{}, nil, hostErr(abi.KindFunctionNotFound, "function %s: %v", ffqn, err)
	}
	params, err := e.checkedParams(fn, raw, check)
	return fn, params, err
}

// checkedParams type-checks params (JSON, "" for none) against fn, and checks their
// size, if check, and returns them compacted. A replay does not check: what history
// recorded was accepted then, and must replay even if the limit has been lowered since.
func (e *Engine) checkedParams(fn Function, raw json.RawMessage, check bool) ([]byte, error) {
	if len(raw) == 0 {
		raw = json.RawMessage("[]")
	}
	if check {
		if err := e.checkParamsSize(raw); err != nil {
			return nil, hostErr(abi.KindBadRequest, "%s: %v", fn.Fn.FFQN(), err)
		}
		if err := wit.CheckParams(fn.Fn, raw); err != nil {
			return nil, hostErr(abi.KindTypeCheck, "%s: %v", fn.Fn.FFQN(), err)
		}
	}
	return compactParams(raw)
}

// directCall is the history of a direct call of ffqn by parent: its n-th one-off join
// set, the child's request in it, and the wait for it. It returns the join set, the
// child's ID and the events.
func directCall(parent string, n int, ffqn string, params []byte) (js, child string, hist []*pb.HistoryEvent) {
	_, fnName, _ := events.SplitFFQN(ffqn)
	js = events.OneOffJoinSetID(n, fnName)
	child = events.ChildExecutionID(parent, js, 1)
	return js, child, []*pb.HistoryEvent{
		{Kind: &pb.HistoryEvent_JoinSetCreate{JoinSetCreate: &pb.JoinSetCreate{JoinSetId: js}}},
		{Kind: &pb.HistoryEvent_JoinSetRequest{JoinSetRequest: &pb.JoinSetRequest{JoinSetId: js,
			Request: &pb.JoinSetRequest_Child{Child: &pb.ChildExecutionRequest{ChildExecutionId: child, Ffqn: ffqn, Params: params}}}}},
		{Kind: &pb.HistoryEvent_JoinNext{JoinNext: &pb.JoinNext{JoinSetId: js, RequestedFfqn: ffqn}}},
	}
}

// persist answers the deterministic helpers: a value made once, at random, and recorded
// in the history (a persist event whose kind names the operation and its bounds), so
// that every replay returns the same value.
func (r *workflowRun) persist(ctx context.Context, op string, req []byte) ([]byte, error) {
	var kind string
	var gen func() any
	switch op {
	case abi.OpRandomU64:
		var q abi.RandomU64Request
		if err := json.Unmarshal(req, &q); err != nil {
			return nil, hostErr(abi.KindBadRequest, "%v", err)
		}
		if q.Min >= q.MaxExclusive {
			return nil, hostErr(abi.KindBadRequest, "random_u64: min %d must be below max_exclusive %d", q.Min, q.MaxExclusive)
		}
		kind = fmt.Sprintf("random_u64(%d,%d)", q.Min, q.MaxExclusive)
		gen = func() any { return q.Min + rand.Uint64N(q.MaxExclusive-q.Min) }
	case abi.OpRandomString:
		var q abi.RandomStringRequest
		if err := json.Unmarshal(req, &q); err != nil {
			return nil, hostErr(abi.KindBadRequest, "%v", err)
		}
		if q.MinLength >= q.MaxLengthExclusive || q.MaxLengthExclusive > abi.MaxRandomStringLength {
			return nil, hostErr(abi.KindBadRequest, "random_string: want min_length < max_length_exclusive <= %d, got %d, %d", abi.MaxRandomStringLength, q.MinLength, q.MaxLengthExclusive)
		}
		kind = fmt.Sprintf("random_string(%d,%d)", q.MinLength, q.MaxLengthExclusive)
		gen = func() any {
			const alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			b := make([]byte, q.MinLength+rand.Uint32N(q.MaxLengthExclusive-q.MinLength))
			for i := range b {
				b[i] = alphabet[rand.IntN(len(alphabet))]
			}
			return string(b)
		}
	default:
		kind = "execution_id"
		gen = func() any { return events.NewExecutionID(time.Now()) }
	}
	if r.pos < len(r.history) {
		p := r.history[r.pos].GetPersist()
		if p == nil || p.Kind != kind {
			did := &pb.HistoryEvent{Kind: &pb.HistoryEvent_Persist{Persist: &pb.Persist{Kind: kind}}}
			return nil, r.diverged(did, "persist "+kind)
		}
		r.pos++
		return p.Value, nil
	}
	value, _ := json.Marshal(gen())
	ev := &pb.HistoryEvent{Kind: &pb.HistoryEvent_Persist{Persist: &pb.Persist{Kind: kind, Value: value}}}
	if err := r.appendEvents(ctx, []*pb.HistoryEvent{ev}, nil); err != nil {
		return nil, err
	}
	return value, nil
}

// schedule creates a new top-level execution, due now, at a time, or after a duration,
// in the same transaction as the Schedule event that records it; a replay returns the
// recorded execution ID.
func (r *workflowRun) schedule(ctx context.Context, req []byte) ([]byte, error) {
	var q abi.ScheduleRequest
	if err := json.Unmarshal(req, &q); err != nil {
		return nil, hostErr(abi.KindBadRequest, "%v", err)
	}
	replaying := r.pos < len(r.history)
	fn, params, err := r.e.scheduleTarget(r.c, q.FFQN, q.Params, !replaying)
	if err != nil && replaying {
		params, err = compactParams(q.Params) // recorded: see callable
	}
	if err != nil {
		return nil, err
	}
	spec, err := scheduleSpec(q.ScheduleAt, !replaying)
	if err != nil {
		return nil, err
	}
	if replaying {
		sc := r.history[r.pos].GetSchedule()
		if sc == nil || sc.Ffqn != q.FFQN || !bytes.Equal(sc.Params, params) || !bytes.Equal(sc.ScheduleAt, spec) {
			did := &pb.HistoryEvent{Kind: &pb.HistoryEvent_Schedule{Schedule: &pb.Schedule{Ffqn: q.FFQN, Params: params, ScheduleAt: spec}}}
			return nil, r.diverged(did, fmt.Sprintf("schedule %s(%s) at %s", q.FFQN, clip.String(string(params)), spec))
		}
		r.pos++
		return json.Marshal(sc.ExecutionId)
	}
	id := events.NewExecutionID(time.Now())
	sc := &pb.Schedule{ExecutionId: id, Ffqn: q.FFQN, Params: params, ScheduleAt: spec}
	ev := &pb.HistoryEvent{Kind: &pb.HistoryEvent_Schedule{Schedule: sc}}
	if err := r.appendEvents(ctx, []*pb.HistoryEvent{ev}, func(now time.Time) []events.Append {
		// Relative to the time the events are written with, which their readers see.
		at, _ := abi.ResolveScheduleAt(spec, now)
		sc.ScheduledAt = at.UnixNano()
		return []events.Append{{ExecutionID: id, Events: []*pb.Event{traced(r.e.scheduledCreated(now, fn, params, at, r.id), r.trace)}}}
	}); err != nil {
		return nil, err
	}
	return json.Marshal(id)
}

// scheduleTarget checks the function and parameters of a schedule request of caller
// (routed by registry.route): any function a deployed component exports but an activity stub's (its executions are only ever a
// workflow's children, as for Submit). params are type-checked if check and returned
// compacted.
func (e *Engine) scheduleTarget(caller *Component, ffqn string, raw json.RawMessage, check bool) (Function, []byte, error) {
	fn, err := e.reg.route(caller, ffqn, "")
	if err != nil {
		return Function{}, nil, hostErr(abi.KindFunctionNotFound, "function %s: no deployed component exports it", ffqn)
	}
	if fn.Component.Config.Type == ActivityStub {
		return Function{}, nil, hostErr(abi.KindFunctionNotFound, "%s is a function of activity stub %q, which cannot be scheduled", ffqn, fn.Component.Config.Name)
	}
	params, err := e.checkedParams(fn, raw, check)
	return fn, params, err
}

// scheduleSpec returns a schedule-at value compacted ("now" when absent), checked if
// check.
func scheduleSpec(raw json.RawMessage, check bool) ([]byte, error) {
	if len(raw) == 0 {
		raw = json.RawMessage(`"` + abi.ScheduleNow + `"`)
	}
	var spec bytes.Buffer
	if err := json.Compact(&spec, raw); err != nil {
		return nil, hostErr(abi.KindBadRequest, "schedule_at: %v", err)
	}
	if check {
		if _, err := abi.ResolveScheduleAt(spec.Bytes(), time.Now()); err != nil {
			return nil, hostErr(abi.KindBadRequest, "schedule_at: %v", err)
		}
	}
	return spec.Bytes(), nil
}

// scheduledCreated is the Created event of a top-level execution of fn that execution
// by scheduled, due at at.
func (e *Engine) scheduledCreated(now time.Time, fn Function, params []byte, at time.Time, by string) *pb.Event {
	created := createdEvent(now, fn.Component, fn.Fn.FFQN(), params, "", "")
	created.GetCreated().ScheduledAt = at.UnixNano()
	created.GetCreated().ScheduledBy = by
	return created
}

// replayOrAppend matches want against the recorded history, or, past its end, appends
// want (with the JoinNext lease set by the blocking strategy) and the extra appends of
// other streams in one transaction.
func (r *workflowRun) replayOrAppend(ctx context.Context, want []*pb.HistoryEvent, extra func(now time.Time) []events.Append) error {
	if r.pos < len(r.history) {
		step := r.pos
		for _, w := range want {
			if r.pos >= len(r.history) {
				return &NondeterminismError{Detail: fmt.Sprintf("history ends in the middle of a call; expected %s", describe(w)), Index: r.pos, Produced: w, Step: step}
			}
			if !sameHistory(r.history[r.pos], w) {
				nd := r.diverged(w, describe(w))
				nd.Step = step
				return nd
			}
			r.pos++
		}
		return nil
	}
	return r.appendEvents(ctx, want, extra)
}

// appendEvents records history events (and extra appends of other streams: a child's
// Created, a scheduled execution). They are buffered, not written: nothing outside the
// workflow can observe them until the next blocking wait, stub or return, which flushes
// the buffer in one transaction with its own events. A crash before that loses only what
// the replay will do again, and a fan-out of N submits costs one synced write, not N.
// extra gets the time the events are made with and may still complete them (a
// schedule's due time, a delay's expiry).
func (r *workflowRun) appendEvents(ctx context.Context, want []*pb.HistoryEvent, extra func(now time.Time) []events.Append) error {
	now := time.Now()
	if extra != nil {
		r.pendingAppends = append(r.pendingAppends, extra(now)...)
	}
	r.pending = append(r.pending, want...)
	r.history = append(r.history, want...)
	r.pos = len(r.history)
	if r.lockExpires.Sub(now) < r.c.Config.LockExpiry/2 || len(r.pending) >= maxPendingHistory {
		return r.flush(ctx, nil, nil, nil)
	}
	return nil
}

// maxPendingHistory bounds the buffered history of a run (and so one transaction).
const maxPendingHistory = 4096

// appendTx records history events with fixed extra appends and responses, written at
// once with whatever is buffered; a conflict on another execution is returned as is (the
// caller may retry), not as a lost lock, and leaves the buffer as it was.
func (r *workflowRun) appendTx(ctx context.Context, want []*pb.HistoryEvent, appends []events.Append, responses []events.ResponseAppend) error {
	return r.flush(ctx, want, appends, responses)
}

// flush writes the buffered history (and want, appends, responses) in one transaction,
// extending the run's lock in the same write when it is half gone. With nothing buffered
// and the lock not half gone, it writes nothing.
func (r *workflowRun) flush(ctx context.Context, want []*pb.HistoryEvent, appends []events.Append, responses []events.ResponseAppend) error {
	now := time.Now()
	var evs []*pb.Event
	lockExpiry := r.c.Config.LockExpiry
	if r.lockExpires.Sub(now) < lockExpiry/2 {
		r.lockExpires = now.Add(lockExpiry)
		evs = append(evs, lockedEvent(r.e.executor, r.c, r.runID, now, r.lockExpires, r.c.Config.retryConfig(r.created.Retry)))
	}
	hist := append(append([]*pb.HistoryEvent(nil), r.pending...), want...)
	for _, h := range hist {
		if jn := h.GetJoinNext(); jn != nil {
			jn.RunExpiresAt = r.lockExpires.UnixNano()
			if r.c.Config.BlockingStrategy == Interrupt {
				jn.RunExpiresAt = now.UnixNano()
			}
		}
		evs = append(evs, &pb.Event{CreatedAt: now.UnixNano(), Kind: &pb.Event_History{History: h}})
	}
	if len(evs) == 0 {
		return nil
	}
	tx := &events.Tx{
		Appends:   append([]events.Append{{ExecutionID: r.id, ExpectedVersion: r.version, RunID: r.runID, Events: evs}}, r.pendingAppends...),
		Responses: responses,
	}
	tx.Appends = append(tx.Appends, appends...)
	tx.Logs = r.logs.take()
	if err := r.fx.commit(ctx, r, tx, now); err != nil {
		var ce *events.ConflictError
		var te *events.TransitionError
		if errors.As(err, &ce) && ce.ExecutionID != r.id {
			return err
		}
		if errors.As(err, &ce) || errors.As(err, &te) && te.ExecutionID == r.id {
			return fmt.Errorf("%w: %w", errLockLost, err)
		}
		return fmt.Errorf("append history of %s: %w", r.id, err)
	}
	if r.deadline != nil {
		r.deadline.extend(r.lockExpires)
	}
	r.version += uint32(len(evs))
	r.pending, r.pendingAppends = nil, nil
	if len(want) > 0 {
		// Past the end of the history (the buffered events put the cursor there). A
		// flush that only renews the lock, before the replay (runWorkflow), must leave
		// the cursor where it is: moved to the end, the replay would record the whole
		// history again as new calls.
		r.history = append(r.history, want...)
		r.pos = len(r.history)
	}
	for _, h := range hist {
		// After the commit: a timer woken before it would not see the delay.
		if d := h.GetJoinSetRequest().GetDelay(); d != nil {
			r.e.delays.notify(d.ExpiresAt)
		}
	}
	return nil
}

// awaitArrived returns the n-th (0-based) response to arrive in join set js, waiting
// for it (runEffects.await) if it has not arrived yet.
func (r *workflowRun) awaitArrived(ctx context.Context, js string, n int) (*pb.Response, error) {
	if rs := r.arrived[js]; n < len(rs) {
		return rs[n], nil
	}
	return r.fx.await(ctx, r, js, n)
}

// await waits for the response if the blocking strategy and the resident bound allow,
// and interrupts the run otherwise.
func (liveEffects) await(ctx context.Context, r *workflowRun, js string, n int) (resp *pb.Response, err error) {
	var w *waiter
	defer func() {
		if w != nil && !r.e.resident.leave(w) && err == nil {
			// Evicted just as its response came: the budget may be counting on its
			// memory (run_memory.go), so the instance goes all the same, to be replayed.
			r.releaseLease(ctx)
			resp, err = nil, errInterrupted
		}
	}()
	for {
		if rs := r.arrived[js]; n < len(rs) {
			return rs[n], nil
		}
		if len(r.pending) > 0 {
			// About to wait: what the workflow did is written (with the wait itself),
			// so that the children it submitted can run and the state shows the wait.
			if err := r.flush(ctx, nil, nil, nil); err != nil {
				return nil, err
			}
		}
		if err := r.refreshResponses(ctx); err != nil {
			return nil, err
		}
		if rs := r.arrived[js]; n < len(rs) {
			return rs[n], nil
		}
		if r.c.Config.BlockingStrategy == Interrupt || !time.Now().Before(r.lockExpires) || r.waitsOnlyForLateDelays(js, n) {
			r.snapshotBeforeLeaving(ctx)
			return nil, errInterrupted
		}
		if w == nil {
			// The run keeps its executor slot while parked: the slots bound the
			// instances in memory (the executor evicts when it needs one back).
			if w = r.e.resident.park(r.id, r.c.Config.QueueName(), r.memory); w == nil {
				r.snapshotBeforeLeaving(ctx)
				return nil, errInterrupted
			}
			r.e.memory.Parked() // reservations may wait for memory: this instance can go
			continue            // a response may have arrived before the waiter was parked
		}
		lease := time.NewTimer(time.Until(r.lockExpires))
		select {
		case <-w.signal:
			lease.Stop()
		case <-w.evicted:
			lease.Stop()
			w = nil
			r.snapshotBeforeEviction(ctx)
			r.releaseLease(ctx)
			return nil, errInterrupted
		case <-lease.C:
			r.snapshotBeforeLeaving(ctx)
			return nil, errInterrupted
		case <-ctx.Done():
			lease.Stop()
			return nil, ctx.Err()
		}
	}
}

// waitsOnlyForLateDelays: every request of js without a response is a delay that expires
// after this run's lease, so staying in memory (and in an executor slot) cannot end in
// anything but an interruption: interrupt now.
func (r *workflowRun) waitsOnlyForLateDelays(js string, n int) bool {
	set := r.sets[js]
	if set == nil || len(r.arrived[js]) > n {
		return false
	}
	arrived := map[string]bool{}
	for _, resp := range r.arrived[js] {
		arrived[responseID(resp)] = true
	}
	for _, req := range set.requests {
		if !arrived[req.id] && (!req.delay || req.expires <= r.lockExpires.UnixNano()) {
			return false
		}
	}
	return true
}

// releaseLease tells the store that this run's instance is gone, so a response makes the
// workflow due at once instead of when the lease would have ended.
func (r *workflowRun) releaseLease(ctx context.Context) {
	_, err := r.e.change(ctx, r.id, func(st *pb.ExecutionState) (*events.Tx, error) {
		if st == nil || st.RunId != r.runID || st.Status == pb.Status_STATUS_LOCKED || st.Status == pb.Status_STATUS_FINISHED {
			return nil, nil
		}
		now := time.Now()
		return appendTx(st, r.runID, &pb.Event{CreatedAt: now.UnixNano(), Kind: &pb.Event_Unlocked{Unlocked: &pb.Unlocked{
			UnlockedAt: now.UnixNano(), Reason: "evicted from memory while waiting"}}}), nil
	})
	if err != nil {
		r.e.log.Warn("workflow: release lease", "execution", r.id, "err", err)
	}
}

func (r *workflowRun) refreshResponses(ctx context.Context) error { return r.fx.refresh(ctx, r) }

func (liveEffects) refresh(ctx context.Context, r *workflowRun) error {
	// The state (in memory for a live execution) counts the responses: most waits find
	// nothing new, and a scan of the response log would still seek into the tables.
	if st, err := r.e.store.State(ctx, r.id); err == nil && st.ResponseCount <= r.respCursor {
		return nil
	}
	rs, err := r.e.store.Responses(ctx, r.id, r.respCursor)
	if err != nil {
		return err
	}
	r.addResponses(rs)
	return nil
}

func (r *workflowRun) addResponses(rs []*pb.Response) {
	for _, resp := range rs {
		r.arrived[resp.JoinSetId] = append(r.arrived[resp.JoinSetId], resp)
		switch k := resp.Kind.(type) {
		case *pb.Response_Child:
			r.responses[k.Child.ChildExecutionId] = resp
		case *pb.Response_Delay:
			r.responses[k.Delay.DelayId] = resp
		}
		r.respCursor = resp.Cursor + 1
	}
}

// sameHistory compares a recorded history event with what the workflow does now. The
// JoinNext lease depends on the run, not on the workflow's code, so it is ignored.
func sameHistory(recorded, now *pb.HistoryEvent) bool {
	if a, b := recorded.GetJoinNext(), now.GetJoinNext(); a != nil && b != nil {
		return a.JoinSetId == b.JoinSetId && a.RequestedFfqn == b.RequestedFfqn && a.Closing == b.Closing
	}
	// A delay's expiry depends on when it was requested; the request is what it asked for.
	if a, b := recorded.GetJoinSetRequest().GetDelay(), now.GetJoinSetRequest().GetDelay(); a != nil && b != nil {
		return recorded.GetJoinSetRequest().JoinSetId == now.GetJoinSetRequest().JoinSetId &&
			a.DelayId == b.DelayId && bytes.Equal(a.ScheduleAt, b.ScheduleAt)
	}
	return proto.Equal(recorded, now)
}

func describe(h *pb.HistoryEvent) string {
	switch k := h.Kind.(type) {
	case *pb.HistoryEvent_JoinSetCreate:
		return "join_set_create " + k.JoinSetCreate.JoinSetId
	case *pb.HistoryEvent_JoinSetRequest:
		if c := k.JoinSetRequest.GetChild(); c != nil {
			return fmt.Sprintf("request %s(%s) as %s", c.Ffqn, clip.String(string(c.Params)), c.ChildExecutionId)
		}
		if d := k.JoinSetRequest.GetDelay(); d != nil {
			return fmt.Sprintf("delay %s at %s", d.DelayId, d.ScheduleAt)
		}
		return "request in " + k.JoinSetRequest.JoinSetId
	case *pb.HistoryEvent_JoinNext:
		if k.JoinNext.Closing {
			return "join_next " + k.JoinNext.JoinSetId + " (closing)"
		}
		return "join_next " + k.JoinNext.JoinSetId
	case *pb.HistoryEvent_JoinNextTry:
		return "join_next_try " + k.JoinNextTry.JoinSetId
	case *pb.HistoryEvent_Stub:
		return fmt.Sprintf("stub %s with %s", k.Stub.TargetExecutionId, clip.String(string(k.Stub.Result)))
	case *pb.HistoryEvent_Persist:
		return "persist " + k.Persist.Kind
	case *pb.HistoryEvent_Schedule:
		return fmt.Sprintf("schedule %s(%s) at %s", k.Schedule.Ffqn, clip.String(string(k.Schedule.Params)), k.Schedule.ScheduleAt)
	}
	return events.EventKind(&pb.Event{Kind: &pb.Event_History{History: h}})
}

// deadline is a context cancelled at a time that can be moved later (lock extensions).
type deadline struct {
	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	timer  *time.Timer
}

func newDeadline(parent context.Context, at time.Time) *deadline {
	ctx, cancel := context.WithCancel(parent)
	d := &deadline{ctx: ctx, cancel: cancel}
	d.timer = time.AfterFunc(time.Until(at), cancel)
	return d
}

func (d *deadline) extend(at time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ctx.Err() == nil {
		d.timer.Reset(time.Until(at))
	}
}

func (d *deadline) stop() {
	d.timer.Stop()
	d.cancel()
}
