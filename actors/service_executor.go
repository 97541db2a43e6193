package actors

import (
	"context"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/obelisk-go/obelisk/events"
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
	// before the service starts): for a function several of them export, the newest
	// deployed one's. multi marks those functions, and those that a component it does
	// not run exports too (knowsOf): their executions run with the executor of the
	// component they are pinned to (byComponent, by component ID), if it is here.
	byFFQN      map[string]*executor
	multi       map[string]bool
	byComponent map[string]*executor
	workflows   bool // it serves a workflow component (see makeRoom)
	// unserved: functions found pending here that no component of the queue exports,
	// each logged once.
	unserved sync.Map
}

// executor runs the executions of one component, in the slots of its queue, with the
// runner of the component's type (run.go).
type executor struct {
	*queue
	comp   *Component
	runner runner
}

func newQueue(e *Engine, id string, maxConcurrency int) *queue {
	if maxConcurrency <= 0 {
		maxConcurrency = 100
	}
	return &queue{e: e, id: id, name: "executor:" + id, slots: make(chan struct{}, maxConcurrency),
		byFFQN: map[string]*executor{}, multi: map[string]bool{}, byComponent: map[string]*executor{}}
}

// serve makes the queue run the executions of c's functions, and returns c's executor.
func (q *queue) serve(c *Component) *executor {
	x := &executor{queue: q, comp: c, runner: q.e.runnerFor(c.Config.Type)}
	for ffqn := range c.exports {
		if q.byFFQN[ffqn] != nil {
			q.multi[ffqn] = true
			if c.Retired {
				continue // served after the deployed ones: never the default
			}
		}
		q.byFFQN[ffqn] = x
	}
	q.byComponent[c.ID] = x
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

// knowsOf tells the queue of c, a component of the engine, which it may not run: for
// each function of c that the queue runs for another component, executions pinned to c
// may be pending here (another version of it, left to workers for the labels it
// requires, or queued here by its submitter), and must not run with that other
// component's code.
func (q *queue) knowsOf(c *Component) {
	if q.byComponent[c.ID] != nil {
		return
	}
	for ffqn := range c.exports {
		if q.byFFQN[ffqn] != nil {
			q.multi[ffqn] = true
		}
	}
}

// executorFor returns the executor that runs an execution of ffqn pinned to
// componentID: that component's; for a component the engine does not know (an
// execution of an older store, which recorded no version), the default one of ffqn;
// nil for a known component the queue does not run (it waits, pending, for a server or
// a worker that runs it), or if the queue does not serve ffqn.
func (q *queue) executorFor(ffqn, componentID string) *executor {
	if q.multi[ffqn] {
		if x := q.byComponent[componentID]; x != nil {
			return x
		}
		if q.e.reg != nil && q.e.reg.byID[componentID] != nil {
			return nil
		}
	}
	return q.byFFQN[ffqn]
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
		if ok, full := q.reserve(p.ID); full {
			q.backlog.Store(true)
			return next
		} else if !ok {
			continue
		}
		x := q.byFFQN[p.FFQN]
		if q.multi[p.FFQN] {
			// Several versions here: the pending entry names the function only, so the
			// state says which one the execution is pinned to. A function with one
			// executor (the common case) costs no read.
			st, err := q.e.store.State(ctx, p.ID)
			if err == nil {
				x = q.executorFor(p.FFQN, st.ComponentId)
			}
			if err != nil || x == nil {
				<-q.slots
				q.inflight.Delete(p.ID)
				continue
			}
		}
		r := x.newRun(ctx, p.ID, time.Now())
		q.start(r.id, func() { r.x.run(r) })
		q.e.hook(q.name, "started")
	}
	q.backlog.Store(false)
	return next
}

// reserve takes id's inflight mark and a slot for its run. ok is false if id is being
// locked or run already, or if every slot is taken (full); nothing is held then.
func (q *queue) reserve(id string) (ok, full bool) {
	if _, busy := q.inflight.LoadOrStore(id, struct{}{}); busy {
		return false, false
	}
	select {
	case q.slots <- struct{}{}:
		return true, false
	default:
		q.inflight.Delete(id)
		return false, true
	}
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
