// Package tracing emits OpenTelemetry spans for executions and their attempts, and
// carries W3C trace context (traceparent, tracestate) from requests into executions and
// from executions into their children and their outgoing HTTP calls.
//
// An execution outlives processes and moves between nodes, so its span cannot be an
// object held from its creation to its end. Its place in a trace is stored instead (the
// traceparent of its Created event), its span ID is derived from its execution ID
// (ExecutionSpanID), so that a child names it as parent before it has ended and any node
// or a restart names it the same, and the span is emitted once, when the execution
// finishes, with its creation as start (Tracer.EndExecution). An attempt is one run in
// one process: a span of the SDK's own, child of its execution's span, emitted when the
// run ends (Tracer.StartAttempt); its host calls are events on it.
//
// A nil *Tracer is tracing switched off: every method is then a no-op that allocates
// nothing, so that callers need no checks of their own.
package tracing

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Config configures a Tracer.
type Config struct {
	// Endpoint is the OTLP/HTTP traces URL, e.g. http://localhost:4318/v1/traces; its
	// scheme says whether TLS is used.
	Endpoint string
	// ServiceName is the service.name of the spans' resource; "" means "obelisk".
	ServiceName string
	// SampleRatio is the share of new traces kept (0..1), decided on the trace ID so
	// that every node and every restart decides the same; a trace context received from
	// a caller keeps the caller's decision.
	SampleRatio float64
	// Exporter, if set, replaces the OTLP exporter (tests, benchmarks).
	Exporter sdktrace.SpanExporter
	// Synchronous exports each span as it ends instead of in batches (tests).
	Synchronous bool
}

// Tracer emits the spans of one engine. Its methods may be called concurrently.
type Tracer struct {
	tp     *sdktrace.TracerProvider
	tracer trace.Tracer
	ratio  sdktrace.Sampler
	// droppedEvents counts the events that spans dropped beyond their limit.
	droppedEvents *atomic.Int64
}

// SpanEventLimit is how many events (host calls) a span keeps, unless
// OTEL_SPAN_EVENT_COUNT_LIMIT asks for more: the SDK's default, 128, is reached by one
// attempt of a workflow that makes a few dozen calls. Those beyond it are dropped and
// counted (DroppedEvents). It bounds what an open span holds: an event is about 150
// bytes, so a span at the limit holds about 150 KiB until its attempt ends.
const SpanEventLimit = 1024

// New starts a tracer exporting to cfg.Endpoint (or cfg.Exporter).
func New(ctx context.Context, cfg Config) (*Tracer, error) {
	if cfg.SampleRatio < 0 || cfg.SampleRatio > 1 {
		return nil, fmt.Errorf("tracing: sample_ratio %v is not between 0 and 1", cfg.SampleRatio)
	}
	exp := cfg.Exporter
	if exp == nil {
		u, err := url.Parse(cfg.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("tracing: endpoint %q must be an http or https URL (e.g. http://localhost:4318/v1/traces)", cfg.Endpoint)
		}
		if exp, err = otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(cfg.Endpoint)); err != nil {
			return nil, fmt.Errorf("tracing: OTLP exporter for %s: %w", cfg.Endpoint, err)
		}
	}
	name := cfg.ServiceName
	if name == "" {
		name = "obelisk"
	}
	ratio := sdktrace.TraceIDRatioBased(cfg.SampleRatio)
	var proc sdktrace.SpanProcessor
	if cfg.Synchronous {
		proc = sdktrace.NewSimpleSpanProcessor(exp)
	} else {
		proc = sdktrace.NewBatchSpanProcessor(exp)
	}
	limits := sdktrace.NewSpanLimits()                             // the SDK's, or the OTEL_SPAN_* environment's
	if l := limits.EventCountLimit; l >= 0 && l < SpanEventLimit { // -1: no limit
		limits.EventCountLimit = SpanEventLimit
	}
	dropped := new(atomic.Int64)
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSpanProcessor(dropping{proc, dropped}),
		sdktrace.WithSpanLimits(limits),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", name))),
		sdktrace.WithSampler(sdktrace.ParentBased(ratio)),
		sdktrace.WithIDGenerator(idGenerator{}),
	)
	return &Tracer{tp: tp, tracer: tp.Tracer("github.com/obelisk-go/obelisk"), ratio: ratio, droppedEvents: dropped}, nil
}

