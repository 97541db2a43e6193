package actors

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/events"
	"github.com/obelisk-go/obelisk/verify"
	"github.com/obelisk-go/obelisk/wasmstore"
)

// TestOpenOffline: the offline engine of a stopped engine's data directory replays
// every workflow execution against the version it is pinned to (here fiboa of
// fibo-workflow, although fibo-workflow-v2, whose fiboa calls other children, is the
// newest exporter), compiling only those versions; it cannot open a store in use; and a
// version whose file is gone fails the replays of its executions only, naming the file.
func TestOpenOffline(t *testing.T) {
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	mods, err := NewModules(ctx, Config{CacheDir: t.TempDir(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer mods.Close(ctx)
	data := t.TempDir()
	wf := func(name string) ComponentConfig {
		return ComponentConfig{Name: name, Type: Workflow, Path: builtComponent(t, name), LockExpiry: time.Minute, MaxConcurrency: 4, BlockingStrategy: Interrupt}
	}
	e, err := New(ctx, Config{DataDir: data, Logger: quiet, Modules: mods, Components: []ComponentConfig{
		{Name: "fibo", Type: ActivityWasm, Path: builtComponent(t, "fibo"), LockExpiry: time.Minute, MaxConcurrency: 4},
		wf("fibo-workflow"), wf("fibo-workflow-v2")}})
	if err != nil {
		t.Fatal(err)
	}
	onV1 := submitFinished(t, e, "testing:fibo-workflow/workflow.fiboa", "[5, 2]", "fibo-workflow")
	onV2 := submitFinished(t, e, "testing:fibo-workflow/workflow.fiboa", "[5, 2]", "fibo-workflow-v2")
	v1 := e.reg.byName["fibo-workflow"]
	serverFiboa := e.reg.byFFQN["testing:fibo-workflow/workflow.fiboa"].Component.Config.Name

	offline := Config{DataDir: data, Logger: quiet, Modules: mods}
	if o, err := OpenOffline(ctx, offline); !errors.Is(err, events.ErrLocked) {
		if o != nil {
			o.Close(ctx)
		}
		t.Fatalf("offline engine on a running engine's store: %v, want ErrLocked", err)
	}
	if err := e.Close(ctx); err != nil {
		t.Fatal(err)
	}

	check := func() (verify.Report, []verify.Failure) {
		t.Helper()
		o, err := OpenOffline(ctx, offline)
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close(ctx)
		// fiboa's newest exporter is the one the server had (declared later), not the
		// first by component ID.
		const fiboa = "testing:fibo-workflow/workflow.fiboa"
		if got, want := o.reg.byFFQN[fiboa].Component.Config.Name, serverFiboa; got != want {
			t.Errorf("offline registry: %s exported by %s, the server's by %s", fiboa, got, want)
		}
		// Only the pinned workflows' modules are compiled; the activity's never runs.
		if o.reg.byName["fibo"] == nil || o.reg.byName["fibo"].module != nil || o.reg.byName["fibo-workflow-v2"].module == nil {
			t.Errorf("offline registry: fibo %+v, fibo-workflow-v2 %+v", o.reg.byName["fibo"], o.reg.byName["fibo-workflow-v2"])
		}
		var failures []verify.Failure
		rep, err := o.Verify(ctx, func(f verify.Failure) error {
			failures = append(failures, f)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return rep, failures
	}
	rep, failures := check()
	if !rep.ReplayAvailable || rep.Workflows != 2 || rep.Replayed != 2 || len(failures) != 0 {
		t.Fatalf("offline verify: %+v, failures %+v", rep, failures)
	}

	file, _ := wasmstore.OpenReadOnly(filepath.Join(data, wasmstore.DirName)).Path(v1.Digest)
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	rep, failures = check()
	if rep.Replayed != 2 || len(failures) != 1 {
		t.Fatalf("offline verify without v1's file: %+v, failures %+v", rep, failures)
	}
	if f := failures[0]; f.ExecutionID != onV1 || f.Check != verify.CheckReplay || !strings.Contains(f.Error, v1.ID) || !strings.Contains(f.Error, filepath.Base(file)) {
		t.Errorf("offline verify without v1's file: %+v, want a replay failure of %s naming %s (%s is v2's)", f, onV1, filepath.Base(file), onV2)
	}

	// A server that no longer deploys v1 does not keep it (its one execution has
	// finished): v1's execution is not replayable, which verify counts neither replayed
	// nor failed, online and offline; v2's replays.
	e, err = New(ctx, Config{DataDir: data, Logger: quiet, Modules: mods, Components: []ComponentConfig{
		{Name: "fibo", Type: ActivityWasm, Path: builtComponent(t, "fibo"), LockExpiry: time.Minute, MaxConcurrency: 4},
		wf("fibo-workflow-v2")}})
	if err != nil {
		t.Fatal(err)
	}
	if e.reg.byID[v1.ID] != nil || e.unavailable[v1.ID] != nil {
		t.Fatalf("the server without v1 keeps it: %v, %v", e.reg.byID[v1.ID], e.unavailable[v1.ID])
	}
	var online []verify.Failure
	rep, err = e.Verify(ctx, func(f verify.Failure) error {
		online = append(online, f)
		return nil
	})
	if err != nil || rep.Workflows != 2 || rep.Replayed != 1 || len(online) != 0 {
		t.Fatalf("online verify without v1: %+v (%v), failures %+v", rep, err, online)
	}
	if err := e.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if rep, failures = check(); rep.Workflows != 2 || rep.Replayed != 1 || len(failures) != 0 {
		t.Fatalf("offline verify without v1 kept: %+v, failures %+v", rep, failures)
	}
}
