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
	var before int64
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
	}
	benchThroughput(b, fmt.Sprintf("\n[tracing]\nenabled = true\nendpoint = %q\nsample_ratio = 1.0\n", sink.URL+"/v1/traces"), report)
}
