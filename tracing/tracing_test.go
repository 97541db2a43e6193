package tracing

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

const callerTraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func newTestTracer(t *testing.T, ratio float64) (*Tracer, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tr, err := New(context.Background(), Config{Exporter: exp, Synchronous: true, SampleRatio: ratio})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Shutdown(context.Background()) })
	return tr, exp
}

func TestDerivedIDsAreStableAndDistinct(t *testing.T) {
	a, b := "E_01JAAAAAAAAAAAAAAAAAAAAAAA", "E_01JAAAAAAAAAAAAAAAAAAAAAAB"
	if ExecutionSpanID(a) != ExecutionSpanID(a) || DerivedTraceID(a) != DerivedTraceID(a) {
		t.Fatal("derived IDs differ between calls")
	}
	if ExecutionSpanID(a) == ExecutionSpanID(b) || DerivedTraceID(a) == DerivedTraceID(b) {
		t.Fatal("two executions got the same derived ID")
	}
	if !ExecutionSpanID(a).IsValid() || !DerivedTraceID(a).IsValid() {
		t.Fatal("derived IDs are not valid")
	}
}

func TestExtractIncomingRoundTrip(t *testing.T) {
	tr, _ := newTestTracer(t, 1)
	h := http.Header{}
	h.Set("traceparent", callerTraceParent)
	h.Set("tracestate", "vendor=x")
	p, s := tr.Incoming(Extract(context.Background(), h))
	if p != callerTraceParent || s != "vendor=x" {
		t.Fatalf("Incoming = %q, %q", p, s)
	}
	if p, _ := tr.Incoming(context.Background()); p != "" {
		t.Fatalf("no header: Incoming = %q", p)
	}
	bad := http.Header{}
	bad.Set("traceparent", "00-zz-yy-01")
	if p, _ := tr.Incoming(Extract(context.Background(), bad)); p != "" {
		t.Fatalf("invalid header: Incoming = %q", p)
	}
	var off *Tracer
	if p, _ := off.Incoming(Extract(context.Background(), h)); p != "" {
		t.Fatalf("tracing off: Incoming = %q", p)
	}
}

// A parent with the caller's context, its child, and the child's attempt form one trace
// with the links right: caller -> parent span -> child span -> attempt -> HTTP header.
func TestPropagationToChildAndAttempt(t *testing.T) {
	tr, exp := newTestTracer(t, 1)
	parent := Exec{ID: "E_PARENT", TraceParent: callerTraceParent}
	cp, _ := tr.ChildContext(parent)
	child := Exec{ID: "E_PARENT.g:1_1", TraceParent: cp}

	ctx, att := tr.StartAttempt(context.Background(), child, "ns:pkg/ifc.fn", "Run_1", 1)
	HostCall(ctx, "kv")
	h := http.Header{}
	Inject(ctx, h)
	att.End("ok", false)
	created := time.Unix(100, 0)
	tr.EndExecution(Finished{Exec: child, FFQN: "ns:pkg/ifc.fn", Kind: "activity_wasm", Parent: parent.ID, Created: created, Ended: created.Add(time.Second), Result: "ok"})
	tr.EndExecution(Finished{Exec: parent, FFQN: "ns:pkg/ifc.wf", Kind: "workflow", Created: created, Ended: created.Add(2 * time.Second), Result: "err"})

	spans := exp.GetSpans()
	if len(spans) != 3 {
		t.Fatalf("got %d spans, want 3", len(spans))
	}
	attempt, childSpan, parentSpan := spans[0], spans[1], spans[2]
	caller, _ := parse(callerTraceParent, "")
	for _, s := range spans {
		if s.SpanContext.TraceID() != caller.TraceID() {
			t.Errorf("span %s: trace %s, want the caller's %s", s.Name, s.SpanContext.TraceID(), caller.TraceID())
		}
	}
	if parentSpan.SpanContext.SpanID() != ExecutionSpanID(parent.ID) || parentSpan.Parent.SpanID() != caller.SpanID() {
		t.Errorf("parent span %s (parent %s), want %s under the caller's %s", parentSpan.SpanContext.SpanID(), parentSpan.Parent.SpanID(), ExecutionSpanID(parent.ID), caller.SpanID())
	}
	if childSpan.SpanContext.SpanID() != ExecutionSpanID(child.ID) || childSpan.Parent.SpanID() != ExecutionSpanID(parent.ID) {
		t.Errorf("child span %s (parent %s), want %s under %s", childSpan.SpanContext.SpanID(), childSpan.Parent.SpanID(), ExecutionSpanID(child.ID), ExecutionSpanID(parent.ID))
	}
	if !childSpan.StartTime.Equal(created) || !childSpan.EndTime.Equal(created.Add(time.Second)) {
		t.Errorf("child span from %v to %v, want its creation to its end", childSpan.StartTime, childSpan.EndTime)
	}
	if attempt.Parent.SpanID() != ExecutionSpanID(child.ID) {
		t.Errorf("attempt's parent %s, want the child's span %s", attempt.Parent.SpanID(), ExecutionSpanID(child.ID))
	}
	if len(attempt.Events) != 1 || attempt.Events[0].Name != "kv" {
		t.Errorf("attempt events %v, want the kv host call", attempt.Events)
	}
	want := "00-" + caller.TraceID().String() + "-" + attempt.SpanContext.SpanID().String() + "-01"
	if got := h.Get("traceparent"); got != want {
		t.Errorf("outgoing traceparent %q, want %q (naming the attempt)", got, want)
	}
	if parentSpan.Status.Description != "err" {
		t.Errorf("parent span status %+v, want an error", parentSpan.Status)
	}
}

