package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
	"github.com/obelisk-go/obelisk/test/harness"
)

// replayV2Options deploy fibo-workflow-v2 beside fibo-workflow, under its own name
// (its fiboa calls fibo(1) first, its fibow and fiboa-concurrent are v1's); the webhook
// endpoint, which imports both, calls v1's.
func replayV2Options() harness.Options {
	return harness.Options{Deployment: replayV2Deployment(), ExtraTOML: map[string]string{"fibo_webhook": `requires = ["fibo_workflow", "sleep"]`}}
}

func replayV2Deployment() string {
	return fmt.Sprintf(`
[[workflow]]
name = "fibo_workflow_v2"
location.path = %q
`, filepath.Join(harness.ComponentsDir(), "fibo-workflow-v2.wasm"))
}

// submitOn submits ffqn(params) to a named component and returns its ID.
func submitOn(t *testing.T, s *harness.Server, component, ffqn, params string) string {
	t.Helper()
	resp, err := s.Exec.Submit(context.Background(), connect.NewRequest(&pb.SubmitRequest{Ffqn: ffqn, ParamsJson: params, Component: component}))
	if err != nil {
		t.Fatalf("submit %s to %s: %v", ffqn, component, err)
	}
	return resp.Msg.ExecutionId
}

type replayStep struct {
	Kind     string          `json:"kind"`
	Function string          `json:"function"`
	Params   json.RawMessage `json:"params"`
	JoinSet  string          `json:"join_set"`
}

// replayDoc is the --json document of `client execution replay` (its contract).
type replayDoc struct {
	ExecutionID       string `json:"execution_id"`
	ComponentID       string `json:"component_id"`
	PinnedComponentID string `json:"pinned_component_id"`
	OK                bool   `json:"ok"`
	Finished          bool   `json:"finished"`
	HistoryEvents     int    `json:"history_events"`
	Replayed          int    `json:"replayed"`
	Divergence        *struct {
		Index    int         `json:"index"`
		Recorded *replayStep `json:"recorded"`
		Produced *replayStep `json:"produced"`
		Detail   string      `json:"detail"`
	} `json:"divergence"`
	Next []struct {
		Kind    string `json:"kind"`
		JoinSet string `json:"join_set"`
		Detail  string `json:"detail"`
	} `json:"next"`
	Result         json.RawMessage `json:"result"`
	RecordedResult json.RawMessage `json:"recorded_result"`
	Logs           []struct {
		Level, Message string
	} `json:"logs"`
}

// TestReplayCLI drives `obelisk client execution replay` (contract: exit 0 when the
// code reproduces the history, 1 on a divergence, 2 for what cannot be replayed) on
// one server: a finished fiboa replays on its own component and diverges on v2 (by
// name and as a file, --json), an unfinished workflow says what it waits for, and an
// activity's execution or an unknown one is refused.
func TestReplayCLI(t *testing.T) {
	s := harness.Start(t, replayV2Options())
	fiboa := submitOn(t, s, "fibo_workflow", "testing:fibo-workflow/workflow.fiboa", "[5, 2]")
	harness.JSONEq(t, s.Result(fiboa, 2*time.Minute), `{"ok":10}`)

	out, errOut, code := s.CLI("execution", "replay", fiboa)
	if code != 0 || !strings.Contains(out, fiboa+": ok: replayed 6 of 6 history events") || !strings.Contains(out, "(pinned)") {
		t.Fatalf("replay on the pinned component: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = s.CLI("execution", "replay", fiboa, "--component", "fibo_workflow_v2")
	if code != 1 || !strings.Contains(out, "DIVERGES at history event 1") || !strings.Contains(out, "recorded: request testing:fibo/fibo.fibo([5])") ||
		!strings.Contains(out, "produced: request testing:fibo/fibo.fibo([1])") {
		t.Fatalf("replay on v2 by name: exit %d\n%s%s", code, out, errOut)
	}
	v2File := filepath.Join(harness.ComponentsDir(), "fibo-workflow-v2.wasm")
	out, errOut, code = s.CLI("execution", "replay", fiboa, "--component", v2File, "--json")
	var doc replayDoc
	if code != 1 || json.Unmarshal([]byte(out), &doc) != nil {
		t.Fatalf("replay on v2's file --json: exit %d\n%s%s", code, out, errOut)
	}
	if d := doc.Divergence; doc.OK || !doc.Finished || d == nil || d.Index != 1 || d.Recorded == nil || d.Produced == nil ||
		compactJSON(d.Recorded.Params) != "[5]" || compactJSON(d.Produced.Params) != "[1]" || d.Recorded.Kind != "submit" || d.Produced.JoinSet != d.Recorded.JoinSet ||
		!strings.HasSuffix(doc.ComponentID, digestOf(t, v2File)) || doc.PinnedComponentID == doc.ComponentID {
		t.Fatalf("document: %s", out)
	}

	// Unfinished: it sleeps an hour; the replay ends where it waits, with its log line.
	sleeper := s.Submit("testing:sleep-workflow/workflow.sleep-then-call", "[3600000, 3]")
	waitStatus(t, s, sleeper, "blocked_by_join_set")
	out, errOut, code = s.CLI("execution", "replay", sleeper, "--json")
	doc = replayDoc{}
	if code != 0 || json.Unmarshal([]byte(out), &doc) != nil {
		t.Fatalf("replay of an unfinished workflow: exit %d\n%s%s", code, out, errOut)
	}
	if !doc.OK || doc.Finished || doc.Replayed != doc.HistoryEvents || len(doc.Next) != 1 || doc.Next[0].Kind != "wait" ||
		len(doc.Logs) != 1 || doc.Logs[0].Message != "sleeping 3600000 ms" {
		t.Fatalf("document: %s", out)
	}
	before := len(s.Events(sleeper))

	var child string
	for _, ev := range s.Events(fiboa) {
		var d struct {
			Child string `json:"child_execution_id"`
		}
		if json.Unmarshal([]byte(ev.DetailsJson), &d) == nil && d.Child != "" {
			child = d.Child
			break
		}
	}
	_, errOut, code = s.CLI("execution", "replay", child)
	if code != 2 || !strings.Contains(errOut, "invalid_argument") || !strings.Contains(errOut, "only workflow executions can be replayed") {
		t.Errorf("replay of an activity's execution: exit %d, %s", code, errOut)
	}
	_, errOut, code = s.CLI("execution", "replay", "E_01KBZZZZZZZZZZZZZZZZZZZZZZ")
	if code != 2 || !strings.Contains(errOut, "not_found") {
		t.Errorf("replay of an unknown execution: exit %d, %s", code, errOut)
	}
	_, errOut, code = s.CLI("execution", "replay", fiboa, "--component", "sleep_workflow")
	if code != 2 || !strings.Contains(errOut, "does not export testing:fibo-workflow/workflow.fiboa") {
		t.Errorf("replay on a component without the function: exit %d, %s", code, errOut)
	}
	if after := len(s.Events(sleeper)); after != before {
		t.Errorf("the replays wrote: %d events, then %d", before, after)
	}
}

// compactJSON is raw without insignificant spaces.
func compactJSON(raw json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return string(raw)
	}
	return b.String()
}

// waitStatus waits until the execution's status is status.
func waitStatus(t *testing.T, s *harness.Server, id, status string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st, err := s.State(id)
		if err == nil && st.Status == status {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: status %v (%v), want %s", id, st, err, status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
