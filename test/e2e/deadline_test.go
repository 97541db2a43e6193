package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
	"github.com/obelisk-go/obelisk/test/harness"
)

// TestDeadlines: a submission's deadline bounds its whole tree. One server, in turn:
// a tree whose deadline is shorter than its work finishes deadline_exceeded with every
// descendant and nothing left running; a deadline that is met changes nothing but is
// inherited by every child; a deadline passing while the server is down (SIGKILLed
// with the tree running) fires at the restart; bad deadlines are refused.
func TestDeadlines(t *testing.T) {
	// The leaves sleep a minute in one attempt: only the deadline can end them early.
	s := harness.Start(t, harness.Options{ExtraTOML: map[string]string{"sleep": "exec.lock_expiry = \"2m\"\n"}})

	t.Run("exceeded", func(t *testing.T) {
		// The CLI, parsed from its output: the ID, then a deadline line.
		out, errOut, code := s.CLI("execution", "submit", "--deadline", "5s", "testing:tree/tree.spawn", "[1, 2, 60000]")
		if code != 0 {
			t.Fatalf("submit --deadline (exit %d): %s%s", code, out, errOut)
		}
		id := strings.Fields(out)[0]
		if !strings.HasPrefix(id, "E_") || !strings.Contains(out, "\ndeadline: ") {
			t.Fatalf("submit --deadline printed %q, want the ID and a deadline line", out)
		}
		// The tree is spawned well within the deadline: two child workflows, each
		// calling the sleep activity.
		waitLocked(t, s, "testing:sleep/sleep.sleep", 2)
		res := s.Result(id, 2*time.Minute)
		requireKind(t, id, res, "deadline_exceeded")
		tree := descendants(t, s, id)
		if len(tree) != 4 {
			t.Fatalf("%d descendants, want 2 child workflows and their 2 activities", len(tree))
		}
		root, err := s.State(id)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range tree {
			d := st.ExecutionId
			// A child inherits its parent's deadline, so it has passed its own too: it
			// finishes deadline_exceeded (not cancelled), which its parent's join set
			// received as the child's response.
			requireKind(t, d, st.ResultJson, "deadline_exceeded")
			if st.Deadline != root.Deadline {
				t.Fatalf("%s: deadline %q, want the root's %q", d, st.Deadline, root.Deadline)
			}
			if evs := s.Events(d); harness.CountKind(evs, "temporarily_timed_out")+harness.CountKind(evs, "temporarily_failed") != 0 {
				t.Fatalf("%s was retried past its deadline: %v", d, evs)
			}
		}
		resps, err := s.Exec.ListResponses(context.Background(), connect.NewRequest(&pb.ListResponsesRequest{ExecutionId: id}))
		if err != nil {
			t.Fatal(err)
		}
		if len(resps.Msg.Responses) != 2 {
			t.Fatalf("the root's responses: %v, want its two children's", resps.Msg.Responses)
		}
		for _, r := range resps.Msg.Responses {
			requireKind(t, r.ChildExecutionId, r.ResultJson, "deadline_exceeded")
		}
		// The root's cancellation says it is its deadline's; or, had the root returned
		// (past its deadline, woken by its children's deadline_exceeded) before the
		// deadline service stopped it, its finished event keeps what it returned.
		var cancel, finished string
		for _, ev := range s.Events(id) {
			switch ev.Kind {
			case "cancel_requested":
				cancel = ev.DetailsJson
			case "finished":
				finished = ev.DetailsJson
			}
		}
		if !strings.Contains(cancel, `"deadline_exceeded":true`) && !strings.Contains(finished, `"returned":`) {
			t.Fatalf("the root's cancel_requested: %q, finished %q; want deadline_exceeded", cancel, finished)
		}
		requireNothingOpen(t, s)
		// Stopped without returning, as a cancellation: a shadow replay reproduces it.
		rep, err := s.Exec.Replay(context.Background(), connect.NewRequest(&pb.ReplayRequest{ExecutionId: id}))
		if err != nil || !rep.Msg.Ok {
			t.Fatalf("replay of a workflow stopped by its deadline: %v %v", rep, err)
		}
		out, _, code = s.CLI("execution", "get", id)
		if code != 1 || !strings.Contains(out, `"kind":"deadline_exceeded"`) || !strings.Contains(out, "deadline: ") {
			t.Fatalf("execution get (exit %d): %s", code, out)
		}
	})

	t.Run("met", func(t *testing.T) {
		out, errOut, code := s.CLI("execution", "submit", "--follow", "--deadline", "10m", "testing:tree/tree.spawn", "[1, 2, 10]")
		if code != 0 || !strings.Contains(out, `result: {"ok":2}`) {
			t.Fatalf("submit --follow --deadline 10m (exit %d): %s%s", code, out, errOut)
		}
		id := strings.Fields(out)[0]
		root, err := s.State(id)
		if err != nil {
			t.Fatal(err)
		}
		if root.Deadline == "" {
			t.Fatalf("no deadline in the summary: %v", root)
		}
		tree := descendants(t, s, id)
		if len(tree) != 4 {
			t.Fatalf("%d descendants, want 2 child workflows and their 2 activities", len(tree))
		}
		for _, st := range tree {
			d := st.ExecutionId
			var created struct {
				Deadline string `json:"deadline"`
			}
			if err := json.Unmarshal([]byte(s.Events(d)[0].DetailsJson), &created); err != nil {
				t.Fatal(err)
			}
			if created.Deadline != root.Deadline {
				t.Fatalf("%s: created with deadline %q, want the root's %q", d, created.Deadline, root.Deadline)
			}
		}
	})

	t.Run("across a restart", func(t *testing.T) {
		resp, err := s.Exec.Submit(context.Background(), connect.NewRequest(&pb.SubmitRequest{
			Ffqn: "testing:tree/tree.spawn", ParamsJson: "[1, 2, 60000]", Deadline: "5s"}))
		if err != nil {
			t.Fatal(err)
		}
		id := resp.Msg.ExecutionId
		waitLocked(t, s, "testing:sleep/sleep.sleep", 2)
		st, err := s.State(id)
		if err != nil {
			t.Fatal(err)
		}
		deadline, err := time.Parse(time.RFC3339Nano, st.Deadline)
		if err != nil {
			t.Fatalf("summary deadline %q: %v", st.Deadline, err)
		}
		s.Kill()
		time.Sleep(time.Until(deadline) + 500*time.Millisecond) // down across the deadline
		s.Start()
		requireKind(t, id, s.Result(id, 2*time.Minute), "deadline_exceeded")
		tree := descendants(t, s, id)
		if len(tree) != 4 {
			t.Fatalf("%d descendants, want 2 child workflows and their 2 activities", len(tree))
		}
		for _, st := range tree {
			requireKind(t, st.ExecutionId, st.ResultJson, "deadline_exceeded")
		}
		requireNothingOpen(t, s)
	})

	t.Run("refused", func(t *testing.T) {
		for _, d := range []string{"soon", "-1s", "0s"} {
			_, err := s.Exec.Submit(context.Background(), connect.NewRequest(&pb.SubmitRequest{
				Ffqn: "testing:sleep/sleep.sleep", ParamsJson: "[1]", Deadline: d}))
			if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "deadline") {
				t.Fatalf("deadline %q: %v, want invalid_argument naming the deadline", d, err)
			}
		}
		if out, errOut, code := s.CLI("execution", "submit", "--deadline", "0s", "testing:sleep/sleep.sleep", "[1]"); code != 2 || !strings.Contains(errOut, "--deadline") {
			t.Fatalf("--deadline 0s (exit %d): %s%s", code, out, errOut)
		}
		requireNothingOpen(t, s) // nothing was created
	})
}

