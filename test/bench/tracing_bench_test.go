package bench

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// BenchmarkThroughputTracing is BenchmarkThroughput with [tracing] on, every trace
// sampled, exporting to an OTLP/HTTP sink in the benchmark process, which counts the
// spans of each request without decoding it into messages: the sink shares the
// machine's cores with the server, and a collector's work is not the server's overhead
// (sink-ms/workflow reports what it spent anyway). Compare its workflows/s with
// BenchmarkThroughput's, alternating runs (docs/benchmarks.md, "Tracing").
func BenchmarkThroughputTracing(b *testing.B) {
	var spans, sinkNanos atomic.Int64
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		start := time.Now() // the sink's own work: not the wait for the body
		defer func() { sinkNanos.Add(int64(time.Since(start))) }()
		var n int
		if err == nil {
			n, err = countSpans(body)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		spans.Add(int64(n))
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(nil) // an empty ExportTraceServiceResponse: all accepted
	}))
	defer sink.Close()
	var before, sinkBefore int64
	report := func(b *testing.B, n int) {
		// The spans of the run's last executions are exported after a batch delay
		// (5 s): wait until the count stops growing.
		last := int64(-1)
		for range 10 {
			if got := spans.Load(); got == last {
				break
			} else {
				last = got
			}
			time.Sleep(6 * time.Second) // longer than a batch delay
		}
		b.ReportMetric(float64(last-before)/float64(n), "spans/workflow")
		if last == before {
			b.Fatal("no span was exported")
		}
		before = last
		took := sinkNanos.Load()
		b.ReportMetric(float64(took-sinkBefore)/1e6/float64(n), "sink-ms/workflow")
		sinkBefore = took
	}
	benchThroughput(b, fmt.Sprintf("\n[tracing]\nenabled = true\nendpoint = %q\nsample_ratio = 1.0\n", sink.URL+"/v1/traces"), report)
}

// countSpans counts the spans of an OTLP ExportTraceServiceRequest by walking its wire
// format: resource_spans (1) > scope_spans (2) > spans (2).
func countSpans(req []byte) (int, error) {
	n := 0
	err := eachField(req, 1, func(rs []byte) error {
		return eachField(rs, 2, func(ss []byte) error {
			return eachField(ss, 2, func([]byte) error { n++; return nil })
		})
	})
	return n, err
}

// eachField calls f with the value of every length-delimited field number num of the
// message msg, skipping the others.
func eachField(msg []byte, num protowire.Number, f func([]byte) error) error {
	for len(msg) > 0 {
		n, typ, l := protowire.ConsumeTag(msg)
		if l < 0 {
			return protowire.ParseError(l)
		}
		msg = msg[l:]
		if n == num && typ == protowire.BytesType {
			v, l := protowire.ConsumeBytes(msg)
			if l < 0 {
				return protowire.ParseError(l)
			}
			if err := f(v); err != nil {
				return err
			}
			msg = msg[l:]
			continue
		}
		if l = protowire.ConsumeFieldValue(n, typ, msg); l < 0 {
			return protowire.ParseError(l)
		}
		msg = msg[l:]
	}
	return nil
}

// countSpans counts what proto.Unmarshal would find, past the other fields of each level.
func TestCountSpans(t *testing.T) {
	str := func(s string) *commonpb.AnyValue {
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: s}}
	}
	spans := func(n int) []*tracepb.Span {
		out := make([]*tracepb.Span, n)
		for i := range out {
			out[i] = &tracepb.Span{Name: fmt.Sprint("s", i), TraceId: make([]byte, 16), SpanId: make([]byte, 8), StartTimeUnixNano: 1,
				Attributes: []*commonpb.KeyValue{{Key: "k", Value: str("v")}}, Events: []*tracepb.Span_Event{{Name: "call"}}}
		}
		return out
	}
	req := &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{
		{Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{{Key: "service.name", Value: str("obelisk")}}},
			ScopeSpans: []*tracepb.ScopeSpans{{Scope: &commonpb.InstrumentationScope{Name: "x"}, Spans: spans(3)}, {Spans: spans(4)}}, SchemaUrl: "u"},
		{ScopeSpans: []*tracepb.ScopeSpans{{Spans: spans(5)}}},
	}}
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := countSpans(b); n != 12 || err != nil {
		t.Fatalf("countSpans = %d, %v; want 12", n, err)
	}
	if _, err := countSpans(b[:len(b)-3]); err == nil {
		t.Fatal("a truncated request: no error")
	}
}
