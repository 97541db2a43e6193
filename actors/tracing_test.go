package actors

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
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

// blockingExporter holds up the first export until release is closed.
type blockingExporter struct {
	*tracetest.InMemoryExporter
	release chan struct{}
}

func (b blockingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	<-b.release
	return b.InMemoryExporter.ExportSpans(ctx, spans)
}

// Execution spans are emitted off the store's writer goroutine: while the tracer is
// stuck, finishes are queued up to spanQueueSize and the rest dropped, counted in a
// warning, instead of holding up commits; close emits what is queued.
func TestSpanQueueDropsWhenFullAndFlushesOnClose(t *testing.T) {
	exp := blockingExporter{tracetest.NewInMemoryExporter(), make(chan struct{})}
	tr, err := tracing.New(context.Background(), tracing.Config{Exporter: exp, Synchronous: true, SampleRatio: 1})
	if err != nil {
		t.Fatal(err)
	}
	logs := &logCounter{n: map[string]int{}}
	q := newSpanQueue(tr, slog.New(logs))
	const extra = 10
	start := time.Now()
	for i := range spanQueueSize + 1 + extra { // one taken by the stuck goroutine
		q.put(tracing.Finished{Exec: tracing.Exec{ID: fmt.Sprint("E_", i)}, FFQN: "a:b/c.d", Created: start, Ended: start})
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("queueing %d spans took %s: put blocked", spanQueueSize+1+extra, took)
	}
	// The goroutine may not have taken the first span yet: then one more was dropped.
	if n := q.dropped.Load(); n != extra && n != extra+1 {
		t.Fatalf("%d dropped, want %d", n, extra)
	}
	close(exp.release)
	q.close()
	q.close() // a second close is harmless (Engine.Close twice)
	if got, want := len(exp.GetSpans()), spanQueueSize+1+extra-int(q.dropped.Load()); got != want {
		t.Fatalf("%d spans exported at close, want %d", got, want)
	}
	if logs.count("tracing: execution spans dropped: the tracer fell behind the finishes") == 0 {
		t.Errorf("no warning of the dropped spans: %v", logs.n)
	}
}
