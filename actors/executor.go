package actors

import (
	"context"
	"errors"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
	"github.com/obelisk-go/obelisk/wasmhost"
)

// safetyTick bounds how long a loop sleeps without a notification: notifications are
// in-process and best-effort, the indexes are the truth.
const safetyTick = time.Second

// queue is the executor of one queue: it locks the due executions of the queue and
// runs each with the executor of its component, at most MaxConcurrency at a time
// whatever their components. Its passes run as the supervised service "executor:<queue>"
// (supervisor.go); its runs are goroutines of their own, which a restart of the service
// leaves running: the slots and in-flight marks they hold live here, not in the actor.
type queue struct {
	e     *Engine
	id    string          // the queue's name
	name  string          // of its service
	ctx   context.Context // the runs' (set before the service starts; cancelled at Close)
	slots chan struct{}
	wake  wakeup
	// nextDue is the earliest known due time (Unix ns) of a pending execution not yet
	// due; 0 = none known.
	nextDue  atomic.Int64
	inflight sync.Map // execution ID -> struct{}: being locked or run by this queue
	// backlog: the last tick left due executions waiting for a slot (or found none
	// free). Eager dispatch then stays off, so that new children queue behind them
	// instead of taking the slots they wait for.
	backlog atomic.Bool
	// byFFQN: the executors of the components it serves, by their functions (fixed
	// before the service starts).
	byFFQN    map[string]*executor
	workflows bool // it serves a workflow component (see makeRoom)
	// unserved: functions found pending here that no component of the queue exports,
	// each logged once.
	unserved sync.Map
}

// executor runs the executions of one component, in the slots of its queue.
type executor struct {
	*queue
	comp *Component
}

func newQueue(e *Engine, id string, maxConcurrency int) *queue {
	if maxConcurrency <= 0 {
		maxConcurrency = 100
	}
	return &queue{e: e, id: id, name: "executor:" + id, slots: make(chan struct{}, maxConcurrency), byFFQN: map[string]*executor{}}
}

// serve makes the queue run the executions of c's functions, and returns c's executor.
func (q *queue) serve(c *Component) *executor {
	x := &executor{queue: q, comp: c}
	for ffqn := range c.exports {
		q.byFFQN[ffqn] = x
	}
	q.workflows = q.workflows || c.Config.Type == Workflow
	return x
}

// newExecutor returns the executor of c on a queue of its own (c's configured queue,
// not shared).
func newExecutor(e *Engine, c *Component) *executor {
	return newQueue(e, c.Config.QueueName(), c.Config.MaxConcurrency).serve(c)
}

// serves reports whether the queue runs ffqn; an execution of a function it does not
// serve waits, pending, for an executor that does (after a restart with another
// configuration, or on another node), and does not hold up the rest of the queue.
func (q *queue) serves(ffqn string) bool {
	if _, ok := q.byFFQN[ffqn]; ok {
		return true
	}
	if _, logged := q.unserved.LoadOrStore(ffqn, struct{}{}); !logged {
		q.e.log.Warn("executor: executions of a function this queue does not serve are pending in it; they wait for an executor that serves it",
			"queue", q.id, "ffqn", ffqn)
	}
	return false
}

// notify tells the queue that an execution became pending at due.
func (q *queue) notify(due int64) {
	if due > time.Now().UnixNano() {
		for {
			cur := q.nextDue.Load()
			if cur != 0 && cur <= due {
				return // already waiting for an earlier time
			}
			if q.nextDue.CompareAndSwap(cur, due) {
				break
			}
		}
	}
	q.wake.poke()
}

// pass starts what is due and returns when the next pass is due.
func (q *queue) pass(ctx context.Context) time.Time {
	next := q.tick(ctx)
	if nd := q.nextDue.Load(); nd != 0 && (next.IsZero() || nd < next.UnixNano()) {
		next = time.Unix(0, nd)
	}
	return next
}

// drain waits for the runs to stop; their context (q.ctx) is cancelled by then, so they
// stop promptly.
func (q *queue) drain() {
	for range cap(q.slots) {
		q.slots <- struct{}{}
	}
}

// tick locks and starts as many due executions as there are free slots. It returns the
// due time of the next pending execution that is not due yet.
func (q *queue) tick(ctx context.Context) time.Time {
	q.nextDue.Store(0)
	free := cap(q.slots) - len(q.slots)
	now := time.Now()
	if free <= 0 {
		q.backlog.Store(true)
		if q.workflows {
			q.makeRoom(ctx, now)
		}
		return time.Time{}
	}
	due, next, err := q.e.store.DuePending(ctx, q.id, now, free+len(q.slots), q.serves)
	if err != nil {
		q.e.log.Error("executor: scan pending", "queue", q.id, "err", err)
		return now.Add(safetyTick)
	}
	for _, p := range due {
		if _, busy := q.inflight.LoadOrStore(p.ID, struct{}{}); busy {
			continue
		}
		select {
		case q.slots <- struct{}{}:
		default:
			q.inflight.Delete(p.ID)
			q.backlog.Store(true)
			return next
		}
		x, id := q.byFFQN[p.FFQN], p.ID
		q.start(id, func() { x.lockAndRun(ctx, id) })
		q.e.hook(q.name, "started")
	}
	q.backlog.Store(false)
	return next
}

