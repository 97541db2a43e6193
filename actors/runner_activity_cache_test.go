package actors

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/metrics"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// activityInstances is how many activity instances m has seen started.
func activityInstances(t *testing.T, m *metrics.Metrics) uint64 {
	t.Helper()
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "obelisk_instance_start_seconds" {
			continue
		}
		for _, x := range f.GetMetric() {
			for _, l := range x.GetLabel() {
				if l.GetName() == "kind" && l.GetValue() == "activity" {
					return x.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return 0
}

// TestCacheHitMakesNoInstance: an execution the result cache serves is finished from the
// cache without an instance of its activity being made, whether its executor locks it
// (a backlog) or the commit that creates it does (eager dispatch); a miss runs it.
func TestCacheHitMakesNoInstance(t *testing.T) {
	ctx := context.Background()
	m := metrics.New()
	fibo := ComponentConfig{Name: "fibo", Type: ActivityWasm, Path: builtComponent(t, "fibo"), LockExpiry: time.Minute,
		MaxConcurrency: 1, CacheTTL: time.Hour}
	e, err := New(ctx, Config{DataDir: t.TempDir(), CacheDir: t.TempDir(), Metrics: m,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Components: []ComponentConfig{fibo}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	const ffqn = "testing:fibo/fibo.fibo"
	finish := func(id string) *pb.ExecutionState {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		st, err := e.WaitFinished(wctx, id)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if st.ResultKind != pb.ResultKind_RESULT_KIND_OK {
			t.Fatalf("%s: %s", id, st.Result)
		}
		return st
	}
	cachedFrom := func(id string) string {
		t.Helper()
		evs, err := e.store.Events(ctx, id, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		return evs[len(evs)-1].GetFinished().GetCachedFrom()
	}
	first, _, err := e.Submit(ctx, "", ffqn, []byte(`[10]`))
	if err != nil {
		t.Fatal(err)
	}
	finish(first)
	if n := activityInstances(t, m); n != 1 {
		t.Fatalf("%d activity instances for the first execution, want 1", n)
	}
	// Several at once: one slot, so all but the first wait in the queue for the executor.
	var ids []string
	for range 4 {
		id, _, err := e.Submit(ctx, "", ffqn, []byte(`[10]`))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for _, id := range ids {
		st := finish(id)
		if from := cachedFrom(id); from != first {
			t.Fatalf("%s: served from %q, want %s (result %s)", id, from, first, st.Result)
		}
	}
	if n := activityInstances(t, m); n != 1 {
		t.Fatalf("%d activity instances after 4 cache hits, want still 1", n)
	}
	miss, _, err := e.Submit(ctx, "", ffqn, []byte(`[11]`))
	if err != nil {
		t.Fatal(err)
	}
	finish(miss)
	if from := cachedFrom(miss); from != "" {
		t.Fatalf("other parameters served from %s", from)
	}
	if n := activityInstances(t, m); n != 2 {
		t.Fatalf("%d activity instances after a miss, want 2", n)
	}
}
