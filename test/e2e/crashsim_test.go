package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/obelisk-go/obelisk/test/harness"
)

// crashSimDoc is the part of `obelisk test crash-sim --json` the tests read.
type crashSimDoc struct {
	Commits    int             `json:"commits"`
	Result     json.RawMessage `json:"result"`
	Executions []struct {
		ID      string   `json:"id"`
		History []string `json:"history"`
	} `json:"executions"`
	Points []struct {
		K          int    `json:"k"`
		Commit     string `json:"commit"`
		Crashed    bool   `json:"crashed"`
		OK         bool   `json:"ok"`
		Difference string `json:"difference"`
	} `json:"points"`
	OK              bool `json:"ok"`
	FirstDifference int  `json:"first_difference"`
}

// examplesConfig is examples/obelisk.toml with its components where the tests built
// them.
func examplesConfig(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", "obelisk.toml"))
	if err != nil {
		t.Fatal(err)
	}
	toml := strings.ReplaceAll(string(b), `"../build/components/`, `"`+filepath.ToSlash(harness.ComponentsDir())+"/")
	path := filepath.Join(t.TempDir(), "obelisk.toml")
	if err := os.WriteFile(path, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// crashSim runs `obelisk test crash-sim --config config args...` as a process, with the
// data directory in a temporary folder and the test process's compilation cache.
func crashSim(t *testing.T, config string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(harness.Binary(), append([]string{"test", "crash-sim", "--config", config}, args...)...)
	cmd.Env = append(os.Environ(), "OBELISK_DATA_DIR="+filepath.Join(t.TempDir(), "data"), "OBELISK_CACHE_DIR="+harness.WasmCacheDir())
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("run crash-sim: %v", err)
	}
	return out.String(), errb.String(), code
}

// TestCrashSimExamples proves every example workflow of examples/obelisk.toml crash-safe
// with `obelisk test crash-sim`: the engine is crashed after each commit of a run and
// every recovery reaches the crash-free result and history.
func TestCrashSimExamples(t *testing.T) {
	t.Parallel()
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "hello") }))
	defer page.Close()
	config := examplesConfig(t)
	cases := []struct {
		name, ffqn, params string
		flags              []string
		result             string
		executions         int
	}{
		{"fibow", "testing:fibo-workflow/workflow.fibow", `[10, 2]`, nil, `{"ok":55}`, 1},
		{"fiboa", "testing:fibo-workflow/workflow.fiboa", `[10, 2]`, nil, `{"ok":110}`, 3},
		{"fiboa-concurrent", "testing:fibo-workflow/workflow.fiboa-concurrent", `[10, 2]`, nil, `{"ok":110}`, 3},
		{"sleep-activity", "testing:sleep-workflow/workflow.sleep-activity", `[10]`, nil, `{"ok":null}`, 2},
		// A durable sleep of an hour: shortened by --max-delay (10ms by default).
		{"sleep-durable", "testing:sleep-workflow/workflow.sleep-durable", `[3600000]`, nil, `{"ok":null}`, 1},
		{"sleep-then-call", "testing:sleep-workflow/workflow.sleep-then-call", `[3600000, 10]`, nil, `{"ok":55}`, 2},
		// The activity must win whatever the crash: the timeout keeps its length.
		{"race", "testing:sleep-workflow/workflow.race", `[10, 600000]`, []string{"--max-delay", "0"}, `{"ok":"activity"}`, 2},
		{"http-get", "testing:http-workflow/workflow.get", fmt.Sprintf(`[%q]`, page.URL), nil, `{"ok":"hello"}`, 2},
		{"tree", "testing:tree/tree.spawn", `[1, 2, 1]`, nil, `{"ok":2}`, 5},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			stdout, stderr, code := crashSim(t, config, append(append([]string{"--json"}, c.flags...), c.ffqn, c.params)...)
			if code != 0 {
				t.Fatalf("exit status %d, want 0\nstdout: %s\nstderr: %s", code, stdout, stderr)
			}
			var doc crashSimDoc
			if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
				t.Fatalf("--json output: %v\n%s", err, stdout)
			}
			harness.JSONEq(t, string(doc.Result), c.result)
			if len(doc.Executions) != c.executions {
				t.Errorf("%d executions in the tree, want %d", len(doc.Executions), c.executions)
			}
			if doc.Commits < 2 || len(doc.Points) != doc.Commits {
				t.Fatalf("%d commits, %d crash points: want a crash point per commit, and more than one", doc.Commits, len(doc.Points))
			}
			crashed := 0
			for _, p := range doc.Points {
				if !p.OK {
					t.Errorf("crash point %d [%s]: %s", p.K, p.Commit, p.Difference)
				}
				if p.Crashed {
					crashed++
				}
			}
			if crashed == 0 || !doc.OK {
				t.Errorf("%d crash points crashed, ok=%v: want crashes, all ok", crashed, doc.OK)
			}
		})
	}
}