// start runs run, which holds a slot and id's inflight mark, on a goroutine of its own
// and gives both back when it returns.
func (q *queue) start(id string, run func()) {
	go func() {
		defer func() {
			<-q.slots
			q.inflight.Delete(id)
			q.notify(0) // a slot is free: due executions may be waiting for one
		}()
		defer func() {
			// A bug in one run must not take the node down: its lock expires and
			// the timer service hands the execution to a new run.
			if r := recover(); r != nil {
				q.e.log.Error("executor: run crashed", "execution", id, "panic", r, "stack", string(debug.Stack()))
			}
		}()
		run()
	}()
}

// minParkedBeforeEviction: a workflow waiting in memory for less than this is not evicted
// to make room; most children answer well within it, and an eviction costs a replay.
const minParkedBeforeEviction = 100 * time.Millisecond

// makeRoom: every slot of this queue, which serves workflows, is held. Slots of parked
// instances are held too (an instance in memory is what the bound is about), so parents
// waiting for children in their own queue could hold every slot while the children wait
// for one. When a child is due, the longest-parked instance of the queue gives its slot
// up, to be replayed later. New top-level executions just wait: evicting for them would
// only trade one instance in memory for another, at the price of a replay.
func (q *queue) makeRoom(ctx context.Context, now time.Time) {
	due, _, err := q.e.store.DuePending(ctx, q.id, now, 4*cap(q.slots), q.serves)
	if err != nil {
		return
	}
	for _, p := range due {
		if _, busy := q.inflight.Load(p.ID); !busy && !events.IsTopLevel(p.ID) {
			if !q.e.resident.evictIdle(q.id, minParkedBeforeEviction) {
				q.notify(now.Add(minParkedBeforeEviction).UnixNano()) // look again later
			}
			return
		}
	}
}

// errNotRunnable: the execution is no longer pending and due (someone else got it).
var errNotRunnable = errors.New("not runnable")

func (x *executor) lockAndRun(ctx context.Context, id string) {
	runID := events.NewRunID(time.Now())
	cfg := x.comp.Config
	var inst *wasmhost.Instance
	var instErr error // recorded as the attempt's failure once locked
	var memory *memoryAccount
	if cfg.Type == ActivityWasm || cfg.Type == Workflow {
		// Reserve the guest memory of the instance before taking the lock: waiting for it
		// leaves the execution pending, not an attempt (memory.go).
		if memory = x.e.tryAdmitRun(x.comp); memory == nil {
			x.e.log.Debug("executor: waiting for guest memory", "execution", id, "component", cfg.Name, "bytes", x.comp.memoryEstimate())
			var err error
			if memory, err = x.e.admitRun(ctx, x.comp); err != nil {
				return
			}
		}
		defer memory.close() // after the run: its instance is closed
	}
	if cfg.Type == ActivityWasm {
		// Make the instance before taking the lock: the lock's time is the activity's
		// time, and instantiation under load must not eat into it.
		if inst, instErr = x.e.instantiate(ctx, x.comp, activityInstanceConfig(x.comp), memory, time.Time{}); instErr != nil && ctx.Err() != nil {
			return
		}
		defer func() {
			if inst != nil {
				inst.Close(context.WithoutCancel(ctx))
			}
		}()
	}
	// Registered before the lock is taken, so that no commit taking the execution away
	// from this run (a cancellation, a pause) can come between and be missed.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	x.e.active.add(id, stop)
	defer x.e.active.remove(id)
	st, err := x.e.change(ctx, id, func(st *pb.ExecutionState) (*events.Tx, error) {
		now := time.Now()
		if !events.Runnable(st) || st.PendingAt > now.UnixNano() {
			return nil, errNotRunnable
		}
		x.e.runs.add(runID)
		return &events.Tx{Appends: []events.Append{{ExecutionID: id, ExpectedVersion: st.NextVersion,
			Events: []*pb.Event{x.lockedEvent(runID, now)}}}}, nil
	})
	if err != nil {
		x.e.runs.remove(runID)
		if !errors.Is(err, errNotRunnable) && ctx.Err() == nil {
			x.e.log.Warn("executor: lock", "execution", id, "err", err)
		}
		return
	}
	defer x.e.runs.remove(runID)
	switch {
	case cfg.Type == Workflow:
		x.e.runWorkflow(ctx, x.comp, st, runID, memory)
	case instErr != nil:
		x.e.failInstantiate(ctx, x.comp, id, runID, instErr)
	default:
		x.e.runActivity(ctx, x.comp, st, runID, inst, nil, nil)
		inst = nil
	}
}

