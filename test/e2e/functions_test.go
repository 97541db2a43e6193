package e2e

import (
	"encoding/json"
	"fmt"
	"github.com/obelisk-go/obelisk/test/harness"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestFunctions runs every example function on one server.
func TestFunctions(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/hello":
			fmt.Fprint(w, "hello from the test server")
		default:
			http.Error(w, "nope", http.StatusNotFound)
		}
	}))
	defer web.Close()
	// 127.0.0.2 is not allowed (only 127.0.0.1 is): refused before anything is dialled.
	denied := strings.Replace(web.URL, "127.0.0.1", "127.0.0.2", 1)

	cases := []struct {
		name, ffqn, params, want string
	}{
		{"fibo", "testing:fibo/fibo.fibo", "[10]", `{"ok":55}`},
		{"fibo u64", "testing:fibo/fibo.fibo", "[93]", `{"ok":12200160415121876738}`},
		{"fibow", "testing:fibo-workflow/workflow.fibow", "[10, 3]", `{"ok":55}`},
		{"fiboa", "testing:fibo-workflow/workflow.fiboa", "[10, 5]", `{"ok":275}`},
		{"fiboa zero iterations", "testing:fibo-workflow/workflow.fiboa", "[10, 0]", `{"ok":0}`},
		{"sleep", "testing:sleep/sleep.sleep", "[10]", `{"ok":null}`},
		{"sleep-activity", "testing:sleep-workflow/workflow.sleep-activity", "[10]", `{"ok":null}`},
		{"http get", "testing:http/http-get.get", fmt.Sprintf("[%q]", web.URL+"/hello"), `{"ok":"hello from the test server"}`},
		{"http workflow", "testing:http-workflow/workflow.get", fmt.Sprintf("[%q]", web.URL+"/hello"), `{"ok":"hello from the test server"}`},
		{"fail-until under max_retries", "testing:flaky/flaky.fail-until", "[3]", `{"ok":3}`},
		{"fail-until over max_retries", "testing:flaky/flaky.fail-until", "[10]", `{"err":"attempt 6"}`},
	}
	ids := map[string]string{}
	for _, c := range cases {
		ids[c.name] = s.Submit(c.ffqn, c.params) // all at once: they run concurrently
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			harness.JSONEq(t, s.Result(ids[c.name], time.Minute), c.want)
		})
	}

	t.Run("retries are recorded", func(t *testing.T) {
		evs := s.Events(ids["fail-until over max_retries"])
		if n := harness.CountKind(evs, "temporarily_failed"); n != 5 {
			t.Fatalf("temporarily_failed events: %d, want 5 (max_retries)", n)
		}
		if n := harness.CountKind(evs, "locked"); n != 6 {
			t.Fatalf("locked events: %d, want 6 attempts", n)
		}
	})

	t.Run("a submitter's retry policy", func(t *testing.T) {
		// The component's max_retries is 5, so fail-until(9) would end with err "attempt 6";
		// this execution's own policy allows 8 retries.
		out, errOut, code := s.CLI("execution", "submit", "--json", "--max-retries", "8", "--retry-backoff", "2ms", "--retry-jitter", "0.5",
			"testing:flaky/flaky.fail-until", "[9]")
		if code != 0 {
			t.Fatalf("submit: exit %d: %s", code, errOut)
		}
		var doc struct {
			ExecutionID string `json:"execution_id"`
		}
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("submit --json: %v: %s", err, out)
		}
		harness.JSONEq(t, s.Result(doc.ExecutionID, time.Minute), `{"ok":9}`)
		evs := s.Events(doc.ExecutionID)
		if n := harness.CountKind(evs, "locked"); n != 9 {
			t.Fatalf("locked events: %d, want 9 attempts", n)
		}
		// Bad policies are refused before anything is created.
		for _, bad := range [][]string{{"--retry-jitter", "2"}, {"--retry-backoff", "1us"}} {
			_, errOut, code := s.CLI(append(append([]string{"execution", "submit"}, bad...), "testing:flaky/flaky.fail-until", "[1]")...)
			if code != 2 || !strings.Contains(errOut, "invalid_argument") || !strings.Contains(errOut, "retry") {
				t.Errorf("submit %v: exit %d, %s; want 2 and invalid_argument naming the retry setting", bad, code, errOut)
			}
		}
	})

	t.Run("http 404 is an err", func(t *testing.T) {
		id := s.Submit("testing:http/http-get.get", fmt.Sprintf("[%q]", web.URL+"/missing"))
		res := s.Result(id, time.Minute)
		if !strings.HasPrefix(res, `{"err":`) || !strings.Contains(res, "404") {
			t.Fatalf("result %s, want an err naming status 404", res)
		}
	})

	t.Run("http host not allowed", func(t *testing.T) {
		id := s.Submit("testing:http-workflow/workflow.get", fmt.Sprintf("[%q]", denied+"/hello"))
		res := s.Result(id, time.Minute)
		if !strings.HasPrefix(res, `{"err":`) || !strings.Contains(res, "not_allowed") {
			t.Fatalf("result %s, want an err saying the host is not allowed", res)
		}
	})

	t.Run("permanent error is not retried", func(t *testing.T) {
		id := s.Submit("testing:flaky/flaky.fail-permanently", "[]")
		res := s.Result(id, time.Minute)
		var r struct {
			Err map[string]string `json:"err"`
		}
		if err := json.Unmarshal([]byte(res), &r); err != nil || r.Err["permanent_failure"] == "" {
			t.Fatalf("result %s, want err(permanent-failure(...))", res)
		}
		evs := s.Events(id)
		if n := harness.CountKind(evs, "locked"); n != 1 {
			t.Fatalf("locked %d times, want exactly one attempt", n)
		}
	})

	t.Run("activity timeout", func(t *testing.T) {
		// lock_expiry is 1s and max_retries 1: two attempts are killed, then it fails.
		id := s.Submit("testing:sleep/sleep.sleep", "[5000]")
		res := s.Result(id, time.Minute)
		var r struct {
			Failure struct{ Kind string } `json:"execution_failure"`
		}
		if err := json.Unmarshal([]byte(res), &r); err != nil || r.Failure.Kind != "timed_out" {
			t.Fatalf("result %s, want execution_failure timed_out", res)
		}
		evs := s.Events(id)
		if n := harness.CountKind(evs, "temporarily_timed_out"); n != 1 {
			t.Fatalf("temporarily_timed_out %d times, want 1", n)
		}
	})

	t.Run("failed child reaches the parent as err", func(t *testing.T) {
		id := s.Submit("testing:sleep-workflow/workflow.sleep-activity", "[5000]")
		res := s.Result(id, time.Minute)
		if !strings.HasPrefix(res, `{"err":`) {
			t.Fatalf("result %s, want the workflow to finish with err", res)
		}
	})
}

