package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
	"github.com/obelisk-go/obelisk/test/harness"
)

const sleepFn = "testing:sleep/sleep.sleep"

// TestBackpressure: with exec.max_pending = 3 on the sleep activity's queue (one run at
// a time), a submission beyond three pending executions is refused, and nothing of it
// is created: the API answers resource_exhausted with Retry-After (on gRPC/Connect and
// on plain JSON over HTTP), the CLI exits 2 saying resource_exhausted and when to retry,
// webhook endpoints (a WASM one whose request calls the activity, a function one) answer
// 429 with Retry-After, and the refusals are counted in /metrics. A workflow's child
// into the full queue is created anyway (its root was admitted) and finishes. The
// limit holds across a SIGKILL and a restart (the count is rebuilt from the store), and
// every accepted execution finishes. Then a flood of submissions at many times what the
// queue drains keeps the server's memory bounded and loses nothing accepted.
//
// While the first execution holds the queue's only slot (a 4 s sleep) nothing leaves
// the pending index, so the queue stays full, whatever the machine's speed, for the
// checks.
func TestBackpressure(t *testing.T) {
	s := harness.Start(t, harness.Options{
		ExtraTOML: map[string]string{
			"sleep": "exec.lock_expiry = \"60s\"\nexec.max_concurrency = 1\nexec.max_pending = 3\n",
			"fibo":  "exec.max_concurrency = 2\nexec.max_pending = 20\n",
		},
		Deployment: fmt.Sprintf(`
[store]
memtable_size = "4MiB"

[[webhook_endpoint]]
name = "bp_wasm"
location.path = %q
routes = ["/sleep/:millis"]

[[webhook_endpoint]]
name = "bp_fn"
function = %q
routes = ["/fn/sleep/:millis"]
`, harness.ComponentsDir()+"/fibo-webhook.wasm", sleepFn),
	})
	ctx := context.Background()
	submit := func(ffqn, params string) (string, error) {
		resp, err := s.Exec.Submit(ctx, connect.NewRequest(&pb.SubmitRequest{Ffqn: ffqn, ParamsJson: params}))
		if err != nil {
			return "", err
		}
		return resp.Msg.ExecutionId, nil
	}
	wantRefusal := func(what string, err error) {
		t.Helper()
		var ce *connect.Error
		if !errors.As(err, &ce) || ce.Code() != connect.CodeResourceExhausted {
			t.Fatalf("%s: %v, want resource_exhausted", what, err)
		}
		if n, err := strconv.Atoi(ce.Meta().Get("Retry-After")); err != nil || n < 1 || n > 60 {
			t.Errorf("%s: Retry-After %q, want 1 to 60 seconds", what, ce.Meta().Get("Retry-After"))
		}
		if !strings.Contains(ce.Message(), `queue "sleep" is full`) || !strings.Contains(ce.Message(), "retry after") {
			t.Errorf("%s: message %q", what, ce.Message())
		}
	}

	// Fill the queue: the first holds the slot, three wait.
	var accepted []string
	holder, err := submit(sleepFn, "[4000]")
	if err != nil {
		t.Fatal(err)
	}
	accepted = append(accepted, holder)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if st, err := s.State(holder); err == nil && st.Status == "locked" {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("%s was not locked: %v %v", holder, st, err)
		}
	}
	for i := range 3 {
		id, err := submit(sleepFn, "[100]")
		if err != nil {
			t.Fatalf("submission %d of 3 into an empty queue: %v", i+1, err)
		}
		accepted = append(accepted, id)
	}
	_, err = submit(sleepFn, "[100]")
	wantRefusal("a fourth pending", err)
	// Nothing was created for it: the function has exactly the accepted executions.
	list, err := s.Exec.ListExecutions(ctx, connect.NewRequest(&pb.ListExecutionsRequest{FfqnPrefix: sleepFn, Limit: 100}))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(list.Msg.Executions); n != len(accepted) {
		t.Errorf("%d executions of %s, want the %d accepted", n, sleepFn, len(accepted))
	}

	// Plain JSON over HTTP (the Connect protocol without a client): 429 and Retry-After.
	req, _ := http.NewRequest("POST", s.URL+"/obelisk.v1.ExecutionService/Submit",
		strings.NewReader(`{"ffqn": "`+sleepFn+`", "params_json": "[100]"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "resource_exhausted") {
		t.Errorf("JSON submit: %d, Retry-After %q, %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}

	// The CLI.
	_, errOut, code := s.CLI("execution", "submit", sleepFn, "[100]")
	if code != 2 || !strings.Contains(errOut, "resource_exhausted") || !strings.Contains(errOut, "retry after ") {
		t.Errorf("CLI submit: exit %d, %s; want exit 2 saying resource_exhausted and retry after", code, errOut)
	}

	// Webhooks: a WASM endpoint whose request calls the activity, and a function endpoint.
	for _, path := range []string{"/sleep/100", "/fn/sleep/100"} {
		status, h, body := httpDo(t, "GET", s.WebhookURL+path)
		if n, err := strconv.Atoi(h.Get("Retry-After")); status != http.StatusTooManyRequests || err != nil || n < 1 {
			t.Errorf("webhook %s: %d, Retry-After %q, %s; want 429 with Retry-After", path, status, h.Get("Retry-After"), body)
		}
	}

	// A workflow's child into the full queue: created past the limit, it finishes.
	parent, err := submit("testing:sleep-workflow/workflow.sleep-activity", "[100]")
	if err != nil {
		t.Fatal(err)
	}
	accepted = append(accepted, parent)
	var child string
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		list, err := s.Exec.ListExecutions(ctx, connect.NewRequest(&pb.ListExecutionsRequest{FfqnPrefix: sleepFn, Limit: 100}))
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Msg.Executions) > len(accepted)-1 {
			child = ""
			for _, e := range list.Msg.Executions {
				if e.ParentId == parent {
					child = e.ExecutionId
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the workflow's child was not created")
		}
	}
	if child == "" {
		t.Fatal("the workflow's child was not created")
	}
	value := scrapeMetrics(t, s)
	if v := value("obelisk_submissions_rejected_total", map[string]string{"queue": "sleep", "limit": "queue"}); v < 5 {
		t.Errorf("obelisk_submissions_rejected_total{queue=sleep} = %v, want at least 5", v)
	}

	// SIGKILL with the queue full: after the restart the count is rebuilt from the store,
	// and the queue (its holder locked again for 4 s) refuses as before.
	s.Kill()
	s.Start()
	_, err = submit(sleepFn, "[100]")
	wantRefusal("after a restart", err)

	for _, id := range accepted {
		if r := s.Result(id, 3*time.Minute); !strings.HasPrefix(r, `{"ok"`) {
			t.Errorf("%s: %s", id, r)
		}
	}
	if r := s.Result(child, time.Minute); !strings.HasPrefix(r, `{"ok"`) {
		t.Errorf("child %s: %s", child, r)
	}
	// Drained, the queue admits again.
	if id, err := submit(sleepFn, "[1]"); err != nil {
		t.Errorf("a drained queue: %v", err)
	} else {
		accepted = append(accepted, id)
	}

	t.Run("overload", func(t *testing.T) { overload(t, s) })
}

// overload floods the fibo queue (2 runs at once, max_pending 20) from 8 clients until
// at least 10 times what the queue took (its 20 pending places plus what it drained
// meanwhile) was offered, for 3 s at least, and asserts what the issue asks of a 10×
// overload without timing anything: the overload was offered, the refusals are
// resource_exhausted with a retry delay, the queue's pending count (obelisk_queue_pending,
// sampled from /metrics during the flood) never passed max_pending, the server's memory
// stayed under a bound set by max_pending, not by the number of submissions, and every
// accepted execution finishes with the right result. Latency under overload is
// BenchmarkBackpressure's.
//
// The bound: what piles up in memory with the flood is the pending executions (at most
// max_pending, counted at 1 MiB each: far more than a pending state costs), the runs (2
// instances of a few MiB) and the memtable (4 MiB here, two while one flushes); refused
// submissions leave nothing. 80 MiB over the server's RSS before the flood leaves room for
// Go's heap to grow under the load (GOGC 100: up to twice what is live) and for requests
// in flight; 20 MiB more are the executable's pages the flood reads back (the server
// pages them out once started: README, "The executable's pages"). It catches any memory
// kept per submission (thousands are refused, so a
// leak of even a 50 KiB request body each would pass it).
func overload(t *testing.T, s *harness.Server) {
	const (
		fibo       = "testing:fibo/fibo.fibo"
		maxPending = 20 // the fibo queue's, in TestBackpressure's config
		ratio      = 10
	)
	base := s.SampleMemory()()
	stop := s.SampleMemory()
	var accepted sync.Map
	var nAccepted, nRejected, badDelay atomic.Int64
	var badRefusal atomic.Value
	done := make(chan struct{})
	// The queue's pending count, as /metrics shows it, sampled while the flood runs.
	var peakPending, samples atomic.Int64
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if n, ok := queuePending(s, "fibo"); ok {
				samples.Add(1)
				for p := peakPending.Load(); n > p && !peakPending.CompareAndSwap(p, n); p = peakPending.Load() {
				}
			}
		}
	}()
	started := time.Now()
	enough := func() bool {
		a, r := nAccepted.Load(), nRejected.Load()
		return a+r >= ratio*max(a, maxPending) && time.Since(started) >= 3*time.Second
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for !enough() && time.Since(started) < 2*time.Minute {
				resp, err := s.Exec.Submit(context.Background(), connect.NewRequest(&pb.SubmitRequest{Ffqn: fibo, ParamsJson: "[25]"}))
				var ce *connect.Error
				switch {
				case err == nil:
					accepted.Store(resp.Msg.ExecutionId, true)
					nAccepted.Add(1)
				case errors.As(err, &ce) && ce.Code() == connect.CodeResourceExhausted:
					nRejected.Add(1)
					if n, err := strconv.Atoi(ce.Meta().Get("Retry-After")); err != nil || n < 1 || n > 60 || !strings.Contains(ce.Message(), "retry after ") {
						badDelay.Add(1)
						badRefusal.Store(fmt.Sprintf("Retry-After %q, %q", ce.Meta().Get("Retry-After"), ce.Message()))
					}
				default:
					t.Errorf("submit during the flood: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(done)
	<-sampled
	peak := stop()
	a, r := nAccepted.Load(), nRejected.Load()
	t.Logf("flood of %v: %d accepted, %d refused (%.1f× what the queue took); RSS %d MiB before, peak %d MiB; peak pending %d in %d samples",
		time.Since(started).Round(time.Millisecond), a, r, float64(a+r)/float64(max(a, 1)), base.RSS>>20, peak.RSS>>20, peakPending.Load(), samples.Load())
	if a+r < ratio*max(a, maxPending) {
		t.Errorf("%d submissions offered in 2 minutes, less than %d× the %d the queue took", a+r, ratio, max(a, maxPending))
	}
	if a < maxPending {
		t.Errorf("%d accepted: the queue did not fill up to its %d", a, maxPending)
	}
	if n := badDelay.Load(); n > 0 {
		t.Errorf("%d refusals without a retry delay of 1 to 60 s, e.g. %v", n, badRefusal.Load())
	}
	if samples.Load() == 0 {
		t.Errorf("obelisk_queue_pending{queue=\"fibo\"} was never read during the flood")
	}
	if p := peakPending.Load(); p > maxPending || p == 0 {
		t.Errorf("the fibo queue's pending count peaked at %d during the flood, want 1 to max_pending %d", p, maxPending)
	}
	if bound := base.RSS + 100<<20 + maxPending<<20; peak.RSS > bound {
		t.Errorf("peak RSS %d MiB during the flood, more than the bound of %d MiB (the %d MiB before + 100 MiB + 1 MiB per max_pending place)",
			peak.RSS>>20, bound>>20, base.RSS>>20)
	}
	accepted.Range(func(k, _ any) bool {
		if r := s.Result(k.(string), 3*time.Minute); r != `{"ok":75025}` {
			t.Errorf("%s: %s", k, r)
		}
		return true
	})
}

// queuePending reads a queue's obelisk_queue_pending from the server's /metrics; ok is
// false if it could not (the caller samples it from a goroutine, where it cannot fail
// the test).
func queuePending(s *harness.Server, queue string) (n int64, ok bool) {
	resp, err := s.HTTP.Get(s.URL + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, false
	}
	prefix := `obelisk_queue_pending{queue="` + queue + `"} `
	for line := range strings.Lines(string(body)) {
		if v, found := strings.CutPrefix(strings.TrimSpace(line), prefix); found {
			f, err := strconv.ParseFloat(v, 64)
			return int64(f), err == nil
		}
	}
	return 0, false
}
