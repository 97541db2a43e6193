package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/test/harness"
)

// TestMemoryBudget: under a guest memory budget of 300 MiB and a limit of 128 MiB per
// alloc activity, six concurrent activities using 100 MiB each all finish (at most two
// run at once), the server's peak RSS stays within the budget plus a base, and an
// activity growing past its limit fails with the limit named.
func TestMemoryBudget(t *testing.T) {
	const (
		budget = 300 << 20
		// base: what the server holds without the guests' memory (the start-up peak of
		// compiling the components is most of it), and generously so.
		base = 400 << 20
	)
	wasm := harness.BuildComponent(t, "test/e2e/testdata/alloc-activity")
	s := harness.Start(t, harness.Options{Deployment: fmt.Sprintf(`
[[activity_wasm]]
name = "alloc"
location.path = %q
memory_limit = "128MiB"
max_retries = 0
exec.lock_expiry = "60s"
exec.max_concurrency = 10

[wasm]
memory_budget = "%dMiB"
`, wasm, budget>>20)})
	const fn = "testing:alloc-activity/alloc.alloc"

	before, err := s.PeakRSS()
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 6)
	for i := range ids {
		ids[i] = s.Submit(fn, "[100, 300]")
	}
	var wg sync.WaitGroup
	results := make([]string, len(ids))
	for i, id := range ids {
		wg.Go(func() { results[i] = s.Result(id, 3*time.Minute) })
	}
	wg.Wait()
	for _, r := range results {
		harness.JSONEq(t, r, `{"ok":100}`)
	}
	peak, err := s.PeakRSS()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("peak RSS %d MiB (%d MiB before the activities)", peak>>20, before>>20)
	if peak > budget+base {
		t.Errorf("peak RSS %d MiB over the budget (%d MiB) + a base of %d MiB", peak>>20, budget>>20, base>>20)
	}

	over := s.Result(s.Submit(fn, "[200, 0]"), 3*time.Minute)
	if !strings.Contains(over, "memory limit of 128 MiB reached") {
		t.Errorf("allocating past the limit: %s, want the memory limit named", over)
	}
	t.Logf("past the limit: %s", over)
}

// TestMemorySettingsRefusedAtStart: the server refuses to start, naming the component,
// when a module's declared minimum memory is over its memory_limit, and when an
// activity's memory_limit is over the memory budget (its attempts could never run).
func TestMemorySettingsRefusedAtStart(t *testing.T) {
	fibo := filepath.Join(harness.ComponentsDir(), "fibo.wasm")
	for _, tc := range []struct{ extra, want string }{
		{`memory_limit = "64KiB"`, `component "fibo": wasmhost: module "fibo": declares a minimum memory of`},
		{"memory_limit = \"512MiB\"\n[wasm]\nmemory_budget = \"256MiB\"", `component "fibo": memory limit of 512 MiB is over the guest memory budget of 256 MiB`},
	} {
		dir := t.TempDir()
		config := filepath.Join(dir, "obelisk.toml")
		text := fmt.Sprintf("data_dir = %q\n[api]\nlistening_addr = %q\n[webui]\nlistening_addr = \"off\"\n[[activity_wasm]]\nname = \"fibo\"\nlocation.path = %q\n%s\n",
			filepath.Join(dir, "data"), harness.FreeAddr(t), fibo, tc.extra)
		if err := os.WriteFile(config, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		out, err := exec.CommandContext(ctx, harness.Binary(), "server", "run", "--config", config).CombinedOutput()
		timedOut := ctx.Err() != nil
		cancel()
		if err == nil || timedOut || !strings.Contains(string(out), tc.want) {
			t.Errorf("%s: server run = %v, output:\n%s\nwant it refused with %q", tc.extra, err, out, tc.want)
		}
	}
}
