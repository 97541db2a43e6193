package events_test

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/cockroachdb/datadriven"
	"google.golang.org/protobuf/proto"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	"github.com/obelisk-go/obelisk/snapshot"
)

// TestFoldDataDriven runs the fold scenarios in testdata/fold. The DSL is described in
// testdata/fold/README; in short, a "fold" directive folds its input lines one by one
// (an event with events.Fold, a "response" line with events.FoldResponse) and prints, for
// each line, the version (or response cursor) it was applied at and the resulting state,
// or the error and the unchanged state. A rejected line leaves the state as it was, as the
// store would. After the last line the accepted events and responses are refolded with
// snapshot.Refold, which must give the same state.
func TestFoldDataDriven(t *testing.T) {
	datadriven.Walk(t, "testdata/fold", func(t *testing.T, path string) {
		if strings.HasSuffix(path, "README") {
			return
		}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			switch d.Cmd {
			case "fold":
				return runFold(t, d)
			default:
				t.Fatalf("%s: unknown directive %q", d.Pos, d.Cmd)
				return ""
			}
		})
	})
}

func runFold(t *testing.T, d *datadriven.TestData) string {
	id := "E_1"
	if d.HasArg("id") {
		d.ScanArgs(t, "id", &id)
	}
	full := d.HasArg("full")
	var (
		st        *pb.ExecutionState
		evs       []*pb.Event
		responses []*pb.Response
		out       strings.Builder
	)
	for _, line := range strings.Split(d.Input, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		step, err := parseStep(line)
		if err != nil {
			t.Fatalf("%s: %q: %v", d.Pos, line, err)
		}
		var next *pb.ExecutionState
		var label string
		if step.resp != nil {
			if st == nil {
				t.Fatalf("%s: %q: a response needs a created execution", d.Pos, line)
			}
			r := proto.CloneOf(step.resp)
			r.Cursor, r.AtVersion = st.ResponseCount, st.NextVersion
			label = fmt.Sprintf("r%d", r.Cursor)
			next, err = events.FoldResponse(st, r)
			if err == nil {
				responses = append(responses, r)
			}
		} else {
			v := uint32(0)
			if st != nil {
				v = st.NextVersion
			}
			if step.version >= 0 {
				v = uint32(step.version)
			}
			label = fmt.Sprintf("v%d", v)
			next, err = events.Fold(id, st, v, step.event)
			if err == nil {
				evs = append(evs, step.event)
			}
		}
		if err != nil {
			fmt.Fprintf(&out, "%s: error: %v\n", label, err)
			continue
		}
		st = next
		if !full {
			fmt.Fprintf(&out, "%s: %s\n", label, compactState(st))
		}
	}
	if st != nil {
		if full {
			out.WriteString(fullState(st))
		}
		re, err := snapshot.Refold(id, evs, responses)
		if err != nil {
			t.Errorf("%s: refold of the accepted steps: %v", d.Pos, err)
		} else if !proto.Equal(re, st) {
			t.Errorf("%s: refold differs from the incremental fold:\nrefold: %s\nfold:   %s", d.Pos, compactState(re), compactState(st))
		}
	}
	return out.String()
}

// step is one parsed DSL line: an event (with an optional explicit version) or a response.
type step struct {
	event   *pb.Event
	version int // -1: the state's next version
	resp    *pb.Response
}

// args are the key=value words of a DSL line; bare words are flags (value ""). It
// records which keys were read, so that a misspelt key is an error, not a silent zero.
type args struct {
	vals map[string]string
	used map[string]bool
}

func (a args) str(k string) string { a.used[k] = true; return a.vals[k] }

func (a args) has(k string) bool { a.used[k] = true; _, ok := a.vals[k]; return ok }

func (a args) int(k string) (int64, error) {
	a.used[k] = true
	v, ok := a.vals[k]
	if !ok {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: %w", k, v, err)
	}
	return n, nil
}

