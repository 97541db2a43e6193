package actors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	"github.com/obelisk-go/obelisk/wasmhost"
	"google.golang.org/protobuf/proto"
)

func newTestEngine(t *testing.T) *Engine {
	t.Helper()
	ctx := context.Background()
	e, err := New(ctx, Config{DataDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(ctx) })
	return e
}

func createdTx(id string, now time.Time) *events.Tx {
	return &events.Tx{Appends: []events.Append{{ExecutionID: id, Events: []*pb.Event{{
		CreatedAt: now.UnixNano(),
		Kind:      &pb.Event_Created{Created: &pb.Created{Ffqn: "a:b/c.d", Params: []byte("[]"), ScheduledAt: now.UnixNano(), Queue: "none"}},
	}}}}}
}

// A crashing actor answers its caller with an error and is restarted by its supervisor:
// the next message finds the execution exactly as the store has it.
func TestActorCrashIsSupervised(t *testing.T) {
	e := newTestEngine(t)
	ctx := context.Background()
	id := events.NewExecutionID(time.Now())
	if _, err := e.change(ctx, id, func(st *pb.ExecutionState) (*events.Tx, error) { return createdTx(id, time.Now()), nil }); err != nil {
		t.Fatal(err)
	}
	_, err := e.change(ctx, id, func(st *pb.ExecutionState) (*events.Tx, error) { panic("boom") })
	if err == nil || !strings.Contains(err.Error(), "crashed") {
		t.Fatalf("err = %v, want a crash error", err)
	}
	st, err := e.change(ctx, id, func(st *pb.ExecutionState) (*events.Tx, error) { return nil, nil })
	if err != nil {
		t.Fatalf("after the crash: %v", err)
	}
	if st.NextVersion != 1 || st.Status != pb.Status_STATUS_PENDING_AT {
		t.Fatalf("state after restart: %v", st)
	}
}