// TestSubmitValidation: bad submissions are refused with a clear error and create nothing.
func TestSubmitValidation(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	cases := []struct {
		name       string
		args       []string
		wantStderr string
	}{
		{"unknown function", []string{"testing:fibo/fibo.nope", "[1]"}, "not found"},
		{"malformed ffqn", []string{"fibo", "[1]"}, "fibo"},
		{"u8 out of range", []string{"testing:fibo/fibo.fibo", "[300]"}, "expected u8"},
		{"wrong type", []string{"testing:fibo/fibo.fibo", `["ten"]`}, "expected u8"},
		{"too few params", []string{"testing:fibo-workflow/workflow.fiboa", "[1]"}, "parameter"},
		{"params not an array", []string{"testing:fibo/fibo.fibo", `{"n": 1}`}, "array"},
		{"bad JSON", []string{"testing:fibo/fibo.fibo", `[1`}, "JSON"},
		// What the guest's decoder would refuse after the execution had been created.
		{"u8 with an exponent", []string{"testing:fibo/fibo.fibo", "[1e1]"}, "expected u8, got 1e1"},
		{"u8 with a fraction", []string{"testing:fibo/fibo.fibo", "[10.0]"}, "expected u8, got 10.0"},
		{"u64 minus zero", []string{"testing:sleep/sleep.sleep", "[-0]"}, "expected u64, got -0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, errOut, code := s.CLI(append([]string{"execution", "submit", "--json"}, c.args...)...)
			if code != 2 {
				t.Fatalf("exit %d, want 2; stdout %q stderr %q", code, out, errOut)
			}
			if !strings.Contains(errOut, c.wantStderr) {
				t.Fatalf("stderr %q does not mention %q", errOut, c.wantStderr)
			}
		})
	}
	out, _, code := s.CLI("execution", "list", "--json")
	if code != 0 {
		t.Fatalf("list: exit %d", code)
	}
	harness.JSONEq(t, out, `{"executions":[]}`)

	t.Run("unreachable API", func(t *testing.T) {
		s2 := harness.Unreachable(t)
		_, errOut, code := s2.CLI("execution", "get", "E_01M8E6E2VNCVFSP7FEAR3HNBS4")
		if code != 2 || errOut == "" {
			t.Fatalf("exit %d stderr %q, want exit 2 with an error", code, errOut)
		}
	})
}

