package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/test/harness"
)

// TestRetryBudget: while most recent attempts of an activity failed, its retry budget
// (action skip) finishes a failing execution with its last error, recording the budget
// as the reason, and /metrics counts the skipped retry.
func TestRetryBudget(t *testing.T) {
	s := harness.Start(t, harness.Options{ExtraTOML: map[string]string{
		"flaky": `retry_budget = { max_failure_share = 0.5, min_attempts = 4, action = "skip" }`,
	}})
	// max_retries is 5: without the budget, fail-until(100) would end at "attempt 6".
	id := s.Submit("testing:flaky/flaky.fail-until", "[100]")
	harness.JSONEq(t, s.Result(id, time.Minute), `{"err":"attempt 4"}`)
	evs := s.Events(id)
	if n := harness.CountKind(evs, "locked"); n != 4 {
		t.Fatalf("locked events: %d, want 4 attempts", n)
	}
	last := evs[len(evs)-1]
	var d struct {
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal([]byte(last.DetailsJson), &d); err != nil || last.Kind != "finished" ||
		!strings.Contains(d.Reason, "retry budget exhausted: 4 of the 4 attempts of testing:flaky/flaky.fail-until in the last 1m0s failed") {
		t.Fatalf("last event %s %s: want finished with the budget as the reason (%v)", last.Kind, last.DetailsJson, err)
	}
	metric := s.Metrics()
	if v, ok := metric("obelisk_retry_budget_held_total", map[string]string{"component": "flaky", "action": "skip"}); !ok || v != 1 {
		t.Fatalf("obelisk_retry_budget_held_total{flaky,skip} = %v (%v), want 1", v, ok)
	}
}
