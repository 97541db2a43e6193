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
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
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
	attrs         *sync.Pool // of *spanAttrs
	attemptNames  *sync.Map  // ffqn -> the name of its attempt spans
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
	return &Tracer{
		tp: tp, tracer: tp.Tracer("github.com/obelisk-go/obelisk"), ratio: ratio, droppedEvents: dropped,
		attrs: &sync.Pool{New: func() any { return new(spanAttrs) }}, attemptNames: new(sync.Map),
	}, nil
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
// It writes the traceparent itself, as the propagator would (version 00, the sampled
// and random flags), in one allocation: the propagator needs a carrier and a context for
// it, and this runs for every execution and every run.
func format(sc trace.SpanContext) (traceparent, tracestate string) {
	if !sc.IsValid() {
		return "", ""
	}
	var b [traceparentLen]byte
	tid, sid := sc.TraceID(), sc.SpanID()
	b[0], b[1], b[2] = '0', '0', '-'
	hex.Encode(b[3:35], tid[:])
	b[35] = '-'
	hex.Encode(b[36:52], sid[:])
	b[52] = '-'
	hex.Encode(b[53:55], []byte{byte(sc.TraceFlags() & (trace.FlagsSampled | trace.FlagsRandom))})
	if ts := sc.TraceState(); ts.Len() > 0 {
		if tracestate = ts.String(); len(tracestate) > maxTraceState {
			tracestate = ""
		}
	}
	return string(b[:]), tracestate
}

// traceparentLen is the length of a version 00 traceparent: 00-{32 hex}-{16 hex}-{2 hex}.
const traceparentLen = 55

// parse reads a stored trace context; ok is false when traceparent is empty or invalid.
// What format wrote (every stored traceparent: Incoming and ChildContext store what it
// writes) is read here without the propagator's carrier and context; anything else
// goes through the propagator, which knows the rules for other versions.
func parse(traceparent, tracestate string) (trace.SpanContext, bool) {
	if traceparent == "" {
		return trace.SpanContext{}, false
	}
	if tracestate != "" && len(tracestate) > maxTraceState { // one stored before the bound: dropped
		tracestate = ""
	}
	cfg, ok := parseV00(traceparent)
	if !ok {
		m := propagation.MapCarrier{"traceparent": traceparent}
		if tracestate != "" {
			m["tracestate"] = tracestate
		}
		sc := trace.SpanContextFromContext(propagator.Extract(context.Background(), m))
		return sc, sc.IsValid()
	}
	if tracestate != "" {
		// As the propagator: a tracestate that does not parse is dropped, the
		// traceparent kept.
		cfg.TraceState, _ = trace.ParseTraceState(tracestate)
	}
	if sc := trace.NewSpanContext(cfg); sc.IsValid() {
		return sc, true
	}
	return trace.SpanContext{}, false
}

// parseV00 reads a version 00 traceparent in lower-case hex, as the W3C requires.
func parseV00(tp string) (cfg trace.SpanContextConfig, ok bool) {
	if len(tp) != traceparentLen || tp[0] != '0' || tp[1] != '0' || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' {
		return cfg, false
	}
	var flags [1]byte
	if !lowerHex(cfg.TraceID[:], tp[3:35]) || !lowerHex(cfg.SpanID[:], tp[36:52]) || !lowerHex(flags[:], tp[53:55]) || flags[0] > 3 {
		return cfg, false
	}
	cfg.TraceFlags = trace.TraceFlags(flags[0])
	cfg.Remote = true
	return cfg, true
}