// TestCrashSimCatchesCrashUnsafe: an activity whose result is its attempt number (flaky's
// fail-until(1) returns ok(N) at attempt N) is not crash-safe: a crash while it runs
// makes the recovery run it as attempt 2. The simulation reports that crash point as a
// difference, naming the result, and exits 1; the text output says so too.
func TestCrashSimCatchesCrashUnsafe(t *testing.T) {
	t.Parallel()
	config := examplesConfig(t)
	stdout, stderr, code := crashSim(t, config, "--json", "testing:flaky/flaky.fail-until", "[1]")
	if code != 1 {
		t.Fatalf("exit status %d, want 1\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	var doc crashSimDoc
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatalf("--json output: %v\n%s", err, stdout)
	}
	harness.JSONEq(t, string(doc.Result), `{"ok":1}`)
	if doc.OK || doc.FirstDifference == 0 {
		t.Fatalf("ok=%v, first difference %d: want the difference found", doc.OK, doc.FirstDifference)
	}
	first := doc.Points[doc.FirstDifference-1]
	if !first.Crashed || !strings.Contains(first.Commit, "locked") || !strings.Contains(first.Difference, `result {"ok":2}, the reference {"ok":1}`) {
		t.Errorf("first difference: %+v, want a crash after the lock, recovered with result ok(2)", first)
	}

	stdout, _, code = crashSim(t, config, "testing:flaky/flaky.fail-until", "[1]")
	if code != 1 || !strings.Contains(stdout, "DIFFERS: execution E_root: result") || !strings.Contains(stdout, "FAILED: 1 of ") {
		t.Errorf("text output (exit %d):\n%s\nwant the differing crash point and a FAILED summary", code, stdout)
	}
}

// TestCrashSimBadInput: an unknown function, parameters that do not type-check and a
// config that does not load exit 2, naming what is wrong.
func TestCrashSimBadInput(t *testing.T) {
	t.Parallel()
	config := examplesConfig(t)
	bad := filepath.Join(t.TempDir(), "bad.toml")
	if err := os.WriteFile(bad, []byte("[exec]\nlock_expiry = 5\n[[workflow]]\nname = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		config string
		args   []string
		want   string
	}{
		{config, []string{"testing:nothing/here.fn", "[]"}, "testing:nothing/here.fn"},
		{config, []string{"testing:fibo-workflow/workflow.fiboa", `["ten", 2]`}, "testing:fibo-workflow/workflow.fiboa"},
		{config, []string{"testing:fibo-workflow/workflow.fiboa", `[10,`}, "not JSON"},
		{bad, []string{"testing:fibo-workflow/workflow.fiboa", `[10, 2]`}, bad},
	} {
		stdout, stderr, code := crashSim(t, c.config, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("crash-sim %v: exit %d, stderr %q (stdout %q); want 2 and an error naming %q", c.args, code, stderr, stdout, c.want)
		}
	}
}
