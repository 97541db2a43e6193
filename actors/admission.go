package actors

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/obelisk-go/obelisk/events"
)

// Admission control: a queue's max_pending (ComponentConfig.MaxPending) and the server's
// (Config.MaxPending) bound the executions waiting in the pending index, as the store
// counts them (events.PendingStats: waiting to run now or later, e.g. for a retry; not
// running, not blocked on a join set, not paused). A new top-level execution (submitted,
// or a fork) beyond a limit is refused with a *ResourceExhaustedError and nothing is
// created. Only new work from outside is refused: children and schedules of an admitted
// workflow or webhook request, a schedule's firings and a trigger's submissions (which
// wait, trigger.go) are created past the limit and counted, so that nothing already
// accepted is lost or
// waits on a full queue that it is itself keeping full.

// MinRetryAfter and MaxRetryAfter bound the retry delay a refusal advises.
const (
	MinRetryAfter = time.Second
	MaxRetryAfter = time.Minute
)

// ResourceExhaustedError: a submission refused because its queue, or the server, has as
// many pending executions as its max_pending allows. Nothing was created: the
// submitter may retry after RetryAfter.
type ResourceExhaustedError struct {
	Queue      string
	Pending    int
	MaxPending int
	// Server: the server's limit (server.max_pending) refused it, not the queue's.
	Server bool
	// RetryAfter is when a retry is likely to be admitted, estimated from the recent
	// drain of the pending executions, MinRetryAfter..MaxRetryAfter in whole seconds.
	RetryAfter time.Duration
}

func (e *ResourceExhaustedError) Error() string {
	if e.Server {
		return fmt.Sprintf("the server is full: %d executions pending, server.max_pending is %d (submitted to queue %q); retry after %ds",
			e.Pending, e.MaxPending, e.Queue, e.RetryAfterSeconds())
	}
	return fmt.Sprintf("queue %q is full: %d executions pending, its max_pending is %d; retry after %ds",
		e.Queue, e.Pending, e.MaxPending, e.RetryAfterSeconds())
}

// RetryAfterSeconds is RetryAfter in whole seconds, as an HTTP Retry-After header
// counts it (RetryAfter is always whole seconds: retryAfter).
func (e *ResourceExhaustedError) RetryAfterSeconds() int { return int(e.RetryAfter / time.Second) }

// pendingLimit is one max_pending and what it needs to decide quickly: the submissions
// being admitted (checked, not yet committed: the store does not count them yet), and
// the drain rate of what it bounds.
type pendingLimit struct {
	max       int
	admitting atomic.Int64
	drain     drainRate
}

// reserve admits one submission if the store's count (stats, read after the
// reservation) leaves room for it, counting it as admitting until release; else it
// returns the count and a retry delay. Reserving before reading closes the race of two
// submitters both reading the last free place: the later reservation either is counted
// by the earlier submitter's read, or is made after its release, so after its commit,
// which its own read then counts.
func (l *pendingLimit) reserve(stats func() events.PendingStats, now time.Time) (ok bool, pending int, retry time.Duration) {
	n := l.admitting.Add(1)
	s := stats()
	rate := l.drain.observe(now, s.Left)
	pending = s.Pending + int(n) - 1
	if pending < l.max {
		return true, 0, 0
	}
	l.admitting.Add(-1)
	return false, pending, retryAfter(pending-l.max+1, rate)
}

func (l *pendingLimit) release() { l.admitting.Add(-1) }

// retryAfter estimates how long it takes for need pending executions to leave at rate
// per second, rounded up to whole seconds (Retry-After counts seconds) and bounded.
// Nothing drained lately (rate 0) is MaxRetryAfter; no estimate yet (rate < 0: the queue
// was just started or just became busy) is MinRetryAfter, to learn soon.
func retryAfter(need int, rate float64) time.Duration {
	switch {
	case rate < 0:
		return MinRetryAfter
	case rate == 0:
		return MaxRetryAfter
	}
	secs := math.Ceil(float64(need) / rate)
	return time.Duration(min(max(secs, MinRetryAfter.Seconds()), MaxRetryAfter.Seconds())) * time.Second
}

// drainWindow is how far back drainRate averages.
const drainWindow = 10 * time.Second

// drainRate estimates how many pending executions leave per second, from the store's
// count of those that left (events.PendingStats.Left), averaged over the last
// drainWindow or so. It samples when asked (at each admission), so a queue nobody
// submits to costs nothing.
type drainRate struct {
	mu      sync.Mutex
	samples []drainSample // oldest first, at least a second apart
}

type drainSample struct {
	at   time.Time
	left uint64
}

// observe records left at now and returns the rate per second over the samples kept,
// -1 while they span less than a second (unknown yet, or again after an idle time).
func (d *drainRate) observe(now time.Time, left uint64) float64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	// Samples older than the window go, even all of them: after an idle time, what
	// left before it says nothing of the drain now, and averaging over the idle time
	// would advise a long retry delay for a queue that may drain fast.
	for len(d.samples) > 0 && now.Sub(d.samples[0].at) > drainWindow {
		d.samples = d.samples[1:]
	}
	if n := len(d.samples); n == 0 || now.Sub(d.samples[n-1].at) >= time.Second {
		d.samples = append(d.samples, drainSample{now, left})
	}
	first := d.samples[0]
	span := now.Sub(first.at)
	if span < time.Second {
		return -1
	}
	return float64(left-first.left) / span.Seconds()
}

// admit reserves room for one new top-level execution in queue: under its max_pending
// and the server's. It returns the release to call once the execution is committed (or
// was not), or a *ResourceExhaustedError, which the caller passes through refused when
// it answers with it (a submission of an execution that exists is not refused).
func (e *Engine) admit(queue string, now time.Time) (release func(), _ error) {
	q := e.queueLimits[queue]
	g := e.pending
	if q == nil && g == nil {
		return func() {}, nil
	}
	if q != nil {
		if ok, n, retry := q.reserve(func() events.PendingStats { return e.store.PendingStats(queue) }, now); !ok {
			return nil, &ResourceExhaustedError{Queue: queue, Pending: n, MaxPending: q.max, RetryAfter: retry}
		}
	}
	if g != nil {
		if ok, n, retry := g.reserve(func() events.PendingStats { return e.store.PendingStats("") }, now); !ok {
			if q != nil {
				q.release()
			}
			return nil, &ResourceExhaustedError{Queue: queue, Pending: n, MaxPending: g.max, Server: true, RetryAfter: retry}
		}
	}
	return func() {
		if q != nil {
			q.release()
		}
		if g != nil {
			g.release()
		}
	}, nil
}

// refused records the refusal err of admit, answered to a submitter, and returns it.
func (e *Engine) refused(err error) error {
	var full *ResourceExhaustedError
	if errors.As(err, &full) {
		limit := "queue"
		if full.Server {
			limit = "server"
		}
		e.cfg.Metrics.SubmissionRejected(full.Queue, limit)
	}
	return err
}
