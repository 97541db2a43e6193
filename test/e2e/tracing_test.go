package e2e

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
	"github.com/obelisk-go/obelisk/test/harness"
)

// otlpReceiver is an OTLP/HTTP traces receiver: it decodes the protobuf requests the
// server exports and keeps their spans.
type otlpReceiver struct {
	mu       sync.Mutex
	spans    []*tracepb.Span
	services map[string]bool
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	var req coltracepb.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(b, &req)
	}
	if r.URL.Path != "/v1/traces" || err != nil {
		http.Error(w, fmt.Sprintf("path %s: %v", r.URL.Path, err), http.StatusBadRequest)
		return
	}
	o.mu.Lock()
	for _, rs := range req.ResourceSpans {
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.Key == "service.name" {
				o.services[kv.Value.GetStringValue()] = true
			}
		}
		for _, ss := range rs.ScopeSpans {
			o.spans = append(o.spans, ss.Spans...)
		}
	}
	o.mu.Unlock()
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out)
}

// traced is a span as the test reads it.
type traced struct {
	trace, id, parent string
	name, execution   string
	attempt           bool // an attempt's span (it has a run ID), else an execution's
	events            []string
}

func attr(s *tracepb.Span, key string) string {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			return kv.Value.GetStringValue()
		}
	}
	return ""
}

// inTrace returns the spans of trace tid received so far.
func (o *otlpReceiver) inTrace(tid string) []traced {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []traced
	for _, s := range o.spans {
		if hex.EncodeToString(s.TraceId) != tid {
			continue
		}
		t := traced{trace: tid, id: hex.EncodeToString(s.SpanId), parent: hex.EncodeToString(s.ParentSpanId), name: s.Name,
			execution: attr(s, "obelisk.execution_id"), attempt: attr(s, "obelisk.run_id") != ""}
		for _, ev := range s.Events {
			t.events = append(t.events, ev.Name)
		}
		out = append(out, t)
	}
	return out
}