// Without a caller's context the trace ID is derived from the root execution; the
// sample ratio decides on it, and a caller's sampled flag wins over the ratio.
func TestRootsAndSampling(t *testing.T) {
	tr, exp := newTestTracer(t, 1)
	root := Exec{ID: "E_ROOT"}
	tr.EndExecution(Finished{Exec: root, FFQN: "f", Created: time.Unix(1, 0), Ended: time.Unix(2, 0), Result: "ok"})
	spans := exp.GetSpans()
	if len(spans) != 1 || spans[0].SpanContext.TraceID() != DerivedTraceID(root.ID) || spans[0].Parent.IsValid() {
		t.Fatalf("root span %+v, want trace %s and no parent", spans, DerivedTraceID(root.ID))
	}

	none, exp0 := newTestTracer(t, 0)
	none.EndExecution(Finished{Exec: root, FFQN: "f", Created: time.Unix(1, 0), Ended: time.Unix(2, 0), Result: "ok"})
	cp, _ := none.ChildContext(root)
	if sc, _ := parse(cp, ""); sc.IsSampled() {
		t.Errorf("ratio 0: child context %q is sampled", cp)
	}
	none.EndExecution(Finished{Exec: Exec{ID: "E_SAMPLED", TraceParent: callerTraceParent}, FFQN: "f", Created: time.Unix(1, 0), Ended: time.Unix(2, 0), Result: "ok"})
	if got := exp0.GetSpans(); len(got) != 1 || got[0].Name != "f" || got[0].SpanContext.SpanID() != ExecutionSpanID("E_SAMPLED") {
		t.Errorf("ratio 0: spans %v, want only the one whose caller sampled it", got)
	}
}

func TestOffIsNoop(t *testing.T) {
	var off *Tracer
	ctx, att := off.StartAttempt(context.Background(), Exec{ID: "E"}, "f", "r", 1)
	att.End("ok", false)
	off.EndExecution(Finished{Exec: Exec{ID: "E"}})
	if p, _ := off.ChildContext(Exec{ID: "E"}); p != "" {
		t.Errorf("off: ChildContext = %q", p)
	}
	h := http.Header{}
	Inject(ctx, h)
	if h.Get("traceparent") != "" || trace.SpanContextFromContext(ctx).IsValid() {
		t.Error("off: a trace context was carried")
	}
	if err := off.Shutdown(context.Background()); err != nil {
		t.Error(err)
	}
}