// parseStep parses one line of the fold DSL (see testdata/fold/README).
func parseStep(line string) (step, error) {
	words := strings.Fields(line)
	kind := words[0]
	rest := words[1:]
	if kind == "history" {
		if len(rest) == 0 {
			return step{}, fmt.Errorf("history needs a kind")
		}
		kind, rest = "history "+rest[0], rest[1:]
	}
	a := args{vals: map[string]string{}, used: map[string]bool{}}
	for _, w := range rest {
		k, v, _ := strings.Cut(w, "=")
		a.vals[k] = v
	}
	var firstErr error
	num := func(k string) int64 {
		n, err := a.int(k)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		return n
	}
	at := num("at")
	s := step{version: -1}
	if a.has("v") {
		s.version = int(num("v"))
	}
	ev := &pb.Event{CreatedAt: at}
	s.event = ev
	switch kind {
	case "created":
		c := &pb.Created{
			Ffqn: a.str("ffqn"), Queue: a.str("queue"), ParentId: a.str("parent"), ParentJoinSetId: a.str("parent_js"),
			ScheduledAt: at, ComponentId: a.str("component"), Params: []byte(a.str("params")),
		}
		if a.has("scheduled") {
			c.ScheduledAt = num("scheduled")
		}
		switch a.str("type") {
		case "workflow":
			c.ComponentType = pb.ComponentType_COMPONENT_TYPE_WORKFLOW
		case "activity":
			c.ComponentType = pb.ComponentType_COMPONENT_TYPE_ACTIVITY_WASM
		}
		ev.Kind = &pb.Event_Created{Created: c}
	case "locked":
		l := &pb.Locked{ExecutorId: a.str("executor"), RunId: a.str("run"), LockExpiresAt: num("expires"), ComponentId: a.str("component")}
		if a.has("retries") || a.has("backoff") || a.has("unlimited") {
			l.Retry = &pb.RetryConfig{MaxRetries: uint32(num("retries")), RetryExpBackoff: num("backoff"), UnlimitedRetries: a.has("unlimited")}
		}
		ev.Kind = &pb.Event_Locked{Locked: l}
	case "unlocked":
		u := &pb.Unlocked{UnlockedAt: at, Reason: a.str("reason")}
		if a.has("until") {
			u.UnlockedAt = num("until")
		}
		ev.Kind = &pb.Event_Unlocked{Unlocked: u}
	case "temporarily_failed":
		f := &pb.TemporarilyFailed{BackoffExpiresAt: num("until"), Reason: a.str("reason")}
		if a.has("detail") {
			f.Detail = []byte(a.str("detail"))
		}
		ev.Kind = &pb.Event_TemporarilyFailed{TemporarilyFailed: f}
	case "temporarily_timed_out":
		ev.Kind = &pb.Event_TemporarilyTimedOut{TemporarilyTimedOut: &pb.TemporarilyTimedOut{BackoffExpiresAt: num("until"), Reason: a.str("reason")}}
	case "cancel_requested":
		ev.Kind = &pb.Event_CancelRequested{CancelRequested: &pb.CancelRequested{}}
	case "paused":
		ev.Kind = &pb.Event_Paused{Paused: &pb.Paused{}}
	case "unpaused":
		ev.Kind = &pb.Event_Unpaused{Unpaused: &pb.Unpaused{}}
	case "finished":
		ev.Kind = &pb.Event_Finished{Finished: &pb.Finished{Result: []byte(a.str("result"))}}
	case "moved":
		ev.Kind = &pb.Event_Moved{Moved: &pb.Moved{FromComponentId: a.str("from"), ToComponentId: a.str("to"), By: a.str("by"), Queue: a.str("queue")}}
	case "history persist":
		ev.Kind = history(&pb.HistoryEvent{Kind: &pb.HistoryEvent_Persist{Persist: &pb.Persist{Kind: a.str("kind"), Value: []byte(a.str("value"))}}})
	case "history join_set_create":
		ev.Kind = history(&pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinSetCreate{JoinSetCreate: &pb.JoinSetCreate{JoinSetId: a.str("js")}}})
	case "history join_set_request":
		r := &pb.JoinSetRequest{JoinSetId: a.str("js")}
		if a.has("delay") {
			r.Request = &pb.JoinSetRequest_Delay{Delay: &pb.DelayRequest{DelayId: a.str("delay"), ExpiresAt: num("expires")}}
		} else {
			r.Request = &pb.JoinSetRequest_Child{Child: &pb.ChildExecutionRequest{ChildExecutionId: a.str("child"), Ffqn: a.str("ffqn")}}
		}
		ev.Kind = history(&pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinSetRequest{JoinSetRequest: r}})
	case "history join_next":
		jn := &pb.JoinNext{JoinSetId: a.str("js"), RunExpiresAt: at, RequestedFfqn: a.str("ffqn"), Closing: a.has("closing")}
		if a.has("lease") {
			jn.RunExpiresAt = num("lease")
		}
		ev.Kind = history(&pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinNext{JoinNext: jn}})
	case "history join_next_try":
		ev.Kind = history(&pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinNextTry{JoinNextTry: &pb.JoinNextTry{JoinSetId: a.str("js"), Outcome: a.str("outcome")}}})
	case "history schedule":
		ev.Kind = history(&pb.HistoryEvent{Kind: &pb.HistoryEvent_Schedule{Schedule: &pb.Schedule{ExecutionId: a.str("exec"), ScheduledAt: num("scheduled")}}})
	case "history stub":
		ev.Kind = history(&pb.HistoryEvent{Kind: &pb.HistoryEvent_Stub{Stub: &pb.Stub{TargetExecutionId: a.str("target"), Result: []byte(a.str("result"))}}})
	case "response":
		r := &pb.Response{CreatedAt: at, JoinSetId: a.str("js")}
		if a.has("delay") {
			r.Kind = &pb.Response_Delay{Delay: &pb.DelayFinished{DelayId: a.str("delay"), Cancelled: a.has("cancelled")}}
		} else {
			res := a.str("result")
			if res == "" {
				res = `{"ok":null}`
			}
			r.Kind = &pb.Response_Child{Child: &pb.ChildFinished{ChildExecutionId: a.str("child"), Result: []byte(res)}}
		}
		s.event, s.resp = nil, r
	default:
		return step{}, fmt.Errorf("unknown step %q", kind)
	}
	for _, k := range sortedKeys(a.vals) {
		if !a.used[k] && firstErr == nil {
			firstErr = fmt.Errorf("%s: unknown key %q", kind, k)
		}
	}
	return s, firstErr
}

