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
	cmd := exec.Command(harness.Binary(), "server", "run", "--config", cfg)
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
