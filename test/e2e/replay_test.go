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
	"github.com/chromedp/chromedp"

	"github.com/obelisk-go/obelisk/events"
	spb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
	"github.com/obelisk-go/obelisk/test/harness"
)

// replayV2Options deploy fibo-workflow-v2 beside fibo-workflow, under its own name
// (its fiboa calls fibo(1) first, its fibow and fiboa-concurrent are v1's); the webhook
// endpoint, which imports both, calls v1's.
func replayV2Options() harness.Options {
	return harness.Options{WebUI: true, Deployment: replayV2Deployment(), ExtraTOML: map[string]string{"fibo_webhook": `requires = ["fibo_workflow", "sleep"]`}}
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

// TestReplayUpgradeCLI drives `obelisk client execution replay` (contract: exit 0 when the
// code reproduces the history, 1 on a divergence, 2 for what cannot be replayed) on
// one server: a finished fiboa replays on its own component and diverges on v2 (by
// name and as a file, --json), an unfinished workflow says what it waits for, and an
// activity's execution or an unknown one is refused. Then, on the same server, `client
// execution upgrade` (testUpgrade).
func TestReplayUpgradeCLI(t *testing.T) {
	t.Parallel()
	nd := events.NewExecutionID(time.Now())
	o := replayV2Options()
	o.Prepare = func(dir string) { recordFiboa(t, dir, nd, "fibo_workflow_v2", "[5,2]", "[5]") }
	s := harness.Start(t, o)
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
	t.Run("webui", func(t *testing.T) { testReplayWebUI(t, s, fiboa) })
	testUpgrade(t, s, nd)
}

// testReplayWebUI: the execution page's "Replay against…" control shows v2's
// divergence from fiboa's history, with both steps.
func testReplayWebUI(t *testing.T, s *harness.Server, fiboa string) {
	b := browser(t, chromiumPath(t))
	ctx := open(t, b, s.WebURL+"/#/execution/"+fiboa)
	do(t, ctx, "replay against fibo_workflow_v2",
		chromedp.WaitVisible(chromedp.CSS("#replay")),
		chromedp.SendKeys(chromedp.CSS("#replay-comp"), "fibo_workflow_v2"),
		chromedp.Click(chromedp.CSS("#replay")),
		waitJS(`(t => !!t && !t.includes('Replaying'))(document.querySelector('#replay-out')?.textContent)`))
	report := get(t, ctx, "the report", chromedp.Evaluate[string](`document.querySelector('#replay-out').textContent`))
	if !strings.Contains(report, "diverges at history event 1") || !strings.Contains(report, "testing:fibo/fibo.fibo([5])") || !strings.Contains(report, "testing:fibo/fibo.fibo([1])") {
		t.Errorf("the report does not show both steps: %q", report)
	}
}

// recordFiboa writes into the store in dir a fiboa(params) execution id in queue,
// pinned to a component no server has (so it runs on the component of its queue's
// executor), whose history recorded a first call of fibo(called), answered 7.
func recordFiboa(t *testing.T, dir, id, queue, params, called string) {
	store, err := events.Open(dir, events.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	now := time.Now()
	child := events.ChildExecutionID(id, "o:1-fibo", 1)
	at := now.UnixNano()
	ev := func(e *spb.Event) *spb.Event { at++; e.CreatedAt = at; return e }
	hist := func(h *spb.HistoryEvent) *spb.Event { return ev(&spb.Event{Kind: &spb.Event_History{History: h}}) }
	evs := []*spb.Event{
		ev(&spb.Event{Kind: &spb.Event_Created{Created: &spb.Created{Ffqn: "testing:fibo-workflow/workflow.fiboa", Params: []byte(params),
			ScheduledAt: at, ComponentType: spb.ComponentType_COMPONENT_TYPE_WORKFLOW, Queue: queue, ComponentId: "workflow:fibo_workflow:sha256:0"}}}),
		ev(&spb.Event{Kind: &spb.Event_Locked{Locked: &spb.Locked{ExecutorId: "Exr_gone", RunId: "Run_gone", LockExpiresAt: at + int64(time.Hour),
			Retry: &spb.RetryConfig{UnlimitedRetries: true, RetryExpBackoff: int64(time.Millisecond)}}}}),
		hist(&spb.HistoryEvent{Kind: &spb.HistoryEvent_JoinSetCreate{JoinSetCreate: &spb.JoinSetCreate{JoinSetId: "o:1-fibo"}}}),
		hist(&spb.HistoryEvent{Kind: &spb.HistoryEvent_JoinSetRequest{JoinSetRequest: &spb.JoinSetRequest{JoinSetId: "o:1-fibo",
			Request: &spb.JoinSetRequest_Child{Child: &spb.ChildExecutionRequest{ChildExecutionId: child, Ffqn: "testing:fibo/fibo.fibo", Params: []byte(called)}}}}}),
		hist(&spb.HistoryEvent{Kind: &spb.HistoryEvent_JoinNext{JoinNext: &spb.JoinNext{JoinSetId: "o:1-fibo", RequestedFfqn: "testing:fibo/fibo.fibo", RunExpiresAt: at}}}),
	}
	childEvs := []*spb.Event{
		ev(&spb.Event{Kind: &spb.Event_Created{Created: &spb.Created{Ffqn: "testing:fibo/fibo.fibo", Params: []byte(called), ParentId: id, ParentJoinSetId: "o:1-fibo",
			ScheduledAt: at, ComponentType: spb.ComponentType_COMPONENT_TYPE_ACTIVITY_WASM, Queue: "fibo"}}}),
		ev(&spb.Event{Kind: &spb.Event_Locked{Locked: &spb.Locked{ExecutorId: "Exr_gone", RunId: "Run_child", LockExpiresAt: at + int64(time.Hour)}}}),
		ev(&spb.Event{Kind: &spb.Event_Finished{Finished: &spb.Finished{Result: []byte(`{"ok":7}`)}}}),
	}
	ctx := context.Background()
	if _, err := store.Commit(ctx, &events.Tx{Appends: []events.Append{{ExecutionID: id, Events: evs}, {ExecutionID: child, Events: childEvs[:2]}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Commit(ctx, &events.Tx{
		Appends: []events.Append{{ExecutionID: child, ExpectedVersion: 2, Events: childEvs[2:]}},
		Responses: []events.ResponseAppend{{ExecutionID: id, Response: &spb.Response{CreatedAt: at, JoinSetId: "o:1-fibo",
			Kind: &spb.Response_Child{Child: &spb.ChildFinished{ChildExecutionId: child, Result: []byte(`{"ok":7}`)}}}}},
	}); err != nil {
		t.Fatal(err)
	}
}

// upgradeDoc is the --json document of `client execution upgrade` (its contract).
type upgradeDoc struct {
	ComponentID string `json:"component_id"`
	DryRun      bool   `json:"dry_run"`
	Executions  []struct {
		ExecutionID string     `json:"execution_id"`
		Outcome     string     `json:"outcome"`
		ForkID      string     `json:"fork_id"`
		Error       string     `json:"error"`
		Replay      *replayDoc `json:"replay"`
	} `json:"executions"`
	Counts map[string]int `json:"counts"`
}

func (d upgradeDoc) outcomes() map[string]string {
	out := map[string]string{}
	for _, e := range d.Executions {
		out[e.ExecutionID] = e.Outcome
	}
	return out
}

// testUpgrade: unfinished executions of fibo_workflow (v1) are upgraded to v2: two of
// fiboa-concurrent (the same code in v2) move and finish there; two of fiboa, which
// called fibo(5) first where v2 calls fibo(1), diverge: one is left alone, the other,
// approved, is forked at the divergence onto v2 and finishes with v2's result. nd,
// which finished as nondeterminism_detected on v2 (its recorded first call is v1's),
// is repaired by an upgrade to v1: forked, it finishes with the recorded answer.
func testUpgrade(t *testing.T, s *harness.Server, nd string) {
	ctx := context.Background()
	pause := func(id string) {
		if _, err := s.Exec.Pause(ctx, connect.NewRequest(&pb.PauseRequest{ExecutionId: id})); err != nil {
			t.Fatalf("pause %s: %v", id, err)
		}
	}
	var clean, diverging []string
	for range 2 {
		id := submitOn(t, s, "fibo_workflow", "testing:fibo-workflow/workflow.fiboa-concurrent", "[5, 2]")
		pause(id) // it stays unfinished until it is on v2
		clean = append(clean, id)
	}
	for range 2 {
		id := submitOn(t, s, "fibo_workflow", "testing:fibo-workflow/workflow.fiboa", "[5, 300]")
		deadline := time.Now().Add(2 * time.Minute)
		for len(childParams(t, s, id)) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%s called nothing", id)
			}
			time.Sleep(5 * time.Millisecond)
		}
		pause(id) // with its first call recorded, fibo(5): v2's is fibo(1)
		diverging = append(diverging, id)
	}
	left, approved := diverging[0], diverging[1]

	out, errOut, code := s.CLI("execution", "upgrade", "--component", "fibo_workflow_v2", "--from-component", "fibo_workflow", "--dry-run", "--json")
	var doc upgradeDoc
	if code != 1 || json.Unmarshal([]byte(out), &doc) != nil {
		t.Fatalf("upgrade --dry-run: exit %d\n%s%s", code, out, errOut)
	}
	got := doc.outcomes()
	if !doc.DryRun || got[clean[0]] != "would_move" || got[clean[1]] != "would_move" || got[left] != "diverged" || got[approved] != "diverged" {
		t.Fatalf("dry run: %v\n%s", got, out)
	}
	for _, id := range append(clean, diverging...) {
		if st, err := s.State(id); err != nil || !strings.Contains(st.ComponentId, ":fibo_workflow:") {
			t.Fatalf("a dry run moved %s: %v %v", id, st, err)
		}
	}

	out, errOut, code = s.CLI("execution", "upgrade", "--component", "fibo_workflow_v2", "--from-component", "fibo_workflow", "--approve-nondeterminism", approved, "--json")
	doc = upgradeDoc{}
	if code != 1 || json.Unmarshal([]byte(out), &doc) != nil {
		t.Fatalf("upgrade: exit %d\n%s%s", code, out, errOut)
	}
	got = doc.outcomes()
	if got[clean[0]] != "moved" || got[clean[1]] != "moved" || got[left] != "diverged" || got[approved] != "forked" {
		t.Fatalf("upgrade: %v\n%s", got, out)
	}
	var fork string
	for _, e := range doc.Executions {
		if e.ExecutionID == approved {
			fork = e.ForkID
		}
		if e.ExecutionID == left && (e.Replay == nil || e.Replay.Divergence == nil || e.Replay.Divergence.Index != 1) {
			t.Errorf("the report of %s: %+v", left, e.Replay)
		}
	}
	for _, id := range clean {
		if _, err := s.Exec.Unpause(ctx, connect.NewRequest(&pb.UnpauseRequest{ExecutionId: id})); err != nil {
			t.Fatal(err)
		}
		harness.JSONEq(t, s.Result(id, 2*time.Minute), `{"ok":10}`)
		st, _ := s.State(id)
		if !strings.Contains(st.ComponentId, ":fibo_workflow_v2:") || harness.CountKind(s.Events(id), "moved") != 1 {
			t.Errorf("%s: on %s, %d moved events", id, st.ComponentId, harness.CountKind(s.Events(id), "moved"))
		}
		for _, ev := range s.Events(id) {
			if ev.Kind == "moved" && !strings.Contains(ev.DetailsJson, `"cli"`) {
				t.Errorf("the moved event does not say who moved it: %s", ev.DetailsJson)
			}
		}
	}
	if st, _ := s.State(left); !strings.Contains(st.ComponentId, ":fibo_workflow:") || st.Status == "finished" {
		t.Errorf("%s diverged, was not approved, and was changed: %v", left, st)
	}
	// The fork replays nothing of fiboa's calls (it forked before the first) and runs
	// v2's: 300*fib(5) + 1.
	harness.JSONEq(t, s.Result(fork, 3*time.Minute), `{"ok":1501}`)

	// nd finished as nondeterminism_detected (v2's first call is fibo(1)); v1 replays it.
	var r struct {
		Failure struct{ Kind string } `json:"execution_failure"`
	}
	if res := s.Result(nd, 2*time.Minute); json.Unmarshal([]byte(res), &r) != nil || r.Failure.Kind != "nondeterminism_detected" {
		t.Fatalf("%s: %s, want nondeterminism_detected", nd, res)
	}
	out, errOut, code = s.CLI("execution", "upgrade", "--component", "fibo_workflow", nd, "--json")
	doc = upgradeDoc{}
	if code != 0 || json.Unmarshal([]byte(out), &doc) != nil || len(doc.Executions) != 1 || doc.Executions[0].Outcome != "forked" {
		t.Fatalf("upgrade of a nondeterminism_detected execution: exit %d\n%s%s", code, out, errOut)
	}
	// 7 (recorded) + fib(5) = 12.
	harness.JSONEq(t, s.Result(doc.Executions[0].ForkID, 2*time.Minute), `{"ok":12}`)
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