// Shutdown exports the spans still buffered and stops the tracer.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	if err := t.tp.Shutdown(ctx); err != nil {
		return fmt.Errorf("tracing: shutdown: %w", err)
	}
	return nil
}

// DroppedEvents is how many events the spans ended so far dropped beyond their limit
// (SpanEventLimit); 0 when tracing is off.
func (t *Tracer) DroppedEvents() int64 {
	if t == nil {
		return 0
	}
	return t.droppedEvents.Load()
}

// Enabled reports whether spans are emitted (t is not nil).
func (t *Tracer) Enabled() bool { return t != nil }

// propagator reads and writes the W3C traceparent and tracestate headers.
var propagator = propagation.TraceContext{}

// traceparentKey is the header's canonical key: looked up as it is, without the
// allocation of http.Header.Get's canonicalisation, on every request.
const traceparentKey = "Traceparent"

// Extract returns ctx carrying the trace context of a request's headers (traceparent,
// tracestate), if they hold a valid one; Incoming reads it back.
func Extract(ctx context.Context, h http.Header) context.Context {
	if len(h[traceparentKey]) == 0 {
		return ctx
	}
	return propagator.Extract(ctx, propagation.HeaderCarrier(h))
}

// Inject sets the traceparent (and tracestate) of the span in ctx on h, unless ctx has
// none or h has a traceparent already (the guest's own wins).
func Inject(ctx context.Context, h http.Header) {
	if len(h[traceparentKey]) > 0 || !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	propagator.Inject(ctx, propagation.HeaderCarrier(h))
}

// Incoming returns the trace context that ctx carries (Extract) as stored in an
// execution's Created event: "" when tracing is off or ctx has none.
func (t *Tracer) Incoming(ctx context.Context) (traceparent, tracestate string) {
	if t == nil {
		return "", ""
	}
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return "", ""
	}
	return format(sc)
}

// maxTraceState bounds the tracestate an execution keeps: a caller's is stored in the
// Created event and the state of the execution and of every descendant, so one of up to
// 32 members of 512 bytes each would be copied everywhere. W3C allows dropping a
// tracestate over 512 bytes; the traceparent is kept.
const maxTraceState = 512

// format renders a span context as W3C headers, without a tracestate over maxTraceState.
func format(sc trace.SpanContext) (traceparent, tracestate string) {
	m := propagation.MapCarrier{}
	propagator.Inject(trace.ContextWithSpanContext(context.Background(), sc), m)
	if len(m["tracestate"]) > maxTraceState {
		return m["traceparent"], ""
	}
	return m["traceparent"], m["tracestate"]
}

// parse reads a stored trace context; ok is false when traceparent is empty or invalid.
func parse(traceparent, tracestate string) (trace.SpanContext, bool) {
	if traceparent == "" {
		return trace.SpanContext{}, false
	}
	m := propagation.MapCarrier{"traceparent": traceparent}
	if tracestate != "" && len(tracestate) <= maxTraceState { // one stored before the bound: dropped
		m["tracestate"] = tracestate
	}
	sc := trace.SpanContextFromContext(propagator.Extract(context.Background(), m))
	return sc, sc.IsValid()
}

// ExecutionSpanID is the span ID of execution id's span: derived from the ID, so that
// whoever knows the execution names its span the same, before it has ended.
func ExecutionSpanID(id string) trace.SpanID { return derivedSpanID("obelisk execution span", id) }

// derivedSpanID is a span ID derived from what (a domain) and id: never the invalid
// all-zero ID.
func derivedSpanID(what, id string) trace.SpanID {
	h := sha256.Sum256([]byte(what + "\x00" + id))
	var s trace.SpanID
	copy(s[:], h[:8])
	if !s.IsValid() {
		s[7] = 1
	}
	return s
}

// DerivedTraceID is the trace ID of an execution that was created with no trace context
// (no caller's, no parent's): derived from its ID, for the same reason as
// ExecutionSpanID.
func DerivedTraceID(id string) trace.TraceID {
	h := sha256.Sum256([]byte("obelisk trace\x00" + id))
	var tid trace.TraceID
	copy(tid[:], h[:16])
	if !tid.IsValid() {
		tid[15] = 1
	}
	return tid
}

// Exec names an execution's place in a trace: its ID and the trace context stored in
// its Created event (empty when it was created without one).
type Exec struct {
	ID                      string
	TraceParent, TraceState string
}

