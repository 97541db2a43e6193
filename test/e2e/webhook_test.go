package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
	"github.com/obelisk-go/obelisk/test/harness"
)

// webhookServer starts a server with the fibo_webhook endpoint of every deployment and
// three more endpoints of the same module: webhook_misc (several routes) and
// webhook_limited (max_inflight_requests = 1) on the http_server "external", and
// webhook_slow (request_timeout = 500ms) on a second http_server. It returns the URL of
// the second server.
func webhookServer(t *testing.T) (*harness.Server, string) {
	t.Helper()
	second := harness.FreeAddr(t)
	wasm := filepath.Join(harness.ComponentsDir(), "fibo-webhook.wasm")
	s := harness.Start(t, harness.Options{Deployment: fmt.Sprintf(`
[[webhook_endpoint]]
name = "webhook_misc"
location.path = %[1]q
routes = ["/const", "/status/*", "POST /panic", "GET,POST /schedule/:n"]

[[webhook_endpoint]]
name = "webhook_limited"
location.path = %[1]q
routes = ["/sleep/:millis"]
max_inflight_requests = 1

[[http_server]]
name = "second"
listening_addr = %[2]q

[[webhook_endpoint]]
name = "webhook_slow"
location.path = %[1]q
http_server = "second"
routes = ["/spin/:millis", "/sleep/:millis"]
request_timeout = "500ms"
`, wasm, second)})
	return s, "http://" + second
}

func httpDo(t *testing.T, method, url string) (int, http.Header, string) {
	t.Helper()
	status, h, body, err := httpTry(method, url)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return status, h, body
}

// httpTry is httpDo for other goroutines than the test's.
func httpTry(method, url string) (int, http.Header, string, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return 0, nil, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body), err
}

// webhookExecutions lists the recorded requests of a webhook endpoint.
func webhookExecutions(t *testing.T, s *harness.Server, endpoint string) []*pb.ExecutionSummary {
	t.Helper()
	resp, err := s.Exec.ListExecutions(context.Background(), connect.NewRequest(&pb.ListExecutionsRequest{
		FfqnPrefix: "obelisk:webhook/" + endpoint + ".", Limit: 1000}))
	if err != nil {
		t.Fatal(err)
	}
	return resp.Msg.Executions
}

