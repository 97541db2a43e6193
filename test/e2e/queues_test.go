package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/test/harness"
)

// TestQueues: two execution queues with different limits run their executions within
// them: "wide" (max_concurrency 4, shared by the sleep and fibo activities) and
// "narrow" (1, the alloc activity, here a sleep: it allocates nothing and waits). How
// many executions of a queue held a lock at once is read from their events (a slot is
// taken before the Locked event and given back after the outcome is committed), not
// from timing. An execution submitted to a queue nothing serves, and one of a function
// its queue does not serve, stay pending (`execution list` shows them with their
// queues) without holding up the queue; after a restart with a configuration that
// serves them, they finish; so does a workflow's child submitted into a queue.
func TestQueues(t *testing.T) {
	t.Parallel()
	alloc := harness.BuildComponent(t, "test/e2e/testdata/alloc-activity")
	options := func(fiboQueue, allocQueue string) harness.Options {
		return harness.Options{
			ExtraWorkflows: map[string]string{"queue_workflow": "test/e2e/testdata/queue-workflow"},
			ExtraTOML: map[string]string{
				"sleep": "exec.lock_expiry = \"60s\"\nexec.queue = \"wide\"\n",
				"fibo":  fmt.Sprintf("exec.queue = %q\n", fiboQueue),
			},
			Deployment: fmt.Sprintf(`
[[queue]]
name = "wide"
max_concurrency = 4

[[activity_wasm]]
name = "alloc"
location.path = %q
max_retries = 0
exec.lock_expiry = "60s"
exec.max_concurrency = 1
exec.queue = %q
`, alloc, allocQueue),
		}
	}
	s := harness.Start(t, options("wide", "narrow"))
	const allocFn = "testing:alloc-activity/alloc.alloc"

	submitCLI := func(args ...string) string {
		t.Helper()
		out, errOut, code := s.CLI(append([]string{"execution", "submit"}, args...)...)
		if code != 0 {
			t.Fatalf("submit %v: exit %d: %s", args, code, errOut)
		}
		id, _, _ := strings.Cut(out, " ")
		return id
	}
	if _, errOut, code := s.CLI("execution", "submit", "--queue", "a b", "testing:fibo/fibo.fibo", "[10]"); code != 2 ||
		!strings.Contains(errOut, `invalid_argument: queue "a b": want 1 to 255 ASCII letters`) {
		t.Errorf("an invalid queue: exit %d, %s", code, errOut)
	}
	// First in "narrow", which serves only alloc: it must not hold up the allocs.
	stray := submitCLI("--queue", "narrow", "testing:fibo/fibo.fibo", "[10]")
	later := submitCLI("--queue", "later", allocFn, "[0, 10]")
	// A workflow's child submitted into "narrow" (obelisk.JoinSet.InQueue) waits there too.
	parent := s.Submit("testing:queue-workflow/workflow.fibo-in", `["narrow", 10]`)
	child := parent + ".g:1_1"

	var wide, narrow []string
	for range 8 {
		wide = append(wide, s.Submit("testing:sleep/sleep.sleep", "[1500]"))
	}
	for range 4 {
		wide = append(wide, s.Submit("testing:fibo/fibo.fibo", "[10]"))
		narrow = append(narrow, s.Submit(allocFn, "[0, 500]"))
	}
	var wg sync.WaitGroup
	for _, id := range append(slices.Clone(wide), narrow...) {
		wg.Go(func() {
			if r := s.Result(id, 3*time.Minute); !strings.HasPrefix(r, `{"ok"`) {
				t.Errorf("%s: %s", id, r)
			}
		})
	}
	wg.Wait()
	for queue, ids := range map[string][]string{"wide": wide, "narrow": narrow} {
		for _, id := range ids {
			if st, err := s.State(id); err != nil || st.Queue != queue {
				t.Errorf("%s: queue %q (%v), want %q", id, st.GetQueue(), err, queue)
			}
		}
	}
	if n := maxLocked(t, s, wide); n > 4 || n < 2 {
		t.Errorf("queue wide (max_concurrency 4): at most %d executions locked at once, want 2 to 4", n)
	} else {
		t.Logf("queue wide: at most %d executions locked at once", n)
	}
	if n := maxLocked(t, s, narrow); n != 1 {
		t.Errorf("queue narrow (max_concurrency 1): at most %d executions locked at once, want 1", n)
	}

	// The workflow submitted its child early on, but a loaded machine may be slow.
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if _, err := s.State(child); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("the workflow's child %s was not created: %v", child, err)
		}
	}

	// The strays are still pending, each in its queue, as `list` shows.
	out, errOut, code := s.CLI("execution", "list", "--limit", "100")
	if code != 0 {
		t.Fatalf("list: exit %d: %s", code, errOut)
	}
	lines := map[string][]string{}
	for line := range strings.SplitSeq(out, "\n") {
		if f := strings.Fields(line); len(f) >= 4 {
			lines[f[0]] = f[1:]
		}
	}
	for id, want := range map[string][]string{
		stray: {"testing:fibo/fibo.fibo", "pending_at", "queue=narrow"},
		later: {allocFn, "pending_at", "queue=later"},
	} {
		if got := lines[id]; !slices.Equal(got, want) {
			t.Errorf("list shows %s as %q, want %q\n%s", id, got, want, out)
		}
	}
	out, _, _ = s.CLI("execution", "list", "--json", "--status", "pending_at")
	var doc struct {
		Executions []struct {
			ExecutionID string `json:"execution_id"`
			Queue       string `json:"queue"`
		} `json:"executions"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("list --json: %v\n%s", err, out)
	}
	queues := map[string]string{}
	for _, e := range doc.Executions {
		queues[e.ExecutionID] = e.Queue
	}
	if queues[stray] != "narrow" || queues[later] != "later" || queues[child] != "narrow" || len(queues) != 3 {
		t.Errorf("list --json --status pending_at: %v", queues)
	}
	if out, _, _ := s.CLI("execution", "get", later); !strings.Contains(out, later+" pending_at\nqueue: later\n") {
		t.Errorf("get: %q", out)
	}
	out, _, _ = s.CLI("execution", "get", "--json", later)
	harness.JSONEq(t, out, fmt.Sprintf(`{"execution_id":%q,"status":"pending_at","queue":"later"}`, later))

	if st, err := s.State(child); err != nil || st.Status != "pending_at" || st.Queue != "narrow" {
		t.Errorf("the workflow's child: %v (%v), want pending in queue narrow", st, err)
	}

	// Restarted with fibo served from "narrow" and alloc from "later": all three run.
	s.Stop()
	s.Reconfigure(options("narrow", "later"))
	s.Start()
	harness.JSONEq(t, s.Result(stray, 3*time.Minute), `{"ok":55}`)
	harness.JSONEq(t, s.Result(later, 3*time.Minute), `{"ok":0}`)
	harness.JSONEq(t, s.Result(parent, 3*time.Minute), `{"ok":55}`)
}

// maxLocked returns how many of the executions ids held a lock at once at most, from
// their events: an attempt holds its lock from its Locked event to the event after it
// (its outcome), and its slot from before the one to after the other.
func maxLocked(t *testing.T, s *harness.Server, ids []string) int {
	t.Helper()
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for _, id := range ids {
		var lockedAt time.Time
		for _, ev := range s.Events(id) {
			at, err := time.Parse(time.RFC3339Nano, ev.CreatedAt)
			if err != nil {
				t.Fatalf("%s: event %d at %q: %v", id, ev.Version, ev.CreatedAt, err)
			}
			switch {
			case ev.Kind == "locked" && lockedAt.IsZero():
				lockedAt = at
			case ev.Kind != "locked" && !lockedAt.IsZero():
				edges = append(edges, edge{lockedAt, +1}, edge{at, -1})
				lockedAt = time.Time{}
			}
		}
		if !lockedAt.IsZero() {
			t.Fatalf("%s is still locked", id)
		}
	}
	// Ends before starts at the same instant: a slot given back is taken after.
	slices.SortFunc(edges, func(a, b edge) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return a.delta - b.delta
	})
	n, most := 0, 0
	for _, e := range edges {
		n += e.delta
		most = max(most, n)
	}
	return most
}