// TestCLIJSON checks the machine-readable documents of the client commands (contract).
func TestCLIJSON(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	out, errOut, code := s.CLI("execution", "submit", "--follow", "--json", "testing:fibo-workflow/workflow.fiboa", "[10, 2]")
	if code != 0 {
		t.Fatalf("submit: exit %d, stderr %s", code, errOut)
	}
	var doc struct {
		ExecutionID string          `json:"execution_id"`
		Status      string          `json:"status"`
		Result      json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("submit output %q: %v", out, err)
	}
	if !strings.HasPrefix(doc.ExecutionID, "E_") || doc.Status != "finished" {
		t.Fatalf("submit document %s", out)
	}
	harness.JSONEq(t, string(doc.Result), `{"ok":110}`)

	out, _, code = s.CLI("execution", "get", "--json", doc.ExecutionID)
	if code != 0 {
		t.Fatalf("get: exit %d", code)
	}
	harness.JSONEq(t, out, fmt.Sprintf(`{"execution_id":%q,"status":"finished","result":{"ok":110}}`, doc.ExecutionID))

	// An err result exits 1.
	_, _, code = s.CLI("execution", "submit", "--follow", "--json", "testing:flaky/flaky.fail-permanently", "[]")
	if code != 1 {
		t.Fatalf("err result: exit %d, want 1", code)
	}
	// Without --follow the status is reported at once and the exit status is 0.
	out, _, code = s.CLI("execution", "submit", "--json", "testing:sleep/sleep.sleep", "[200]")
	if code != 0 || !strings.Contains(out, `"execution_id"`) || strings.Contains(out, `"result"`) {
		t.Fatalf("submit without follow: exit %d, %s", code, out)
	}

	out, _, code = s.CLI("execution", "events", "--json", doc.ExecutionID)
	if code != 0 {
		t.Fatalf("events: exit %d", code)
	}
	var evs struct {
		Events []struct {
			Version uint32          `json:"version"`
			Kind    string          `json:"kind"`
			Details json.RawMessage `json:"details"`
		} `json:"events"`
	}
	if err := json.Unmarshal([]byte(out), &evs); err != nil || len(evs.Events) == 0 {
		t.Fatalf("events output %q: %v", out, err)
	}
	if evs.Events[0].Kind != "created" || evs.Events[len(evs.Events)-1].Kind != "finished" {
		t.Fatalf("events from %s to %s, want created .. finished", evs.Events[0].Kind, evs.Events[len(evs.Events)-1].Kind)
	}
	for i, e := range evs.Events {
		if e.Version != uint32(i) {
			t.Fatalf("event %d has version %d", i, e.Version)
		}
	}

	out, _, code = s.CLI("execution", "list", "--json", "--top-level", "--ffqn", "testing:fibo-workflow/")
	if code != 0 || !strings.Contains(out, doc.ExecutionID) {
		t.Fatalf("list: exit %d, %s", code, out)
	}
	out, _, code = s.CLI("execution", "list", "--json", "--status", "finished")
	if code != 0 || !strings.Contains(out, ".o:1-fibo_1") {
		t.Fatalf("list finished (with children): exit %d, %s", code, out)
	}

	out, _, code = s.CLI("component", "list", "--json")
	if code != 0 {
		t.Fatalf("component list: exit %d", code)
	}
	var comps struct {
		Components []struct {
			ComponentID string `json:"component_id"`
			Exports     []struct{ FFQN, Signature string }
		} `json:"components"`
	}
	if err := json.Unmarshal([]byte(out), &comps); err != nil || len(comps.Components) != 10 { // the 8 of test/components, fibo_webhook and the built-in obelisk_kv
		t.Fatalf("component list %q: %v", out, err)
	}
	if !strings.Contains(out, `"testing:fibo/fibo.fibo"`) || !strings.Contains(out, "func(n: u8) -> result<u64>") {
		t.Fatalf("component list lacks fibo's signature: %s", out)
	}
}

// TestChildWorkflows: a workflow whose children are workflows with children of their own
// (test/e2e/testdata/parent-workflow calls fiboa twice), under both blocking strategies.
func TestChildWorkflows(t *testing.T) {
	t.Parallel()
	for _, strategy := range []string{"await", "interrupt"} {
		t.Run(strategy, func(t *testing.T) {
			s := harness.Start(t, harness.Options{BlockingStrategy: strategy,
				ExtraWorkflows: map[string]string{"parent_workflow": "test/e2e/testdata/parent-workflow"}})
			id := s.Submit("testing:parent-workflow/workflow.fiboa-twice", "[10, 3]")
			harness.JSONEq(t, s.Result(id, time.Minute), `{"ok":330}`)
			for i := 1; i <= 2; i++ {
				child := fmt.Sprintf("%s.o:%d-fiboa_1", id, i)
				harness.JSONEq(t, s.Result(child, time.Minute), `{"ok":165}`)
				grandchild := child + ".o:3-fibo_1"
				harness.JSONEq(t, s.Result(grandchild, time.Minute), `{"ok":55}`)
			}
		})
	}
}
