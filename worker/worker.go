// Package worker runs Obelisk activities outside the server: a Go program declares the
// functions it does, and the worker locks their executions through the server's
// WorkerService, runs a handler for each, renews the lock while the handler runs, and
// completes the execution with the handler's result.
//
// A worker may do the functions of activity stubs ([[activity_stub]]) and of activities
// whose required_labels the server's own executors lack (server.labels); its labels
// (Options.Labels) must include the component's required_labels. An execution whose
// worker dies is retried when its lock expires, by the component's retry policy, so a
// handler may run more than once for one execution and should be idempotent.
//
// The server's API answers a worker's calls only with an admin token when it has
// tokens (Options.Token).
package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"connectrpc.com/connect"
	"go.opentelemetry.io/otel/propagation"

	apiv1 "github.com/obelisk-go/obelisk/proto/obelisk/v1"
	"github.com/obelisk-go/obelisk/proto/obelisk/v1/obeliskv1connect"
)

// Handler does one execution of a function: params is the JSON array of its parameters.
// When the server traces, ctx carries the attempt's span as a remote span context
// (go.opentelemetry.io/otel/trace.SpanContextFromContext): spans the handler starts
// under ctx, and the traceparent its instrumented HTTP client sends, continue the
// execution's trace.
// It returns the ok value of the function's result as JSON (nil for a result without
// one), or an error: one made by Err completes the execution with that err value, any
// other is a failure, which the server retries. ctx ends when the worker stops or the
// execution's lock is lost (it was cancelled, or the lock expired and another attempt
// took over): the outcome is then not recorded, so the handler should return.
type Handler func(ctx context.Context, params json.RawMessage) (json.RawMessage, error)

// Options configure a Worker.
type Options struct {
	// Name identifies the worker in the executions' events (executor "worker:<name>").
	Name string
	// Token is the API's bearer token (an admin token), if the server has tokens.
	Token string
	// Labels are the worker's labels.
	Labels []string
	// Queue is where the worker looks ("" = each function's component's queue).
	Queue string
	// LockDuration is how long a lock lasts unless renewed (0 = the component's
	// lock_expiry, or a minute); the worker renews it every third of it.
	LockDuration time.Duration
	// Concurrency is how many executions the worker does at once (0 = 1).
	Concurrency int
	// PollWait is how long one lock request waits for an execution (0 = 30 s, the
	// server's bound).
	PollWait time.Duration
	// HTTPClient sends the requests (nil = http.DefaultClient).
	HTTPClient *http.Client
	// Logger (nil = slog.Default()).
	Logger *slog.Logger
}

// Worker does executions of the server at one URL.
type Worker struct {
	opts   Options
	client obeliskv1connect.WorkerServiceClient
	log    *slog.Logger
}

// New returns a worker of the server whose API is at url (e.g. "http://127.0.0.1:5005").
func New(url string, opts Options) *Worker {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 1
	}
	if opts.PollWait <= 0 {
		opts.PollWait = 30 * time.Second
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = http.DefaultClient
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	var copts []connect.ClientOption
	if opts.Token != "" {
		copts = append(copts, connect.WithInterceptors(bearer(opts.Token)))
	}
	return &Worker{opts: opts, client: obeliskv1connect.NewWorkerServiceClient(opts.HTTPClient, url, copts...), log: opts.Logger}
}

// bearer sends the token with every request.
func bearer(token string) connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set("Authorization", "Bearer "+token)
			return next(ctx, req)
		}
	}
}

// ErrResult is a handler's error that completes the execution with the err value of
// the function's result.
type ErrResult struct {
	// Value is the err value as JSON (null for a result without one).
	Value json.RawMessage
}

func (e *ErrResult) Error() string { return "err result " + string(e.Value) }

// Err returns an error that completes the execution with v (marshalled to JSON) as the
// err value of its result: an answer, not a failure, though the server retries it as
// it retries an activity's err unless the error type marks it permanent.
func Err(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("worker.Err: marshal %T: %w", v, err)
	}
	return &ErrResult{Value: b}
}

// Task describes the execution a handler does; TaskFrom returns it from the handler's
// context.
type Task struct {
	ExecutionID, FFQN string
	// Attempt counts from 1: a retry has a higher one.
	Attempt uint32
	// TraceParent and TraceState are the W3C trace context of the attempt's span, ""
	// when the server does not trace. The handler's context carries it already.
	TraceParent, TraceState string
}

type taskKey struct{}

// TaskFrom returns the execution of a handler's context.
func TaskFrom(ctx context.Context) (Task, bool) {
	t, ok := ctx.Value(taskKey{}).(Task)
	return t, ok
}

