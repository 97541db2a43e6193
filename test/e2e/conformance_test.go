package e2e

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/obelisk-go/obelisk/test/conformance"
	"github.com/obelisk-go/obelisk/test/harness"
)

// TestConformance runs the join set scripts of test/conformance/testdata in the engine,
// each as one execution of the conformance workflow, and checks that they observe what
// is recorded there, which the SDK's TestHost observes too (test/conformance).
func TestConformance(t *testing.T) {
	o := stubOptions(t, false)
	o.ExtraWorkflows = map[string]string{"conformance": "test/conformance/workflow"}
	s := harness.Start(t, o)
	datadriven.Walk(t, "../conformance/testdata", func(t *testing.T, path string) {
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			if d.Cmd != "run" {
				t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
			}
			params, err := json.Marshal([]string{d.Input})
			if err != nil {
				t.Fatal(err)
			}
			id := s.Submit(conformance.ScriptFFQN, string(params))
			var result struct {
				Ok *string `json:"ok"`
			}
			out := s.Result(id, 2*time.Minute)
			if err := json.Unmarshal([]byte(out), &result); err != nil || result.Ok == nil {
				t.Fatalf("%s: the script's execution %s: %s %v", d.Pos, id, out, err)
			}
			return *result.Ok
		})
	})

	// What the scripts cannot see: a child submitted with its own retry policy records
	// it in its created event, and every attempt's locked event applies it.
	t.Run("a child's retry policy is recorded", func(t *testing.T) {
		script := "create\nraw submit {\"join_set\":\"g:1\",\"ffqn\":\"testing:fibo/fibo.fibo\",\"params\":[10],\"retry\":{\"max_retries\":7,\"retry_exp_backoff_ms\":20,\"retry_jitter\":0.5}}\nnext g:1\n"
		params, _ := json.Marshal([]string{script})
		id := s.Submit(conformance.ScriptFFQN, string(params))
		s.Result(id, 2*time.Minute)
		want := `{"max_retries":7,"unlimited":false,"retry_exp_backoff_ms":20,"retry_jitter":0.5}`
		checked := 0
		for _, ev := range s.Events(id + ".g:1_1") {
			if ev.Kind != "created" && ev.Kind != "locked" {
				continue
			}
			checked++
			var d struct {
				Retry json.RawMessage `json:"retry"`
			}
			if err := json.Unmarshal([]byte(ev.DetailsJson), &d); err != nil {
				t.Fatal(err)
			}
			harness.JSONEq(t, string(d.Retry), want)
		}
		if checked < 2 {
			t.Fatalf("%d created and locked events, want at least 2", checked)
		}
	})
}
