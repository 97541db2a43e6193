package e2e

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/test/harness"
)

// TestBlockingStrategiesAgree runs the same workflows under the await and the interrupt
// blocking strategies (and, for await, with no room to stay resident, which evicts to
// replay, with plainly initialised instances instead of restored ones, and, for
// interrupt, resuming from a memory snapshot at every wait instead of replaying): the
// histories they record must be identical, up to times and run IDs.
func TestBlockingStrategiesAgree(t *testing.T) {
	t.Parallel()
	workload := []struct{ ffqn, params string }{
		{"testing:fibo-workflow/workflow.fiboa", "[8, 6]"},
		{"testing:fibo-workflow/workflow.fibow", "[20, 4]"},
		{"testing:sleep-workflow/workflow.sleep-activity", "[20]"},
		{"testing:fibo-workflow/workflow.fiboa-concurrent", "[5, 4]"},
		{"testing:sleep-workflow/workflow.sleep-then-call", "[50, 10]"},
	}
	settings := []struct {
		name string
		opts harness.Options
	}{
		{"await", harness.Options{BlockingStrategy: "await"}},
		{"interrupt", harness.Options{BlockingStrategy: "interrupt"}},
		{"await, nothing resident", harness.Options{BlockingStrategy: "await", Workflows: "max_resident = 0"}},
		{"interrupt, memory snapshots at every wait", harness.Options{BlockingStrategy: "interrupt", Workflows: "snapshot_every = 1"}},
		{"await, no snapshots (every instance runs _initialize)", harness.Options{BlockingStrategy: "await",
			Deployment: "[wasm]\nworkflow_snapshots = false\nactivity_snapshots = false\ninstance_reuse = false\n"}},
	}
	var reference [][]string
	for _, setting := range settings {
		s := harness.Start(t, setting.opts)
		var histories [][]string
		for _, w := range workload {
			id := s.Submit(w.ffqn, w.params)
			res := s.Result(id, time.Minute)
			if !strings.HasPrefix(res, `{"ok"`) {
				t.Fatalf("%s: %s %s = %s", setting.name, w.ffqn, w.params, res)
			}
			histories = append(histories, normalizedHistory(t, s, id))
		}
		if reference == nil {
			reference = histories
			continue
		}
		if !reflect.DeepEqual(histories, reference) {
			t.Fatalf("%s recorded a different history than %s:\n%v\nvs\n%v", setting.name, settings[0].name, histories, reference)
		}
	}
}

// normalizedHistory keeps what the workflow's code decides: history events with their join
// sets, child IDs (relative to the execution) and parameters, and the result.
func normalizedHistory(t *testing.T, s *harness.Server, id string) []string {
	var out []string
	for _, e := range s.Events(id) {
		if !strings.HasPrefix(e.Kind, "history.") && e.Kind != "finished" {
			continue
		}
		var d map[string]any
		if err := json.Unmarshal([]byte(e.DetailsJson), &d); err != nil {
			t.Fatal(err)
		}
		delete(d, "run_expires_at")
		delete(d, "expires_at") // a delay's expiry: when it was requested + its duration
		if c, ok := d["child_execution_id"].(string); ok {
			d["child_execution_id"] = strings.TrimPrefix(c, id)
		}
		if c, ok := d["delay_id"].(string); ok {
			d["delay_id"] = strings.TrimPrefix(c, "Delay_"+strings.TrimPrefix(id, "E_"))
		}
		b, _ := json.Marshal(d)
		out = append(out, fmt.Sprintf("%s %s", e.Kind, b))
	}
	return out
}