// Concurrent changes of one execution are serialised by its actor: every one sees the
// state the previous one left, so no version conflict can happen.
func TestActorSerialisesChanges(t *testing.T) {
	e := newTestEngine(t)
	ctx := context.Background()
	id := events.NewExecutionID(time.Now())
	if _, err := e.change(ctx, id, func(st *pb.ExecutionState) (*events.Tx, error) { return createdTx(id, time.Now()), nil }); err != nil {
		t.Fatal(err)
	}
	const n = 50
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := e.change(ctx, id, func(st *pb.ExecutionState) (*events.Tx, error) {
				// Pausing twice is refused: each change must see the one before it.
				ev := &pb.Event{CreatedAt: time.Now().UnixNano(), Kind: &pb.Event_Paused{Paused: &pb.Paused{}}}
				if st.Paused {
					ev.Kind = &pb.Event_Unpaused{Unpaused: &pb.Unpaused{}}
				}
				return appendTx(st, "", ev), nil
			})
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	st, err := e.State(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if st.NextVersion != n+1 {
		t.Fatalf("next version %d, want %d", st.NextVersion, n+1)
	}
}

func TestRetryBackoff(t *testing.T) {
	cases := []struct {
		retry    *pb.RetryConfig
		failures uint32
		want     time.Duration
		ok       bool
	}{
		{&pb.RetryConfig{MaxRetries: 5, RetryExpBackoff: int64(100 * time.Millisecond)}, 0, 100 * time.Millisecond, true},
		{&pb.RetryConfig{MaxRetries: 5, RetryExpBackoff: int64(100 * time.Millisecond)}, 1, 200 * time.Millisecond, true},
		{&pb.RetryConfig{MaxRetries: 5, RetryExpBackoff: int64(100 * time.Millisecond)}, 4, 1600 * time.Millisecond, true},
		{&pb.RetryConfig{MaxRetries: 5, RetryExpBackoff: int64(100 * time.Millisecond)}, 5, 0, false},
		{&pb.RetryConfig{MaxRetries: 0, RetryExpBackoff: int64(100 * time.Millisecond)}, 0, 0, false},
		{&pb.RetryConfig{UnlimitedRetries: true, RetryExpBackoff: int64(time.Millisecond)}, 1000, time.Millisecond << 30, true},
		{nil, 0, 0, false},
	}
	for _, c := range cases {
		got, ok := retryBackoff(&pb.ExecutionState{Retry: c.retry, IntermittentFailures: c.failures})
		if got != c.want || ok != c.ok {
			t.Errorf("retry %v after %d failures: got %v %v, want %v %v", c.retry, c.failures, got, ok, c.want, c.ok)
		}
	}
}

// TestRetryJitter: a jittered delay stays within its bounds, is the same every time it
// is computed for one execution and retry (a replay, a second node), and differs
// between executions, so that executions failing together spread out.
func TestRetryJitter(t *testing.T) {
	const base = 100 * time.Millisecond
	retry := &pb.RetryConfig{MaxRetries: 5, RetryExpBackoff: int64(base), RetryJitter: 0.5}
	delays := map[time.Duration]bool{}
	for i := range 50 {
		st := &pb.ExecutionState{ExecutionId: fmt.Sprintf("E_%d", i), Retry: retry, IntermittentFailures: 1}
		d, ok := retryBackoff(st)
		if !ok || d < base || d > 3*base { // the second retry: 200ms scaled by [0.5, 1.5]
			t.Fatalf("%s: %v %v, want 100ms..300ms", st.ExecutionId, d, ok)
		}
		if again, _ := retryBackoff(st); again != d {
			t.Fatalf("%s: %v, then %v for the same retry", st.ExecutionId, d, again)
		}
		delays[d] = true
	}
	if len(delays) < 40 {
		t.Fatalf("50 executions drew only %d different delays", len(delays))
	}
	st := &pb.ExecutionState{ExecutionId: "E_1", Retry: &pb.RetryConfig{MaxRetries: 5, RetryExpBackoff: int64(base)}}
	if d, _ := retryBackoff(st); d != base {
		t.Fatalf("no jitter: %v, want %v", d, base)
	}
}

// TestRetryOverride: a submitter's policy replaces the component's field by field, and a
// bad one is refused, naming what is wrong.
func TestRetryOverride(t *testing.T) {
	c := &ComponentConfig{MaxRetries: 5, RetryExpBackoff: time.Second, RetryJitter: 0.1}
	three, half, bad := uint32(3), 0.5, 1.5
	cases := []struct {
		o    *RetryOverride
		want *pb.RetryConfig
		err  string
	}{
		{nil, nil, ""},
		{&RetryOverride{}, &pb.RetryConfig{MaxRetries: 5, RetryExpBackoff: int64(time.Second), RetryJitter: 0.1}, ""},
		{&RetryOverride{MaxRetries: &three}, &pb.RetryConfig{MaxRetries: 3, RetryExpBackoff: int64(time.Second), RetryJitter: 0.1}, ""},
		{&RetryOverride{Backoff: time.Millisecond, Jitter: &half}, &pb.RetryConfig{MaxRetries: 5, RetryExpBackoff: int64(time.Millisecond), RetryJitter: 0.5}, ""},
		{&RetryOverride{Backoff: time.Microsecond}, nil, "retry backoff 1µs: must be at least 1ms"},
		{&RetryOverride{Jitter: &bad}, nil, "retry jitter 1.5: must be a fraction from 0 to 1"},
	}
	for _, tc := range cases {
		got, err := tc.o.retryConfig(c)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%+v: err %v, want %q", tc.o, err, tc.err)
			}
			continue
		}
		if err != nil || !proto.Equal(got, tc.want) {
			t.Errorf("%+v: %v, %v; want %v", tc.o, got, err, tc.want)
		}
	}
	// What the Locked events record: the submitter's policy when the Created has one.
	if got := c.retryConfig(&pb.RetryConfig{MaxRetries: 9}); got.MaxRetries != 9 {
		t.Fatalf("locked with a submitted policy: %v", got)
	}
}

