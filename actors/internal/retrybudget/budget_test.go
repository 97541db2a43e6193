package retrybudget

import (
	"strings"
	"testing"
	"time"
)

func TestBudget(t *testing.T) {
	cfg := Config{MaxFailureShare: 0.5, Window: 10 * time.Second, MinAttempts: 4, Action: Wait}
	if err := cfg.Check(); err != nil {
		t.Fatal(err)
	}
	b := New(cfg)
	t0 := time.Unix(1000, 0)
	// Too few attempts to judge, however many failed.
	for i := range 3 {
		b.Record("f", true, t0.Add(time.Duration(i)*time.Second))
	}
	if s := b.State("f", t0.Add(3*time.Second)); s.Exhausted || s.Attempts != 3 || s.Failures != 3 {
		t.Fatalf("3 failures: %+v, want counted, not exhausted (min_attempts 4)", s)
	}
	b.Record("f", false, t0.Add(3*time.Second))
	if s := b.State("f", t0.Add(3*time.Second)); !s.Exhausted {
		t.Fatalf("3 of 4 failed: %+v, want exhausted", s)
	}
	// Another function has its own counts.
	if s := b.State("g", t0.Add(3*time.Second)); s.Exhausted || s.Attempts != 0 {
		t.Fatalf("g: %+v", s)
	}
	// Exactly the share is not above it.
	b.Record("f", false, t0.Add(4*time.Second))
	b.Record("f", false, t0.Add(4*time.Second))
	if s := b.State("f", t0.Add(4*time.Second)); s.Exhausted || s.Failures != 3 || s.Attempts != 6 {
		t.Fatalf("3 of 6 failed: %+v, want not exhausted", s)
	}
	// Attempts leave the window as it slides: at 10.5s the failure at 0s is out, at 20s
	// everything is.
	b.Record("f", true, t0.Add(5*time.Second))
	if s := b.State("f", t0.Add(5*time.Second)); !s.Exhausted {
		t.Fatalf("4 of 7: %+v", s)
	}
	if s := b.State("f", t0.Add(10500*time.Millisecond)); s.Attempts != 6 || s.Failures != 3 || s.Exhausted {
		t.Fatalf("after the first second left: %+v", s)
	}
	if s := b.State("f", t0.Add(20*time.Second)); s.Attempts != 0 {
		t.Fatalf("after the window: %+v", s)
	}
	// A bucket reused for a later slot starts from zero.
	b.Record("f", true, t0.Add(30*time.Second))
	if s := b.State("f", t0.Add(30*time.Second)); s.Attempts != 1 || s.Failures != 1 {
		t.Fatalf("a reused bucket: %+v", s)
	}
}

func TestConfigCheck(t *testing.T) {
	ok := Config{MaxFailureShare: 0.5, Window: time.Minute, MinAttempts: 10, Action: Skip}
	for _, c := range []struct {
		change func(*Config)
		want   string
	}{
		{func(c *Config) { c.MaxFailureShare = 0 }, "max_failure_share = 0"},
		{func(c *Config) { c.MaxFailureShare = 1.5 }, "max_failure_share = 1.5"},
		{func(c *Config) { c.Window = time.Millisecond }, `window = "1ms"`},
		{func(c *Config) { c.MinAttempts = 0 }, "min_attempts = 0"},
		{func(c *Config) { c.Action = "retry" }, `action = "retry": want "wait" or "skip"`},
	} {
		cfg := ok
		c.change(&cfg)
		if err := cfg.Check(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error containing %q", cfg, err, c.want)
		}
	}
	if err := ok.Check(); err != nil {
		t.Fatal(err)
	}
}