// waitSpans waits until trace tid has an execution span of every function in ffqns (and
// one more of each repeated one) and an attempt span of every activity among them.
func (o *otlpReceiver) waitSpans(t *testing.T, tid string, ffqns ...string) []traced {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		spans := o.inTrace(tid)
		want := map[string]int{}
		for _, f := range ffqns {
			want[f]++
		}
		for _, s := range spans {
			if !s.attempt {
				want[s.name]--
			}
		}
		done := true
		for _, n := range want {
			if n > 0 {
				done = false
			}
		}
		if done {
			return spans
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace %s: spans %+v, still missing %v", tid, spans, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// spansOf splits a trace's spans into execution spans by execution ID and attempt
// spans by span ID.
func spansOf(spans []traced) (execs map[string]traced, attempts map[string]traced) {
	execs, attempts = map[string]traced{}, map[string]traced{}
	for _, s := range spans {
		if s.attempt {
			attempts[s.id] = s
		} else {
			execs[s.execution] = s
		}
	}
	return execs, attempts
}

// checkAttempts checks that every execution span of an activity or a workflow has an
// attempt span under it, and every attempt span has its execution's span as parent.
func checkAttempts(t *testing.T, execs, attempts map[string]traced, kinds ...string) {
	t.Helper()
	under := map[string]int{}
	for _, a := range attempts {
		x, ok := execs[a.execution]
		if !ok || a.parent != x.id {
			t.Errorf("attempt span %s of %s: parent %s, want its execution's span %+v", a.id, a.execution, a.parent, x)
		}
		under[a.execution]++
	}
	for id, x := range execs {
		for _, k := range kinds {
			if strings.Contains(x.name, k) && under[id] == 0 {
				t.Errorf("execution %s (%s) has no attempt span", id, x.name)
			}
		}
	}
}

// TestTracing: with [tracing] on, a request's traceparent (webhook or API) makes the
// executions it causes one trace: the request's execution under the caller's span, each
// child under its parent's execution span, each attempt under its execution's span, and
// an activity's outgoing HTTP request names its attempt's span as parent.
func TestTracing(t *testing.T) {
	recv := &otlpReceiver{services: map[string]bool{}}
	collector := httptest.NewServer(recv)
	defer collector.Close()
	var targetMu sync.Mutex
	var received []string // traceparent headers the target got
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		targetMu.Lock()
		received = append(received, r.Header.Get("traceparent"))
		targetMu.Unlock()
		fmt.Fprint(w, "hello")
	}))
	defer target.Close()
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100") // milliseconds: the SDK's batch delay
	s := harness.Start(t, harness.Options{Deployment: fmt.Sprintf(`
[[webhook_endpoint]]
name = "get_fn"
function = "testing:http-workflow/workflow.get"
routes = ["GET /fn/get"]

[[webhook_endpoint]]
name = "const"
location.path = %q
routes = ["/const"]

[tracing]
enabled = true
endpoint = "%s/v1/traces"
service_name = "obelisk-e2e"
sample_ratio = 0.0
`, filepath.Join(harness.ComponentsDir(), "fibo-webhook.wasm"), collector.URL)})
	// sample_ratio 0: only traces whose caller sampled them are exported, so every span
	// received below belongs to a request of this test.

	get := func(path, traceparent string) (int, string) {
		req, _ := http.NewRequest("GET", s.WebhookURL+path, nil)
		req.Header.Set("traceparent", traceparent)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	t.Run("webhook endpoint, its workflow and activities", func(t *testing.T) {
		const tid, caller = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
		if status, body := get("/fibo/10/2", "00-"+tid+"-"+caller+"-01"); status != 200 || body != "110" {
			t.Fatalf("GET /fibo/10/2: %d %q", status, body)
		}
		const fiboa, fibo = "testing:fibo-workflow/workflow.fiboa", "testing:fibo/fibo.fibo"
		spans := recv.waitSpans(t, tid, "obelisk:webhook/fibo_webhook.request", fiboa, fibo, fibo)
		execs, attempts := spansOf(spans)
		var hook, wf traced
		for _, x := range execs {
			switch x.name {
			case fiboa:
				wf = x
			case fibo:
			default:
				hook = x
			}
		}
		if hook.parent != caller {
			t.Errorf("the request's execution span %+v: parent %s, want the caller's span %s", hook, hook.parent, caller)
		}
		if wf.parent != hook.id {
			t.Errorf("workflow span %+v: parent %s, want the request's execution span %s", wf, wf.parent, hook.id)
		}
		n := 0
		for _, x := range execs {
			if x.name == fibo {
				n++
				if x.parent != wf.id {
					t.Errorf("activity span %+v: parent %s, want the workflow's span %s", x, x.parent, wf.id)
				}
			}
		}
		if n != 2 {
			t.Errorf("%d fibo execution spans, want 2: %+v", n, execs)
		}
		checkAttempts(t, execs, attempts, "fibo")
		// The workflow's host calls are events of its attempt spans.
		var calls []string
		for _, a := range attempts {
			if a.execution == wf.execution {
				calls = append(calls, a.events...)
			}
		}
		if !strings.Contains(strings.Join(calls, " "), "call") {
			t.Errorf("workflow attempts' events %v, want its calls", calls)
		}
	})

	t.Run("outgoing HTTP of an activity", func(t *testing.T) {
		const tid, caller = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
		status, body := get("/fn/get?url="+url.QueryEscape(target.URL+"/x"), "00-"+tid+"-"+caller+"-01")
		if status != 200 || !strings.Contains(body, "hello") {
			t.Fatalf("GET /fn/get: %d %q", status, body)
		}
		const wfFFQN, getFFQN = "testing:http-workflow/workflow.get", "testing:http/http-get.get"
		spans := recv.waitSpans(t, tid, wfFFQN, getFFQN)
		execs, attempts := spansOf(spans)
		var wf, act traced
		for _, x := range execs {
			switch x.name {
			case wfFFQN:
				wf = x
			case getFFQN:
				act = x
			}
		}
		if wf.parent != caller || act.parent != wf.id {
			t.Errorf("workflow span %+v (want parent %s), activity span %+v (want parent %s)", wf, caller, act, wf.id)
		}
		checkAttempts(t, execs, attempts, "http")
		var httpAttempt traced
		for _, a := range attempts {
			if a.execution == act.execution && strings.Contains(strings.Join(a.events, " "), "http") {
				httpAttempt = a
			}
		}
		if httpAttempt.id == "" {
			t.Fatalf("no attempt span of %s with an http event: %+v", act.execution, attempts)
		}
		targetMu.Lock()
		got := append([]string(nil), received...)
		targetMu.Unlock()
		want := "00-" + tid + "-" + httpAttempt.id + "-01"
		if len(got) != 1 || got[0] != want {
			t.Errorf("the target received traceparent %q, want [%q] (the attempt's span)", got, want)
		}
	})

	t.Run("API submit", func(t *testing.T) {
		const tid, caller = "11112222333344445555666677778888", "aaaabbbbccccdddd"
		req := connect.NewRequest(&pb.SubmitRequest{Ffqn: "testing:fibo/fibo.fibo", ParamsJson: "[5]"})
		req.Header().Set("traceparent", "00-"+tid+"-"+caller+"-01")
		resp, err := s.Exec.Submit(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		id := resp.Msg.ExecutionId
		if got := s.Result(id, time.Minute); got != `{"ok":5}` {
			t.Fatalf("result %s", got)
		}
		execs, attempts := spansOf(recv.waitSpans(t, tid, "testing:fibo/fibo.fibo"))
		if x := execs[id]; x.parent != caller {
			t.Errorf("execution span %+v: parent %s, want the caller's %s", x, x.parent, caller)
		}
		checkAttempts(t, execs, attempts, "fibo")
	})

	t.Run("unsampled caller, request that records nothing", func(t *testing.T) {
		// The caller's flags say not sampled: nothing is exported for it, yet its
		// children still carry its trace (checked by the other traces staying exact).
		const tid, nothing = "99998888777766665555444433332222", "12121212343434345656565678787878"
		if status, _ := get("/fibo/10/1", "00-"+tid+"-1111111111111111-00"); status != 200 {
			t.Fatalf("GET /fibo/10/1: %d", status)
		}
		// A webhook request that does nothing durable has no execution: its run's span
		// would hang on a span that never comes, and is not exported.
		if status, _ := get("/const", "00-"+nothing+"-1111111111111111-01"); status != 200 {
			t.Fatalf("GET /const: %d", status)
		}
		time.Sleep(time.Second) // past a few batch delays
		if spans := recv.inTrace(tid); len(spans) != 0 {
			t.Errorf("unsampled trace exported %+v", spans)
		}
		if spans := recv.inTrace(nothing); len(spans) != 0 {
			t.Errorf("a request that recorded nothing exported %+v", spans)
		}
	})

	recv.mu.Lock()
	services := recv.services
	recv.mu.Unlock()
	if !services["obelisk-e2e"] || len(services) != 1 {
		t.Errorf("service names %v, want obelisk-e2e", services)
	}
}
