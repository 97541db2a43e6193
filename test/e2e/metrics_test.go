package e2e

import (
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/obelisk-go/obelisk/test/harness"
)

// TestMetrics: /metrics on the API port counts what the engine did: finished executions
// by type and result, activity attempts by outcome, instance starts, group commits, and
// the unfinished executions by status.
func TestMetrics(t *testing.T) {
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
	for _, service := range []string{"timers", "delays", "canceller", "executor:fibo_workflow"} {
		if v := value("obelisk_supervisor_restarts_total", map[string]string{"service": service}); v != 0 {
			t.Errorf("%s restarted %v times", service, v)
		}
	}
	if v := value("obelisk_executions", map[string]string{"status": "locked"}); v != 0 {
		t.Errorf("%v executions locked after everything finished", v)
	}
	value("obelisk_workflow_instances_resident", nil)
}

// scrapeMetrics reads the server's /metrics once and returns a lookup of one value: a
// counter's or a gauge's value, a histogram's sample count; the first series whose labels
// include labels. It fails the test if there is none.
func scrapeMetrics(t *testing.T, s *harness.Server) func(name string, labels map[string]string) float64 {
	t.Helper()
	resp, err := http.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return func(name string, labels map[string]string) float64 {
		t.Helper()
		f, ok := families[name]
		if !ok {
			t.Fatalf("no metric %s", name)
		}
	next:
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
					continue next
				}
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				return m.Counter.GetValue()
			case dto.MetricType_GAUGE:
				return m.Gauge.GetValue()
			case dto.MetricType_HISTOGRAM:
				return float64(m.Histogram.GetSampleCount())
			}
		}
		t.Fatalf("no %s with labels %v", name, labels)
		return 0
	}
}
