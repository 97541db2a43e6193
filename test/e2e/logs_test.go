package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
	"github.com/obelisk-go/obelisk/test/harness"
)

// logsDoc is the --json document of `obelisk client execution logs` without --follow.
type logsDoc struct {
	ExecutionID string `json:"execution_id"`
	Lines       []struct {
		Seq     uint64 `json:"seq"`
		Time    string `json:"time"`
		Level   string `json:"level"`
		Attempt uint32 `json:"attempt"`
		RunID   string `json:"run_id"`
		Context string `json:"context"`
		Message string `json:"message"`
	} `json:"lines"`
	Stored   uint64 `json:"stored"`
	Dropped  uint64 `json:"dropped"`
	Finished bool   `json:"finished"`
}

// cliLogs runs `obelisk client execution logs --json ID` and decodes its output.
func cliLogs(t *testing.T, s *harness.Server, id string) logsDoc {
	t.Helper()
	out, errOut, code := s.CLI("execution", "logs", "--json", id)
	if code != 0 {
		t.Fatalf("execution logs --json %s: exit %d: %s", id, code, errOut)
	}
	var doc logsDoc
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("execution logs --json: %v\n%s", err, out)
	}
	return doc
}

func logMessages(doc logsDoc) []string {
	msgs := make([]string, len(doc.Lines))
	for i, l := range doc.Lines {
		msgs[i] = l.Level + " " + l.Message
	}
	return msgs
}

// The contract: `obelisk client execution logs ID` prints fibo's "fibo(N) = R".
func TestLogsOfAnActivity(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	id := s.Submit("testing:fibo/fibo.fibo", "[10]")
	harness.JSONEq(t, s.Result(id, time.Minute), `{"ok":55}`)

	out, errOut, code := s.CLI("execution", "logs", id)
	if code != 0 {
		t.Fatalf("execution logs: exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1 {
		t.Fatalf("execution logs printed %d lines, want 1:\n%s", len(lines), out)
	}
	// "2026-01-02T03:04:05.678Z info  fibo(10) = 55"
	f := strings.Fields(lines[0])
	if len(f) < 2 || f[1] != "info" || !strings.HasSuffix(lines[0], " fibo(10) = 55") {
		t.Errorf("line %q, want time, info and fibo(10) = 55", lines[0])
	}
	if ts, err := time.Parse(time.RFC3339Nano, f[0]); err != nil || time.Since(ts) > 10*time.Minute || time.Since(ts) < 0 {
		t.Errorf("line time %q: %v", f[0], err)
	}

	doc := cliLogs(t, s, id)
	if got := logMessages(doc); len(got) != 1 || got[0] != "info fibo(10) = 55" {
		t.Errorf("--json lines %q", got)
	}
	if l := doc.Lines[0]; l.Seq != 0 || l.Attempt != 1 || !strings.HasPrefix(l.RunID, "Run_") || l.Context != "" {
		t.Errorf("--json line %+v", l)
	}
	if doc.ExecutionID != id || doc.Stored != 1 || doc.Dropped != 0 || !doc.Finished {
		t.Errorf("--json document %+v", doc)
	}

	_, errOut, code = s.CLI("execution", "logs", "E_01M95GYSWGB1NGVQYPFF0A1AAA")
	if code != 2 || !strings.Contains(errOut, "not_found") {
		t.Errorf("logs of an unknown execution: exit %d, %q", code, errOut)
	}
}

// sleepThenCallLogs is what testing:sleep-workflow/workflow.sleep-then-call(millis, 10)
// logs, each line once however often the workflow was replayed.
func sleepThenCallLogs(millis int) []string {
	return []string{fmt.Sprintf("info sleeping %d ms", millis), "info slept; calling fibo(10)", "warn fibo(10) returned 55"}
}

// A workflow replayed at every step (blocking_strategy interrupt) stores each line once;
// --follow prints the lines as they come and ends when the workflow has finished.
func TestLogsOfAReplayedWorkflow(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{BlockingStrategy: "interrupt"})
	id := s.Submit("testing:sleep-workflow/workflow.sleep-then-call", "[1000, 10]")
	out, errOut, code := s.CLI("execution", "logs", "--follow", id)
	if code != 0 {
		t.Fatalf("execution logs --follow: exit %d: %s", code, errOut)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.SplitN(line, " ", 2)
		if len(f) == 2 {
			got = append(got, strings.Join(strings.Fields(f[1]), " "))
		}
	}
	want := []string{"info sleeping 1000 ms", "info slept; calling fibo(10)", "warn result: fibo(10) returned 55"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("--follow printed\n%s\nwant (after the time)\n%s", out, strings.Join(want, "\n"))
	}
	harness.JSONEq(t, s.Result(id, time.Minute), `{"ok":55}`)
	doc := cliLogs(t, s, id)
	if got := logMessages(doc); strings.Join(got, "\n") != strings.Join(sleepThenCallLogs(1000), "\n") {
		t.Errorf("lines %q, want %q", got, sleepThenCallLogs(1000))
	}
	if doc.Lines[2].Context != "result" || doc.Stored != 3 || !doc.Finished {
		t.Errorf("document %+v", doc)
	}
	// Its child's line is in the child's log.
	resp, err := s.Exec.ListExecutions(context.Background(), connect.NewRequest(&pb.ListExecutionsRequest{FfqnPrefix: "testing:fibo/fibo.fibo"}))
	if err != nil {
		t.Fatal(err)
	}
	var child string
	for _, e := range resp.Msg.Executions {
		if e.ParentId == id {
			child = e.ExecutionId
		}
	}
	if child == "" {
		t.Fatalf("no child call in the events of %s", id)
	}
	if got := logMessages(cliLogs(t, s, child)); len(got) != 1 || got[0] != "info fibo(10) = 55" {
		t.Errorf("child %s logged %q", child, got)
	}
}

