package actors

import (
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/events"
)

// TestRetryAfter: the delay is the time the recent drain takes to make room, in whole
// seconds, within MinRetryAfter..MaxRetryAfter; nothing drained means the longest, no
// estimate yet the shortest.
func TestRetryAfter(t *testing.T) {
	for _, c := range []struct {
		need int
		rate float64
		want time.Duration
	}{
		{1, 100, time.Second},      // under a second: the least
		{30, 10, 3 * time.Second},  // 3 s
		{31, 10, 4 * time.Second},  // rounded up
		{10000, 1, time.Minute},    // bounded
		{1, 0, MaxRetryAfter},      // nothing left the queue lately
		{1, -1, MinRetryAfter},     // no estimate yet
		{5, 0.5, 10 * time.Second}, // slow drain
	} {
		if got := retryAfter(c.need, c.rate); got != c.want {
			t.Errorf("retryAfter(%d, %v) = %v, want %v", c.need, c.rate, got, c.want)
		}
	}
}

// TestDrainRate: the rate is what left per second over the last drainWindow or so,
// unknown (-1) until the samples span a second.
func TestDrainRate(t *testing.T) {
	var d drainRate
	t0 := time.Unix(1000, 0)
	if r := d.observe(t0, 0); r != -1 {
		t.Errorf("first sample: %v, want -1", r)
	}
	if r := d.observe(t0.Add(500*time.Millisecond), 10); r != -1 {
		t.Errorf("after half a second: %v, want -1", r)
	}
	if r := d.observe(t0.Add(2*time.Second), 40); r != 20 {
		t.Errorf("40 in 2 s: %v, want 20", r)
	}
	// Samples older than the window stop counting: 40 left at 2 s, nothing since.
	for s := 3; s <= 30; s++ {
		d.observe(t0.Add(time.Duration(s)*time.Second), 40)
	}
	if r := d.observe(t0.Add(31*time.Second), 40); r != 0 {
		t.Errorf("nothing left for 29 s: %v, want 0", r)
	}
	if n := len(d.samples); n > int(drainWindow/time.Second)+2 {
		t.Errorf("%d samples kept, want about one per second of the window", n)
	}
}

// TestPendingLimitReserve: submissions being admitted count with the store's pending
// executions, so concurrent ones cannot all pass the last free place; a released
// reservation frees it.
func TestPendingLimitReserve(t *testing.T) {
	l := &pendingLimit{max: 3}
	now := time.Unix(1000, 0)
	stats := events.PendingStats{Pending: 1}
	if ok, _, _ := l.reserve(stats, now); !ok {
		t.Fatal("1 pending of 3: refused")
	}
	if ok, _, _ := l.reserve(stats, now); !ok {
		t.Fatal("1 pending and 1 admitting of 3: refused")
	}
	ok, n, retry := l.reserve(stats, now)
	if ok {
		t.Fatal("1 pending and 2 admitting of 3: admitted")
	}
	if n != 3 || retry < MinRetryAfter || retry > MaxRetryAfter {
		t.Errorf("refusal: pending %d (want 3), retry %v", n, retry)
	}
	l.release()
	if ok, _, _ := l.reserve(stats, now); !ok {
		t.Fatal("after a release: refused")
	}
}