func TestWebhook(t *testing.T) {
	s, secondURL := webhookServer(t)

	t.Run("routes", func(t *testing.T) {
		cases := []struct {
			method, path string
			status       int
			body         string // a substring of the body
			allow        string
		}{
			{"GET", "/fibo/10/3", 200, "165", ""},
			{"POST", "/fibo/10/3", 405, "method not allowed", "GET"},
			{"GET", "/fibo/10", 404, "route not found", ""},
			{"GET", "/fibo/10/3/4", 404, "route not found", ""},
			{"GET", "/nothing", 404, "route not found", ""},
			{"GET", "/const", 200, "constant", ""},
			{"DELETE", "/const", 200, "constant", ""},
			{"GET", "/status/a/b%2Fc?x=1", 200, `GET /status/a/b/c rest="a/b/c" query="x=1"`, ""},
			{"PUT", "/status", 200, `PUT /status rest=""`, ""},
			{"GET", "/panic", 405, "method not allowed", "POST"},
			{"GET", "/fibo/x/3", 400, "want /fibo/", ""},
		}
		for _, c := range cases {
			status, h, body := httpDo(t, c.method, s.WebhookURL+c.path)
			if status != c.status || !strings.Contains(body, c.body) || h.Get("Allow") != c.allow {
				t.Errorf("%s %s: %d %q (Allow %q), want %d %q (Allow %q)", c.method, c.path, status, body, h.Get("Allow"), c.status, c.body, c.allow)
			}
		}
		// The second server has its own routes.
		if status, _, _ := httpDo(t, "GET", secondURL+"/const"); status != 404 {
			t.Errorf("GET /const on the second server: %d, want 404", status)
		}
	})

	t.Run("a request that calls is recorded with its children", func(t *testing.T) {
		before := len(webhookExecutions(t, s, "fibo_webhook"))
		status, h, body := httpDo(t, "GET", s.WebhookURL+"/fibo/10/3")
		if status != 200 || body != "165" || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
			t.Fatalf("GET /fibo/10/3: %d %q %v", status, body, h)
		}
		execs := webhookExecutions(t, s, "fibo_webhook")
		if len(execs) != before+1 {
			t.Fatalf("%d recorded requests, want %d", len(execs), before+1)
		}
		x := execs[0] // newest first
		if x.Status != "finished" || x.ParentId != "" || !strings.HasPrefix(x.ComponentId, "webhook_endpoint:fibo_webhook:") {
			t.Fatalf("request execution: %+v", x)
		}
		harness.JSONEq(t, x.ResultJson, `{"ok":{"status":200}}`)
		var kinds []string
		for _, e := range s.Events(x.ExecutionId) {
			kinds = append(kinds, e.Kind)
		}
		if want := "created locked history.join_set_create history.join_set_request history.join_next finished"; strings.Join(kinds, " ") != want {
			t.Fatalf("events %v, want %s", kinds, want)
		}
		child := x.ExecutionId + ".o:1-fiboa_1"
		st, err := s.State(child)
		if err != nil || st.ParentId != x.ExecutionId || st.Ffqn != "testing:fibo-workflow/workflow.fiboa" {
			t.Fatalf("child %s: %+v, %v", child, st, err)
		}
		harness.JSONEq(t, st.ResultJson, `{"ok":165}`)
	})

	t.Run("a request that does nothing durable leaves nothing", func(t *testing.T) {
		for _, p := range []string{"/const", "/status/x"} {
			if status, _, _ := httpDo(t, "GET", s.WebhookURL+p); status != 200 {
				t.Fatalf("GET %s: %d", p, status)
			}
		}
		if status, _, _ := httpDo(t, "GET", secondURL+"/spin/1"); status != 200 {
			t.Fatalf("GET /spin/1: %d", status)
		}
		if n := len(webhookExecutions(t, s, "webhook_misc")); n != 0 {
			t.Fatalf("%d executions of webhook_misc, want none", n)
		}
		if n := len(webhookExecutions(t, s, "webhook_slow")); n != 0 {
			t.Fatalf("%d executions of webhook_slow, want none", n)
		}
	})

	t.Run("schedule", func(t *testing.T) {
		// The handler schedules fiboa(7, 1), then calls it.
		status, _, body := httpDo(t, "POST", s.WebhookURL+"/schedule/7")
		fields := strings.Fields(body)
		if status != 202 || len(fields) != 3 || !strings.HasPrefix(fields[0], "E_") || fields[2] != "13" {
			t.Fatalf("POST /schedule/7: %d %q", status, body)
		}
		harness.JSONEq(t, s.Result(fields[0], time.Minute), `{"ok":13}`)
		execs := webhookExecutions(t, s, "webhook_misc")
		if len(execs) != 1 {
			t.Fatalf("webhook_misc executions: %v", execs)
		}
		x := execs[0]
		var kinds []string
		for _, e := range s.Events(x.ExecutionId) {
			kinds = append(kinds, e.Kind)
		}
		if want := "created locked history.schedule history.join_set_create history.join_set_request history.join_next finished"; strings.Join(kinds, " ") != want {
			t.Fatalf("events %v, want %s", kinds, want)
		}
		harness.JSONEq(t, x.ResultJson, `{"ok":{"status":202}}`)
		scheduled, err := s.State(fields[0])
		if err != nil || scheduled.ParentId != "" {
			t.Fatalf("scheduled execution: %+v, %v", scheduled, err)
		}
		harness.JSONEq(t, s.Result(x.ExecutionId+".o:1-fiboa_1", time.Minute), `{"ok":13}`)
	})

	t.Run("trap is 500", func(t *testing.T) {
		status, _, body := httpDo(t, "POST", s.WebhookURL+"/panic")
		if status != 500 || !strings.Contains(body, "webhook trapped") || !strings.Contains(body, "boom: /panic") {
			t.Fatalf("POST /panic: %d %q", status, body)
		}
	})

	t.Run("timeout is 408", func(t *testing.T) {
		start := time.Now()
		status, _, body := httpDo(t, "GET", secondURL+"/spin/10000")
		if status != 408 || time.Since(start) > 5*time.Second {
			t.Fatalf("GET /spin/10000: %d %q after %v, want 408 after ~500ms", status, body, time.Since(start))
		}
		// A request that timed out while it waited for a child is finished as timed out.
		status, _, body = httpDo(t, "GET", secondURL+"/sleep/900")
		if status != 408 {
			t.Fatalf("GET /sleep/900: %d %q, want 408", status, body)
		}
		execs := webhookExecutions(t, s, "webhook_slow")
		if len(execs) != 1 || execs[0].Status != "finished" || !strings.Contains(execs[0].ResultJson, `"timed_out"`) {
			t.Fatalf("webhook_slow executions: %v", execs)
		}
	})

	t.Run("429 at max_inflight_requests", func(t *testing.T) {
		var wg sync.WaitGroup
		var firstStatus int
		var firstBody string
		wg.Add(1)
		go func() {
			defer wg.Done()
			firstStatus, _, firstBody, _ = httpTry("GET", s.WebhookURL+"/sleep/800")
		}()
		// The first request holds the endpoint's only slot once it waits for its child.
		waitUntil(t, time.Minute, func() bool {
			for _, x := range webhookExecutions(t, s, "webhook_limited") {
				if x.Status != "finished" {
					return true
				}
			}
			return false
		})
		status, _, body := httpDo(t, "GET", s.WebhookURL+"/sleep/1")
		wg.Wait()
		if status != 429 || !strings.Contains(body, "max_inflight_requests") {
			t.Fatalf("second request: %d %q, want 429", status, body)
		}
		if firstStatus != 200 || firstBody != "slept" {
			t.Fatalf("first request: %d %q", firstStatus, firstBody)
		}
		if status, _, body := httpDo(t, "GET", s.WebhookURL+"/sleep/1"); status != 200 {
			t.Fatalf("a request after the first one: %d %q", status, body)
		}
	})

	t.Run("a request in flight when the server dies is finished after restart", func(t *testing.T) {
		go httpTry("GET", s.WebhookURL+"/sleep/900") // fails when the server dies
		var id string
		waitUntil(t, time.Minute, func() bool {
			for _, x := range webhookExecutions(t, s, "webhook_limited") {
				if x.Status != "finished" {
					id = x.ExecutionId
					return true
				}
			}
			return false
		})
		s.Kill()
		s.Start()
		res := s.Result(id, time.Minute)
		if !strings.Contains(res, `"execution_failure"`) {
			t.Fatalf("result %s, want an execution failure", res)
		}
		// The server serves requests again.
		if status, _, body := httpDo(t, "GET", s.WebhookURL+"/fibo/1/1"); status != 200 || body != "1" {
			t.Fatalf("GET /fibo/1/1 after restart: %d %q", status, body)
		}
	})
}

