package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/test/harness"
)

// TestDeterministicHelpers: random numbers, random strings and new execution IDs are
// recorded in the history, and every replay (interrupt strategy: one after each child
// call) returns the recorded values, so the result is made of exactly those.
func TestDeterministicHelpers(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{BlockingStrategy: "interrupt",
		ExtraWorkflows: map[string]string{"random_workflow": "test/e2e/testdata/random-workflow"}})
	id := s.Submit("testing:random-workflow/workflow.values", "[]")
	var res struct {
		Ok string `json:"ok"`
	}
	raw := s.Result(id, time.Minute)
	if err := json.Unmarshal([]byte(raw), &res); err != nil || res.Ok == "" {
		t.Fatalf("result %s", raw)
	}
	var recorded []string
	for _, e := range s.Events(id) {
		if e.Kind == "history.persist" {
			var d struct {
				Value json.RawMessage `json:"value"`
			}
			json.Unmarshal([]byte(e.DetailsJson), &d)
			var v any
			json.Unmarshal(d.Value, &v)
			switch v := v.(type) {
			case string:
				recorded = append(recorded, v)
			case float64:
				recorded = append(recorded, strings.TrimSuffix(string(d.Value), ".0"))
			}
		}
	}
	if got := strings.Join(recorded, "|"); got != res.Ok {
		t.Fatalf("result %q, recorded values %q", res.Ok, got)
	}
	parts := strings.Split(res.Ok, "|")
	if len(parts) != 3 || len(parts[1]) < 5 || len(parts[1]) >= 20 || !strings.HasPrefix(parts[2], "E_") {
		t.Fatalf("values %q", res.Ok)
	}
	if n := harness.CountKind(s.Events(id), "locked"); n < 3 {
		t.Fatalf("locked %d times: the interrupt strategy should have replayed after each call", n)
	}
}

// TestSchedule: a workflow schedules a top-level execution for later; it is created
// once (the replay after the workflow's child call returns the recorded ID), is not run
// before its time, and finishes.
func TestSchedule(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{BlockingStrategy: "interrupt",
		ExtraWorkflows: map[string]string{"schedule_workflow": "test/e2e/testdata/schedule-workflow"}})
	id := s.Submit("testing:schedule-workflow/workflow.schedule-fibo", "[10, 1500]")
	var res struct {
		Ok string `json:"ok"`
	}
	raw := s.Result(id, time.Minute)
	if err := json.Unmarshal([]byte(raw), &res); err != nil || !strings.HasPrefix(res.Ok, "E_") {
		t.Fatalf("result %s", raw)
	}
	harness.JSONEq(t, s.Result(res.Ok, time.Minute), `{"ok":55}`)
	evs := s.Events(res.Ok)
	var created struct {
		ScheduledAt string `json:"scheduled_at"`
	}
	json.Unmarshal([]byte(evs[0].DetailsJson), &created)
	due, _ := time.Parse(time.RFC3339Nano, created.ScheduledAt)
	createdAt, _ := time.Parse(time.RFC3339Nano, evs[0].CreatedAt)
	if due.Sub(createdAt) < 1500*time.Millisecond {
		t.Fatalf("scheduled at %v, created at %v: want 1.5 s later", due, createdAt)
	}
	for _, e := range evs {
		at, _ := time.Parse(time.RFC3339Nano, e.CreatedAt)
		if e.Kind == "locked" && at.Before(due) {
			t.Fatalf("locked at %v, before it was due at %v", at, due)
		}
	}
	// Exactly one execution of fibo(10) exists: the replay did not schedule another.
	out, _, code := s.CLI("execution", "list", "--json", "--top-level", "--ffqn", "testing:fibo/")
	if code != 0 || strings.Count(out, `"execution_id"`) != 1 {
		t.Fatalf("top-level fibo executions: %s", out)
	}
	if n := harness.CountKind(s.Events(id), "history.schedule"); n != 1 {
		t.Fatalf("%d schedule events", n)
	}
}
