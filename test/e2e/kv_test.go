package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/test/harness"
)

// submitCLI submits ffqn with params through the CLI, follows it to its end and returns
// its result and the exit code.
func submitCLI(t *testing.T, s *harness.Server, ffqn, params string) (string, int) {
	t.Helper()
	out, errOut, code := s.CLI("execution", "submit", "--follow", "--json", ffqn, params)
	var doc struct {
		Status string          `json:"status"`
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || doc.Status != "finished" {
		t.Fatalf("submit %s %s: exit %d, output %q (%v), stderr %s", ffqn, params, code, out, err, errOut)
	}
	return string(doc.Result), code
}

// TestKV (contract): the built-in KV store's functions submitted from the CLI; a config
// bucket answers get and refuses writes; an activity reads and writes it directly, in
// the same store.
func TestKV(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	settings := filepath.Join(dir, "settings.toml")
	if err := os.WriteFile(settings, []byte("greeting = \"hello\"\n[db]\nport = 5432\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	activity := harness.BuildComponent(t, "test/e2e/testdata/kv-activity")
	s := harness.Start(t, harness.Options{Deployment: fmt.Sprintf(`
[[kv_config]]
bucket = "settings"
location.path = %q

[[activity_wasm]]
name = "kv_activity"
location.path = %q
`, settings, activity)})

	if res, code := submitCLI(t, s, "obelisk:kv/store.set", `["bucket","key","value"]`); code != 0 {
		t.Fatalf("set: exit %d, result %s", code, res)
	}
	res, code := submitCLI(t, s, "obelisk:kv/store.get", `["bucket","key"]`)
	if code != 0 || !strings.Contains(res, `"value"`) {
		t.Fatalf("get: exit %d, result %s, want the value", code, res)
	}
	harness.JSONEq(t, res, `{"ok":"value"}`)
	res, _ = submitCLI(t, s, "obelisk:kv/store.get", `["bucket","nothing"]`)
	harness.JSONEq(t, res, `{"ok":null}`)

	// The config bucket.
	res, _ = submitCLI(t, s, "obelisk:kv/store.get", `["settings","db.port"]`)
	harness.JSONEq(t, res, `{"ok":"5432"}`)
	res, code = submitCLI(t, s, "obelisk:kv/store.set", `["settings","greeting","bye"]`)
	if code != 1 || !strings.Contains(res, `"read_only"`) || !strings.Contains(res, "settings.toml") {
		t.Errorf("set of a config key: exit %d, result %s; want exit 1 and a read_only error naming the file", code, res)
	}
	res, _ = submitCLI(t, s, "obelisk:kv/store.get", `["settings","greeting"]`)
	harness.JSONEq(t, res, `{"ok":"hello"}`)

	// From an activity, directly; what it writes is what the component reads.
	res, _ = submitCLI(t, s, "testing:kv-activity/activity.set-get", `["b2","k","from the activity"]`)
	harness.JSONEq(t, res, `{"ok":"from the activity"}`)
	res, _ = submitCLI(t, s, "obelisk:kv/store.get", `["b2","k"]`)
	harness.JSONEq(t, res, `{"ok":"from the activity"}`)
	res, _ = submitCLI(t, s, "testing:kv-activity/activity.try-set", `["settings","greeting","bye"]`)
	if !strings.Contains(res, `read_only: bucket \"settings\" is read-only`) {
		t.Errorf("activity's write to a config bucket: %s", res)
	}

	// Bad input is refused before anything is stored.
	if _, errOut, code := s.CLI("execution", "submit", "obelisk:kv/store.set", `["bucket","key"]`); code == 0 || !strings.Contains(errOut, "param") {
		t.Errorf("set with a missing param: exit %d, stderr %s", code, errOut)
	}
	// The component is listed like any other.
	if out, _, code := s.CLI("component", "list"); code != 0 || !strings.Contains(out, "obelisk_kv") {
		t.Errorf("component list: exit %d, output %s", code, out)
	}
}

// TestKVCounterSurvivesKill: a workflow counting to 100 in KV by get and
// compare-and-set, killed (SIGKILL) in the middle, ends with the exact count, under
// both blocking strategies.
func TestKVCounterSurvivesKill(t *testing.T) {
	for _, strategy := range []string{"await", "interrupt"} {
		t.Run(strategy, func(t *testing.T) {
			s := harness.Start(t, harness.Options{BlockingStrategy: strategy,
				ExtraWorkflows: map[string]string{"kv_workflow": "test/e2e/testdata/kv-workflow"}})
			id := s.Submit("testing:kv-workflow/workflow.increment", `["counters","n",100]`)
			waitUntil(t, 2*time.Minute, func() bool { return len(s.Events(id)) > 60 })
			s.Kill()
			s.Start()
			harness.JSONEq(t, s.Result(id, 3*time.Minute), `{"ok":100}`)
			get := s.Submit("obelisk:kv/store.get", `["counters","n"]`)
			harness.JSONEq(t, s.Result(get, time.Minute), `{"ok":"100"}`)
		})
	}
}
