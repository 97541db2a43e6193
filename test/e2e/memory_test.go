package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
	"github.com/obelisk-go/obelisk/test/harness"
)

// TestMemoryBudget: under a guest memory budget of 300 MiB and a limit of 128 MiB per
// alloc activity, six concurrent activities using 100 MiB each all finish with
// max_retries = 0 (the budget counts what they hold: they start together and wait for
// one another's memory as they grow, and a run that gives way for want of memory is
// retried without counting as a failed attempt), the server's peak RSS stays within the
// budget plus a base, and an activity growing past its limit fails with the limit named.
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
	retried := 0
	for _, id := range ids {
		for _, e := range s.Events(id) {
			if e.Kind == "unlocked" && strings.Contains(e.DetailsJson, "guest memory budget") {
				retried++
			}
		}
	}
	t.Logf("%d runs gave way for want of memory and were retried", retried)
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
// activity's or a workflow's memory_limit is over the memory budget (an instance growing
// to its limit would wait for room that can never be).
func TestMemorySettingsRefusedAtStart(t *testing.T) {
	t.Parallel()
	fibo := filepath.Join(harness.ComponentsDir(), "fibo.wasm")
	tree := filepath.Join(harness.ComponentsDir(), "tree.wasm")
	for _, tc := range []struct{ extra, want string }{
		{`memory_limit = "64KiB"`, `component "fibo": wasmhost: module "fibo": declares a minimum memory of`},
		{"memory_limit = \"512MiB\"\n[wasm]\nmemory_budget = \"256MiB\"", `component "fibo": memory limit of 512 MiB is over the guest memory budget of 256 MiB`},
		{fmt.Sprintf("[[workflow]]\nname = \"tree\"\nlocation.path = %q\nmemory_limit = \"512MiB\"\n[wasm]\nmemory_budget = \"256MiB\"", tree),
			`component "tree": memory limit of 512 MiB is over the guest memory budget of 256 MiB`},
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

// TestWorkflowMemoryBudget: workflow instances count in the guest memory budget too, at
// what they hold. A tree of 40 workflows (depth 3, fanout 3) whose 27 leaves call an
// activity, and a workflow fanning out 30 activities beside it, need far more than a
// budget of 64 MiB to hold all their instances at once (4-6 MiB each); parents parked
// in memory waiting for their children are evicted for them (and replayed), so both
// finish with the right result instead of deadlocking, and the memory in use (the
// obelisk_guest_memory_bytes gauge) never passes the budget.
func TestWorkflowMemoryBudget(t *testing.T) {
	t.Parallel()
	const budget = 64 << 20
	limits := map[string]string{}
	for _, c := range []string{"fibo", "sleep", "http", "flaky", "fibo_workflow", "sleep_workflow", "http_workflow", "tree"} {
		limits[c] = "memory_limit = \"48MiB\"\n"
	}
	for _, strategy := range []string{"await", "interrupt"} {
		t.Run(strategy, func(t *testing.T) {
			s := harness.Start(t, harness.Options{BlockingStrategy: strategy, ExtraTOML: limits,
				Deployment: fmt.Sprintf("[wasm]\nmemory_budget = \"%dMiB\"\n", budget>>20)})
			peak, stop := watchGauge(t, s, "obelisk_guest_memory_bytes")
			tree := s.Submit("testing:tree/tree.spawn", "[3, 3, 20]")
			fan := s.Submit("testing:fibo-workflow/workflow.fiboa-concurrent", "[10, 30]")
			harness.JSONEq(t, s.Result(tree, 5*time.Minute), `{"ok":27}`)
			harness.JSONEq(t, s.Result(fan, 5*time.Minute), `{"ok":1650}`)
			stop()
			t.Logf("peak guest memory in use: %.1f MiB of %d MiB", float64(*peak)/(1<<20), budget>>20)
			if *peak > budget {
				t.Errorf("guest memory in use peaked at %d bytes, over the budget of %d", *peak, budget)
			}
			if *peak == 0 {
				t.Error("the gauge never showed guest memory in use")
			}
			if strategy != "await" {
				return
			}
			// Under the await strategy the parents wait in memory, and the tree's 40
			// workflows do not fit: some must have been evicted for their children.
			evicted := 0
			for _, id := range append([]string{tree}, ids(descendants(t, s, tree))...) {
				for _, e := range s.Events(id) {
					if e.Kind == "unlocked" && strings.Contains(e.DetailsJson, "evicted from memory") {
						evicted++
					}
				}
			}
			t.Logf("%d workflow instances of the tree evicted from memory", evicted)
			if evicted == 0 {
				t.Error("no parent of the tree was evicted from memory to make room for its children")
			}
		})
	}
}

func ids(sums []*pb.ExecutionSummary) []string {
	out := make([]string, len(sums))
	for i, e := range sums {
		out[i] = e.ExecutionId
	}
	return out
}

// watchGauge samples the gauge name of s's /metrics until stop is called, and keeps its
// largest value in *peak (read it after stop).
func watchGauge(t *testing.T, s *harness.Server, name string) (peak *int64, stop func()) {
	t.Helper()
	peak = new(int64)
	done, stopped := make(chan struct{}), make(chan struct{})
	sample := func() {
		resp, err := http.Get(s.URL + "/metrics")
		if err != nil {
			return
		}
		defer resp.Body.Close()
		parser := expfmt.NewTextParser(model.UTF8Validation)
		families, err := parser.TextToMetricFamilies(resp.Body)
		if f, ok := families[name]; err == nil && ok && len(f.Metric) == 1 {
			*peak = max(*peak, int64(f.Metric[0].Gauge.GetValue()))
		}
	}
	go func() {
		defer close(stopped)
		for {
			sample()
			select {
			case <-done:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return peak, func() { close(done); <-stopped }
}
