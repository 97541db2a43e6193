package actors

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	"github.com/obelisk-go/obelisk/tracing"
)

// The commit that finishes an execution emits its span: the trace context stored in its
// Created event, its derived span ID, from its creation to its end; the child context
// given to its children names that span.
func TestFinishedExecutionEmitsItsSpan(t *testing.T) {
	ctx := context.Background()
	exp := tracetest.NewInMemoryExporter()
	tr, err := tracing.New(ctx, tracing.Config{Exporter: exp, Synchronous: true, SampleRatio: 1})
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(ctx, Config{DataDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Tracer: tr})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	const caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	id := events.NewExecutionID(time.Now())
	created := time.Now().Add(-time.Second)
	tx := createdTx(id, created)
	traced(tx.Appends[0].Events[0], traceContext{parent: caller})
	st, err := e.change(ctx, id, func(*pb.ExecutionState) (*events.Tx, error) { return tx, nil })
	if err != nil {
		t.Fatal(err)
	}
	if st.TraceParent != caller {
		t.Fatalf("state's trace_parent %q, want Created's %q", st.TraceParent, caller)
	}
	if len(exp.GetSpans()) != 0 {
		t.Fatalf("a span before the execution finished: %v", exp.GetSpans())
	}
	if _, err := e.change(ctx, id, func(st *pb.ExecutionState) (*events.Tx, error) {
		return e.finishTx(st, []byte(`{"ok":1}`), time.Now()), nil
	}); err != nil {
		t.Fatal(err)
	}
	// The span is emitted by the store's commit hook, which runs after the committer
	// has its answer.
	spans := exp.GetSpans()
	for wait := time.Now().Add(10 * time.Second); len(spans) == 0 && time.Now().Before(wait); spans = exp.GetSpans() {
		time.Sleep(time.Millisecond)
	}
	if len(spans) != 1 {
		t.Fatalf("%d spans, want the execution's", len(spans))
	}
	s := spans[0]
	if s.SpanContext.SpanID() != tracing.ExecutionSpanID(id) || s.Parent.SpanID().String() != "00f067aa0ba902b7" ||
		s.SpanContext.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || s.Name != "a:b/c.d" {
		t.Errorf("span %s %s/%s parent %s, want the execution's derived span under the caller's", s.Name, s.SpanContext.TraceID(), s.SpanContext.SpanID(), s.Parent.SpanID())
	}
	if s.StartTime.UnixNano() != created.UnixNano() {
		t.Errorf("span starts %v, want the creation %v", s.StartTime, created)
	}
	child := e.childTrace(id, tx.Appends[0].Events[0].GetCreated())
	want := "00-4bf92f3577b34da6a3ce929d0e0e4736-" + tracing.ExecutionSpanID(id).String() + "-01"
	if child.parent != want {
		t.Errorf("children's traceparent %q, want %q", child.parent, want)
	}
}

// Tracing off: nothing is added to a Created event.
func TestTracingOffStoresNothing(t *testing.T) {
	e := newTestEngine(t)
	if tc := e.childTrace("E", &pb.Created{TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}); tc != (traceContext{}) {
		t.Errorf("childTrace with tracing off = %+v", tc)
	}
	h := http.Header{}
	h.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	if tc := e.incomingTrace(tracing.Extract(context.Background(), h)); tc != (traceContext{}) {
		t.Errorf("incomingTrace with tracing off = %+v", tc)
	}
}