// TestWebhookOutgoingHTTP: a webhook endpoint makes outgoing HTTP requests through the
// host, to the hosts its allowed_hosts allow and its denied_hosts do not deny, and to no
// other.
func TestWebhookOutgoingHTTP(t *testing.T) {
	t.Parallel()
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "upstream says hi")
	}))
	defer upstream.Close()
	deniedUpstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "denied upstream says hi")
	}))
	defer deniedUpstream.Close()
	wasm := harness.BuildComponent(t, "test/e2e/testdata/proxy-webhook")
	s := harness.Start(t, harness.Options{Deployment: fmt.Sprintf(`
[[webhook_endpoint]]
name = "proxy"
location.path = %q
routes = ["GET /proxy"]
allowed_hosts = ["127.0.0.1:*"]
denied_hosts = ["GET 127.0.0.0/8:%d"]
`, wasm, deniedUpstream.Listener.Addr().(*net.TCPAddr).Port)})
	get := func(target string) (int, string) {
		t.Helper()
		resp, err := http.Get(s.WebhookURL + "/proxy?url=" + url.QueryEscape(target))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get(upstream.URL); code != 200 || body != "200 upstream says hi" {
		t.Fatalf("allowed host: %d %q", code, body)
	}
	notAllowed := strings.Replace(upstream.URL, "127.0.0.1", "127.0.0.2", 1)
	if code, body := get(notAllowed); code != http.StatusBadGateway || !strings.Contains(body, "not_allowed") {
		t.Fatalf("host not in allowed_hosts: %d %q", code, body)
	}
	if code, body := get(deniedUpstream.URL); code != http.StatusBadGateway || !strings.Contains(body, "not_allowed") || !strings.Contains(body, "denied_hosts entry") {
		t.Fatalf("host in denied_hosts: %d %q", code, body)
	}
}

// TestWebhookLargeBody: a 4 MB body reaches the guest whole (its handler reads it and
// answers its length and SHA-256), and a handler that ignores a body of the largest size
// accepted is not slowed down by it: the body is copied into the guest only as the
// handler reads it, not decoded from the request's JSON on entry.
func TestWebhookLargeBody(t *testing.T) {
	s := harness.Start(t, harness.Options{Deployment: fmt.Sprintf(`
[[webhook_endpoint]]
name = "webhook_body"
location.path = %q
routes = ["POST /size", "POST /const"]
request_timeout = "10s"
`, filepath.Join(harness.ComponentsDir(), "fibo-webhook.wasm"))})
	post := func(path string, body []byte) (int, string) {
		t.Helper()
		resp, err := http.Post(s.WebhookURL+path, "application/octet-stream", bytes.NewReader(body))
		if err != nil {
			t.Fatalf("POST %s with %d bytes: %v", path, len(body), err)
		}
		defer resp.Body.Close()
		got, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(got)
	}
	body := make([]byte, 4_000_000)
	rand.Read(body)
	if code, got := post("/size", body); code != 200 || got != fmt.Sprintf("%d %d %x", len(body), len(body), sha256.Sum256(body)) {
		t.Errorf("POST /size with 4 MB: %d %q", code, got)
	}
	if code, got := post("/size", nil); code != 200 || got != fmt.Sprintf("0 0 %x", sha256.Sum256(nil)) {
		t.Errorf("POST /size without a body: %d %q", code, got)
	}
	// 16 MiB used to cost the guest some 16 s of CPU before the handler started (the
	// body as base64 in the JSON input), past the request_timeout of 10 s: a 408. Now
	// the timeout is a generous bound.
	largest := make([]byte, 16<<20)
	if code, got := post("/const", largest); code != 200 || got != "constant" {
		t.Errorf("POST /const with 16 MiB: %d %q", code, got)
	}
	if code, got := post("/const", append(largest, 'x')); code != http.StatusRequestEntityTooLarge {
		t.Errorf("POST /const with 16 MiB + 1: %d %q, want 413", code, got)
	}
}
