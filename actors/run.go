package actors

import (
	"context"
	"errors"
	"time"

	"github.com/obelisk-go/obelisk/actors/internal/membudget"
	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	"github.com/obelisk-go/obelisk/wasmhost"
)

// The run path.
//
// Every execution an executor runs, whatever its component's type, takes one path
// (executor.run), on a goroutine holding a slot of its queue:
//
//  1. The guest memory its instance will hold is reserved (run_memory.go); while there
//     is no room the execution stays pending, which is not an attempt.
//  2. Its runner prepares what takes time and needs no lock: an activity's instance,
//     so that the lock's time, which is the activity's budget, is not spent on it
//     (none when the activity result cache serves the execution: it is read first).
//  3. It is locked: by the executor's own commit, or already by the commit that created
//     it (eager dispatch, below).
//  4. Its runner runs it and records its outcome.
//
// The runners, one per type of component, are the only difference between the types,
// and runnerFor is the table of them: a new kind of component is a runner in a file of
// its own plus a line there. Activity stubs have none (their executions are never run);
// webhook endpoints have none either, because they are not run by executors: an HTTP
// request runs the endpoint (RunWebhook), and becomes an execution only once it does
// something durable.

// runner runs the executions of one type of component.
type runner interface {
	// prepare makes what a run needs before it runs (an activity's instance, in
	// r.inst). The executor calls it before it locks the execution; for an execution
	// locked by the commit that created it, right after that commit, within the lock.
	// An error is recorded as the attempt's failure, unless ctx ended.
	prepare(ctx context.Context, r *run) error
	// run runs the execution r.st locked and records its outcome. It takes r.inst over
	// (setting it to nil) if it uses it.
	run(ctx context.Context, r *run)
}

// runnerFor returns the runner of a type of component; nil if executors never run its
// executions.
func (e *Engine) runnerFor(t ComponentType) runner {
	switch t {
	case ActivityWasm:
		return activityRunner{e}
	case Workflow:
		return workflowRunner{e}
	case ActivityNative:
		return kvRunner{e} // the only native component so far
	}
	return nil
}

// run is one run of an execution by an executor: everything between taking a slot of
// the queue and giving it back.
type run struct {
	x      *executor
	id     string
	runID  string
	ctx    context.Context    // the run's: cancelled by a cancellation or pause of the execution
	cancel context.CancelFunc // registered in e.active from before the lock to the end
	memory *membudget.Account // guest memory reserved for its instance (nil: none needed)
	// st is the state in which this run holds the lock; nil until it is locked.
	st *pb.ExecutionState
	// created is the execution's Created event when the run has it without a read
	// (eager dispatch), else nil.
	created *pb.Created
	// inst is the instance prepared for it; closed at the end unless the runner took it.
	inst *wasmhost.Instance
	// attempt is the activity attempt begun when it was locked (service_keepalives.go), if any.
	attempt *attempt
	// cached is the result the activity result cache serves it, found by prepare in
	// place of an instance; nil: it runs.
	cached *cacheHit
}

// newRun starts a run of execution id by x. The caller holds a slot of x's queue and the
// execution's inflight mark, given back when the run ends.
func (x *executor) newRun(ctx context.Context, id string, now time.Time) *run {
	r := &run{x: x, id: id, runID: events.NewRunID(now)}
	// Registered before the lock is taken, so that no commit taking the execution away
	// from this run (a cancellation, a pause) can come between and be missed.
	r.ctx, r.cancel = context.WithCancel(ctx)
	x.e.active.add(id, r.cancel)
	return r
}

// lockUntil is when the run's lock expires (zero before it is locked).
func (r *run) lockUntil() time.Time {
	if r.st == nil {
		return time.Time{}
	}
	return time.Unix(0, r.st.LockExpiresAt)
}

// end gives back what the run holds, except its slot and inflight mark (queue.start's).
func (r *run) end() {
	if r.attempt != nil {
		r.x.e.endAttempt(r.attempt) // again if it ended already: no harm
	}
	if r.inst != nil {
		r.inst.Close(context.WithoutCancel(r.ctx))
	}
	r.memory.Close() // after the instance is closed
	r.cancel()
	r.x.e.active.remove(r.id)
	r.x.e.runs.remove(r.runID)
}

// needsMemory: runs of the component hold a guest instance, counted in the budget.
func (c *Component) needsMemory() bool { return c.module != nil }

// run is the run path (see above).
func (x *executor) run(r *run) {
	defer r.end()
	ctx := r.ctx
	var prepErr error
	if r.st == nil {
		if x.comp.needsMemory() && r.memory == nil {
			if r.memory = x.e.tryAdmitRun(x.comp); r.memory == nil {
				x.e.log.Debug("executor: waiting for guest memory", "execution", r.id, "component", x.comp.Config.Name, "bytes", x.comp.memoryEstimate())
				var err error
				if r.memory, err = x.e.admitRun(ctx, x.comp); err != nil {
					return
				}
			}
		}
		if prepErr = x.runner.prepare(ctx, r); prepErr != nil && ctx.Err() != nil {
			return
		}
		if !x.lock(ctx, r) {
			return
		}
	} else {
		if r.st.Status != pb.Status_STATUS_LOCKED || r.st.RunId != r.runID {
			return // cannot happen: the commit that locked it returned this state
		}
		if prepErr = x.runner.prepare(ctx, r); prepErr != nil && ctx.Err() != nil {
			return // shutting down or cancelled: the lock expires and the attempt is retried
		}
	}
	if prepErr != nil {
		x.e.failInstantiate(ctx, x.comp, r.id, r.runID, prepErr)
		return
	}
	x.runner.run(ctx, r)
}

