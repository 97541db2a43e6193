package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/test/harness"
)

// runServerExpectingFailure starts `obelisk server run` on a config and returns its exit
// code and stderr; it fails the test if the server is still up after a minute.
func runServerExpectingFailure(t *testing.T, toml string) (int, string) {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "obelisk.toml")
	if err := os.WriteFile(cfg, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	return runConfigExpectingFailure(t, cfg)
}

// runConfigExpectingFailure starts `obelisk server run --config cfg ARGS...` and returns
// its exit code and stderr; it fails the test if the server is still up after a minute.
func runConfigExpectingFailure(t *testing.T, cfg string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(harness.Binary(), append([]string{"server", "run", "--config", cfg}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			t.Fatalf("server exited with %v, want a non-zero status; stderr:\n%s", err, stderr.String())
		}
		return exit.ExitCode(), stderr.String()
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("the server started; stderr:\n%s", stderr.String())
	}
	return 0, ""
}

// A workflow module deployed as an activity is refused at start-up, naming the component
// and what it imports, rather than failing each of its calls at run time.
func TestActivityImportingFunctionsRefused(t *testing.T) {
	t.Parallel()
	addr := harness.FreeAddr(t)
	code, stderr := runServerExpectingFailure(t, fmt.Sprintf(`
data_dir = %q
[api]
listening_addr = %q
[webui]
listening_addr = "off"
[[activity_wasm]]
name = "fibo"
location.path = %q
[[activity_wasm]]
name = "not_an_activity"
location.path = %q
`, filepath.Join(t.TempDir(), "data"), addr, filepath.Join(harness.ComponentsDir(), "fibo.wasm"),
		filepath.Join(harness.ComponentsDir(), "fibo-workflow.wasm")))
	const want = `component "not_an_activity": an activity cannot call other components, but its WIT imports testing:fibo/fibo.fibo (is it a workflow? deploy it as a [[workflow]])`
	if code == 0 || !strings.Contains(stderr, want) {
		t.Fatalf("exit %d, stderr:\n%s\nwant it to contain %q", code, stderr, want)
	}
}

// compiledModules parses the server's "compiled module" log lines: module name ->
// from_cache. It fails the test on a module logged twice or a line without its fields.
func compiledModules(t *testing.T, log string) map[string]string {
	t.Helper()
	modules := map[string]string{}
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, `msg="wasmhost: compiled module"`) {
			continue
		}
		fields := map[string]string{}
		for _, f := range strings.Fields(line) {
			if k, v, ok := strings.Cut(f, "="); ok {
				fields[k] = v
			}
		}
		name := fields["module"]
		if name == "" || fields["bytes"] == "" || fields["bytes"] == "0" || fields["took"] == "" {
			t.Fatalf("compiled module line without module, bytes or took: %s", line)
		}
		if _, err := time.ParseDuration(fields["took"]); err != nil {
			t.Fatalf("took in %s: %v", line, err)
		}
		if _, dup := modules[name]; dup {
			t.Fatalf("module %s logged twice:\n%s", name, log)
		}
		modules[name] = fields["from_cache"]
	}
	return modules
}

// A start logs one line per module compiled, saying whether its code came from the
// compilation cache: compiled on the first start with an empty cache, from the cache on
// the next.
func TestStartLogsEveryModule(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{CacheDir: t.TempDir()})
	deployed := []string{"fibo", "sleep", "http", "flaky", "fibo_workflow", "sleep_workflow", "http_workflow", "tree", "fibo_webhook"}
	check := func(fromCache string) {
		t.Helper()
		got := compiledModules(t, s.Log())
		if len(got) != len(deployed) {
			t.Fatalf("compiled modules logged: %v, want %v", got, deployed)
		}
		for _, name := range deployed {
			if got[name] != fromCache {
				t.Errorf("module %s: from_cache=%q, want %s", name, got[name], fromCache)
			}
		}
	}
	check("false")
	s.Stop()
	s.Start()
	check("true")
}
