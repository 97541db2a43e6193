package actors

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	"github.com/obelisk-go/obelisk/tracing"
)

// Tracing (package tracing): an execution's trace context is written into its Created
// event when it is created (traced), its span is emitted when its finished state is
// committed (onCommit: traceFinished), and each attempt is a span of the run that makes
// it. With Config.Tracer nil all of it is skipped.

// traceContext is a trace context as Created stores it.
type traceContext struct{ parent, state string }

// traced sets the trace context of a Created event; an empty one leaves it as it is.
func traced(ev *pb.Event, tc traceContext) *pb.Event {
	if tc.parent != "" {
		c := ev.GetCreated()
		c.TraceParent, c.TraceState = tc.parent, tc.state
	}
	return ev
}

// incomingTrace is the trace context a request's ctx carries (tracing.Extract), for the
// execution it creates.
func (e *Engine) incomingTrace(ctx context.Context) traceContext {
	p, s := e.cfg.Tracer.Incoming(ctx)
	return traceContext{p, s}
}

// childTrace is the trace context of the children and the scheduled executions of
// execution id, whose Created is created.
func (e *Engine) childTrace(id string, created *pb.Created) traceContext {
	if !e.cfg.Tracer.Enabled() {
		return traceContext{}
	}
	p, s := e.cfg.Tracer.ChildContext(execOf(id, created))
	return traceContext{p, s}
}

// execOf names execution id, whose Created is created, for package tracing.
func execOf(id string, created *pb.Created) tracing.Exec {
	if created == nil {
		return tracing.Exec{ID: id}
	}
	return tracing.Exec{ID: id, TraceParent: created.TraceParent, TraceState: created.TraceState}
}

// traceFinished hands the span of an execution whose finished state st was committed to
// the span queue. It runs on the store's writer goroutine (onCommit).
func (e *Engine) traceFinished(st *pb.ExecutionState) {
	e.spans.put(tracing.Finished{
		Exec: tracing.Exec{ID: st.ExecutionId, TraceParent: st.TraceParent, TraceState: st.TraceState},
		FFQN: st.Ffqn, Kind: componentTypeName(st.ComponentType), Parent: st.ParentId,
		Created: time.Unix(0, st.CreatedAt), Ended: time.Unix(0, st.FinishedAt),
		Result: events.ResultKindName(st.ResultKind),
	})
}

// spanQueueSize bounds the spans waiting to be emitted: a burst of finishes waits, a
// tracer that cannot keep up loses spans rather than memory.
const spanQueueSize = 4096

// spanQueue emits execution spans on a goroutine of its own: building and exporting one
// takes about 18 µs, which the store's writer goroutine, committing for everyone, must
// not spend. A span that finds the queue full is dropped and counted in a warning.
type spanQueue struct {
	ch      chan tracing.Finished
	done    chan struct{}
	dropped atomic.Int64
	once    sync.Once
}

func newSpanQueue(tr *tracing.Tracer, log *slog.Logger) *spanQueue {
	q := &spanQueue{ch: make(chan tracing.Finished, spanQueueSize), done: make(chan struct{})}
	go func() {
		defer close(q.done)
		var reported int64
		report := func() {
			if n := q.dropped.Load(); n > reported {
				log.Warn("tracing: execution spans dropped: the tracer fell behind the finishes", "dropped", n)
				reported = n
			}
		}
		for f := range q.ch {
			tr.EndExecution(f)
			report()
		}
		report()
	}()
	return q
}

// put queues f's span, or drops it if the queue is full.
func (q *spanQueue) put(f tracing.Finished) {
	select {
	case q.ch <- f:
	default:
		q.dropped.Add(1)
	}
}

// close emits the queued spans and stops; nothing may be put after it. Nil-safe.
func (q *spanQueue) close() {
	if q == nil {
		return
	}
	q.once.Do(func() { close(q.ch) })
	<-q.done
}

// changeRun is e.change for a change that may end the run of an external worker that
// holds the execution's lock (its completion, an expiry, a cancellation, a deadline):
// once such a change is committed, the run's attempt span is emitted, outside the
// store's writer goroutine. A worker's run is built when it ends (tracing.go), so every
// way to end one goes through here.
func (e *Engine) changeRun(ctx context.Context, id string, decide func(st *pb.ExecutionState) (*events.Tx, error)) (*pb.ExecutionState, error) {
	var run *tracing.WorkerAttempt
	st, err := e.change(ctx, id, func(st *pb.ExecutionState) (*events.Tx, error) {
		run = nil // decide may run again (a conflict)
		tx, err := decide(st)
		if err == nil && tx != nil && st != nil && st.Status == pb.Status_STATUS_LOCKED && heldByWorker(st) &&
			len(tx.Appends) > 0 && len(tx.Appends[0].Events) > 0 {
			run = e.workerRunEnd(st, attemptOutcome(tx), time.Unix(0, tx.Appends[0].Events[0].CreatedAt))
		}
		return tx, err
	})
	if err == nil && run != nil {
		e.cfg.Tracer.EndWorkerAttempt(*run)
	}
	return st, err
}

// workerRunEnd describes the attempt span of the external worker's run that holds st's
// lock, ended at now with outcome (what it recorded, as attemptOutcome names it); nil
// when tracing is off.
func (e *Engine) workerRunEnd(st *pb.ExecutionState, outcome string, now time.Time) *tracing.WorkerAttempt {
	if !e.cfg.Tracer.Enabled() {
		return nil
	}
	started, ok := events.RunIDTime(st.RunId)
	if !ok {
		started = now
	}
	return &tracing.WorkerAttempt{
		Exec: tracing.Exec{ID: st.ExecutionId, TraceParent: st.TraceParent, TraceState: st.TraceState},
		FFQN: st.Ffqn, RunID: st.RunId, Attempt: int(st.IntermittentFailures) + 1,
		Started: started, Ended: now, Outcome: outcome, Failed: outcome != "ok",
	}
}
