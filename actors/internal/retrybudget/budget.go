// Package retrybudget decides whether a failed activity attempt may be retried now,
// from the share of the function's recent attempts that failed ("smart retries").
//
// Retries help when failures are rare and independent: a flaky network, one slow node.
// When most recent attempts of a function fail, its dependency is down, and retrying
// every execution on its own schedule only adds load to what is already failing. A
// Budget counts, per function, the attempts and failures of a sliding window; while
// more than MaxFailureShare of them failed (over at least MinAttempts attempts), the
// budget is exhausted and retries wait for the window to pass, or are skipped, until the
// share falls again.
//
// The counts live in memory, per node: they are a view of the recent past, not history.
// Whatever a budget decides is recorded in the execution's events (a longer backoff, or a
// finish with its reason), so a replay or a restart never needs the counts again.
package retrybudget

import (
	"fmt"
	"sync"
	"time"
)

// Action is what an exhausted budget does to a retry.
type Action string

const (
	// Wait delays the retry by the window, by when the failures that exhausted the
	// budget have left it.
	Wait Action = "wait"
	// Skip finishes the execution with its last error and the budget as the reason.
	Skip Action = "skip"
)

// Config is one function's budget.
type Config struct {
	// MaxFailureShare is the share of failed attempts, in (0, 1], above which the
	// budget is exhausted.
	MaxFailureShare float64
	// Window is how far back attempts count.
	Window time.Duration
	// MinAttempts is the fewest attempts in the window for the budget to judge: a
	// handful of failures says nothing.
	MinAttempts int
	// Action is what an exhausted budget does to a retry.
	Action Action
}

// Check refuses a config that cannot mean anything.
func (c Config) Check() error {
	switch {
	case !(c.MaxFailureShare > 0 && c.MaxFailureShare <= 1):
		return fmt.Errorf("max_failure_share = %v: must be a fraction above 0, at most 1", c.MaxFailureShare)
	case c.Window < time.Second:
		return fmt.Errorf("window = %q: must be at least 1s", c.Window.String())
	case c.MinAttempts < 1:
		return fmt.Errorf("min_attempts = %d: must be at least 1", c.MinAttempts)
	case c.Action != Wait && c.Action != Skip:
		return fmt.Errorf("action = %q: want %q or %q", c.Action, Wait, Skip)
	}
	return nil
}

// buckets is how many parts a window is counted in: an attempt leaves the count
// between Window and Window*(1+1/buckets) after it happened.
const buckets = 10

// Budget counts the attempts of one component's functions. It is safe for concurrent
// use.
type Budget struct {
	cfg   Config
	width time.Duration // of a bucket

	mu  sync.Mutex
	fns map[string]*counts
}

type counts struct {
	// Ring of buckets; bucket i counts the attempts of slot start[i] (a time divided by
	// width). A bucket whose slot left the window is stale and counts nothing.
	start              [buckets]int64
	attempts, failures [buckets]int
}

// New returns an empty budget; cfg must pass Check.
func New(cfg Config) *Budget {
	return &Budget{cfg: cfg, width: max(cfg.Window/buckets, time.Millisecond), fns: map[string]*counts{}}
}

// Config returns the budget's config.
func (b *Budget) Config() Config { return b.cfg }

// Record counts an attempt of fn that ended at now, failed or not.
func (b *Budget) Record(fn string, failed bool, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.fns[fn]
	if c == nil {
		c = &counts{}
		b.fns[fn] = c
	}
	slot := now.UnixNano() / int64(b.width)
	i := int(slot % buckets)
	if c.start[i] != slot {
		c.start[i], c.attempts[i], c.failures[i] = slot, 0, 0
	}
	c.attempts[i]++
	if failed {
		c.failures[i]++
	}
}

// State is what a budget says of a function at some time.
type State struct {
	Attempts, Failures int
	// Exhausted: at least MinAttempts attempts, and more than MaxFailureShare of them
	// failed.
	Exhausted bool
}

// State returns the counts of fn's attempts in the window that ends at now.
func (b *Budget) State(fn string, now time.Time) State {
	b.mu.Lock()
	defer b.mu.Unlock()
	var s State
	c := b.fns[fn]
	if c == nil {
		return s
	}
	slot := now.UnixNano() / int64(b.width)
	for i := range buckets {
		if age := slot - c.start[i]; age >= 0 && age < buckets {
			s.Attempts += c.attempts[i]
			s.Failures += c.failures[i]
		}
	}
	s.Exhausted = s.Attempts >= b.cfg.MinAttempts && float64(s.Failures) > b.cfg.MaxFailureShare*float64(s.Attempts)
	return s
}
