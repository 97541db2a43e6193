package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/chromedp/chromedp"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
	"github.com/obelisk-go/obelisk/test/harness"
)

// TestFork forks a finished fiboa(1, 4) of fibo-workflow after its second call onto
// fibo-workflow-v2, whose fiboa makes one more call (fibo(1)) first: the two recorded
// calls are v2's extra call and its first iteration, so the fork replays them and goes
// on with three more, finishing with 5 where the original had 4. The original is left as
// it was; the lineage shows both ways, in the CLI (text and --json) and the API. Then a
// fork with --cancel-original, and the refusals: a version beyond the history, one
// inside a call, an unknown execution, an activity.
func TestFork(t *testing.T) {
	t.Parallel()
	const fiboa = "testing:fibo-workflow/workflow.fiboa"
	s := harness.Start(t, harness.Options{WebUI: true, Deployment: fmt.Sprintf(`
[[workflow]]
name = "fibo_workflow_v2"
location.path = %q
`, filepath.Join(harness.ComponentsDir(), "fibo-workflow-v2.wasm")),
		// Two components export fibo-workflow's functions now: the webhook says which.
		ExtraTOML: map[string]string{"fibo_webhook": `requires = ["fibo_workflow", "sleep"]`}})
	ctx := context.Background()
	submit := func(params string) string {
		t.Helper()
		resp, err := s.Exec.Submit(ctx, connect.NewRequest(&pb.SubmitRequest{Ffqn: fiboa, ParamsJson: params, Component: "fibo_workflow"}))
		if err != nil {
			t.Fatal(err)
		}
		return resp.Msg.ExecutionId
	}
	orig := submit("[1, 4]")
	harness.JSONEq(t, s.Result(orig, 2*time.Minute), `{"ok":4}`)
	before := s.Events(orig)

	// The version right after the second call's join_next: a step boundary.
	var at, inside uint32
	joinNexts := 0
	for _, ev := range before {
		switch ev.Kind {
		case "history.join_next":
			if joinNexts++; joinNexts == 2 {
				at = ev.Version + 1
			}
		case "history.join_set_create":
			if inside == 0 {
				inside = ev.Version + 1 // between a call's create and its request
			}
		}
	}
	if at == 0 {
		t.Fatalf("the original has %d join_nexts, want 4", joinNexts)
	}
	out, stderr, code := s.CLI("execution", "fork", orig, "--at", fmt.Sprint(at), "--component", "fibo_workflow_v2", "--json")
	if code != 0 {
		t.Fatalf("fork (exit %d): %s %s", code, out, stderr)
	}
	var doc struct {
		ExecutionID string `json:"execution_id"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || !strings.HasPrefix(doc.ExecutionID, "E_") {
		t.Fatalf("fork --json printed %q: %v", out, err)
	}
	fork := doc.ExecutionID
	harness.JSONEq(t, s.Result(fork, 2*time.Minute), `{"ok":5}`)
	if p := childParams(t, s, fork); len(p) != 5 {
		for _, ev := range s.Events(fork) {
			t.Logf("%d %s %s", ev.Version, ev.Kind, ev.DetailsJson)
		}
		t.Fatalf("the fork requested %d children, want 5 (2 copied, 3 its own)", len(p))
	}
	moved := 0
	for _, ev := range s.Events(fork) {
		if ev.Kind == "moved" && strings.Contains(ev.DetailsJson, "fibo_workflow_v2") {
			moved++
		}
	}
	if moved != 1 {
		t.Fatalf("the fork records %d moves onto v2, want 1", moved)
	}

	// The original is untouched.
	after := s.Events(orig)
	if len(after) != len(before) {
		t.Fatalf("the original has %d events after the fork, %d before", len(after), len(before))
	}
	harness.JSONEq(t, s.Result(orig, time.Minute), `{"ok":4}`)

	// Lineage, both ways: the CLI's text and --json, and the API.
	out, _, code = s.CLI("execution", "get", fork)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("forked from: %s at version %d\n", orig, at)) {
		t.Fatalf("get of the fork (exit %d):\n%s", code, out)
	}
	out, _, code = s.CLI("execution", "get", orig)
	if code != 0 || !strings.Contains(out, "forks: "+fork+"\n") {
		t.Fatalf("get of the original (exit %d):\n%s", code, out)
	}
	var status struct {
		ForkedFrom      string   `json:"forked_from"`
		ForkedAtVersion uint32   `json:"forked_at_version"`
		Forks           []string `json:"forks"`
	}
	out, _, _ = s.CLI("execution", "get", fork, "--json")
	if err := json.Unmarshal([]byte(out), &status); err != nil || status.ForkedFrom != orig || status.ForkedAtVersion != at {
		t.Fatalf("get --json of the fork: %s %v", out, err)
	}
	if sum, err := s.State(orig); err != nil || len(sum.Forks) != 1 || sum.Forks[0] != fork || sum.ForkedFrom != "" {
		t.Fatalf("API summary of the original: %v %v", sum, err)
	}
	if sum, err := s.State(fork); err != nil || sum.ForkedFrom != orig || sum.ForkedAtVersion != at {
		t.Fatalf("API summary of the fork: %v %v", sum, err)
	}

	// The web UI's execution pages link the fork to its original and back (when a
	// Chromium is installed; the rest of the test does not need one).
	if chrome := lookChromium(); chrome != "" {
		b := browser(t, chrome)
		page := open(t, b, s.WebURL+"/#/execution/"+fork)
		href := get(t, page, "forked from", chromedp.Poll[string](`document.querySelector('#forked-from a')?.getAttribute('href')`, chromedp.WithPollingTimeout(15*time.Second)))
		if href != "#/execution/"+orig {
			t.Errorf("the fork's page links to %q as its original, want #/execution/%s", href, orig)
		}
		page = open(t, b, s.WebURL+"/#/execution/"+orig)
		href = get(t, page, "forks", chromedp.Poll[string](`document.querySelector('#forks a')?.getAttribute('href')`, chromedp.WithPollingTimeout(15*time.Second)))
		if href != "#/execution/"+fork {
			t.Errorf("the original's page links to %q as its fork, want #/execution/%s", href, fork)
		}
		if text := get(t, page, "forks' text", chromedp.Poll[string](`document.querySelector('#forks a')?.textContent`, chromedp.WithPollingTimeout(15*time.Second))); text != fork {
			t.Errorf("the original's page names its fork %q, want %s", text, fork)
		}
	} else {
		t.Log("no Chromium on PATH: the web UI's lineage links are not checked")
	}

	// --cancel-original: the original (paused, unfinished) is cancelled, the fork (its
	// Created event alone) runs on the original's component and prints its ID.
	// A fiboa(1, 3) can finish before the pause reaches it (refused: failed_precondition);
	// then another is submitted, until one is paused unfinished.
	var running string
	for attempt := 1; ; attempt++ {
		running = submit("[1, 3]")
		_, err := s.Exec.Pause(ctx, connect.NewRequest(&pb.PauseRequest{ExecutionId: running}))
		if err == nil {
			break
		}
		if connect.CodeOf(err) != connect.CodeFailedPrecondition || attempt == 20 {
			t.Fatalf("pause %s (attempt %d): %v", running, attempt, err)
		}
	}
	out, stderr, code = s.CLI("execution", "fork", running, "--at", "1", "--cancel-original")
	fork2 := strings.TrimSpace(out)
	if code != 0 || !strings.HasPrefix(fork2, "E_") || strings.Contains(fork2, "\n") {
		t.Fatalf("fork --cancel-original (exit %d): %q %s", code, out, stderr)
	}
	harness.JSONEq(t, s.Result(fork2, 2*time.Minute), `{"ok":3}`)
	if r := s.Result(running, time.Minute); !strings.Contains(r, "cancel") {
		t.Fatalf("the original after --cancel-original: %s", r)
	}

	// Refusals: exit status 2, the gRPC code and why; nothing created.
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{orig, "--at", "999"}, []string{"invalid_argument", "beyond the history"}},
		{[]string{orig, "--at", fmt.Sprint(inside)}, []string{"invalid_argument", "not a step boundary"}},
		{[]string{"E_01KB3KD0JZBV6DPS4Z5XDQJTQ3", "--at", "1"}, []string{"not_found"}},
		{[]string{orig + ".o:1-fibo_1", "--at", "1"}, []string{"invalid_argument", "only workflow executions can be forked"}},
	} {
		out, stderr, code := s.CLI(append([]string{"execution", "fork"}, c.args...)...)
		for _, w := range c.want {
			if code != 2 || !strings.Contains(stderr, w) {
				t.Errorf("fork %v: exit %d, stdout %q, stderr %q; want exit 2 with %q", c.args, code, out, stderr, w)
			}
		}
	}
	if sum, err := s.State(orig); err != nil || len(sum.Forks) != 1 {
		t.Fatalf("forks of the original after the refusals: %v %v", sum.GetForks(), err)
	}
}

// lookChromium returns the path of a Chromium browser, "" if there is none.
func lookChromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}