func TestDiscardedAttemptIsNotExported(t *testing.T) {
	tr, exp := newTestTracer(t, 1)
	_, att := tr.StartAttempt(context.Background(), Exec{ID: "E"}, "f", "r", 1)
	att.Discard()
	_, att = tr.StartAttempt(context.Background(), Exec{ID: "E"}, "f", "r2", 1)
	att.End("ok", false)
	if spans := exp.GetSpans(); len(spans) != 1 || spans[0].Attributes[1].Value.AsString() != "r2" {
		t.Errorf("spans %v, want only the attempt that ended", spans)
	}
}

func TestGuestTraceparentWins(t *testing.T) {
	tr, _ := newTestTracer(t, 1)
	ctx, att := tr.StartAttempt(context.Background(), Exec{ID: "E"}, "f", "r", 1)
	defer att.End("ok", false)
	h := http.Header{}
	h.Set("traceparent", callerTraceParent)
	Inject(ctx, h)
	if h.Get("traceparent") != callerTraceParent {
		t.Errorf("guest's traceparent replaced by %q", h.Get("traceparent"))
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, cfg := range []Config{{Endpoint: "localhost:4318"}, {Endpoint: "ftp://x/v1/traces"}, {Endpoint: "http://x/v1/traces", SampleRatio: 2}} {
		if _, err := New(context.Background(), cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

// BenchmarkOff is what tracing off costs a run: an attempt started and ended on a nil
// Tracer, a host call event and an outgoing request's header on a context with no span.
func BenchmarkOff(b *testing.B) {
	var off *Tracer
	type key struct{}
	base := context.WithValue(context.Background(), key{}, 1) // a context a few levels deep, like a run's
	base, cancel := context.WithCancel(base)
	defer cancel()
	h := http.Header{}
	b.ReportAllocs()
	for range b.N {
		ctx, att := off.StartAttempt(base, Exec{ID: "E"}, "f", "r", 1)
		HostCall(ctx, "call")
		Inject(ctx, h)
		att.End("ok", false)
		_, _ = off.ChildContext(Exec{ID: "E"})
	}
}

// BenchmarkOn is the same with tracing on, exporting to nowhere (in memory), plus the
// execution's span emitted at its end.
func BenchmarkOn(b *testing.B) {
	tr, err := New(context.Background(), Config{Exporter: tracetest.NewNoopExporter(), SampleRatio: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Shutdown(context.Background())
	x := Exec{ID: "E_01JAAAAAAAAAAAAAAAAAAAAAAA", TraceParent: callerTraceParent}
	b.ReportAllocs()
	for range b.N {
		ctx, att := tr.StartAttempt(context.Background(), x, "f", "r", 1)
		HostCall(ctx, "call")
		h := http.Header{}
		Inject(ctx, h)
		att.End("ok", false)
		_, _ = tr.ChildContext(x)
		tr.EndExecution(Finished{Exec: x, FFQN: "f", Created: time.Unix(1, 0), Ended: time.Unix(2, 0), Result: "ok"})
	}
}

// A caller's tracestate over maxTraceState is dropped, not stored into the execution
// and every descendant; its traceparent is kept. One within the bound is kept.
func TestLongTraceStateIsDropped(t *testing.T) {
	tr, _ := newTestTracer(t, 1)
	var members []string
	for i := range 30 {
		members = append(members, fmt.Sprintf("vendor%02d=%s", i, strings.Repeat("x", 20)))
	}
	long := strings.Join(members, ",")
	h := http.Header{}
	h.Set("traceparent", callerTraceParent)
	h.Set("tracestate", long)
	p, s := tr.Incoming(Extract(context.Background(), h))
	if p != callerTraceParent || s != "" {
		t.Fatalf("Incoming with a tracestate of %d bytes = %q, %q; want the traceparent alone", len(long), p, s)
	}
	if cp, cs := tr.ChildContext(Exec{ID: "E_1", TraceParent: callerTraceParent, TraceState: long}); cp == "" || cs != "" {
		t.Fatalf("ChildContext of a stored long tracestate = %q, %q", cp, cs)
	}
	short := strings.Join(members[:10], ",")
	if _, cs := tr.ChildContext(Exec{ID: "E_1", TraceParent: callerTraceParent, TraceState: short}); cs != short {
		t.Fatalf("ChildContext dropped a tracestate of %d bytes: %q", len(short), cs)
	}
}

// A worker's attempt span, emitted when its run ends, has the span ID of the traceparent
// the worker was given at lock time, and its execution's span as parent.
func TestWorkerAttemptSpan(t *testing.T) {
	tr, exp := newTestTracer(t, 1)
	x := Exec{ID: "E_STUB", TraceParent: callerTraceParent}
	tp, _ := tr.WorkerAttemptContext(x, "Run_W1")
	sc, ok := parse(tp, "")
	if !ok || sc.SpanID() != RunSpanID("Run_W1") || sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || !sc.IsSampled() {
		t.Fatalf("worker's traceparent %q: %v", tp, sc)
	}
	if RunSpanID("Run_W1") == RunSpanID("Run_W2") {
		t.Fatal("two runs got the same span ID")
	}
	started := time.Unix(100, 0)
	tr.EndWorkerAttempt(WorkerAttempt{Exec: x, FFQN: "ns:pkg/ifc.fn", RunID: "Run_W1", Attempt: 2,
		Started: started, Ended: started.Add(time.Second), Outcome: "retried_err", Failed: true})
	spans := exp.GetSpans()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1", len(spans))
	}
	s := spans[0]
	if s.SpanContext.SpanID() != sc.SpanID() || s.SpanContext.TraceID() != sc.TraceID() || s.Parent.SpanID() != ExecutionSpanID(x.ID) {
		t.Errorf("span %v parent %v: want span %v under the execution's %v", s.SpanContext.SpanID(), s.Parent.SpanID(), sc.SpanID(), ExecutionSpanID(x.ID))
	}
	if !s.StartTime.Equal(started) || !s.EndTime.Equal(started.Add(time.Second)) || s.Status.Description != "retried_err" {
		t.Errorf("span %s..%s status %v", s.StartTime, s.EndTime, s.Status)
	}

	// Tracing off: nothing, and no traceparent for the worker.
	var off *Tracer
	if tp, _ := off.WorkerAttemptContext(x, "Run_W1"); tp != "" {
		t.Errorf("tracing off: %q", tp)
	}
	off.EndWorkerAttempt(WorkerAttempt{Exec: x, RunID: "Run_W1"})
}

// TestSpanEventLimit: an attempt keeps SpanEventLimit host calls as events (far more
// than the SDK's default 128), and the ones beyond are counted as dropped.
func TestSpanEventLimit(t *testing.T) {
	tr, exp := newTestTracer(t, 1)
	x := Exec{ID: "E_LONG", TraceParent: callerTraceParent}
	for i, calls := range []int{500, SpanEventLimit + 10} {
		ctx, att := tr.StartAttempt(context.Background(), x, "ns:pkg/ifc.wf", fmt.Sprint("Run_", i), 1)
		for range calls {
			HostCall(ctx, "call")
		}
		att.End("ok", false)
	}
	spans := exp.GetSpans()
	if len(spans) != 2 || len(spans[0].Events) != 500 || spans[0].DroppedEvents != 0 {
		t.Fatalf("500 calls: %d spans, first with %d events, %d dropped", len(spans), len(spans[0].Events), spans[0].DroppedEvents)
	}
	if len(spans[1].Events) != SpanEventLimit || spans[1].DroppedEvents != 10 {
		t.Errorf("%d calls: %d events, %d dropped", SpanEventLimit+10, len(spans[1].Events), spans[1].DroppedEvents)
	}
	if got := tr.DroppedEvents(); got != 10 {
		t.Errorf("DroppedEvents = %d, want 10", got)
	}
	var off *Tracer
	if off.DroppedEvents() != 0 {
		t.Error("tracing off: events dropped")
	}
}

// BenchmarkWorkflow is the tracing of one workflow of test/bench's BenchmarkThroughput
// (fiboa: a workflow run that calls an activity three times), as the engine does it:
// the run's child context and attempt span with a host call event per call, each
// activity's attempt span, and the four execution spans, exported over OTLP/HTTP to a
// receiver that discards them. Its ns/op and allocs/op are what tracing adds to a
// workflow on the server, without the noise of the whole benchmark.
func BenchmarkWorkflow(b *testing.B) {
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
	}))
	defer sink.Close()
	tr, err := New(context.Background(), Config{Endpoint: sink.URL + "/v1/traces", SampleRatio: 1})
	if err != nil {
		b.Fatal(err)
	}
	const fiboa, fibo = "testing:fibo-workflow/workflow.fiboa", "testing:fibo/fibo.fibo"
	created := time.Now()
	// The IDs are made before the timing: only tracing's allocations are counted.
	ids := make([][4]string, b.N)
	for i := range ids {
		ids[i][0] = fmt.Sprintf("E_01JAAAAAAAAAAAAAAAAA%06d", i)
		for j := 1; j < 4; j++ {
			ids[i][j] = fmt.Sprintf("%s.g:%d_1", ids[i][0], j-1)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		wf := Exec{ID: ids[i][0]}
		child, state := tr.ChildContext(wf)
		ctx, att := tr.StartAttempt(context.Background(), wf, fiboa, "Run_01JAAAAAAAAAAAAAAAAAAAAAAA", 1)
		var acts [3]Exec
		for j := range acts {
			HostCall(ctx, "call")
			acts[j] = Exec{ID: ids[i][j+1], TraceParent: child, TraceState: state}
			_, aatt := tr.StartAttempt(context.Background(), acts[j], fibo, "Run_01JAAAAAAAAAAAAAAAAAAAAAAB", 1)
			aatt.End("ok", false)
			tr.EndExecution(Finished{Exec: acts[j], FFQN: fibo, Kind: "activity_wasm", Parent: wf.ID, Created: created, Ended: created, Result: "ok"})
		}
		att.End("ok", false)
		tr.EndExecution(Finished{Exec: wf, FFQN: fiboa, Kind: "workflow", Created: created, Ended: created, Result: "ok"})
	}
	if err := tr.Shutdown(context.Background()); err != nil { // the spans still batched, in the timing
		b.Fatal(err)
	}
}

// parse and format read and write stored trace contexts themselves: they must agree
// with the W3C propagator on every input, valid or not.
func TestParseAndFormatAgreeWithThePropagator(t *testing.T) {
	const tid, sid = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	for _, c := range []struct{ parent, state string }{
		{"00-" + tid + "-" + sid + "-01", ""},
		{"00-" + tid + "-" + sid + "-00", ""},
		{"00-" + tid + "-" + sid + "-02", ""},
		{"00-" + tid + "-" + sid + "-03", "vendor=x,other=y"},
		{"00-" + tid + "-" + sid + "-01", "not a tracestate"},
		{"00-" + tid + "-" + sid + "-01", "a=" + strings.Repeat("b", maxTraceState)}, // over the bound
		{"00-" + tid + "-" + sid + "-04", ""},                                        // a reserved flag
		{"00-" + strings.ToUpper(tid) + "-" + sid + "-01", ""},                       // upper case
		{"00-" + tid + "-" + sid + "-0g", ""},
		{"00-00000000000000000000000000000000-" + sid + "-01", ""},
		{"00-" + tid + "-0000000000000000-01", ""},
		{"00-" + tid + "-" + sid + "-01-extra", ""}, // version 00 has no more fields
		{"01-" + tid + "-" + sid + "-01-extra", ""}, // a later version may
		{"cc-" + tid + "-" + sid + "-09", ""},
		{"ff-" + tid + "-" + sid + "-01", ""},
		{"00_" + tid + "-" + sid + "-01", ""},
		{"00-" + tid + "-" + sid + "-1", ""},
		{"", ""},
	} {
		m := propagation.MapCarrier{"traceparent": c.parent}
		if c.state != "" && len(c.state) <= maxTraceState {
			m["tracestate"] = c.state
		}
		want := trace.SpanContextFromContext(propagator.Extract(context.Background(), m))
		got, ok := parse(c.parent, c.state)
		if !got.Equal(want) || ok != want.IsValid() {
			t.Errorf("parse(%q, %q) = %v %v, the propagator's %v", c.parent, c.state, got, ok, want)
			continue
		}
		if !ok {
			continue
		}
		out := propagation.MapCarrier{}
		propagator.Inject(trace.ContextWithSpanContext(context.Background(), got), out)
		if p, s := format(got); p != out["traceparent"] || s != out["tracestate"] {
			t.Errorf("format(%v) = %q, %q; the propagator's %q, %q", got, p, s, out["traceparent"], out["tracestate"])
		}
	}
	if p, s := format(trace.SpanContext{}); p != "" || s != "" {
		t.Errorf("format of no span context = %q, %q", p, s)
	}
}

// Every span carries its attributes, whichever order spans end in: those set when an
// attempt ends and those of spans built at their end, whose buffer is reused.
func TestSpanAttributes(t *testing.T) {
	tr, exp := newTestTracer(t, 1)
	_, a1 := tr.StartAttempt(context.Background(), Exec{ID: "E_1"}, "ns:p/i.f", "Run_1", 1)
	_, a2 := tr.StartAttempt(context.Background(), Exec{ID: "E_2"}, "ns:p/i.f", "Run_2", 3)
	a2.End("retried_err", true)
	created := time.Unix(1, 0)
	tr.EndExecution(Finished{Exec: Exec{ID: "E_2"}, FFQN: "ns:p/i.f", Kind: "activity_wasm", Parent: "E_P", Created: created, Ended: created, Result: "err"})
	tr.EndWorkerAttempt(WorkerAttempt{Exec: Exec{ID: "E_3"}, FFQN: "ns:p/i.g", RunID: "Run_3", Attempt: 2, Started: created, Ended: created, Outcome: "ok"})
	tr.EndExecution(Finished{Exec: Exec{ID: "E_1"}, FFQN: "ns:p/i.f", Kind: "workflow", Created: created, Ended: created, Result: "ok"})
	a1.End("ok", false)
	want := []string{
		"attempt ns:p/i.f error obelisk.execution_id=E_2 obelisk.run_id=Run_2 obelisk.attempt=3 obelisk.outcome=retried_err",
		"ns:p/i.f error obelisk.execution_id=E_2 obelisk.ffqn=ns:p/i.f obelisk.component_type=activity_wasm obelisk.result=err obelisk.parent_id=E_P",
		"attempt ns:p/i.g  obelisk.execution_id=E_3 obelisk.run_id=Run_3 obelisk.attempt=2 obelisk.external=true obelisk.outcome=ok",
		"ns:p/i.f  obelisk.execution_id=E_1 obelisk.ffqn=ns:p/i.f obelisk.component_type=workflow obelisk.result=ok",
		"attempt ns:p/i.f  obelisk.execution_id=E_1 obelisk.run_id=Run_1 obelisk.attempt=1 obelisk.outcome=ok",
	}
	spans := exp.GetSpans()
	if len(spans) != len(want) {
		t.Fatalf("%d spans, want %d", len(spans), len(want))
	}
	for i, s := range spans {
		status := ""
		if s.Status.Code == codes.Error {
			status = "error"
		}
		got := s.Name + " " + status
		for _, kv := range s.Attributes {
			got += " " + string(kv.Key) + "=" + kv.Value.Emit()
		}
		if got != want[i] {
			t.Errorf("span %d:\n got %s\nwant %s", i, got, want[i])
		}
	}
}
