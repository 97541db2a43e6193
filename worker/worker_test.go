package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.opentelemetry.io/otel/trace"

	apiv1 "github.com/obelisk-go/obelisk/proto/obelisk/v1"
	"github.com/obelisk-go/obelisk/proto/obelisk/v1/obeliskv1connect"
)

// fakeServer hands out the tasks given to it, one per Lock, and records the calls.
type fakeServer struct {
	mu        sync.Mutex
	tasks     []*apiv1.WorkerTask
	renewals  map[string]int
	completes map[string]*apiv1.WorkerCompleteRequest
	lost      map[string]bool // runs whose renewal answers "lock lost"
	auth      []string
	done      chan string // execution IDs completed
}

func newFake(tasks ...*apiv1.WorkerTask) *fakeServer {
	return &fakeServer{tasks: tasks, renewals: map[string]int{}, completes: map[string]*apiv1.WorkerCompleteRequest{},
		lost: map[string]bool{}, done: make(chan string, 10)}
}

func (f *fakeServer) Lock(ctx context.Context, req *connect.Request[apiv1.WorkerLockRequest]) (*connect.Response[apiv1.WorkerLockResponse], error) {
	f.mu.Lock()
	f.auth = append(f.auth, req.Header().Get("Authorization"))
	if len(req.Msg.Ffqns) == 1 && req.Msg.Ffqns[0] == "a:b/c.refused" {
		f.mu.Unlock()
		return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("labels missing"))
	}
	var out []*apiv1.WorkerTask
	if len(f.tasks) > 0 {
		out, f.tasks = f.tasks[:1], f.tasks[1:]
	}
	f.mu.Unlock()
	if out == nil {
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(req.Msg.WaitMillis) * time.Millisecond):
		}
	}
	return connect.NewResponse(&apiv1.WorkerLockResponse{Tasks: out}), nil
}

func (f *fakeServer) Renew(_ context.Context, req *connect.Request[apiv1.WorkerRenewRequest]) (*connect.Response[apiv1.WorkerRenewResponse], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lost[req.Msg.RunId] {
		return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("lock lost"))
	}
	f.renewals[req.Msg.ExecutionId]++
	return connect.NewResponse(&apiv1.WorkerRenewResponse{}), nil
}

func (f *fakeServer) Complete(_ context.Context, req *connect.Request[apiv1.WorkerCompleteRequest]) (*connect.Response[apiv1.WorkerCompleteResponse], error) {
	f.mu.Lock()
	f.completes[req.Msg.ExecutionId] = req.Msg
	f.mu.Unlock()
	f.done <- req.Msg.ExecutionId
	return connect.NewResponse(&apiv1.WorkerCompleteResponse{Outcome: "ok"}), nil
}

