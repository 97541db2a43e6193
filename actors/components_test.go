package actors

import (
	"cmp"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/wasmhost"
)

// builtComponent is the path of a test component built by `make build` (or in
// OBELISK_COMPONENTS, as `make test` sets it); the test is skipped without it.
func builtComponent(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(cmp.Or(os.Getenv("OBELISK_COMPONENTS"), filepath.Join("..", "build", "components")), name+".wasm")
	if _, err := os.Stat(p); err != nil {
		t.Skipf("%s is not built (make build): %v", p, err)
	}
	return p
}

// An activity whose instance cannot be made (here: its memory limit is the module's
// declared minimum, 48 pages, so the Go runtime's _initialize runs out of memory; a
// smaller limit would be refused at New) fails each attempt with the real reason,
// recorded in the execution, instead of holding the lock until it expires and ending
// "timed out".
func TestInstantiateFailureFailsTheAttempt(t *testing.T) {
	ctx := context.Background()
	e, err := New(ctx, Config{
		DataDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Components: []ComponentConfig{{
			Name: "fibo", Type: ActivityWasm, Path: builtComponent(t, "fibo"), MemoryLimit: 48 * 65536,
			MaxRetries: 1, RetryExpBackoff: time.Millisecond, LockExpiry: time.Hour, MaxConcurrency: 1,
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	id, _, err := e.Submit(ctx, "", "testing:fibo/fibo.fibo", []byte("[3]"))
	if err != nil {
		t.Fatal(err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 2*time.Minute) // far less than the lock expiry
	defer cancel()
	st, err := e.WaitFinished(waitCtx, id)
	if err != nil {
		t.Fatalf("not finished: %v (state %v)", err, st)
	}
	const reason = `instantiating the activity: wasmhost: instantiating module "fibo": guest trapped: memory limit of 3 MiB reached`
	var res struct {
		Failure struct{ Kind, Reason string } `json:"execution_failure"`
	}
	if err := json.Unmarshal(st.GetResult(), &res); err != nil || res.Failure.Kind != "uncategorized" || !strings.HasPrefix(res.Failure.Reason, reason) {
		t.Fatalf("result %s (%v), want an uncategorized failure with %q", st.GetResult(), err, reason)
	}
	evs, err := e.store.Events(ctx, id, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var failed []string
	for _, ev := range evs {
		if f := ev.GetTemporarilyFailed(); f != nil {
			failed = append(failed, f.Reason)
		}
	}
	if len(failed) != 1 || !strings.HasPrefix(failed[0], reason) {
		t.Fatalf("failed attempts before the last: %q, want one with %q", failed, reason)
	}
}

// A bad allowed_hosts or denied_hosts entry given to the engine's API (the config
// loader refuses it earlier) stops New, naming the component and the entry.
func TestBadHTTPPolicyStopsNew(t *testing.T) {
	ctx := context.Background()
	_, err := New(ctx, Config{
		DataDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Components: []ComponentConfig{{
			Name: "fibo", Type: ActivityWasm, Path: builtComponent(t, "fibo"), AllowedHosts: []string{"*:*"}, DeniedHosts: []string{"10.0.0.0/40"},
			MaxRetries: 1, RetryExpBackoff: time.Millisecond, LockExpiry: time.Hour, MaxConcurrency: 1,
		}},
	})
	if want := `component "fibo": denied_hosts entry "10.0.0.0/40": bad CIDR`; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("New: %v, want an error containing %q", err, want)
	}
}

// Components compile several at once, but the error reported is that of the first
// component in the config's order that fails, whichever fails first in time.
func TestLoadComponentsReportsTheFirstFailureInOrder(t *testing.T) {
	ctx := context.Background()
	rt, err := wasmhost.NewRuntime(ctx, wasmhost.Config{CacheDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	fibo, workflow := builtComponent(t, "fibo"), builtComponent(t, "fibo-workflow")
	missing := filepath.Join(t.TempDir(), "missing.wasm")
	ok := func(name string) ComponentConfig { return ComponentConfig{Name: name, Type: ActivityWasm, Path: fibo} }
	// Fails after reading and parsing a module: later than a missing file.
	slowBad := ComponentConfig{Name: "slow_bad", Type: ActivityWasm, Path: workflow}
	fastBad := ComponentConfig{Name: "fast_bad", Type: ActivityWasm, Path: missing}
	cases := []struct {
		cfgs []ComponentConfig
		want string
	}{
		{[]ComponentConfig{slowBad, fastBad}, `component "slow_bad": an activity cannot call other components`},
		{[]ComponentConfig{ok("a"), slowBad, fastBad, ok("b")}, `component "slow_bad": an activity cannot call other components`},
		{[]ComponentConfig{fastBad, slowBad}, `component "fast_bad": open ` + missing},
		{[]ComponentConfig{ok("a"), ok("a")}, `component "a": the name is used twice`},
	}
	for _, c := range cases {
		_, err := loadComponents(ctx, runtimeCompiler{rt}, c.cfgs)
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("err = %v, want one starting with %q", err, c.want)
		}
	}
}
