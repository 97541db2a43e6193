package e2e

import (
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/test/harness"
)

// TestMetrics: /metrics on the API port counts what the engine did: finished executions
// by type and result, activity attempts by outcome, instance starts, group commits, and
// the unfinished executions by status.
func TestMetrics(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	id := s.Submit("testing:fibo-workflow/workflow.fiboa", "[10, 3]")
	harness.JSONEq(t, s.Result(id, time.Minute), `{"ok":165}`)
	value := scrapeMetrics(t, s)
	checks := []struct {
		name   string
		labels map[string]string
		min    float64
	}{
		{"obelisk_executions_finished_total", map[string]string{"type": "workflow", "result": "ok"}, 1},
		{"obelisk_executions_finished_total", map[string]string{"type": "activity_wasm", "result": "ok"}, 3},
		{"obelisk_activity_attempts_total", map[string]string{"outcome": "ok"}, 3},
		{"obelisk_instance_start_seconds", map[string]string{"kind": "activity"}, 3},
		{"obelisk_instance_start_seconds", map[string]string{"kind": "workflow"}, 1},
		{"obelisk_store_group_commits_total", nil, 5},
		{"obelisk_store_commit_seconds", nil, 5},
	}
	for _, c := range checks {
		if v := value(c.name, c.labels); v < c.min {
			t.Errorf("%s%v = %v, want at least %v", c.name, c.labels, v, c.min)
		}
	}
	// Every supervised service has its restart counter from the start; none restarted.
	for _, service := range []string{"timers", "delays", "canceller", "keepalives", "executor:fibo_workflow"} {
		if v := value("obelisk_supervisor_restarts_total", map[string]string{"service": service}); v != 0 {
			t.Errorf("%s restarted %v times", service, v)
		}
	}
	if v := value("obelisk_executions", map[string]string{"status": "locked"}); v != 0 {
		t.Errorf("%v executions locked after everything finished", v)
	}
	value("obelisk_workflow_instances_resident", nil)
}

// scrapeMetrics reads the server's /metrics once and returns a lookup of one value
// (harness.Server.Metrics) that fails the test if there is none.
func scrapeMetrics(t *testing.T, s *harness.Server) func(name string, labels map[string]string) float64 {
	t.Helper()
	lookup := s.Metrics()
	return func(name string, labels map[string]string) float64 {
		t.Helper()
		v, ok := lookup(name, labels)
		if !ok {
			t.Fatalf("no %s with labels %v", name, labels)
		}
		return v
	}
}
