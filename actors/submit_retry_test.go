package actors

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"
)

// TestResubmitWithRetryAfterConfigChange: submitting an ID again with the same retry
// flags is idempotent even after the component's retry config changed (a restart with
// another retry_exp_backoff): what is compared is what the submitter gave, not the
// policy merged with the config of then. Other flags are still another submission.
func TestResubmitWithRetryAfterConfigChange(t *testing.T) {
	ctx := context.Background()
	dir, cache := t.TempDir(), t.TempDir()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	fibo := ComponentConfig{Name: "fibo", Type: ActivityWasm, Path: builtComponent(t, "fibo"), LockExpiry: time.Minute,
		MaxConcurrency: 1, MaxRetries: 1, RetryExpBackoff: time.Second}
	const ffqn = "testing:fibo/fibo.fibo"
	three := uint32(3)
	e, err := New(ctx, Config{DataDir: dir, CacheDir: cache, Logger: logger, Components: []ComponentConfig{fibo}})
	if err != nil {
		t.Fatal(err)
	}
	id, existed, err := e.Submit(ctx, "", ffqn, []byte(`[5]`), WithRetry(RetryOverride{MaxRetries: &three}))
	if err != nil || existed {
		t.Fatalf("submit: %v, existed %v", err, existed)
	}
	if _, existed, err := e.Submit(ctx, id, ffqn, []byte(`[5]`), WithRetry(RetryOverride{MaxRetries: &three})); err != nil || !existed {
		t.Fatalf("resubmit before the change: %v, existed %v", err, existed)
	}
	if err := e.Close(ctx); err != nil {
		t.Fatal(err)
	}

	fibo.RetryExpBackoff = 2 * time.Second
	e, err = New(ctx, Config{DataDir: dir, CacheDir: cache, Logger: logger, Components: []ComponentConfig{fibo}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	if _, existed, err := e.Submit(ctx, id, ffqn, []byte(`[5]`), WithRetry(RetryOverride{MaxRetries: &three})); err != nil || !existed {
		t.Fatalf("resubmit after the config change: %v, existed %v", err, existed)
	}
	four := uint32(4)
	for name, o := range map[string][]SubmitOption{
		"no retry flags":     nil,
		"other max_retries":  {WithRetry(RetryOverride{MaxRetries: &four})},
		"one more flag":      {WithRetry(RetryOverride{MaxRetries: &three, Backoff: 2 * time.Second})},
		"another flag alone": {WithRetry(RetryOverride{Backoff: time.Second})},
	} {
		var exists *ExistsError
		if _, _, err := e.Submit(ctx, id, ffqn, []byte(`[5]`), o...); !errors.As(err, &exists) {
			t.Errorf("%s: %v, want ExistsError", name, err)
		}
	}
	// The recorded policy is still the merged one: max_retries given, the backoff of then.
	evs, err := e.store.Events(ctx, id, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	if r := evs[0].GetCreated().GetRetry(); r.GetMaxRetries() != 3 || r.GetRetryExpBackoff() != int64(time.Second) {
		t.Fatalf("recorded policy %v", r)
	}
}
