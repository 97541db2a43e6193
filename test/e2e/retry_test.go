package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/test/harness"
)

// TestActivityPolicies: the retry budget and the result cache of activities, on one
// server whose flaky activity has a budget and whose fibo activity has a cache.
func TestActivityPolicies(t *testing.T) {
	s := harness.Start(t, harness.Options{ExtraTOML: map[string]string{
		"flaky": "retry_budget = { max_failure_share = 0.5, min_attempts = 4, action = \"skip\" }\nexec.cache_ttl = \"1m\"",
		"fibo":  `exec.cache_ttl = "3s"`,
	}})
	finished := func(id string) (kind string, d struct {
		Reason     string `json:"reason"`
		CachedFrom string `json:"cached_from"`
	}) {
		t.Helper()
		evs := s.Events(id)
		last := evs[len(evs)-1]
		if err := json.Unmarshal([]byte(last.DetailsJson), &d); err != nil {
			t.Fatal(err)
		}
		return last.Kind, d
	}

	// While most recent attempts failed, the budget (action skip) finishes a failing
	// execution with its last error and the budget as the reason; /metrics counts it.
	t.Run("retry budget", func(t *testing.T) {
		// max_retries is 5: without the budget, fail-until(100) would end at "attempt 6".
		id := s.Submit("testing:flaky/flaky.fail-until", "[100]")
		harness.JSONEq(t, s.Result(id, time.Minute), `{"err":"attempt 4"}`)
		if n := harness.CountKind(s.Events(id), "locked"); n != 4 {
			t.Fatalf("locked events: %d, want 4 attempts", n)
		}
		kind, d := finished(id)
		if kind != "finished" || !strings.Contains(d.Reason, "retry budget exhausted: 4 of the 4 attempts of testing:flaky/flaky.fail-until in the last 1m0s failed") {
			t.Fatalf("last event %s %+v: want finished with the budget as the reason", kind, d)
		}
		metric := s.Metrics()
		if v, ok := metric("obelisk_retry_budget_held_total", map[string]string{"component": "flaky", "action": "skip"}); !ok || v != 1 {
			t.Fatalf("obelisk_retry_budget_held_total{flaky,skip} = %v (%v), want 1", v, ok)
		}
	})

	// An ok result serves later executions with the same parameters within the TTL; other
	// parameters run; after the TTL it runs again.
	t.Run("result cache", func(t *testing.T) {
		first := s.Submit("testing:fibo/fibo.fibo", "[30]")
		harness.JSONEq(t, s.Result(first, time.Minute), `{"ok":832040}`)
		if _, d := finished(first); d.CachedFrom != "" {
			t.Fatalf("the first execution was served from the cache of %s", d.CachedFrom)
		}
		hit := s.Submit("testing:fibo/fibo.fibo", "[30]")
		harness.JSONEq(t, s.Result(hit, time.Minute), `{"ok":832040}`)
		if _, d := finished(hit); d.CachedFrom != first {
			t.Fatalf("the second execution: cached_from %q, want %s", d.CachedFrom, first)
		}
		miss := s.Submit("testing:fibo/fibo.fibo", "[31]")
		harness.JSONEq(t, s.Result(miss, time.Minute), `{"ok":1346269}`)
		if _, d := finished(miss); d.CachedFrom != "" {
			t.Fatalf("other parameters were served from the cache of %s", d.CachedFrom)
		}
		// A workflow's children are served too (fiboa calls fibo(30) three times).
		wf := s.Submit("testing:fibo-workflow/workflow.fiboa", "[30, 3]")
		harness.JSONEq(t, s.Result(wf, time.Minute), `{"ok":2496120}`)
		if _, d := finished(wf + ".o:1-fibo_1"); d.CachedFrom != first {
			t.Fatalf("a workflow's child: cached_from %q, want %s", d.CachedFrom, first)
		}
		// An err is not cached: the second execution runs too.
		for range 2 {
			id := s.Submit("testing:flaky/flaky.fail-permanently", "[]")
			s.Result(id, time.Minute)
			if _, d := finished(id); d.CachedFrom != "" || harness.CountKind(s.Events(id), "locked") != 1 {
				t.Fatalf("an err served from the cache of %q, or not run once", d.CachedFrom)
			}
		}
		time.Sleep(3500 * time.Millisecond) // past fibo's TTL of every entry so far
		expired := s.Submit("testing:fibo/fibo.fibo", "[30]")
		harness.JSONEq(t, s.Result(expired, time.Minute), `{"ok":832040}`)
		if _, d := finished(expired); d.CachedFrom != "" {
			t.Fatalf("after the TTL: served from the cache of %s", d.CachedFrom)
		}
	})
}
