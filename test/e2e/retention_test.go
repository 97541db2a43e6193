package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
	"github.com/obelisk-go/obelisk/test/harness"
)

// descendantIDs lists the IDs of the executions under root.
func descendantIDs(t *testing.T, s *harness.Server, root string) []string {
	t.Helper()
	var out []string
	for _, e := range descendants(t, s, root) {
		out = append(out, e.ExecutionId)
	}
	return out
}

// gone reports whether `execution get id` exits 2 saying it is not found.
func gone(t *testing.T, s *harness.Server, id string) bool {
	t.Helper()
	_, stderr, code := s.CLI("execution", "get", id)
	if code == 2 && !strings.Contains(stderr, "not found") {
		t.Fatalf("get %s: exit 2 but %q", id, stderr)
	}
	return code == 2
}

// TestRetention: with [retention] finished_after = "3s", a finished workflow tree is
// deleted (its root and its children are not found any more) while a component whose
// retention.finished_after is longer keeps its trees; the delete command deletes a
// finished tree now and refuses a child or an unfinished tree; --dry-run lists what the
// next pass deletes; a watcher from the start skips the deleted positions, told how
// many; /metrics counts the deletions.
func TestRetention(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{
		Deployment: "[retention]\nfinished_after = \"3s\"\n",
		ExtraTOML: map[string]string{
			"tree":  "retention.finished_after = \"1h\"\n",
			"sleep": "exec.lock_expiry = \"20m\"\n", // the running tree's sleep must not time out
		},
	})
	kept := s.Submit("testing:tree/tree.spawn", "[1, 2, 10]")
	running := s.Submit("testing:tree/tree.spawn", "[1, 1, 600000]")
	root := s.Submit("testing:fibo-workflow/workflow.fiboa", "[1, 3]")
	harness.JSONEq(t, s.Result(root, time.Minute), `{"ok":3}`)
	harness.JSONEq(t, s.Result(kept, time.Minute), `{"ok":2}`)
	children := descendantIDs(t, s, root)
	if len(children) != 3 {
		t.Fatalf("fiboa(1, 3) has %d children, want 3: %v", len(children), children)
	}
	if gone(t, s, root) {
		t.Fatalf("%s deleted as soon as it finished", root)
	}
	waitUntil(t, time.Minute, func() bool { return gone(t, s, root) })
	for _, c := range children {
		if !gone(t, s, c) {
			t.Errorf("the root %s is deleted but not its child %s", root, c)
		}
	}
	// More than 3 s after it finished, the tree component's tree (1 h) is kept.
	if gone(t, s, kept) {
		t.Fatalf("%s deleted despite its component's retention.finished_after = 1h", kept)
	}

	// delete: refusals, then a finished tree.
	keptChildren := descendantIDs(t, s, kept)
	if len(keptChildren) != 4 { // 2 children, each with its sleep
		t.Fatalf("spawn(1, 2) has %d descendants, want 4: %v", len(keptChildren), keptChildren)
	}
	_, stderr, code := s.CLI("execution", "delete", keptChildren[0])
	if code != 2 || !strings.Contains(stderr, "failed_precondition") || !strings.Contains(stderr, "not a top-level execution") {
		t.Fatalf("delete of a child: exit %d, %q", code, stderr)
	}
	_, stderr, code = s.CLI("execution", "delete", running)
	if code != 2 || !strings.Contains(stderr, "failed_precondition") || !strings.Contains(stderr, "has not finished") {
		t.Fatalf("delete of an unfinished tree: exit %d, %q", code, stderr)
	}
	stdout, stderr, code := s.CLI("execution", "delete", kept)
	if code != 0 || !strings.Contains(stdout, "deleted (5 executions") {
		t.Fatalf("delete of a finished tree: exit %d, %q %q", code, stdout, stderr)
	}
	for _, id := range append([]string{kept}, keptChildren...) {
		if !gone(t, s, id) {
			t.Errorf("%s still there after its tree was deleted", id)
		}
	}
	if gone(t, s, running) {
		t.Fatalf("the unfinished tree %s was deleted", running)
	}

	// --dry-run: required, and lists a tree due before the pass deletes it (the pass
	// runs about every second, so a few tries may be needed on a loaded machine).
	if _, stderr, code := s.CLI("execution", "retention"); code != 2 || !strings.Contains(stderr, "--dry-run") {
		t.Fatalf("retention without --dry-run: exit %d, %q", code, stderr)
	}
	listed := false
	for try := 0; try < 5 && !listed; try++ {
		id := s.Submit("testing:fibo/fibo.fibo", "[10]")
		harness.JSONEq(t, s.Result(id, time.Minute), `{"ok":55}`)
		waitUntil(t, time.Minute, func() bool {
			stdout, stderr, code := s.CLI("execution", "retention", "--dry-run", "--json")
			if code != 0 {
				t.Fatalf("retention --dry-run: exit %d, %q", code, stderr)
			}
			var doc struct {
				Trees []struct {
					ExecutionID string `json:"execution_id"`
					Executions  int    `json:"executions"`
				} `json:"trees"`
			}
			if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
				t.Fatalf("retention --dry-run --json: %v: %s", err, stdout)
			}
			for _, tr := range doc.Trees {
				if tr.ExecutionID == id && tr.Executions == 1 {
					listed = true
				}
			}
			return listed || gone(t, s, id)
		})
	}
	if !listed {
		t.Fatal("retention --dry-run never listed a due execution before it was deleted")
	}

	// The global log: from the start, every position is either sent or counted skipped.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := s.Exec.WatchEvents(ctx, connect.NewRequest(&pb.WatchEventsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	var prev, skipped uint64
	for st.Receive() {
		m := st.Msg()
		if m.Position != prev+m.SkippedBefore+1 {
			t.Fatalf("position %d after %d with skipped_before %d: positions unaccounted for", m.Position, prev, m.SkippedBefore)
		}
		prev, skipped = m.Position, skipped+m.SkippedBefore
		if strings.HasPrefix(m.ExecutionId, root) || strings.HasPrefix(m.ExecutionId, kept) {
			t.Fatalf("an event of the deleted %s at %d", m.ExecutionId, m.Position)
		}
		if prev > 0 && skipped > 0 && ctx.Err() == nil {
			cancel() // seen a skip: enough
		}
	}
	st.Close()
	if skipped == 0 {
		t.Fatal("no skipped_before while reading past deleted trees")
	}

	resp, err := http.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`obelisk_retention_deleted_total\{what="trees"\} (\S+)`).FindSubmatch(body)
	// The fiboa tree and the one deleted on request (the last fibo may not be yet).
	if m == nil {
		t.Fatal("no obelisk_retention_deleted_total{what=\"trees\"} in /metrics")
	}
	if n, _ := strconv.ParseFloat(string(m[1]), 64); n < 2 {
		t.Fatalf("obelisk_retention_deleted_total{what=\"trees\"} = %v, want at least 2", n)
	}
}
