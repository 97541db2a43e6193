package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
	"github.com/obelisk-go/obelisk/test/harness"
)

// executionsOf lists the executions of a function.
func executionsOf(t *testing.T, s *harness.Server, ffqn string) []*pb.ExecutionSummary {
	t.Helper()
	resp, err := s.Exec.ListExecutions(context.Background(), connect.NewRequest(&pb.ListExecutionsRequest{FfqnPrefix: ffqn, Limit: 1000}))
	if err != nil {
		t.Fatal(err)
	}
	return resp.Msg.Executions
}

// fnRequest sends a request with a body to a function endpoint and returns the status,
// the execution ID header and the body.
func fnRequest(t *testing.T, method, url, body string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp.StatusCode, resp.Header.Get("X-Obelisk-Execution-Id"), string(b)
}

// Webhook endpoints mapped to a function: each request submits one execution of it,
// with parameters from the route, the query or a JSON body, and answers with its result
// (200 ok, 422 err, 500 execution failure, 202 when request_timeout passes first); a
// request whose parameters do not type-check is answered 400 and creates nothing.
func TestWebhookFunction(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{Deployment: `
[[webhook_endpoint]]
name = "fibo_fn"
function = "testing:fibo/fibo.fibo"
routes = ["GET /fn/fibo/:n"]

[[webhook_endpoint]]
name = "fiboa_fn"
function = "testing:fibo-workflow/workflow.fiboa"
routes = ["GET,POST /fn/fiboa"]

[[webhook_endpoint]]
name = "fail_fn"
function = "testing:flaky/flaky.fail-permanently"
routes = ["/fn/fail"]

[[webhook_endpoint]]
name = "sleep_fn"
function = "testing:sleep/sleep.sleep"
routes = ["/fn/sleep/:millis"]

[[webhook_endpoint]]
name = "durable_fn"
function = "testing:sleep-workflow/workflow.sleep-durable"
routes = ["/fn/durable/:millis"]
request_timeout = "500ms"
`})
	const fibo = "testing:fibo/fibo.fibo"

	// The contract: GET /fn/fibo/10 answers 55, from an execution of fibo.
	status, id, body := fnRequest(t, "GET", s.WebhookURL+"/fn/fibo/10", "")
	if status != 200 || body != "55\n" || id == "" {
		t.Fatalf("GET /fn/fibo/10: %d %q, execution %q; want 200 \"55\\n\" and an execution ID", status, body, id)
	}
	if got := s.Result(id, time.Minute); got != `{"ok":55}` {
		t.Fatalf("execution %s: %s, want {\"ok\":55}", id, got)
	}
	if st, err := s.State(id); err != nil || st.Ffqn != fibo {
		t.Fatalf("execution %s: %+v, %v; want an execution of %s", id, st, err, fibo)
	}

	t.Run("query", func(t *testing.T) {
		status, id, body := fnRequest(t, "GET", s.WebhookURL+"/fn/fiboa?n=10&iterations=5", "")
		if status != 200 || body != "275\n" || id == "" {
			t.Errorf("GET /fn/fiboa?n=10&iterations=5: %d %q, execution %q; want 200 \"275\\n\"", status, body, id)
		}
	})
	t.Run("json body", func(t *testing.T) {
		status, id, body := fnRequest(t, "POST", s.WebhookURL+"/fn/fiboa", `{"n": 10, "iterations": 2}`)
		if status != 200 || body != "110\n" || id == "" {
			t.Errorf("POST /fn/fiboa: %d %q, execution %q; want 200 \"110\\n\"", status, body, id)
		}
	})
	t.Run("bad parameters", func(t *testing.T) {
		before := len(executionsOf(t, s, fibo))
		beforeA := len(executionsOf(t, s, "testing:fibo-workflow/workflow.fiboa"))
		cases := []struct{ method, path, body, want string }{
			{"GET", "/fn/fibo/300", "", `bad request: testing:fibo/fibo.fibo: parameter 0 "n": expected u8, got 300`},
			{"GET", "/fn/fibo/ten", "", `bad request: testing:fibo/fibo.fibo: parameter 0 "n": expected u8, got "ten"`},
			{"GET", "/fn/fibo/10?extra=1", "", `bad request: query parameter "extra": testing:fibo/fibo.fibo has no such parameter (its parameters: n)`},
			{"GET", "/fn/fiboa?n=10", "", `bad request: missing parameter "iterations" (u32) of testing:fibo-workflow/workflow.fiboa`},
			{"POST", "/fn/fiboa", `{"n": 10, "iterations": -1}`, `bad request: testing:fibo-workflow/workflow.fiboa: parameter 1 "iterations": expected u32, got -1`},
			{"POST", "/fn/fiboa", `[10, 2]`, `bad request: body: want a JSON object of parameters, got [10, 2]`},
		}
		for _, c := range cases {
			status, id, body := fnRequest(t, c.method, s.WebhookURL+c.path, c.body)
			if status != 400 || !strings.Contains(body, c.want) || id != "" {
				t.Errorf("%s %s %s: %d %q, execution %q; want 400 containing %q and no execution", c.method, c.path, c.body, status, body, id, c.want)
			}
		}
		if n := len(executionsOf(t, s, fibo)); n != before {
			t.Errorf("%d executions of %s after the bad requests, %d before", n, fibo, before)
		}
		if n := len(executionsOf(t, s, "testing:fibo-workflow/workflow.fiboa")); n != beforeA {
			t.Errorf("%d executions of fiboa after the bad requests, %d before", n, beforeA)
		}
	})
	t.Run("err", func(t *testing.T) {
		status, id, body := fnRequest(t, "POST", s.WebhookURL+"/fn/fail", "")
		if status != 422 || body != `{"err":{"permanent_failure":"this function always fails"}}`+"\n" || id == "" {
			t.Errorf("POST /fn/fail: %d %q, execution %q; want 422 with the err", status, body, id)
		}
	})
	t.Run("execution failure", func(t *testing.T) {
		// The harness gives sleep a lock_expiry of 1s and one retry: a 10 s sleep times
		// out twice.
		status, id, body := fnRequest(t, "GET", s.WebhookURL+"/fn/sleep/10000", "")
		if status != 500 || !strings.HasPrefix(body, `{"execution_failure":{"kind":"timed_out"`) || id == "" {
			t.Errorf("GET /fn/sleep/10000: %d %q, execution %q; want 500 with a timed_out failure", status, body, id)
		}
	})
	t.Run("request timeout", func(t *testing.T) {
		status, id, body := fnRequest(t, "GET", s.WebhookURL+"/fn/durable/2000", "")
		var accepted struct {
			ExecutionID string `json:"execution_id"`
			Status      string `json:"status"`
		}
		if err := json.Unmarshal([]byte(body), &accepted); status != 202 || err != nil || accepted.ExecutionID != id || id == "" || accepted.Status == "finished" {
			t.Fatalf("GET /fn/durable/2000 (request_timeout 500ms): %d %q, execution %q; want 202 naming the execution", status, body, id)
		}
		// The execution goes on after the answer.
		if got := s.Result(id, time.Minute); got != `{"ok":null}` {
			t.Errorf("execution %s: %s, want {\"ok\":null}", id, got)
		}
	})
}

// A function endpoint whose function no deployed component exports stops the start,
// naming the endpoint and the function.
func TestWebhookFunctionUnknownRefused(t *testing.T) {
	t.Parallel()
	code, stderr := runServerExpectingFailure(t, fmt.Sprintf(`
data_dir = %q
[api]
listening_addr = %q
[webui]
listening_addr = "off"
[[activity_wasm]]
name = "fibo"
location.path = %q
[[http_server]]
name = "external"
listening_addr = %q
[[webhook_endpoint]]
name = "fn"
function = "testing:fibo/fibo.nope"
routes = ["GET /fn/:n"]
`, filepath.Join(t.TempDir(), "data"), harness.FreeAddr(t), filepath.Join(harness.ComponentsDir(), "fibo.wasm"), harness.FreeAddr(t)))
	const want = `webhook_endpoint "fn": function "testing:fibo/fibo.nope" is not exported by any deployed component`
	if code != 2 || !strings.Contains(stderr, want) {
		t.Fatalf("exit %d, stderr:\n%s\nwant exit 2 and %q", code, stderr, want)
	}
}
