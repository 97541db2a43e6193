package wasmhost

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
)

// With a compilation cache, Compile leaves the module's code unloaded; the first
// instances (here several at once, both kinds) load it once, from the cache, and run as
// usual. A module closed before its first use makes no instance.
func TestCodeLoadedOnFirstUse(t *testing.T) {
	ctx := context.Background()
	logs := &captureHandler{}
	rt, err := NewRuntime(ctx, Config{CacheDir: filepath.Join(t.TempDir(), "cache"), Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	m, err := rt.Compile(ctx, "guest", guestWasm)
	if err != nil {
		t.Fatal(err)
	}
	if m.compiled != nil {
		t.Fatal("the code is loaded after Compile, before any instance")
	}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg := wfConfig(1)
			if i%2 == 1 {
				cfg = InstanceConfig{Kind: KindActivity}
			}
			inst, err := m.Instantiate(ctx, cfg)
			if err != nil {
				errs[i] = err
				return
			}
			defer inst.Close(ctx)
			out, err := inst.Run(ctx, RunInput{FFQN: "test:guest/api.echo", Params: []byte(`[1]`), ExecutionID: "E_TEST", Attempt: 1})
			if err == nil && string(out) != `{"ok":1}` {
				err = errors.New("echo answered " + string(out))
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	loads := 0
	logs.mu.Lock()
	for _, r := range logs.records {
		if r.Message == "wasmhost: loaded module on first use" {
			loads++
		}
	}
	logs.mu.Unlock()
	if loads != 1 {
		t.Errorf("the code was loaded %d times, want once", loads)
	}

	idle, err := rt.Compile(ctx, "idle", guestWasm)
	if err != nil {
		t.Fatal(err)
	}
	if err := idle.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := idle.Instantiate(ctx, wfConfig(1)); !errors.Is(err, errModuleClosed) {
		t.Fatalf("Instantiate of a closed module: %v", err)
	}
}
