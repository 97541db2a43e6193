package actors

import (
	"context"
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

// traceFinished emits the span of an execution whose finished state st was committed.
func (e *Engine) traceFinished(st *pb.ExecutionState) {
	e.cfg.Tracer.EndExecution(tracing.Finished{
		Exec: tracing.Exec{ID: st.ExecutionId, TraceParent: st.TraceParent, TraceState: st.TraceState},
		FFQN: st.Ffqn, Kind: componentTypeName(st.ComponentType), Parent: st.ParentId,
		Created: time.Unix(0, st.CreatedAt), Ended: time.Unix(0, st.FinishedAt),
		Result: events.ResultKindName(st.ResultKind),
	})
}
