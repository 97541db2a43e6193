package wasmhost

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"
)

// Compile logs each module with whether its compiled code came from the on-disk cache:
// not when the cache is empty, then yes for the same module in a new runtime.
func TestCompileLogsCacheUse(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	compile := func() map[string]any {
		t.Helper()
		var log bytes.Buffer
		rt, err := NewRuntime(ctx, Config{CacheDir: dir, Logger: slog.New(slog.NewJSONHandler(&log, nil))})
		if err != nil {
			t.Fatal(err)
		}
		defer rt.Close(ctx)
		if _, err := rt.Compile(ctx, "guest", guestWasm); err != nil {
			t.Fatal(err)
		}
		var rec map[string]any
		for _, line := range bytes.Split(bytes.TrimSpace(log.Bytes()), []byte("\n")) {
			var r map[string]any
			if err := json.Unmarshal(line, &r); err != nil {
				t.Fatalf("log line %s: %v", line, err)
			}
			if r["msg"] == "wasmhost: compiled module" {
				if rec != nil {
					t.Fatalf("two compiled module records:\n%s", log.String())
				}
				rec = r
			}
		}
		if rec == nil || rec["module"] != "guest" || rec["bytes"] != float64(len(guestWasm)) || rec["took"] == nil {
			t.Fatalf("compiled module record %v in:\n%s", rec, log.String())
		}
		return rec
	}
	if r := compile(); r["from_cache"] != false {
		t.Fatalf("empty cache: %v", r)
	}
	if r := compile(); r["from_cache"] != true {
		t.Fatalf("warm cache: %v", r)
	}
}