func history(h *pb.HistoryEvent) *pb.Event_History { return &pb.Event_History{History: h} }

// compactState prints the fields of a state that change as it is folded, omitting zero
// values (status and next_version are always printed).
func compactState(st *pb.ExecutionState) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s next_version=%d", events.StatusName(st.Status), st.NextVersion)
	if st.ComponentId != "" {
		fmt.Fprintf(&b, " component=%s", st.ComponentId)
	}
	opt := func(name string, v int64) {
		if v != 0 {
			fmt.Fprintf(&b, " %s=%d", name, v)
		}
	}
	opt("pending_at", st.PendingAt)
	if st.RunId != "" {
		fmt.Fprintf(&b, " run=%s", st.RunId)
	}
	opt("lock_expires_at", st.LockExpiresAt)
	opt("locked_at_version", int64(st.LockedAtVersion))
	opt("intermittent_failures", int64(st.IntermittentFailures))
	if st.LastFailure != "" {
		fmt.Fprintf(&b, " last_failure=%q", st.LastFailure)
	}
	if st.BlockedJoinSetId != "" {
		fmt.Fprintf(&b, " blocked_on=%s", st.BlockedJoinSetId)
	}
	if len(st.JoinSets) > 0 {
		b.WriteString(" join_sets={")
		for i, id := range sortedKeys(st.JoinSets) {
			js := st.JoinSets[id]
			if i > 0 {
				b.WriteString(" ")
			}
			fmt.Fprintf(&b, "%s:%d/%d/%d", id, js.Requests, js.Responses, js.JoinNexts)
		}
		b.WriteString("}")
	}
	opt("response_count", int64(st.ResponseCount))
	if st.CancelRequested {
		b.WriteString(" cancel_requested")
	}
	if st.Paused {
		b.WriteString(" paused")
	}
	if st.Status == pb.Status_STATUS_FINISHED {
		fmt.Fprintf(&b, " finished_at=%d result=%s", st.FinishedAt, st.Result)
	}
	return b.String()
}

