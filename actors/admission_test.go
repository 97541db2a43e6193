package actors

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/events"
	"github.com/obelisk-go/obelisk/metrics"
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
	// After an idle time longer than the window, the rate is unknown again: not what
	// left over the idle time.
	if r := d.observe(t0.Add(100*time.Second), 50); r != -1 {
		t.Errorf("after 69 s unasked: %v, want -1", r)
	}
	if r := d.observe(t0.Add(102*time.Second), 70); r != 10 {
		t.Errorf("20 in 2 s after the idle time: %v, want 10", r)
	}
}

// TestPendingLimitReserve: submissions being admitted count with the store's pending
// executions, so concurrent ones cannot all pass the last free place; a released
// reservation frees it.
func TestPendingLimitReserve(t *testing.T) {
	l := &pendingLimit{max: 3}
	now := time.Unix(1000, 0)
	stats := func() events.PendingStats { return events.PendingStats{Pending: 1} }
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

// TestPendingLimitReserveRace: a submitter that commits the last free place while
// another has read the store's count, not yet reserved, does not let that other pass
// too: the reservation comes before the read.
func TestPendingLimitReserveRace(t *testing.T) {
	l := &pendingLimit{max: 1}
	now := time.Unix(1000, 0)
	committed := 0
	var inner bool
	ok, _, _ := l.reserve(func() events.PendingStats {
		// Between this submitter's reservation and its read, another one is admitted,
		// commits and releases.
		if ok, _, _ := l.reserve(func() events.PendingStats { return events.PendingStats{Pending: committed} }, now); ok {
			inner = true
			committed++
			l.release()
		}
		return events.PendingStats{Pending: committed}
	}, now)
	if ok && inner {
		t.Fatal("both submitters admitted to a limit of 1")
	}
	if !ok && !inner {
		t.Fatal("neither submitter admitted to an empty queue")
	}
	var wg sync.WaitGroup
	var admitted atomic.Int32
	l = &pendingLimit{max: 5}
	var store atomic.Int32
	store.Store(4)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, _, _ := l.reserve(func() events.PendingStats { return events.PendingStats{Pending: int(store.Load())} }, now); ok {
				admitted.Add(1)
				store.Add(1) // committed, then released
				l.release()
			}
		}()
	}
	wg.Wait()
	if n := admitted.Load(); n != 1 {
		t.Errorf("%d of 16 concurrent submitters admitted at 4 pending of 5, want 1", n)
	}
}

// TestQueueMaxPendingExternal: a queue that only external workers serve (an activity
// whose labels this server lacks) still bounds its pending executions.
func TestQueueMaxPendingExternal(t *testing.T) {
	ctx := context.Background()
	e, err := New(ctx, Config{DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler),
		Components: []ComponentConfig{{Name: "fibo", Type: ActivityWasm, Path: builtComponent(t, "fibo"),
			RequiredLabels: []string{"gpu"}, MaxPending: 1, LockExpiry: time.Minute}}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	const fibo = "testing:fibo/fibo.fibo"
	if _, _, err := e.Submit(ctx, "", fibo, []byte("[1]")); err != nil {
		t.Fatal(err)
	}
	_, _, err = e.Submit(ctx, "", fibo, []byte("[2]"))
	var full *ResourceExhaustedError
	if !errors.As(err, &full) || full.Server || full.MaxPending != 1 || full.Queue != "fibo" {
		t.Fatalf("a second: %v, want the queue's max_pending refusing it", err)
	}
}

// TestServerMaxPending: Config.MaxPending bounds the pending executions of all queues
// together; beyond it a new submission is refused naming the server's limit, while a
// repeated submission of an execution that exists is answered as before. The refusal
// creates nothing.
func TestServerMaxPending(t *testing.T) {
	ctx := context.Background()
	m := metrics.New()
	e, err := New(ctx, Config{DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler), MaxPending: 2, Metrics: m,
		Components: []ComponentConfig{{Name: "fibo", Type: ActivityWasm, Path: builtComponent(t, "fibo"),
			RetryExpBackoff: time.Millisecond, LockExpiry: time.Minute, MaxConcurrency: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	const fibo = "testing:fibo/fibo.fibo"
	later := dueAt(time.Now().Add(time.Hour)) // they wait in the queue
	first, _, err := e.Submit(ctx, "", fibo, []byte("[1]"), later)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.Submit(ctx, "", fibo, []byte("[2]"), later); err != nil {
		t.Fatal(err)
	}
	const refusedID = "E_01KBX8Z9W1V7N0Q2M3R4S5T6V9"
	_, _, err = e.Submit(ctx, refusedID, fibo, []byte("[3]"), later)
	var full *ResourceExhaustedError
	if !errors.As(err, &full) || !full.Server || full.MaxPending != 2 || full.Pending != 2 || full.Queue != "fibo" {
		t.Fatalf("a third: %v, want the server's limit refusing it", err)
	}
	if !strings.Contains(err.Error(), "the server is full: 2 executions pending, server.max_pending is 2") || !strings.Contains(err.Error(), "retry after ") {
		t.Errorf("message: %v", err)
	}
	if _, err := e.State(ctx, refusedID); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("the refused execution: %v, want none", err)
	}
	if _, existed, err := e.Submit(ctx, first, fibo, []byte("[1]"), later); err != nil || !existed {
		t.Errorf("the first submitted again: existed %v, %v; want it answered as existing", existed, err)
	}
	// Only the refusal answered counts, not the resubmission answered as existing.
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	rejected, pending := 0.0, -1.0
	for _, f := range fams {
		if f.GetName() == "obelisk_submissions_rejected_total" {
			for _, x := range f.GetMetric() {
				rejected += x.GetCounter().GetValue()
			}
		}
		if f.GetName() == "obelisk_queue_pending" {
			for _, x := range f.GetMetric() {
				if x.GetLabel()[0].GetValue() == "fibo" {
					pending = x.GetGauge().GetValue()
				}
			}
		}
	}
	if rejected != 1 {
		t.Errorf("%v rejections counted, want 1", rejected)
	}
	if pending != 2 {
		t.Errorf("obelisk_queue_pending{queue=fibo} = %v, want the 2 accepted", pending)
	}
}