// lowerHex decodes src, lower-case hex of len(dst) bytes, into dst.
func lowerHex(dst []byte, src string) bool {
	for i := range dst {
		hi, ok1 := hexDigit(src[2*i])
		lo, ok2 := hexDigit(src[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func hexDigit(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// ExecutionSpanID is the span ID of execution id's span: derived from the ID, so that
// whoever knows the execution names its span the same, before it has ended.
func ExecutionSpanID(id string) trace.SpanID { return derivedSpanID("obelisk execution span", id) }

// derivedSpanID is a span ID derived from what (a domain) and id: never the invalid
// all-zero ID.
func derivedSpanID(what, id string) trace.SpanID {
	h := digest(what, id)
	var s trace.SpanID
	copy(s[:], h[:8])
	if !s.IsValid() {
		s[7] = 1
	}
	return s
}

// digest is the SHA-256 of what, a zero byte and id, hashed from a buffer on the stack
// (an execution ID fits in it) rather than a concatenated string: it runs for every
// span.
func digest(what, id string) [sha256.Size]byte {
	var buf [128]byte
	b := append(buf[:0], what...)
	b = append(b, 0)
	b = append(b, id...)
	return sha256.Sum256(b)
}

// DerivedTraceID is the trace ID of an execution that was created with no trace context
// (no caller's, no parent's): derived from its ID, for the same reason as
// ExecutionSpanID.
func DerivedTraceID(id string) trace.TraceID {
	h := digest("obelisk trace", id)
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
	var ctx context.Context = &idsContext{context.Background(), forcedIDs{self.TraceID(), self.SpanID()}}
	if parent.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
	}
	_, span := t.tracer.Start(ctx, f.FFQN, trace.WithTimestamp(f.Created))
	kv := [5]attribute.KeyValue{
		attribute.String("obelisk.execution_id", f.ID), attribute.String("obelisk.ffqn", f.FFQN),
		attribute.String("obelisk.component_type", f.Kind), attribute.String("obelisk.result", f.Result),
	}
	n := 4
	if f.Parent != "" {
		kv[n] = attribute.String("obelisk.parent_id", f.Parent)
		n++
	}
	t.setAttributes(span, kv[:n]...)
	if f.Result != "ok" {
		span.SetStatus(codes.Error, f.Result)
	}
	span.End(trace.WithTimestamp(f.Ended))
}

// spanAttrs holds the attributes of a span while the SDK copies them in (SetAttributes),
// so that passing them costs no allocation of their own. Tracer.attrs pools them.
type spanAttrs [6]attribute.KeyValue

// setAttributes sets kvs (at most len(spanAttrs)) on span through a pooled buffer: kvs
// stays on the caller's stack, where passing it to SetAttributes, an interface's method,
// would move it to the heap.
func (t *Tracer) setAttributes(span trace.Span, kvs ...attribute.KeyValue) {
	attrs := t.attrs.Get().(*spanAttrs)
	n := copy(attrs[:], kvs)
	span.SetAttributes(attrs[:n]...) // copied by the SDK: attrs can be reused
	*attrs = spanAttrs{}             // holds no strings while pooled
	t.attrs.Put(attrs)
}

// Attempt is the span of one attempt (run) of an execution; nil when tracing is off.
type Attempt struct {
	span trace.Span
	t    *Tracer
	// The span's attributes are set when it ends, with the outcome, in one
	// SetAttributes: the SDK then sizes its slice once instead of growing it.
	execution, run string
	n              int
}

// StartAttempt starts the span of run runID of execution x (attempt n), child of x's
// span, and returns ctx carrying it: host calls made under it add their events to it
// (HostCall) and outgoing HTTP requests name it (Inject).
func (t *Tracer) StartAttempt(ctx context.Context, x Exec, ffqn, runID string, n int) (context.Context, *Attempt) {
	if t == nil {
		return ctx, nil
	}
	self, _ := t.spanContext(x)
	ctx = trace.ContextWithRemoteSpanContext(ctx, self)
	ctx, span := t.tracer.Start(ctx, t.attemptName(ffqn))
	if !span.IsRecording() {
		// Not sampled: ctx still carries the trace context onward (outgoing requests),
		// and a nil Attempt ends nothing.
		return ctx, nil
	}
	return ctx, &Attempt{span: span, t: t, execution: x.ID, run: runID, n: n}
}

// attemptName is the name of an attempt span of function ffqn, made once per function:
// a concatenation per attempt would be an allocation per attempt.
func (t *Tracer) attemptName(ffqn string) string {
	if name, ok := t.attemptNames.Load(ffqn); ok {
		return name.(string)
	}
	name, _ := t.attemptNames.LoadOrStore(ffqn, "attempt "+ffqn)
	return name.(string)
}

// End ends the attempt with its outcome (what the run recorded: ok, err, retried_err,
// waiting, ...); failed marks the span as an error.
func (a *Attempt) End(outcome string, failed bool) {
	if a == nil {
		return
	}
	a.t.setAttributes(a.span,
		attribute.String("obelisk.execution_id", a.execution), attribute.String("obelisk.run_id", a.run),
		attribute.Int("obelisk.attempt", a.n), attribute.String("obelisk.outcome", outcome))
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
	if len(attrs) == 0 {
		span.AddEvent(op) // no option to build
		return
	}
	span.AddEvent(op, trace.WithAttributes(attrs...))
}

// idsKey asks an idsContext for the IDs it forces.
type idsKey struct{}

type forcedIDs struct {
	trace trace.TraceID
	span  trace.SpanID
}

// idsContext carries the IDs the next span started under it must have: one context
// with its value inline, where context.WithValue would allocate the value apart.
type idsContext struct {
	context.Context
	ids forcedIDs
}

func (c *idsContext) Value(key any) any {
	if key == (idsKey{}) {
		return &c.ids
	}
	return c.Context.Value(key)
}

// idGenerator gives a span the IDs its context forces (an execution's span, whose IDs
// are derived), else random ones.
type idGenerator struct{}

func (idGenerator) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	if f, ok := ctx.Value(idsKey{}).(*forcedIDs); ok {
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
	if f, ok := ctx.Value(idsKey{}).(*forcedIDs); ok {
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
	ctx := trace.ContextWithRemoteSpanContext(&idsContext{context.Background(), forcedIDs{self.TraceID(), self.SpanID()}}, parent)
	_, span := t.tracer.Start(ctx, t.attemptName(a.FFQN), trace.WithTimestamp(a.Started))
	t.setAttributes(span,
		attribute.String("obelisk.execution_id", a.ID), attribute.String("obelisk.run_id", a.RunID),
		attribute.Int("obelisk.attempt", a.Attempt), attribute.Bool("obelisk.external", true),
		attribute.String("obelisk.outcome", a.Outcome))
	if a.Failed {
		span.SetStatus(codes.Error, a.Outcome)
	}
	span.End(trace.WithTimestamp(a.Ended))
}