// Run does executions of the functions of handlers (by FFQN, e.g.
// "testing:stub/stub.answer") until ctx ends, and returns nil then. It returns an error
// at once if the server refuses what the worker asks for (a function it does not know
// or runs itself, labels the worker lacks, a wrong token); it rides out a server that
// cannot be reached, asking again every few seconds.
func (w *Worker) Run(ctx context.Context, handlers map[string]Handler) error {
	if len(handlers) == 0 {
		return errors.New("worker: no handlers")
	}
	ffqns := make([]string, 0, len(handlers))
	for f := range handlers {
		ffqns = append(ffqns, f)
	}
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	var wg sync.WaitGroup
	for range w.opts.Concurrency {
		wg.Go(func() {
			if err := w.loop(ctx, ffqns, handlers); err != nil {
				stop(err)
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// loop locks and does one execution at a time.
func (w *Worker) loop(ctx context.Context, ffqns []string, handlers map[string]Handler) error {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		resp, err := w.client.Lock(ctx, connect.NewRequest(&apiv1.WorkerLockRequest{
			Worker: w.opts.Name, Ffqns: ffqns, Queue: w.opts.Queue, Labels: w.opts.Labels,
			LockDurationMillis: uint64(w.opts.LockDuration / time.Millisecond), MaxExecutions: 1,
			WaitMillis: uint64(w.opts.PollWait / time.Millisecond),
		}))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if refused(err) {
				return fmt.Errorf("worker: lock: %w", err)
			}
			w.log.Warn("worker: lock", "err", err, "retry_in", backoff)
			sleep(ctx, backoff)
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		for _, t := range resp.Msg.Tasks {
			w.do(ctx, t, handlers[t.Ffqn])
		}
	}
	return nil
}

// refused: the server will answer the same again; asking again would not help.
func refused(err error) bool {
	switch connect.CodeOf(err) {
	case connect.CodeInvalidArgument, connect.CodeFailedPrecondition, connect.CodeNotFound,
		connect.CodeUnauthenticated, connect.CodePermissionDenied, connect.CodeUnimplemented:
		return true
	}
	return false
}

// lockLost: the server says the run no longer holds the execution's lock.
func lockLost(err error) bool {
	return connect.CodeOf(err) == connect.CodeFailedPrecondition || connect.CodeOf(err) == connect.CodeNotFound
}

// do runs the handler of task t, renewing its lock meanwhile, and completes it.
func (w *Worker) do(ctx context.Context, t *apiv1.WorkerTask, h Handler) {
	log := w.log.With("execution", t.ExecutionId, "ffqn", t.Ffqn, "attempt", t.Attempt)
	lock := time.Duration(t.LockDurationMillis) * time.Millisecond
	if lock == 0 {
		// A server older than lock_duration_millis: its expiry, by its clock.
		expires, err := time.Parse(time.RFC3339Nano, t.LockExpiresAt)
		if err != nil {
			h = nil
		}
		lock = time.Until(expires)
	}
	if h == nil {
		log.Error("worker: unusable task", "lock_expires_at", t.LockExpiresAt, "has_handler", h != nil)
		return // its lock expires into a retry
	}
	task := Task{ExecutionID: t.ExecutionId, FFQN: t.Ffqn, Attempt: t.Attempt, TraceParent: t.Traceparent, TraceState: t.Tracestate}
	hctx, cancel := context.WithCancel(withTrace(context.WithValue(ctx, taskKey{}, task), task))
	defer cancel()
	// Renewals are timed by the lock's duration on this worker's clock: the server's
	// expiry time is by its clock, and a skew between the two would shift them.
	every := func(lock time.Duration) time.Duration { return max(lock/3, 10*time.Millisecond) }
	renewed := make(chan struct{})
	var lost bool
	go func() {
		defer close(renewed)
		tick := time.NewTicker(every(lock))
		defer tick.Stop()
		for {
			select {
			case <-hctx.Done():
				return
			case <-tick.C:
			}
			resp, err := w.client.Renew(hctx, connect.NewRequest(&apiv1.WorkerRenewRequest{
				ExecutionId: t.ExecutionId, RunId: t.RunId, LockDurationMillis: uint64(w.opts.LockDuration / time.Millisecond),
			}))
			switch {
			case err == nil:
				if d := time.Duration(resp.Msg.LockDurationMillis) * time.Millisecond; d > 0 && d != lock {
					lock = d
					tick.Reset(every(lock))
				}
			case hctx.Err() != nil:
			case lockLost(err):
				log.Warn("worker: lock lost; stopping the handler", "err", err)
				lost = true
				cancel()
				return
			default:
				log.Warn("worker: renew lock", "err", err) // tried again at the next tick
			}
		}
	}()
	out, herr := h(hctx, json.RawMessage(t.ParamsJson))
	cancel()
	<-renewed
	if lost {
		return // not ours to record any more
	}
	var er *ErrResult
	if ctx.Err() != nil && herr != nil && !errors.As(herr, &er) {
		return // stopped, likely by the shutdown: the lock expires into a retry
	}
	// The handler's work is done: a stop does not cut its recording short (it would be
	// done again after the lock expires), but bounds it to completeOnStop more.
	cctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	defer context.AfterFunc(ctx, func() { time.AfterFunc(completeOnStop, stop) })()
	req := &apiv1.WorkerCompleteRequest{ExecutionId: t.ExecutionId, RunId: t.RunId}
	switch {
	case errors.As(herr, &er):
		req.ResultJson = `{"err":` + orNull(er.Value) + `}`
	case herr != nil:
		req.Failure = herr.Error()
	default:
		req.ResultJson = `{"ok":` + orNull(out) + `}`
	}
	for attempt := 0; ; attempt++ {
		resp, err := w.client.Complete(cctx, connect.NewRequest(req))
		switch {
		case err == nil:
			log.Debug("worker: completed", "outcome", resp.Msg.Outcome)
			return
		case cctx.Err() != nil:
			log.Warn("worker: complete: stopped before the server answered; the execution is retried when its lock expires", "err", err)
			return
		case refused(err) || attempt >= 4:
			// A result the WIT refuses, or a lost lock: the execution is retried when
			// its lock expires (if it still holds one).
			log.Error("worker: complete", "err", err)
			return
		}
		log.Warn("worker: complete", "err", err)
		sleep(cctx, time.Duration(attempt+1)*200*time.Millisecond)
	}
}

// withTrace returns ctx carrying t's trace context as the remote span context, if it
// has a valid one.
func withTrace(ctx context.Context, t Task) context.Context {
	if t.TraceParent == "" {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": t.TraceParent, "tracestate": t.TraceState})
}

// completeOnStop bounds how long a stopping worker tries to record the result of a
// handler that finished.
const completeOnStop = 5 * time.Second

func orNull(v json.RawMessage) string {
	if len(v) == 0 {
		return "null"
	}
	return string(v)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