func TestResidentEvictsOldest(t *testing.T) {
	r := newResident(2)
	a, b := r.park("a", "q", nil), r.park("b", "q", nil)
	c := r.park("c", "q", nil)
	select {
	case <-a.evicted:
	default:
		t.Fatal("the oldest waiter was not evicted")
	}
	for _, w := range []*waiter{b, c} {
		select {
		case <-w.evicted:
			t.Fatalf("%s evicted", w.id)
		default:
		}
	}
	r.notify("b")
	select {
	case <-b.signal:
	default:
		t.Fatal("b not signalled")
	}
	if !r.leave(b) {
		t.Fatal("b, not evicted, left as evicted")
	}
	if r.leave(a) {
		t.Fatal("a, evicted, left as if it were not")
	}
	if r.count() != 1 {
		t.Fatalf("count %d, want 1", r.count())
	}
	if newResident(-1).park("x", "q", nil) != nil {
		t.Fatal("a resident set of size -1 accepted a waiter")
	}
}

func TestSubmitErrors(t *testing.T) {
	e := newTestEngine(t)
	_, _, err := e.Submit(context.Background(), "", "a:b/c.d", []byte("[]"))
	var nf *FunctionNotFoundError
	if !errors.As(err, &nf) {
		t.Fatalf("unknown function: %v", err)
	}
	_, _, err = e.Submit(context.Background(), "", "nope", []byte("[]"))
	var ia *InvalidArgumentError
	if !errors.As(err, &ia) {
		t.Fatalf("malformed FFQN: %v", err)
	}
}

func contains(s, sub string) bool {
	return len(sub) == 0 || len(s) >= len(sub) && (s[:len(sub)] == sub || contains(s[1:], sub))
}

// TestParamsLimit: parameters over Config.MaxParamsBytes are refused wherever an
// execution is created with them: a submission, and a workflow's or a webhook's child or
// schedule (checkedParams), but a replay of history recorded before is not.
func TestParamsLimit(t *testing.T) {
	ctx := context.Background()
	e, err := New(ctx, Config{
		DataDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxParamsBytes: 100,
		Components: []ComponentConfig{{Name: "approval", Type: ActivityStub, WIT: `
package testing:approval;
interface approval { approve: func(id: string) -> result<bool, string>; }
world any { export approval; }
`}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(ctx) })
	fn := e.reg.byFFQN["testing:approval/approval.approve"]
	big := []byte(`["` + strings.Repeat("x", 200) + `"]`)

	_, err = e.checkedParams(fn, big, true)
	var he *wasmhost.HostError
	if !errors.As(err, &he) || he.Kind != "bad_request" || !strings.Contains(he.Message, "api.max_params_bytes") {
		t.Fatalf("child params over the limit: %v", err)
	}
	if _, err := e.checkedParams(fn, []byte(`["x"]`), true); err != nil {
		t.Fatalf("child params under the limit: %v", err)
	}
	if p, err := e.checkedParams(fn, big, false); err != nil || len(p) != len(big) {
		t.Fatalf("replayed params over the limit: %v", err)
	}

	_, _, err = e.Submit(ctx, "", "testing:approval/approval.approve", big)
	var ia *InvalidArgumentError
	if !errors.As(err, &ia) || !strings.Contains(err.Error(), "api.max_params_bytes") {
		t.Fatalf("submit over the limit: %v", err)
	}
}

// TestDescribeClipsValues: a nondeterminism error, which becomes the workflow's stored
// result, quotes a request's parameters clipped, not a second copy of them.
func TestDescribeClipsValues(t *testing.T) {
	params := []byte(`["` + strings.Repeat("x", 1<<20) + `"]`)
	for _, h := range []*pb.HistoryEvent{
		{Kind: &pb.HistoryEvent_JoinSetRequest{JoinSetRequest: &pb.JoinSetRequest{JoinSetId: "g:1",
			Request: &pb.JoinSetRequest_Child{Child: &pb.ChildExecutionRequest{ChildExecutionId: "E_1.g:1_1", Ffqn: "a:b/c.d", Params: params}}}}},
		{Kind: &pb.HistoryEvent_Schedule{Schedule: &pb.Schedule{ExecutionId: "E_2", Ffqn: "a:b/c.d", Params: params}}},
		{Kind: &pb.HistoryEvent_Stub{Stub: &pb.Stub{TargetExecutionId: "E_1.g:1_1", Result: params}}},
	} {
		if d := describe(h); len(d) > 300 || !strings.Contains(d, "bytes)") {
			t.Errorf("describe: %d bytes: %.300s", len(d), d)
		}
	}
}