// A workflow killed with the server after logging, and replayed by the restarted
// server, has each line once.
func TestLogsOfAWorkflowAcrossAKill(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	id := s.Submit("testing:sleep-workflow/workflow.sleep-then-call", "[3000, 10]")
	waitUntil(t, time.Minute, func() bool {
		resp, err := s.Exec.GetLogs(context.Background(), connect.NewRequest(&pb.GetLogsRequest{ExecutionId: id}))
		return err == nil && len(resp.Msg.Lines) == 1
	})
	s.Kill()
	s.Start()
	harness.JSONEq(t, s.Result(id, time.Minute), `{"ok":55}`)
	if got := logMessages(cliLogs(t, s, id)); strings.Join(got, "\n") != strings.Join(sleepThenCallLogs(3000), "\n") {
		t.Errorf("lines %q, want %q", got, sleepThenCallLogs(3000))
	}
}

// Past logs.max_per_execution the first lines are kept and the rest counted, which the
// CLI reports.
func TestLogsBound(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{Deployment: "[logs]\nmax_per_execution = 2\n"})
	id := s.Submit("testing:sleep-workflow/workflow.sleep-then-call", "[10, 10]")
	harness.JSONEq(t, s.Result(id, time.Minute), `{"ok":55}`)
	doc := cliLogs(t, s, id)
	if got := logMessages(doc); strings.Join(got, "\n") != strings.Join(sleepThenCallLogs(10)[:2], "\n") || doc.Stored != 2 || doc.Dropped != 1 {
		t.Errorf("lines %q, stored %d, dropped %d; want the first 2, 1 dropped", got, doc.Stored, doc.Dropped)
	}
	_, errOut, code := s.CLI("execution", "logs", id)
	if code != 0 || !strings.Contains(errOut, "1 more lines were logged but not stored: past logs.max_per_execution (2 lines kept)") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

// An activity's lines are stored while a long attempt runs, and every attempt's lines
// are kept with its attempt number.
func TestLogsOfActivityAttempts(t *testing.T) {
	t.Parallel()
	t.Run("while it runs", func(t *testing.T) {
		s := harness.Start(t, harness.Options{ExtraTOML: map[string]string{"sleep": `exec.lock_expiry = "20s"`}})
		id := s.Submit("testing:sleep/sleep.sleep", "[6000]")
		waitUntil(t, time.Minute, func() bool {
			resp, err := s.Exec.GetLogs(context.Background(), connect.NewRequest(&pb.GetLogsRequest{ExecutionId: id}))
			return err == nil && len(resp.Msg.Lines) == 1
		})
		if st, err := s.State(id); err != nil || st.Status == "finished" {
			t.Fatalf("the line is stored only once the attempt has finished: %v %v", st, err)
		}
		harness.JSONEq(t, s.Result(id, time.Minute), `{"ok":null}`)
		if got := logMessages(cliLogs(t, s, id)); len(got) != 1 || got[0] != "info attempt 1: sleeping 6000 ms" {
			t.Errorf("lines %q", got)
		}
	})
	t.Run("retried", func(t *testing.T) {
		// The harness's sleep: exec.lock_expiry 1s, max_retries 1; both attempts time out.
		s := harness.Start(t, harness.Options{})
		id := s.Submit("testing:sleep/sleep.sleep", "[5000]")
		if r := s.Result(id, time.Minute); !strings.Contains(r, "timed_out") {
			t.Fatalf("result %s, want timed_out", r)
		}
		doc := cliLogs(t, s, id)
		if got := logMessages(doc); strings.Join(got, "\n") != "info attempt 1: sleeping 5000 ms\ninfo attempt 2: sleeping 5000 ms" {
			t.Fatalf("lines %q", got)
		}
		if doc.Lines[0].Attempt != 1 || doc.Lines[1].Attempt != 2 || doc.Lines[0].RunID == doc.Lines[1].RunID {
			t.Errorf("lines %+v: want attempts 1 and 2 in two runs", doc.Lines)
		}
		out, _, _ := s.CLI("execution", "logs", id)
		if !strings.Contains(out, "info  (attempt 2) attempt 2: sleeping 5000 ms") {
			t.Errorf("text output does not show the attempt:\n%s", out)
		}
	})
}

// With stdout = "log" and stderr = "log", what an activity writes there is in its log,
// line by line, with the stream as context.
func TestLogsOfStdoutAndStderr(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{ExtraTOML: map[string]string{"flaky": "stdout = \"log\"\nstderr = \"log\"\n"}})
	id := s.Submit("testing:flaky/flaky.fail-until", "[2]")
	harness.JSONEq(t, s.Result(id, time.Minute), `{"ok":2}`)
	doc := cliLogs(t, s, id)
	var got []string
	for _, l := range doc.Lines {
		got = append(got, fmt.Sprintf("%d %s %s: %s", l.Attempt, l.Level, l.Context, l.Message))
	}
	want := []string{"1 info stdout: attempt 1 of 2", "1 warn stderr: attempt 1 fails", "2 info stdout: attempt 2 of 2"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("lines\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