// errNotRunnable: the execution is no longer pending and due (someone else got it).
var errNotRunnable = errors.New("not runnable")

// lock locks the pending execution for the run, and reports whether it did. An
// execution pinned to another known component is not this executor's: locking it would
// run another version's code (and pin it to this one), bypassing that component's
// required_labels; one of an unknown component (an older store) runs here.
func (x *executor) lock(ctx context.Context, r *run) bool {
	st, err := x.e.change(ctx, r.id, func(st *pb.ExecutionState) (*events.Tx, error) {
		now := time.Now()
		if !events.Runnable(st) || st.PendingAt > now.UnixNano() {
			return nil, errNotRunnable
		}
		if st.ComponentId != x.comp.ID && x.e.reg.byID[st.ComponentId] != nil {
			return nil, errNotRunnable
		}
		x.e.runs.add(r.runID)
		return &events.Tx{Appends: []events.Append{{ExecutionID: r.id, ExpectedVersion: st.NextVersion,
			Events: []*pb.Event{x.lockedEvent(r.runID, now, st.SubmittedRetry)}}}}, nil
	})
	if err != nil {
		x.e.runs.remove(r.runID)
		if !errors.Is(err, errNotRunnable) && ctx.Err() == nil {
			x.e.log.Warn("executor: lock", "execution", r.id, "err", err)
		}
		return false
	}
	r.st = st
	return true
}

// lockedEvent is the event that gives the execution to run runID of this executor;
// submitted is the retry policy its Created event carries, if any.
func (x *executor) lockedEvent(runID string, now time.Time, submitted *pb.RetryConfig) *pb.Event {
	return lockedEvent(x.e.executor, x.comp, runID, now, now.Add(x.comp.Config.LockExpiry), x.comp.Config.retryConfig(submitted))
}

// Eager dispatch.
//
// An execution submitted (through the API, or by a workflow as its child) would be
// created pending, then locked by its executor in a second synced commit, then run. When
// the executor of its queue in this process serves its component and has a free slot,
// the commit that creates it locks it too, and its run starts as soon as that commit is
// durable: one synced commit less per execution (a sequential workflow→activity round
// trip had three). A crash after the commit leaves the execution locked by a dead run, as
// a crash during any run does: the lock expires and the attempt is retried. While due
// executions wait for a slot (backlog), new ones go through the pending queue like them:
// first due, first locked.

// eagerLock appends, to a Tx being built, a Locked event to every append that creates an
// execution due now whose queue's executor in this process serves its component and has
// a free slot, and returns the runs to start once the Tx is committed, or to give up if
// it is not (settle).
func (e *Engine) eagerLock(tx *events.Tx, now time.Time) []*run {
	var runs []*run
	for i := range tx.Appends {
		a := &tx.Appends[i]
		if a.ExpectedVersion != 0 || len(a.Events) != 1 {
			continue
		}
		c := a.Events[0].GetCreated()
		if c == nil || c.ScheduledAt > now.UnixNano() {
			continue
		}
		q := e.queues[c.Queue]
		if q == nil || q.ctx == nil || q.backlog.Load() {
			continue
		}
		x := q.executorFor(c.Ffqn, c.ComponentId)
		if x == nil || x.comp.ID != c.ComponentId || x.runner == nil {
			continue
		}
		if x.comp.module != nil && !x.comp.module.CodeLoaded() {
			// Its first instance loads the module's code (wasmhost/load.go), which must
			// not eat into a lock: the executor prepares before it locks.
			continue
		}
		if ok, _ := x.reserve(a.ExecutionID); !ok {
			continue
		}
		var memory *membudget.Account
		if x.comp.needsMemory() {
			// No memory now: it waits in the pending queue for its turn (run_memory.go).
			if memory = e.tryAdmitRun(x.comp); memory == nil {
				<-x.slots
				x.inflight.Delete(a.ExecutionID)
				continue
			}
		}
		r := x.newRun(x.ctx, a.ExecutionID, now)
		r.created, r.memory = c, memory
		e.runs.add(r.runID)
		a.Events = append(a.Events[:1:1], x.lockedEvent(r.runID, now, c.Retry))
		runs = append(runs, r)
	}
	return runs
}

// commitDispatching commits tx with eager dispatch: the executions it creates are locked
// in it where they can be (eagerLock) and start once it is durable.
func (e *Engine) commitDispatching(ctx context.Context, tx *events.Tx, now time.Time) (map[string]*pb.ExecutionState, error) {
	runs := e.eagerLock(tx, now)
	states, err := e.store.Commit(ctx, tx)
	settle(runs, states, err)
	return states, err
}

// settle starts the eager runs of a Tx that was committed (err nil: states are the new
// states it returned), locked in the state it returned, and gives them up if it was not.
func settle(runs []*run, states map[string]*pb.ExecutionState, err error) {
	for _, r := range runs {
		if err != nil {
			r.release()
			continue
		}
		r.st = states[r.id]
		if r.st == nil {
			r.st = &pb.ExecutionState{} // not locked by this run: run gives it up
		}
		r.x.start(r.id, func() { r.x.run(r) })
	}
}

// release gives up an eager run whose commit failed, with its slot and inflight mark.
func (r *run) release() {
	r.end()
	<-r.x.slots
	r.x.inflight.Delete(r.id)
}
