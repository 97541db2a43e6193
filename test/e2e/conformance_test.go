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
}