// fullState prints every set field of a state, one per line, in field-number order.
func fullState(st *pb.ExecutionState) string {
	var b strings.Builder
	line := func(name string, v any) { fmt.Fprintf(&b, "%s: %v\n", name, v) }
	line("execution_id", st.ExecutionId)
	line("ffqn", st.Ffqn)
	line("component_id", st.ComponentId)
	line("component_type", st.ComponentType)
	line("queue", st.Queue)
	line("parent_id", st.ParentId)
	line("parent_join_set_id", st.ParentJoinSetId)
	line("created_at", st.CreatedAt)
	line("first_scheduled_at", st.FirstScheduledAt)
	line("next_version", st.NextVersion)
	line("response_count", st.ResponseCount)
	line("status", events.StatusName(st.Status))
	line("pending_at", st.PendingAt)
	line("executor_id", st.ExecutorId)
	line("run_id", st.RunId)
	line("lock_expires_at", st.LockExpiresAt)
	line("locked_at_version", st.LockedAtVersion)
	if st.Retry != nil {
		line("retry", fmt.Sprintf("max_retries=%d unlimited=%t backoff=%d", st.Retry.MaxRetries, st.Retry.UnlimitedRetries, st.Retry.RetryExpBackoff))
	}
	line("intermittent_failures", st.IntermittentFailures)
	line("blocked_join_set_id", st.BlockedJoinSetId)
	for _, id := range sortedKeys(st.JoinSets) {
		js := st.JoinSets[id]
		line("join_sets["+id+"]", fmt.Sprintf("requests=%d responses=%d join_nexts=%d", js.Requests, js.Responses, js.JoinNexts))
	}
	line("cancel_requested", st.CancelRequested)
	line("paused", st.Paused)
	line("finished_at", st.FinishedAt)
	line("result_kind", st.ResultKind)
	line("result", string(st.Result))
	line("updated_at", st.UpdatedAt)
	line("last_failure", st.LastFailure)
	return b.String()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// TestParseStepRejectsUnknown keeps the DSL strict: a typo must not silently fold nothing.
func TestParseStepRejectsUnknown(t *testing.T) {
	for _, line := range []string{"lokced run=R1", "history wait js=x", "locked at=x", "locked run=R1 expire=10"} {
		if _, err := parseStep(line); err == nil {
			t.Errorf("parseStep(%q): want an error", line)
		}
	}
}

// foldScript folds DSL lines (see testdata/fold/README) and fails the test on any error.
func foldScript(t *testing.T, id, script string) *pb.ExecutionState {
	t.Helper()
	var st *pb.ExecutionState
	for _, line := range strings.Split(strings.TrimSpace(script), "\n") {
		s, err := parseStep(strings.TrimSpace(line))
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if s.resp != nil {
			r := proto.CloneOf(s.resp)
			r.Cursor, r.AtVersion = st.ResponseCount, st.NextVersion
			st, err = events.FoldResponse(st, r)
		} else {
			v := uint32(0)
			if st != nil {
				v = st.NextVersion
			}
			st, err = events.Fold(id, st, v, s.event)
		}
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
	}
	return st
}

// TestFoldIsDeterministic folds a stream in which an Unlocked finds two join sets waited
// on and not answered (a run failed within its lease while blocked, twice). The state must
// not depend on Go's map iteration order: the store's state must equal any refold.
func TestFoldIsDeterministic(t *testing.T) {
	const script = `
created ffqn=a:b/c.d queue=q type=workflow at=0
locked run=R1 expires=1000 at=10
history join_set_create js=o:1-a at=20
history join_set_request js=o:1-a child=E_1.o:1-a_1 at=20
history join_next js=o:1-a lease=900 at=20
temporarily_failed until=100 at=30
locked run=R2 expires=1000 at=100
history join_set_create js=o:2-b at=110
history join_set_request js=o:2-b child=E_1.o:2-b_1 at=110
history join_next js=o:2-b lease=900 at=110
temporarily_failed until=200 at=120
locked run=R3 expires=1000 at=200
history join_set_create js=g:3 at=205
history join_set_request js=g:3 child=E_1.g:3_1 at=205
history join_set_create js=n:zz at=205
history join_set_request js=n:zz child=E_1.n:zz_1 at=205
unlocked at=210`
	first := foldScript(t, "E_1", script)
	if first.Status != pb.Status_STATUS_BLOCKED_BY_JOIN_SET {
		t.Fatalf("status %s, want blocked_by_join_set", events.StatusName(first.Status))
	}
	for i := range 200 {
		if st := foldScript(t, "E_1", script); !proto.Equal(st, first) {
			t.Fatalf("fold %d: blocked on %q, an earlier fold of the same events: %q", i, st.BlockedJoinSetId, first.BlockedJoinSetId)
		}
	}
}

// TestLastFailureBounded: a huge failure reason (a trap's stack trace, say) is cut in the
// state's last_failure, on a character boundary; the event keeps all of it.
func TestLastFailureBounded(t *testing.T) {
	st, err := events.Fold("E_1", nil, 0, &pb.Event{Kind: &pb.Event_Created{Created: &pb.Created{Ffqn: "a:b/c.d"}}})
	if err != nil {
		t.Fatal(err)
	}
	if st, err = events.Fold("E_1", st, 1, &pb.Event{CreatedAt: 1, Kind: &pb.Event_Locked{Locked: &pb.Locked{RunId: "R", LockExpiresAt: 10}}}); err != nil {
		t.Fatal(err)
	}
	reason := strings.Repeat("é", 1000)
	st, err = events.Fold("E_1", st, 2, &pb.Event{CreatedAt: 2, Kind: &pb.Event_TemporarilyFailed{TemporarilyFailed: &pb.TemporarilyFailed{Reason: reason}}})
	if err != nil {
		t.Fatal(err)
	}
	got := st.LastFailure
	if !strings.HasPrefix(got, "attempt 1 failed: éé") || !strings.HasSuffix(got, "...") || len(got) > 520 || !utf8.ValidString(got) {
		t.Fatalf("last_failure of %d bytes: %.80q...", len(got), got)
	}
}