// spanContext is the span context of execution x's span, and the context of its parent
// (invalid when it is a root).
func (t *Tracer) spanContext(x Exec) (self, parent trace.SpanContext) {
	parent, ok := parse(x.TraceParent, x.TraceState)
	cfg := trace.SpanContextConfig{SpanID: ExecutionSpanID(x.ID)}
	if ok {
		cfg.TraceID, cfg.TraceFlags, cfg.TraceState = parent.TraceID(), parent.TraceFlags(), parent.TraceState()
	} else {
		cfg.TraceID = DerivedTraceID(x.ID)
		if t.ratio.ShouldSample(sdktrace.SamplingParameters{TraceID: cfg.TraceID}).Decision == sdktrace.RecordAndSample {
			cfg.TraceFlags = trace.FlagsSampled
		}
	}
	return trace.NewSpanContext(cfg), parent
}

// ChildContext is the trace context that a child (or an execution scheduled by) x
// stores in its Created event: x's trace, with x's span as parent. "" when tracing is
// off.
func (t *Tracer) ChildContext(x Exec) (traceparent, tracestate string) {
	if t == nil {
		return "", ""
	}
	self, _ := t.spanContext(x)
	return format(self)
}

// Finished describes an execution that has finished, for its span.
type Finished struct {
	Exec
	FFQN, Kind     string // Kind: the component type (workflow, activity, ...)
	Parent         string // the parent execution's ID, if any
	Created, Ended time.Time
	Result         string // ok, err or the failure kind
}

// EndExecution emits execution f's span.
func (t *Tracer) EndExecution(f Finished) {
	if t == nil {
		return
	}
	self, parent := t.spanContext(f.Exec)
	ctx := withIDs(context.Background(), self.TraceID(), self.SpanID())
	if parent.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
	}
	attrs := []attribute.KeyValue{
		attribute.String("obelisk.execution_id", f.ID), attribute.String("obelisk.ffqn", f.FFQN),
		attribute.String("obelisk.component_type", f.Kind), attribute.String("obelisk.result", f.Result),
	}
	if f.Parent != "" {
		attrs = append(attrs, attribute.String("obelisk.parent_id", f.Parent))
	}
	_, span := t.tracer.Start(ctx, f.FFQN, trace.WithTimestamp(f.Created), trace.WithAttributes(attrs...))
	if f.Result != "ok" {
		span.SetStatus(codes.Error, f.Result)
	}
	span.End(trace.WithTimestamp(f.Ended))
}

// Attempt is the span of one attempt (run) of an execution; nil when tracing is off.
type Attempt struct{ span trace.Span }

// StartAttempt starts the span of run runID of execution x (attempt n), child of x's
// span, and returns ctx carrying it: host calls made under it add their events to it
// (HostCall) and outgoing HTTP requests name it (Inject).
func (t *Tracer) StartAttempt(ctx context.Context, x Exec, ffqn, runID string, n int) (context.Context, *Attempt) {
	if t == nil {
		return ctx, nil
	}
	self, _ := t.spanContext(x)
	ctx = trace.ContextWithRemoteSpanContext(ctx, self)
	ctx, span := t.tracer.Start(ctx, "attempt "+ffqn, trace.WithAttributes(
		attribute.String("obelisk.execution_id", x.ID), attribute.String("obelisk.run_id", runID), attribute.Int("obelisk.attempt", n)))
	return ctx, &Attempt{span}
}

// End ends the attempt with its outcome (what the run recorded: ok, err, retried_err,
// waiting, ...); failed marks the span as an error.
func (a *Attempt) End(outcome string, failed bool) {
	if a == nil {
		return
	}
	a.span.SetAttributes(attribute.String("obelisk.outcome", outcome))
	if failed {
		a.span.SetStatus(codes.Error, outcome)
	}
	a.span.End()
}

// Discard ends the attempt without exporting it: a run that left nothing behind (a
// webhook request that did nothing durable), whose execution's span, its parent, will
// never exist.
func (a *Attempt) Discard() {
	if a == nil {
		return
	}
	a.span.SetAttributes(discarded)
	a.span.End()
}

// discarded marks a span that dropping does not pass on.
var discarded = attribute.Bool("obelisk.discarded", true)

// dropping passes the spans that end to its processor, except those Discard ended, and
// counts the events they dropped.
type dropping struct {
	sdktrace.SpanProcessor
	droppedEvents *atomic.Int64
}