// lockedEvent is the event that gives the execution to run runID of this executor.
func (x *executor) lockedEvent(runID string, now time.Time) *pb.Event {
	return lockedEvent(x.e.executor, x.comp, runID, now, now.Add(x.comp.Config.LockExpiry), x.comp.Config.retryConfig())
}

// Eager dispatch.
//
// An execution submitted (through the API, or by a workflow as its child) would be
// created pending, then locked by its executor in a second synced commit, then run. When
// the executor of its queue in this process serves its component and has a free slot, the commit that creates
// it locks it too, and the run starts as soon as that commit is durable: one synced
// commit less per execution (a sequential workflow→activity round trip had three). A
// crash after the commit leaves the execution locked by a dead run, as a crash during
// any run does: the lock expires and the attempt is retried. While due executions wait
// for a slot (backlog), new ones go through the pending queue like them: first due,
// first locked.

// eagerRun is an execution locked in the commit that creates it (see above).
type eagerRun struct {
	x       *executor
	id      string
	runID   string
	created *pb.Created    // from the Tx: the run need not read it back
	memory  *memoryAccount // guest memory reserved for its instance (memory.go)
	ctx     context.Context
	cancel  context.CancelFunc
}

// eagerLock appends, to a Tx being built, a Locked event to every append that creates an
// activity or workflow due now whose queue's executor in this process serves its
// component and has a free slot, and
// returns the runs to start (start) once the Tx is committed, or to give up (release) if
// it is not.
func (e *Engine) eagerLock(tx *events.Tx, now time.Time) []*eagerRun {
	var runs []*eagerRun
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
		x := q.byFFQN[c.Ffqn]
		if x == nil || x.comp.ID != c.ComponentId {
			continue
		}
		if t := x.comp.Config.Type; t != ActivityWasm && t != Workflow {
			continue
		}
		if x.comp.module != nil && !x.comp.module.CodeLoaded() {
			// Its first instance loads the module's code (wasmhost/load.go), which must
			// not eat into a lock: the executor instantiates before it locks.
			continue
		}
		if _, busy := x.inflight.LoadOrStore(a.ExecutionID, struct{}{}); busy {
			continue
		}
		select {
		case x.slots <- struct{}{}:
		default:
			x.inflight.Delete(a.ExecutionID)
			continue
		}
		// No memory now: it waits in the pending queue for its turn (memory.go).
		memory := e.tryAdmitRun(x.comp)
		if memory == nil {
			<-x.slots
			x.inflight.Delete(a.ExecutionID)
			continue
		}
		run := &eagerRun{x: x, id: a.ExecutionID, runID: events.NewRunID(now), created: c, memory: memory}
		// Registered before the commit, as lockAndRun does before its lock.
		run.ctx, run.cancel = context.WithCancel(x.ctx)
		e.active.add(run.id, run.cancel)
		e.runs.add(run.runID)
		a.Events = append(a.Events[:1:1], x.lockedEvent(run.runID, now))
		runs = append(runs, run)
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
// states it returned) and gives them up if it was not.
func settle(runs []*eagerRun, states map[string]*pb.ExecutionState, err error) {
	for _, run := range runs {
		if err != nil {
			run.release()
		} else {
			run.start(states[run.id])
		}
	}
}

// release gives up a run whose commit failed.
func (r *eagerRun) release() {
	r.cancel()
	r.memory.close()
	r.x.e.active.remove(r.id)
	r.x.e.runs.remove(r.runID)
	<-r.x.slots
	r.x.inflight.Delete(r.id)
}

// start runs the execution, locked by st (the state the commit returned).
func (r *eagerRun) start(st *pb.ExecutionState) {
	x := r.x
	x.start(r.id, func() {
		defer r.memory.close() // after the run: its instance is closed
		defer r.cancel()
		defer x.e.active.remove(r.id)
		defer x.e.runs.remove(r.runID)
		if st == nil || st.Status != pb.Status_STATUS_LOCKED || st.RunId != r.runID {
			return // cannot happen: the commit that locked it returned this state
		}
		if x.comp.Config.Type == Workflow {
			x.e.runWorkflow(r.ctx, x.comp, st, r.runID, r.memory)
			return
		}
		// The lock is held since the commit: the attempt's clock starts now, and with
		// keepalive its lock is renewed while it waits for its instance (keepalive.go).
		a := x.e.beginAttempt(r.ctx, x.comp, st, r.runID)
		// Locked already: a wait for memory (the instance holds more than was reserved)
		// ends with the lock, and is then retried without counting (failInstantiate).
		inst, err := x.e.instantiate(r.ctx, x.comp, activityInstanceConfig(x.comp), r.memory, time.Unix(0, st.LockExpiresAt))
		if err != nil {
			x.e.endAttempt(a)
			if r.ctx.Err() == nil {
				x.e.failInstantiate(r.ctx, x.comp, r.id, r.runID, err)
			}
			return // shutting down or cancelled: the lock expires and the attempt is retried
		}
		x.e.runActivity(r.ctx, x.comp, st, r.runID, inst, r.created, a)
	})
}
