package bench

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// BenchmarkThroughputTracing is BenchmarkThroughput with [tracing] on, every trace
// sampled, exporting to an OTLP/HTTP sink in the benchmark process (which decodes the
// requests to count the spans). Compare its workflows/s with BenchmarkThroughput's,
// alternating runs (docs/benchmarks.md, "Tracing").
func BenchmarkThroughputTracing(b *testing.B) {
	var spans atomic.Int64
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		var req coltracepb.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(body, &req)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				spans.Add(int64(len(ss.Spans)))
			}
		}
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	}))
	defer sink.Close()
	benchThroughput(b, fmt.Sprintf("\n[tracing]\nenabled = true\nendpoint = %q\nsample_ratio = 1.0\n", sink.URL+"/v1/traces"))
	b.Logf("spans exported so far: %d", spans.Load())
	if spans.Load() == 0 {
		b.Fatal("no span was exported")
	}
}