func (d dropping) OnEnd(s sdktrace.ReadOnlySpan) {
	for _, kv := range s.Attributes() {
		if kv == discarded {
			return
		}
	}
	if n := s.DroppedEvents(); n > 0 {
		d.droppedEvents.Add(int64(n))
	}
	d.SpanProcessor.OnEnd(s)
}

// HostCall records host call op (with attributes) as an event of the attempt span in
// ctx, if one records.
func HostCall(ctx context.Context, op string, attrs ...attribute.KeyValue) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.AddEvent(op, trace.WithAttributes(attrs...))
}

// idsKey carries the IDs the next span started under a context must have (withIDs).
type idsKey struct{}

type forcedIDs struct {
	trace trace.TraceID
	span  trace.SpanID
}

func withIDs(ctx context.Context, tid trace.TraceID, sid trace.SpanID) context.Context {
	return context.WithValue(ctx, idsKey{}, forcedIDs{tid, sid})
}

// idGenerator gives a span the IDs its context forces (an execution's span, whose IDs
// are derived), else random ones.
type idGenerator struct{}

func (idGenerator) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	if f, ok := ctx.Value(idsKey{}).(forcedIDs); ok {
		return f.trace, f.span
	}
	var tid trace.TraceID
	for !tid.IsValid() {
		binary.NativeEndian.PutUint64(tid[:8], rand.Uint64())
		binary.NativeEndian.PutUint64(tid[8:], rand.Uint64())
	}
	return tid, randomSpanID()
}

func (idGenerator) NewSpanID(ctx context.Context, _ trace.TraceID) trace.SpanID {
	if f, ok := ctx.Value(idsKey{}).(forcedIDs); ok {
		return f.span
	}
	return randomSpanID()
}

func randomSpanID() trace.SpanID {
	var s trace.SpanID
	for !s.IsValid() {
		binary.NativeEndian.PutUint64(s[:], rand.Uint64())
	}
	return s
}

// RunSpanID is the span ID of the attempt span of an external worker's run runID:
// derived from the run ID, so that the traceparent sent to the worker when it locks the
// execution names the span that the server emits when the run ends, calls later.
func RunSpanID(runID string) trace.SpanID { return derivedSpanID("obelisk run span", runID) }

// runSpanContext is the span context of the attempt span of worker run runID of x.
func (t *Tracer) runSpanContext(x Exec, runID string) (self, parent trace.SpanContext) {
	parent, _ = t.spanContext(x)
	return parent.WithSpanID(RunSpanID(runID)), parent
}

// WorkerAttemptContext is the trace context of the attempt span of an external worker's
// run runID of x, for the worker to continue the trace (its own spans, its outgoing
// requests) under it; "" when tracing is off. EndWorkerAttempt emits the span.
func (t *Tracer) WorkerAttemptContext(x Exec, runID string) (traceparent, tracestate string) {
	if t == nil {
		return "", ""
	}
	self, _ := t.runSpanContext(x, runID)
	return format(self)
}

// WorkerAttempt describes an external worker's run that has ended, for its span.
type WorkerAttempt struct {
	Exec
	FFQN, RunID string
	Attempt     int
	// Started is when the run locked the execution, Ended when its outcome was
	// recorded or its lock expired.
	Started, Ended time.Time
	// Outcome is what was recorded (ok, err, retried_err, timed_out, ...); Failed marks
	// the span as an error.
	Outcome string
	Failed  bool
}

// EndWorkerAttempt emits the attempt span of worker run a, child of its execution's
// span, with the span ID WorkerAttemptContext gave the worker. A worker's run spans
// several API calls, possibly to several nodes, so its span is built when it ends, like
// an execution's, rather than held from its start.
func (t *Tracer) EndWorkerAttempt(a WorkerAttempt) {
	if t == nil {
		return
	}
	self, parent := t.runSpanContext(a.Exec, a.RunID)
	ctx := trace.ContextWithRemoteSpanContext(withIDs(context.Background(), self.TraceID(), self.SpanID()), parent)
	_, span := t.tracer.Start(ctx, "attempt "+a.FFQN, trace.WithTimestamp(a.Started), trace.WithAttributes(
		attribute.String("obelisk.execution_id", a.ID), attribute.String("obelisk.run_id", a.RunID),
		attribute.Int("obelisk.attempt", a.Attempt), attribute.Bool("obelisk.external", true),
		attribute.String("obelisk.outcome", a.Outcome)))
	if a.Failed {
		span.SetStatus(codes.Error, a.Outcome)
	}
	span.End(trace.WithTimestamp(a.Ended))
}
