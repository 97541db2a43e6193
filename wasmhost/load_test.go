package wasmhost

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/obelisk-go/obelisk/wasmstore"
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

// An unused module does not keep its bytes, nor its variant's data segments, in memory:
// its first instance reads the bytes back from the copy Compile wrote into the cache dir, and refuses a copy that changed
// (naming it) rather than run something other than what Compile checked. Once the copy
// is right again, the module loads.
func TestCodeLoadedFromTheModulesCopy(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "cache")
	rt, err := NewRuntime(ctx, Config{CacheDir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	m, err := rt.Compile(ctx, "guest", guestWasm)
	if err != nil {
		t.Fatal(err)
	}
	if m.variant == nil || m.variant.Data != nil {
		t.Fatalf("after Compile: variant %v, want one whose data segments are unloaded with the code", m.variant)
	}
	store, err := wasmstore.Open(filepath.Join(dir, modulesDir))
	if err != nil {
		t.Fatal(err)
	}
	path, _ := store.Path(wasmstore.Digest(guestWasm))
	if b, err := os.ReadFile(path); err != nil || !bytes.Equal(b, guestWasm) {
		t.Fatalf("the module's copy %s: %d bytes, %v; want the module's %d", path, len(b), err, len(guestWasm))
	}

	changed := bytes.Clone(guestWasm)
	changed[len(changed)-1] ^= 0xff
	if err := os.WriteFile(path, changed, 0o644); err != nil {
		t.Fatal(err)
	}
	if inst, err := m.Instantiate(ctx, wfConfig(1)); err == nil || !strings.Contains(err.Error(), path) {
		if inst != nil {
			inst.Close(ctx)
		}
		t.Fatalf("Instantiate from a changed copy: %v; want an error naming %s", err, path)
	}

	if err := os.WriteFile(path, guestWasm, 0o644); err != nil {
		t.Fatal(err)
	}
	out := func() string {
		inst, err := m.Instantiate(ctx, wfConfig(1))
		if err != nil {
			t.Fatal(err)
		}
		defer inst.Close(ctx)
		out, err := inst.Run(ctx, RunInput{FFQN: "test:guest/api.echo", Params: []byte(`[1]`), ExecutionID: "E_TEST", Attempt: 1})
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}()
	if out != `{"ok":1}` {
		t.Fatalf("echo answered %s", out)
	}
	if v, err := m.loadedVariant(ctx); err != nil || len(v.Data) == 0 {
		t.Fatalf("the variant once loaded: %v, %d data segments; want them back with the code", err, len(v.Data))
	}
}
