package actors

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"
)

// TestUnfinishedExecutionsPreloadTheirModules: after a restart, the module of a
// component that an unfinished execution is pinned to has its code loaded from the
// start (wasmhost.Preload), before anything runs; a module nothing needs is left
// unloaded until its first use.
func TestUnfinishedExecutionsPreloadTheirModules(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	open := func() *Engine {
		wf := func(name string) ComponentConfig {
			return ComponentConfig{Name: name, Type: Workflow, Path: builtComponent(t, name), LockExpiry: time.Minute, MaxConcurrency: 1, BlockingStrategy: Interrupt}
		}
		act := func(name string) ComponentConfig {
			return ComponentConfig{Name: name, Type: ActivityWasm, Path: builtComponent(t, name), LockExpiry: time.Minute, MaxConcurrency: 1}
		}
		e, err := New(ctx, Config{DataDir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Components: []ComponentConfig{wf("sleep-workflow"), wf("fibo-workflow"), act("sleep"), act("fibo")}})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	e := open()
	if e.reg.deployed("sleep-workflow").module.CodeLoaded() {
		t.Fatal("a module's code is loaded at the first start, with nothing to run")
	}
	if _, _, err := e.Submit(ctx, "", "testing:sleep-workflow/workflow.sleep-then-call", json.RawMessage("[3600000, 3]")); err != nil {
		t.Fatal(err)
	}
	e.Close(ctx)

	e = open()
	defer e.Close(ctx)
	if !e.reg.deployed("sleep-workflow").module.CodeLoaded() {
		t.Error("the module of an unfinished execution is not loaded at the restart")
	}
	for _, name := range []string{"fibo-workflow", "sleep", "fibo"} {
		if e.reg.deployed(name).module.CodeLoaded() {
			t.Errorf("the module of %s, which nothing needs, is loaded at the restart", name)
		}
	}
}
