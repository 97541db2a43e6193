package conformance

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
)

func init() {
	obelisk.Export(ScriptFFQN, Run)
}

// TestTestHost runs the scripts of testdata in the SDK's TestHost; test/e2e runs them
// in the engine (TestConformance), and both must observe what testdata records.
func TestTestHost(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			if d.Cmd != "run" {
				t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
			}
			return runIn(t, simulatedHost(), d.Input)
		})
	})
}

// simulatedHost is a TestHost whose children behave as the e2e harness's components do
// (see the aliases): fibo and fail return at once, answer (an activity stub) and
// sleep (a child still running) have no result.
func simulatedHost() *obelisk.TestHost {
	return &obelisk.TestHost{Call: func(ffqn string, params json.RawMessage) (json.RawMessage, error) {
		switch ffqn {
		case FFQN("fibo"):
			var p [1]uint8
			if err := json.Unmarshal(params, &p); err != nil {
				return nil, &obelisk.HostError{Kind: obelisk.KindTypeCheck, Message: err.Error()}
			}
			a, b := uint64(0), uint64(1)
			for range p[0] {
				a, b = b, a+b
			}
			return json.RawMessage(fmt.Sprintf(`{"ok":%d}`, a)), nil
		case FFQN("fail"):
			return json.RawMessage(`{"err":{"permanent_failure":"this function always fails"}}`), nil
		case FFQN("answer"), FFQN("sleep"):
			return nil, nil
		}
		return nil, &obelisk.HostError{Kind: obelisk.KindFunctionNotFound, Message: ffqn}
	}}
}

// runIn runs script in host and returns what it observed.
func runIn(t testing.TB, host *obelisk.TestHost, script string) string {
	var result struct {
		Ok  *string `json:"ok"`
		Err *string `json:"err"`
	}
	out := host.Run(ScriptFFQN, script)
	if err := json.Unmarshal(out, &result); err != nil || result.Ok == nil {
		t.Fatalf("the script failed: %s %v", out, err)
	}
	return *result.Ok
}
