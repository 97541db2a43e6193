package actors

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
)

// submitKV submits a function of the KV component with params and returns its result.
func submitKV(t *testing.T, e *Engine, fn, params string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id, _, err := e.Submit(ctx, "", abi.KVInterface+"."+fn, json.RawMessage(params))
	if err != nil {
		t.Fatalf("submit %s %s: %v", fn, params, err)
	}
	st, err := e.WaitFinished(ctx, id)
	if err != nil {
		t.Fatalf("wait %s %s: %v", fn, params, err)
	}
	return string(st.Result)
}

// TestKVComponent: the built-in component answers every function as a top-level
// execution, keeps buckets apart, and answers bad input with a kv-error, not a retry.
func TestKVComponent(t *testing.T) {
	e := newTestEngine(t)
	for _, step := range []struct{ fn, params, want string }{
		{"get", `["b","k"]`, `{"ok":null}`},
		{"set", `["b","k","v1"]`, `{"ok":null}`},
		{"get", `["b","k"]`, `{"ok":"v1"}`},
		{"get", `["b2","k"]`, `{"ok":null}`},
		{"cas", `["b","k","v0","v2"]`, `{"ok":false}`},
		{"cas", `["b","k","v1","v2"]`, `{"ok":true}`},
		{"cas", `["b","new",null,"n"]`, `{"ok":true}`},
		{"cas", `["b","new",null,"n2"]`, `{"ok":false}`},
		{"get", `["b","k"]`, `{"ok":"v2"}`},
		{"set", `["b","k2","x"]`, `{"ok":null}`},
		{"list", `["b","k",null,0]`, `{"ok":{"entries":[{"key":"k","value":"v2"},{"key":"k2","value":"x"}],"cursor":null}}`},
		{"list", `["b","",null,1]`, `{"ok":{"entries":[{"key":"k","value":"v2"}],"cursor":"k"}}`},
		{"list", `["b","","k",1]`, `{"ok":{"entries":[{"key":"k2","value":"x"}],"cursor":"k2"}}`},
		{"delete", `["b","k"]`, `{"ok":null}`},
		{"get", `["b","k"]`, `{"ok":null}`},
		{"set", `["","k","v"]`, `{"err":{"invalid":"kv set \"\"/\"k\": bucket is empty: invalid argument"}}`},
	} {
		if got := submitKV(t, e, step.fn, step.params); got != step.want {
			t.Errorf("%s %s = %s, want %s", step.fn, step.params, got, step.want)
		}
	}
	ctx := context.Background()
	if _, _, err := e.Submit(ctx, "", abi.KVInterface+".set", json.RawMessage(`["b","k"]`)); err == nil || !strings.Contains(err.Error(), "param") {
		t.Errorf("set with two params: err = %v, want a type check error", err)
	}
}

// TestKVConcurrentCAS: increments by compare-and-set from concurrent executions, each
// retrying until its cas succeeds, add up exactly.
func TestKVConcurrentCAS(t *testing.T) {
	e := newTestEngine(t)
	const workers, each = 4, 10
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				for {
					cur := submitKV(t, e, "get", `["c","n"]`)
					var r struct{ Ok *string }
					json.Unmarshal([]byte(cur), &r)
					n := 0
					expected := "null"
					if r.Ok != nil {
						json.Unmarshal([]byte(*r.Ok), &n)
						expected = `"` + *r.Ok + `"`
					}
					next, _ := json.Marshal(n + 1)
					if submitKV(t, e, "cas", `["c","n",`+expected+`,"`+string(next)+`"]`) == `{"ok":true}` {
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	if got := submitKV(t, e, "get", `["c","n"]`); got != `{"ok":"40"}` {
		t.Errorf("counter = %s, want 40", got)
	}
}

// TestKVConfigBucket: a config bucket answers get and list from its TOML file, follows
// changes of the file, and refuses writes.
func TestKVConfigBucket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "settings.toml")
	if err := os.WriteFile(path, []byte("greeting = \"hello\"\nport = 5432\n[db]\nhost = \"localhost\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	e, err := New(ctx, Config{DataDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		KVConfig: []KVConfigBucket{{Bucket: "settings", Path: path}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(ctx) })
	for _, step := range []struct{ fn, params, want string }{
		{"get", `["settings","greeting"]`, `{"ok":"hello"}`},
		{"get", `["settings","port"]`, `{"ok":"5432"}`},
		{"get", `["settings","db.host"]`, `{"ok":"localhost"}`},
		{"get", `["settings","nope"]`, `{"ok":null}`},
		{"list", `["settings","db.",null,10]`, `{"ok":{"entries":[{"key":"db.host","value":"localhost"}],"cursor":null}}`},
		{"set", `["settings","greeting","bye"]`, `{"err":{"read_only":"bucket \"settings\" is read-only: it is read from ` + path + `"}}`},
		{"cas", `["settings","greeting","hello","bye"]`, `{"err":{"read_only":"bucket \"settings\" is read-only: it is read from ` + path + `"}}`},
	} {
		if got := submitKV(t, e, step.fn, step.params); got != step.want {
			t.Errorf("%s %s = %s, want %s", step.fn, step.params, got, step.want)
		}
	}
	if err := os.WriteFile(path, []byte("greeting = \"bonjour, monde\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := submitKV(t, e, "get", `["settings","greeting"]`); got != `{"ok":"bonjour, monde"}` {
		t.Errorf("after the file changed: %s", got)
	}

	// A missing or malformed file is refused at start, naming it.
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("= nope"), 0o644)
	for _, b := range []KVConfigBucket{{Bucket: "x", Path: filepath.Join(dir, "missing.toml")}, {Bucket: "x", Path: bad}, {Bucket: "", Path: path}} {
		if _, err := New(ctx, Config{DataDir: t.TempDir(), KVConfig: []KVConfigBucket{b}}); err == nil || !strings.Contains(err.Error(), "kv_config bucket") {
			t.Errorf("%+v: err = %v", b, err)
		}
	}
}
