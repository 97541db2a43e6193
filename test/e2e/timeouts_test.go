package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/obelisk-go/obelisk/test/harness"
)

// TestWorkflowTimeoutsAreBounded: a workflow that never returns times out on every
// attempt; it is retried max_retries times, then finishes as timed_out, saying so. While
// it is retried, its status (the API and `execution get`) says why the last attempt
// failed.
func TestWorkflowTimeoutsAreBounded(t *testing.T) {
	t.Parallel()
	wasm := harness.BuildComponent(t, "test/e2e/testdata/loop-workflow")
	s := harness.Start(t, harness.Options{Deployment: fmt.Sprintf(`
[[workflow]]
name = "loop_workflow"
location.path = %q
exec.lock_expiry = "300ms"
max_retries = 2
retry_exp_backoff = "2s"
`, wasm), WebUI: true})
	id := s.Submit("testing:loop-workflow/workflow.spin", "[]")
	const why = "timed out: lock expired after 300ms"

	// While it is retried (pending in its backoff, or locked again): the backoffs (2s,
	// then 4s) leave time to see it.
	deadline := time.Now().Add(time.Minute)
	for {
		out, errOut, code := s.CLI("execution", "get", id, "--json")
		var doc struct {
			Status      string `json:"status"`
			LastFailure string `json:"last_failure"`
		}
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("execution get --json (exit %d): %v: %s%s", code, err, out, errOut)
		}
		if doc.Status == "finished" {
			t.Fatalf("finished before its status showed a failure: %s", out)
		}
		if doc.LastFailure != "" {
			if !strings.HasPrefix(doc.LastFailure, "attempt ") || !strings.HasSuffix(doc.LastFailure, why) {
				t.Fatalf("while retried: last_failure %q, want \"attempt N %s\"", doc.LastFailure, why)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failure shown in a minute: %s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	st, err := s.State(id)
	if err != nil {
		t.Fatal(err)
	}
	if st.AttemptsFailed == 0 || !strings.HasSuffix(st.LastFailure, why) {
		t.Fatalf("API summary while retried: %d failed attempts, last failure %q", st.AttemptsFailed, st.LastFailure)
	}
	if out, _, _ := s.CLI("execution", "get", id); !strings.Contains(out, "last failure: attempt ") {
		t.Fatalf("execution get: %s, want a last failure line", out)
	}

	res := s.Result(id, 2*time.Minute)
	harness.JSONEq(t, res, `{"execution_failure":{"kind":"timed_out","reason":"attempt 3 timed out: lock expired after 300ms; no retries left (max_retries 2)"}}`)
	evs := s.Events(id)
	if n := harness.CountKind(evs, "temporarily_timed_out"); n != 2 {
		t.Fatalf("temporarily_timed_out %d times, want 2 (max_retries)", n)
	}
	if n := harness.CountKind(evs, "unlocked"); n != 0 {
		t.Fatalf("unlocked %d times: an attempt that wrote no history counted as progress", n)
	}
	if st, err = s.State(id); err != nil {
		t.Fatal(err)
	}
	if st.AttemptsFailed != 2 || st.LastFailure != "attempt 2 "+why {
		t.Fatalf("finished: %d failed attempts, last failure %q", st.AttemptsFailed, st.LastFailure)
	}
	out, _, code := s.CLI("execution", "get", id)
	if code != 1 || !strings.Contains(out, `"kind":"timed_out"`) {
		t.Fatalf("execution get of the timed-out execution: exit %d, %s", code, out)
	}

	t.Run("web UI", func(t *testing.T) {
		ctx := browser(t, chromiumPath(t))
		do(t, ctx, "execution page",
			chromedp.Navigate(s.WebURL+"/#/execution/"+id),
			chromedp.WaitVisible(chromedp.CSS(`#last-failure`)),
		)
		if got := get(t, ctx, "last failure", chromedp.Text(chromedp.CSS(`#last-failure`))); got != "attempt 2 "+why {
			t.Fatalf("execution page: last failure %q, want %q", got, "attempt 2 "+why)
		}
	})
}