// waitLocked waits until n executions of ffqn are locked (running).
func waitLocked(t *testing.T, s *harness.Server, ffqn string, n int) {
	t.Helper()
	until := time.Now().Add(time.Minute)
	for {
		list, err := s.Exec.ListExecutions(context.Background(), connect.NewRequest(&pb.ListExecutionsRequest{Status: "locked", FfqnPrefix: ffqn}))
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Msg.Executions) >= n {
			return
		}
		if time.Now().After(until) {
			t.Fatalf("%d of %d executions of %s locked after a minute", len(list.Msg.Executions), n, ffqn)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// requireKind fails unless result is an execution failure of kind.
func requireKind(t *testing.T, id, result, kind string) {
	t.Helper()
	var r struct {
		Failure *struct {
			Kind string `json:"kind"`
		} `json:"execution_failure"`
	}
	if err := json.Unmarshal([]byte(result), &r); err != nil || r.Failure == nil || r.Failure.Kind != kind {
		t.Fatalf("%s: result %s, want an execution failure %s", id, result, kind)
	}
}

// requireNothingOpen fails if any execution of the server has not finished.
func requireNothingOpen(t *testing.T, s *harness.Server) {
	t.Helper()
	for _, status := range []string{"pending_at", "locked", "blocked_by_join_set"} {
		list, err := s.Exec.ListExecutions(context.Background(), connect.NewRequest(&pb.ListExecutionsRequest{Status: status}))
		if err != nil {
			t.Fatal(err)
		}
		if n := len(list.Msg.Executions); n != 0 {
			t.Fatalf("%d executions still %s: %v", n, status, errors.New(list.Msg.Executions[0].ExecutionId))
		}
	}
}