func serve(t *testing.T, f *fakeServer) string {
	mux := http.NewServeMux()
	mux.Handle(obeliskv1connect.NewWorkerServiceHandler(f))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

func task(id, params string, lock time.Duration) *apiv1.WorkerTask {
	return &apiv1.WorkerTask{ExecutionId: id, RunId: "Run_" + id, Ffqn: "a:b/c.f", ParamsJson: params, Attempt: 1,
		LockExpiresAt: time.Now().Add(lock).UTC().Format(time.RFC3339Nano)}
}

// TestRunCompletes: a worker runs the handler of each task and completes it with its ok
// value, its Err value, or its error as a failure; it renews the lock of a handler that
// runs past a third of it, and sends its token.
func TestRunCompletes(t *testing.T) {
	f := newFake(task("E_ok", `[2]`, time.Minute), task("E_err", `[-1]`, time.Minute), task("E_fail", `[0]`, time.Minute),
		task("E_slow", `[3]`, 300*time.Millisecond))
	w := New(serve(t, f), Options{Name: "t", Token: "secret", PollWait: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		errc <- w.Run(ctx, map[string]Handler{"a:b/c.f": func(ctx context.Context, params json.RawMessage) (json.RawMessage, error) {
			var p []int
			if err := json.Unmarshal(params, &p); err != nil {
				return nil, err
			}
			if tk, ok := TaskFrom(ctx); !ok || tk.FFQN != "a:b/c.f" || tk.Attempt != 1 {
				return nil, errors.New("no task in the context")
			}
			switch {
			case p[0] < 0:
				return nil, Err("negative")
			case p[0] == 0:
				return nil, errors.New("zero")
			case p[0] == 3:
				time.Sleep(time.Second) // past three renewals of a 300ms lock
			}
			return json.Marshal(p[0] * 10)
		}})
	}()
	for range 4 {
		select {
		case <-f.done:
		case err := <-errc:
			t.Fatalf("Run returned early: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("the tasks were not all completed")
		}
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, want := range map[string]string{"E_ok": `{"ok":20}`, "E_err": `{"err":"negative"}`, "E_slow": `{"ok":30}`} {
		if c := f.completes[id]; c.ResultJson != want || c.Failure != "" || c.RunId != "Run_"+id {
			t.Errorf("%s completed with %+v, want %s", id, c, want)
		}
	}
	if c := f.completes["E_fail"]; c.Failure != "zero" || c.ResultJson != "" {
		t.Errorf("E_fail completed with %+v, want the failure", c)
	}
	if f.renewals["E_slow"] < 2 || f.renewals["E_ok"] != 0 {
		t.Errorf("renewals: %v", f.renewals)
	}
	if f.auth[0] != "Bearer secret" {
		t.Errorf("Authorization: %q", f.auth[0])
	}
}

// TestLostLockStopsHandler: a renewal answered "lock lost" ends the handler's context,
// and the worker records nothing for that run.
func TestLostLockStopsHandler(t *testing.T) {
	f := newFake(task("E_lost", `[1]`, 90*time.Millisecond))
	f.lost["Run_E_lost"] = true
	w := New(serve(t, f), Options{PollWait: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopped := make(chan error, 1)
	go w.Run(ctx, map[string]Handler{"a:b/c.f": func(ctx context.Context, _ json.RawMessage) (json.RawMessage, error) {
		select {
		case <-ctx.Done():
			stopped <- ctx.Err()
		case <-time.After(30 * time.Second):
			stopped <- errors.New("not stopped")
		}
		return json.RawMessage(`1`), nil
	}})
	if err := <-stopped; !errors.Is(err, context.Canceled) {
		t.Fatalf("handler: %v", err)
	}
	cancel()
	select {
	case id := <-f.done:
		t.Fatalf("%s was completed after its lock was lost", id)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestStopCompletesFinishedHandler: a handler that returns its result after the worker
// is told to stop has done its work: the worker records it before Run returns, rather
// than leave it to be done again after the lock expires. One that fails on the stop
// records nothing.
func TestStopCompletesFinishedHandler(t *testing.T) {
	f := newFake(task("E_done", `[1]`, time.Minute))
	w := New(serve(t, f), Options{PollWait: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- w.Run(ctx, map[string]Handler{"a:b/c.f": func(ctx context.Context, _ json.RawMessage) (json.RawMessage, error) {
			close(started)
			<-ctx.Done()
			return json.RawMessage(`7`), nil // finished all the same
		}})
	}()
	<-started
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.completes["E_done"]; c == nil || c.ResultJson != `{"ok":7}` {
		t.Fatalf("the finished handler's result was not recorded at the stop: %+v", c)
	}
}

// TestRenewalsIgnoreServerClock: renewals are timed by the lock's duration, not by the
// server's expiry time: a server whose clock is an hour ahead still gets a renewal every
// third of the lock.
func TestRenewalsIgnoreServerClock(t *testing.T) {
	skewed := task("E_skew", `[1]`, time.Hour+300*time.Millisecond) // expires in 300ms, by the server's clock
	skewed.LockDurationMillis = 300
	f := newFake(skewed)
	w := New(serve(t, f), Options{PollWait: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx, map[string]Handler{"a:b/c.f": func(ctx context.Context, _ json.RawMessage) (json.RawMessage, error) {
		time.Sleep(time.Second)
		return json.RawMessage(`1`), nil
	}})
	select {
	case <-f.done:
	case <-time.After(30 * time.Second):
		t.Fatal("not completed")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := f.renewals["E_skew"]; n < 5 || n > 12 {
		t.Fatalf("%d renewals of a 300ms lock during 1s, want about 10 (one per 100ms)", n)
	}
}

// TestRunRefused: a request the server refuses ends Run with its error.
func TestRunRefused(t *testing.T) {
	w := New(serve(t, newFake()), Options{})
	err := w.Run(context.Background(), map[string]Handler{"a:b/c.refused": nil})
	if connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("Run: %v", err)
	}
}

// TestHandlerContextCarriesTrace: the traceparent of a task is the remote span context
// of its handler's context, so that the handler's spans continue the execution's trace.
func TestHandlerContextCarriesTrace(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	traced := task("E_traced", `[1]`, time.Minute)
	traced.Traceparent = tp
	f := newFake(traced, task("E_plain", `[2]`, time.Minute))
	w := New(serve(t, f), Options{PollWait: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan string, 2)
	go w.Run(ctx, map[string]Handler{"a:b/c.f": func(ctx context.Context, params json.RawMessage) (json.RawMessage, error) {
		sc := trace.SpanContextFromContext(ctx)
		tk, _ := TaskFrom(ctx)
		got <- fmt.Sprintf("%s %v %s %s %v %q", tk.ExecutionID, sc.IsValid(), sc.TraceID(), sc.SpanID(), sc.IsRemote(), tk.TraceParent)
		return nil, nil
	}})
	want := map[string]bool{
		"E_traced true 4bf92f3577b34da6a3ce929d0e0e4736 00f067aa0ba902b7 true \"" + tp + "\"": true,
		"E_plain false 00000000000000000000000000000000 0000000000000000 false \"\"":          true,
	}
	for range 2 {
		select {
		case g := <-got:
			if !want[g] {
				t.Errorf("handler saw %s, want one of %v", g, want)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the tasks were not run")
		}
	}
}
