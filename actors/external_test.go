package actors

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	"github.com/obelisk-go/obelisk/tracing"
)

const approveFFQN = "testing:approval/approval.approve"

// newWorkerEngine starts an engine with an activity stub that requires the label "gpu".
func newWorkerEngine(t *testing.T) *Engine {
	t.Helper()
	e := newWorkerEngineIn(t, t.TempDir())
	t.Cleanup(func() { e.Close(context.Background()) })
	return e
}

// newWorkerEngineIn is newWorkerEngine on the store in dir; the caller closes it.
func newWorkerEngineIn(t *testing.T, dir string) *Engine {
	t.Helper()
	e, err := New(context.Background(), workerEngineConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// workerEngineConfig is the configuration of newWorkerEngine.
func workerEngineConfig(dir string) Config {
	return Config{
		DataDir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Components: []ComponentConfig{{Name: "approval", Type: ActivityStub, MaxRetries: 2, RetryExpBackoff: 10 * time.Millisecond,
			RequiredLabels: []string{"gpu"}, WIT: `
package testing:approval;
interface approval { approve: func(id: string) -> result<bool, string>; }
world any { export approval; }
`}},
	}
}

// createApproval creates a pending execution of the stub, as a workflow's child would be.
func createApproval(t *testing.T, e *Engine, id string, with ...func(*pb.Created)) {
	t.Helper()
	now := time.Now()
	fn := e.reg.byFFQN[approveFFQN]
	c := &pb.Created{Ffqn: approveFFQN, Params: []byte(`["x"]`), ScheduledAt: now.UnixNano(), Queue: "approval", ComponentId: fn.Component.ID}
	for _, f := range with {
		f(c)
	}
	_, err := e.store.Commit(context.Background(), &events.Tx{Appends: []events.Append{{ExecutionID: id, Events: []*pb.Event{{
		CreatedAt: now.UnixNano(), Kind: &pb.Event_Created{Created: c},
	}}}}})
	if err != nil {
		t.Fatal(err)
	}
}

func gpuLock(wait time.Duration) WorkerLockRequest {
	return WorkerLockRequest{Worker: "w1", FFQNs: []string{approveFFQN}, Labels: []string{"gpu"}, Wait: wait}
}

func failedPrecondition(err error, want string) bool {
	var fp *FailedPreconditionError
	return errors.As(err, &fp) && strings.Contains(err.Error(), want)
}

// TestWorkerLockRenewComplete: a worker locks a stub's execution (a real lock, with its
// run ID), renews it, is refused a result of the wrong type, and completes it; a second
// result of its run is refused.
func TestWorkerLockRenewComplete(t *testing.T) {
	e := newWorkerEngine(t)
	ctx := context.Background()
	createApproval(t, e, "E_1")

	if _, err := e.LockForWorker(ctx, WorkerLockRequest{FFQNs: []string{approveFFQN}}); !failedPrecondition(err, `"gpu"`) {
		t.Fatalf("lock without the required label: %v", err)
	}
	var nf *FunctionNotFoundError
	if _, err := e.LockForWorker(ctx, WorkerLockRequest{FFQNs: []string{"a:b/c.nope"}}); !errors.As(err, &nf) {
		t.Fatalf("lock of an unknown function: %v", err)
	}
	var ia *InvalidArgumentError
	if _, err := e.LockForWorker(ctx, WorkerLockRequest{FFQNs: []string{approveFFQN}, Labels: []string{"gpu"}, LockDuration: time.Millisecond}); !errors.As(err, &ia) {
		t.Fatalf("lock of 1ms: %v", err)
	}

	tasks, err := e.LockForWorker(ctx, gpuLock(0))
	if err != nil || len(tasks) != 1 {
		t.Fatalf("lock: %v %v", tasks, err)
	}
	task := tasks[0]
	if task.ExecutionID != "E_1" || string(task.Params) != `["x"]` || task.Attempt != 1 || task.FFQN != approveFFQN {
		t.Fatalf("task %+v", task)
	}
	st, err := e.store.State(ctx, "E_1")
	if err != nil || st.Status != pb.Status_STATUS_LOCKED || st.RunId != task.RunID || st.ExecutorId != "worker:w1" {
		t.Fatalf("state after the lock: %v %v", st, err)
	}
	if again, err := e.LockForWorker(ctx, gpuLock(0)); err != nil || len(again) != 0 {
		t.Fatalf("a locked execution was locked again: %v %v", again, err)
	}

	if _, _, err := e.RenewForWorker(ctx, "E_1", "Run_other", 0); !failedPrecondition(err, "lock lost") {
		t.Fatalf("renew by another run: %v", err)
	}
	expires, d, err := e.RenewForWorker(ctx, "E_1", task.RunID, time.Hour)
	if err != nil || !expires.After(task.LockExpiresAt) || d != time.Hour || task.LockDuration != DefaultWorkerLock {
		t.Fatalf("renew: %v (expires %v, was %v)", err, expires, task.LockExpiresAt)
	}
	if st, _ := e.store.State(ctx, "E_1"); st.LockExpiresAt != expires.UnixNano() || st.RunId != task.RunID {
		t.Fatalf("the renewal is not in the store: %v", st)
	}

	_, err = e.CompleteForWorker(ctx, "E_1", task.RunID, json.RawMessage(`{"ok": "yes"}`), "")
	if !errors.As(err, &ia) || !strings.Contains(err.Error(), "bool") {
		t.Fatalf("a result of the wrong type: %v", err)
	}
	t.Logf("a result of the wrong type: %v", err)
	if st, _ := e.store.State(ctx, "E_1"); st.Status != pb.Status_STATUS_LOCKED {
		t.Fatalf("a refused result changed the execution: %v", st)
	}
	if _, err := e.CompleteForWorker(ctx, "E_1", task.RunID, nil, ""); !errors.As(err, &ia) {
		t.Fatalf("no result: %v", err)
	}
	outcome, err := e.CompleteForWorker(ctx, "E_1", task.RunID, json.RawMessage(`{"ok": true}`), "")
	if err != nil || outcome != "ok" {
		t.Fatalf("complete: %q %v", outcome, err)
	}
	if st, _ := e.store.State(ctx, "E_1"); st.Status != pb.Status_STATUS_FINISHED || string(st.Result) != `{"ok":true}` {
		t.Fatalf("state after complete: %v", st)
	}
	if _, err := e.CompleteForWorker(ctx, "E_1", task.RunID, json.RawMessage(`{"ok": false}`), ""); !failedPrecondition(err, "lock lost") {
		t.Fatalf("a second result: %v", err)
	}
	// The same result again (its worker lost the first answer) is acknowledged.
	if outcome, err := e.CompleteForWorker(ctx, "E_1", task.RunID, json.RawMessage(`{"ok": true}`), ""); err != nil || outcome != "ok" {
		t.Fatalf("the result sent again: %q %v", outcome, err)
	}
}

// TestWorkerLockSurvivesRestart: a server restart keeps a worker's lock (the worker's
// process did not die with the server), so the worker's run renews and completes its
// execution after the restart without losing the attempt.
func TestWorkerLockSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e := newWorkerEngineIn(t, dir)
	createApproval(t, e, "E_R")
	tasks, err := e.LockForWorker(ctx, gpuLock(0))
	if err != nil || len(tasks) != 1 {
		t.Fatalf("lock: %v %v", tasks, err)
	}
	task := tasks[0]
	if err := e.Close(ctx); err != nil {
		t.Fatal(err)
	}

	e = newWorkerEngineIn(t, dir)
	defer e.Close(ctx)
	st, err := e.store.State(ctx, "E_R")
	if err != nil || st.Status != pb.Status_STATUS_LOCKED || st.RunId != task.RunID || st.IntermittentFailures != 0 {
		t.Fatalf("the restart released the worker's lock: %v %v", st, err)
	}
	if _, _, err := e.RenewForWorker(ctx, "E_R", task.RunID, 0); err != nil {
		t.Fatalf("renew after the restart: %v", err)
	}
	if outcome, err := e.CompleteForWorker(ctx, "E_R", task.RunID, json.RawMessage(`{"ok": true}`), ""); err != nil || outcome != "ok" {
		t.Fatalf("complete after the restart: %q %v", outcome, err)
	}
}

// TestWorkerLockExpiresIntoRetry: a worker that stops renewing loses its lock at expiry;
// the attempt is retried (by the component's policy) and taken by the next lock; the
// first run can neither renew nor complete any more. A worker's failure is retried too.
func TestWorkerLockExpiresIntoRetry(t *testing.T) {
	e := newWorkerEngine(t)
	ctx := context.Background()
	createApproval(t, e, "E_2")
	req := gpuLock(0)
	req.LockDuration = MinWorkerLock
	first, err := e.LockForWorker(ctx, req)
	if err != nil || len(first) != 1 {
		t.Fatalf("lock: %v %v", first, err)
	}
	req.Wait = 20 * time.Second // the expiry, then the retry's backoff
	second, err := e.LockForWorker(ctx, req)
	if err != nil || len(second) != 1 {
		t.Fatalf("lock after the expiry: %v %v", second, err)
	}
	if second[0].Attempt != 2 || second[0].RunID == first[0].RunID {
		t.Fatalf("retry: %+v after %+v", second[0], first[0])
	}
	if _, _, err := e.RenewForWorker(ctx, "E_2", first[0].RunID, 0); !failedPrecondition(err, "lock lost") {
		t.Fatalf("renew of the expired run: %v", err)
	}
	if _, err := e.CompleteForWorker(ctx, "E_2", first[0].RunID, json.RawMessage(`{"ok": true}`), ""); !failedPrecondition(err, "lock lost") {
		t.Fatalf("complete of the expired run: %v", err)
	}
	if _, _, err := e.RenewForWorker(ctx, "E_2", second[0].RunID, time.Minute); err != nil {
		t.Fatalf("renew of the second run: %v", err)
	}
	outcome, err := e.CompleteForWorker(ctx, "E_2", second[0].RunID, nil, "out of paper")
	if err != nil || outcome != "retried_failure" {
		t.Fatalf("failure: %q %v", outcome, err)
	}
	third, err := e.LockForWorker(ctx, req)
	if err != nil || len(third) != 1 || third[0].Attempt != 3 {
		t.Fatalf("lock after the failure: %v %v", third, err)
	}
	if outcome, err := e.CompleteForWorker(ctx, "E_2", third[0].RunID, json.RawMessage(`{"err": "no"}`), ""); err != nil || outcome != "err" {
		t.Fatalf("last attempt's err: %q %v", outcome, err) // max_retries 2: no retry left
	}
	st, _ := e.store.State(ctx, "E_2")
	if st.Status != pb.Status_STATUS_FINISHED || string(st.Result) != `{"err":"no"}` {
		t.Fatalf("final state: %v", st)
	}
}

// TestWorkerLockWaits: a lock with nothing due waits, and returns the execution that
// becomes pending meanwhile.
func TestWorkerLockWaits(t *testing.T) {
	e := newWorkerEngine(t)
	ctx := context.Background()
	type result struct {
		tasks []WorkerTask
		err   error
	}
	got := make(chan result, 1)
	go func() {
		tasks, err := e.LockForWorker(ctx, gpuLock(MaxWorkerWait))
		got <- result{tasks, err}
	}()
	for e.workerWaits.waiting.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	createApproval(t, e, "E_3")
	r := <-got
	if r.err != nil || len(r.tasks) != 1 || r.tasks[0].ExecutionID != "E_3" {
		t.Fatalf("waiting lock: %+v %v", r.tasks, r.err)
	}
	if tasks, err := e.LockForWorker(ctx, gpuLock(10*time.Millisecond)); err != nil || len(tasks) != 0 {
		t.Fatalf("lock with nothing due: %v %v", tasks, err)
	}
}

// TestLabelsDecideWhereExecutionsRun: this server runs an activity whose required labels
// it has; one whose labels it lacks is left to workers, as stubs are; other types are
// never a worker's.
func TestLabelsDecideWhereExecutionsRun(t *testing.T) {
	e := &Engine{cfg: Config{Labels: []string{"eu", "gpu"}}}
	for _, tc := range []struct {
		typ                ComponentType
		labels             []string
		runsHere, external bool
	}{
		{ActivityWasm, nil, true, false},
		{ActivityWasm, []string{"gpu"}, true, false},
		{ActivityWasm, []string{"gpu", "eu"}, true, false},
		{ActivityWasm, []string{"gpu", "us"}, false, true},
		{ActivityStub, nil, false, true},
		{ActivityStub, []string{"gpu"}, false, true},
		{Workflow, nil, true, false},
		{WebhookEndpoint, nil, false, false},
	} {
		c := &Component{Config: ComponentConfig{Name: "c", Type: tc.typ, RequiredLabels: tc.labels}}
		if got := e.runsHere(c); got != tc.runsHere {
			t.Errorf("%s requiring %q: runsHere = %v", tc.typ, tc.labels, got)
		}
		if got := e.forWorkers(c); got != tc.external {
			t.Errorf("%s requiring %q: forWorkers = %v", tc.typ, tc.labels, got)
		}
	}
}

// TestWorkerWaitsByQueue: a waiting worker is woken by a pending execution of its
// functions in its queues only, and no longer once its subscription ended.
func TestWorkerWaitsByQueue(t *testing.T) {
	var w workerWaits
	ch, done := w.subscribe([]waitKey{{"a", "f"}, {"b", "f"}})
	w.notify("c", "f")
	w.notify("a", "g")
	select {
	case <-ch:
		t.Fatal("woken by another queue or function")
	default:
	}
	w.notify("b", "f")
	w.notify("a", "f") // woken once: the channel holds one wake-up
	select {
	case <-ch:
	default:
		t.Fatal("not woken by its queue")
	}
	done()
	if w.waiting.Load() != 0 || len(w.byKey) != 0 {
		t.Fatalf("after the subscription: %d waiting, %v", w.waiting.Load(), w.byKey)
	}
	w.notify("a", "f")
	select {
	case <-ch:
		t.Fatal("woken after the subscription ended")
	default:
	}
}

// TestWorkerWaitsWakeOnePerExecution: of the workers waiting for a function, each new
// pending execution wakes one, the longest waiting first; a wake-up its waiter leaves
// without receiving goes to another waiter.
// TestWorkerWaitsHandOnToTheSameKey: a waiter of two functions woken for one of them
// that leaves without receiving the wake-up hands it to a waiter of that function, not
// to one of its other function.
func TestWorkerWaitsHandOnToTheSameKey(t *testing.T) {
	var w workerWaits
	f1, f2 := waitKey{"q", "f1"}, waitKey{"q", "f2"}
	_, leave := w.subscribe([]waitKey{f1, f2})
	only1, done1 := w.subscribe([]waitKey{f1})
	defer done1()
	only2, done2 := w.subscribe([]waitKey{f2})
	defer done2()
	w.notify("q", "f2") // wakes the oldest waiter of f2, which leaves without receiving it
	leave()
	select {
	case k := <-only2:
		if k != f2 {
			t.Fatalf("woken for %v, want %v", k, f2)
		}
	default:
		t.Fatal("the waiter of f2 was not woken")
	}
	select {
	case k := <-only1:
		t.Fatalf("the waiter of f1 alone was woken (for %v)", k)
	default:
	}
}

func TestWorkerWaitsWakeOnePerExecution(t *testing.T) {
	var w workerWaits
	k := waitKey{"q", "f"}
	chs := make([]<-chan waitKey, 5)
	dones := make([]func(), 5)
	for i := range chs {
		chs[i], dones[i] = w.subscribe([]waitKey{k})
	}
	woken := func() (out []int) {
		for i, ch := range chs {
			select {
			case <-ch:
				out = append(out, i)
			default:
			}
		}
		return out
	}
	w.notify("q", "f")
	if got := woken(); !slices.Equal(got, []int{0}) {
		t.Fatalf("one execution woke %v, want [0]", got)
	}
	w.notify("q", "f")
	w.notify("q", "f")
	// 0 was woken and received it: it is the first not woken again.
	if got := woken(); !slices.Equal(got, []int{0, 1}) {
		t.Fatalf("two executions woke %v, want [0 1]", got)
	}
	w.notify("q", "f") // wakes 0, which leaves without receiving it
	dones[0]()
	if got := woken(); !slices.Equal(got, []int{1}) {
		t.Fatalf("after 0 left with a wake-up, woken %v, want [1]", got)
	}
	for _, d := range dones[1:] {
		d()
	}
	if w.waiting.Load() != 0 || len(w.byKey) != 0 {
		t.Fatalf("after the subscriptions: %d waiting, %v", w.waiting.Load(), w.byKey)
	}
}

// BenchmarkWorkerWaitsNotifyIdle is what every commit of a pending execution pays for
// external workers while none waits (onCommit).
func BenchmarkWorkerWaitsNotifyIdle(b *testing.B) {
	var w workerWaits
	for b.Loop() {
		w.notify("q", "f")
	}
}

// TestExecutorSkipsWhatItLacksLabelsFor: an activity requiring a label the server lacks
// gets no executor, even in a queue the server serves for another component: its
// execution stays pending while the queue runs the other's, and is not warned about as
// unserved; a worker with the label does it. A server with the label runs it itself.
func TestExecutorSkipsWhatItLacksLabelsFor(t *testing.T) {
	ctx := context.Background()
	comps := []ComponentConfig{
		{Name: "fibo", Type: ActivityWasm, Path: builtComponent(t, "fibo"), Queue: "shared", RequiredLabels: []string{"gpu"},
			LockExpiry: time.Minute, MaxConcurrency: 4},
		{Name: "sleep", Type: ActivityWasm, Path: builtComponent(t, "sleep"), Queue: "shared", LockExpiry: time.Minute, MaxConcurrency: 4},
	}
	logs := &logCounter{n: map[string]int{}}
	cache := t.TempDir() // both engines': compiled once
	e, err := New(ctx, Config{DataDir: t.TempDir(), CacheDir: cache, Logger: slog.New(logs), Components: comps})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			e.Close(ctx)
		}
	}()
	fibo, _, err := e.Submit(ctx, "", "testing:fibo/fibo.fibo", []byte("[10]"))
	if err != nil {
		t.Fatal(err)
	}
	sleep, _, err := e.Submit(ctx, "", "testing:sleep/sleep.sleep", []byte("[1]"))
	if err != nil {
		t.Fatal(err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if st, err := e.WaitFinished(waitCtx, sleep); err != nil || st.ResultKind != pb.ResultKind_RESULT_KIND_OK {
		t.Fatalf("sleep in the shared queue: %v %v", st, err)
	}
	if st, _ := e.store.State(ctx, fibo); st.Status != pb.Status_STATUS_PENDING_AT || st.IntermittentFailures != 0 {
		t.Fatalf("fibo without the label: %v", st)
	}
	if logs.count("executor: executions of a function this queue does not serve are pending in it; they wait for an executor that serves it") != 0 ||
		logs.count("component left to external workers: this server lacks labels it requires") != 1 {
		t.Errorf("server log: %v", logs.n)
	}
	tasks, err := e.LockForWorker(ctx, WorkerLockRequest{FFQNs: []string{"testing:fibo/fibo.fibo"}, Labels: []string{"gpu"}})
	if err != nil || len(tasks) != 1 || tasks[0].ExecutionID != fibo {
		t.Fatalf("worker lock: %v %v", tasks, err)
	}
	if _, err := e.LockForWorker(ctx, WorkerLockRequest{FFQNs: []string{"testing:sleep/sleep.sleep"}}); !failedPrecondition(err, "run by this server's executor") {
		t.Fatalf("worker lock of what the server runs: %v", err)
	}
	if _, err := e.CompleteForWorker(ctx, fibo, tasks[0].RunID, json.RawMessage(`{"ok": 55}`), ""); err != nil {
		t.Fatal(err)
	}
	closed = true
	e.Close(ctx)

	e2, err := New(ctx, Config{DataDir: t.TempDir(), CacheDir: cache, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Components: comps, Labels: []string{"gpu"}})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close(ctx)
	if fibo, _, err = e2.Submit(ctx, "", "testing:fibo/fibo.fibo", []byte("[10]")); err != nil {
		t.Fatal(err)
	}
	waitCtx, cancel = context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if st, err := e2.WaitFinished(waitCtx, fibo); err != nil || string(st.Result) != `{"ok":55}` {
		t.Fatalf("fibo on a server with the label: %v %v", st, err)
	}
}

// TestRetiredVersionDoesNotRunANewerOnesExecutions: a retired version of a function
// (no required labels, still needed by a live execution) does not run, with its own
// code, an execution pinned to the deployed version, whose required label "gpu" this
// server lacks: the execution stays pending, pinned, for a worker with the label.
func TestRetiredVersionDoesNotRunANewerOnesExecutions(t *testing.T) {
	ctx := context.Background()
	const ffqn = "testing:fibo/fibo.fibo"
	// v2 is fibo's file with a custom section appended: the same code, another digest.
	v1Path := builtComponent(t, "fibo")
	bin, err := os.ReadFile(v1Path)
	if err != nil {
		t.Fatal(err)
	}
	name, data := "obelisk-test", "v2"
	bin = append(bin, 0, byte(1+len(name)+len(data)), byte(len(name)))
	bin = append(bin, name+data...)
	v2Path := filepath.Join(t.TempDir(), "fibo-v2.wasm")
	if err := os.WriteFile(v2Path, bin, 0o644); err != nil {
		t.Fatal(err)
	}
	dir, cache := t.TempDir(), t.TempDir()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	fibo := ComponentConfig{Name: "fibo", Type: ActivityWasm, Path: v1Path, LockExpiry: time.Minute, MaxConcurrency: 4}

	e, err := New(ctx, Config{DataDir: dir, CacheDir: cache, Logger: logger, Components: []ComponentConfig{fibo}})
	if err != nil {
		t.Fatal(err)
	}
	v1 := e.reg.byFFQN[ffqn].Component.ID
	// A live execution of v1, due later: it keeps v1 as a retired version.
	now := time.Now()
	if _, err := e.store.Commit(ctx, &events.Tx{Appends: []events.Append{{ExecutionID: "E_V1", Events: []*pb.Event{{
		CreatedAt: now.UnixNano(),
		Kind: &pb.Event_Created{Created: &pb.Created{Ffqn: ffqn, Params: []byte(`[10]`), ScheduledAt: now.Add(time.Hour).UnixNano(),
			Queue: fibo.QueueName(), ComponentId: v1, ComponentType: pb.ComponentType_COMPONENT_TYPE_ACTIVITY_WASM}},
	}}}}}); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(ctx); err != nil {
		t.Fatal(err)
	}

	fibo.Path, fibo.RequiredLabels = v2Path, []string{"gpu"}
	e, err = New(ctx, Config{DataDir: dir, CacheDir: cache, Logger: logger, Components: []ComponentConfig{fibo}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	v2 := e.reg.byFFQN[ffqn].Component.ID
	if c := e.reg.byID[v1]; v2 == v1 || c == nil || !c.Retired || e.executors[v1] == nil {
		t.Fatalf("v1 %s is not a retired version with an executor here (v2 %s)", v1, v2)
	}
	id, _, err := e.Submit(ctx, "", ffqn, []byte(`[10]`))
	if err != nil {
		t.Fatal(err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if st, err := e.WaitFinished(waitCtx, id); err == nil {
		t.Fatalf("v2's execution ran here: %v", st)
	}
	if st, _ := e.store.State(ctx, id); st.Status != pb.Status_STATUS_PENDING_AT || st.ComponentId != v2 {
		t.Fatalf("v2's execution: %v", st)
	}
	tasks, err := e.LockForWorker(ctx, WorkerLockRequest{FFQNs: []string{ffqn}, Labels: []string{"gpu"}})
	if err != nil || len(tasks) != 1 || tasks[0].ExecutionID != id {
		t.Fatalf("a worker with the label: %v %v", tasks, err)
	}
}

// eventsFailing is a store whose reads of one execution's events fail.
type eventsFailing struct {
	events.Store
	id string
}

func (s eventsFailing) Events(ctx context.Context, id string, from uint32, limit int) ([]*pb.Event, error) {
	if id == s.id {
		return nil, errors.New("injected read failure")
	}
	return s.Store.Events(ctx, id, from, limit)
}

// TestWorkerBatchLockKeepsWhatItLocked: a batch lock that fails after locking some
// executions returns those, without the error: refused, they would wait for their
// locks to expire and each lose an attempt.
func TestWorkerBatchLockKeepsWhatItLocked(t *testing.T) {
	e := newWorkerEngine(t)
	ctx := context.Background()
	createApproval(t, e, "E_A")
	time.Sleep(time.Millisecond) // E_B due after E_A: locked second
	createApproval(t, e, "E_B")
	e.store = eventsFailing{Store: e.store, id: "E_B"}
	req := gpuLock(0)
	req.Max = 2
	tasks, err := e.LockForWorker(ctx, req)
	if err != nil || len(tasks) != 1 || tasks[0].ExecutionID != "E_A" {
		t.Fatalf("batch lock failing on its second execution: %+v %v", tasks, err)
	}
}

// TestWorkerBatchLockPerComponent: one lock request for the functions of two stubs
// locks each execution for its own component's lock_expiry, as a renewal does.
func TestWorkerBatchLockPerComponent(t *testing.T) {
	ctx := context.Background()
	stub := func(name string, lock time.Duration) ComponentConfig {
		return ComponentConfig{Name: name, Type: ActivityStub, LockExpiry: lock, WIT: `
package testing:` + name + `;
interface api { run: func() -> result; }
world any { export api; }
`}
	}
	e, err := New(ctx, Config{DataDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Components: []ComponentConfig{stub("short", time.Second), stub("long", time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	want := map[string]time.Duration{}
	for name, lock := range map[string]time.Duration{"short": time.Second, "long": time.Hour} {
		ffqn := "testing:" + name + "/api.run"
		fn := e.reg.byFFQN[ffqn]
		now := time.Now()
		if _, err := e.store.Commit(ctx, &events.Tx{Appends: []events.Append{{ExecutionID: "E_" + name, Events: []*pb.Event{{
			CreatedAt: now.UnixNano(),
			Kind: &pb.Event_Created{Created: &pb.Created{Ffqn: ffqn, Params: []byte(`[]`), ScheduledAt: now.UnixNano(),
				Queue: fn.Component.Config.QueueName(), ComponentId: fn.Component.ID}},
		}}}}}); err != nil {
			t.Fatal(err)
		}
		want["E_"+name] = lock
	}
	before := time.Now()
	tasks, err := e.LockForWorker(ctx, WorkerLockRequest{FFQNs: []string{"testing:short/api.run", "testing:long/api.run"}, Max: 2})
	if err != nil || len(tasks) != 2 {
		t.Fatalf("lock: %+v %v", tasks, err)
	}
	for _, task := range tasks {
		if got := task.LockExpiresAt.Sub(before); got < want[task.ExecutionID] || got > want[task.ExecutionID]+time.Minute/2 || task.LockDuration != want[task.ExecutionID] {
			t.Errorf("%s locked for %s, want its component's %s", task.ExecutionID, got, want[task.ExecutionID])
		}
	}
}

// TestWorkerCompleteSentTwice: a worker that lost the answer to its Complete sends it
// again: the same err or failure is answered as the first was, even after a retry has
// locked the execution again, and whether the first was retried or finished it; another
// completion of a run that no longer holds the lock is refused.
func TestWorkerCompleteSentTwice(t *testing.T) {
	e := newWorkerEngine(t)
	ctx := context.Background()
	createApproval(t, e, "E_5")
	req := gpuLock(20 * time.Second)
	lock := func(attempt uint32) WorkerTask {
		t.Helper()
		tasks, err := e.LockForWorker(ctx, req)
		if err != nil || len(tasks) != 1 || tasks[0].Attempt != attempt {
			t.Fatalf("lock of attempt %d: %+v %v", attempt, tasks, err)
		}
		return tasks[0]
	}
	complete := func(run WorkerTask, result, failure, want string) {
		t.Helper()
		got, err := e.CompleteForWorker(ctx, "E_5", run.RunID, json.RawMessage(result), failure)
		if want == "lock lost" {
			if !failedPrecondition(err, "lock lost") {
				t.Fatalf("complete %s %q of attempt %d: %q %v, want lock lost", result, failure, run.Attempt, got, err)
			}
			return
		}
		if err != nil || got != want {
			t.Fatalf("complete %s %q of attempt %d: %q %v, want %s", result, failure, run.Attempt, got, err, want)
		}
	}

	first := lock(1)
	complete(first, `{"err": "busy"}`, "", "retried_err")
	complete(first, `{"err":"busy"}`, "", "retried_err") // the same, spaced otherwise
	complete(first, `{"err": "other"}`, "", "lock lost")
	complete(first, "", "busy", "lock lost")

	second := lock(2)
	complete(first, `{"err": "busy"}`, "", "retried_err") // after the retry locked it
	complete(second, "", "out of paper", "retried_failure")
	complete(second, "", "out of paper", "retried_failure")
	complete(second, "", "out of ink", "lock lost")
	complete(second, `{"err": "out of paper"}`, "", "lock lost")

	third := lock(3) // max_retries 2: its failure finishes the execution
	complete(third, "", "jammed", "failed")
	complete(third, "", "jammed", "failed")
	complete(third, `{"ok": true}`, "", "lock lost")
	complete(second, "", "out of paper", "retried_failure")
	// Created, then locked and its outcome three times: the repeats recorded nothing.
	if evs, err := e.store.Events(ctx, "E_5", 0, 0); err != nil || len(evs) != 7 {
		t.Fatalf("%d events (%v), want 7", len(evs), err)
	}
	st, _ := e.store.State(ctx, "E_5")
	if st.Status != pb.Status_STATUS_FINISHED || st.IntermittentFailures != 2 {
		t.Fatalf("final state: %v", st)
	}
}

// fiboFFQN is the function of the two versions of newTwoVersionWorkerEngine.
const fiboFFQN = "testing:fibo/fibo.fibo"

// newTwoVersionWorkerEngine starts an engine whose fibo activity has two versions, both
// left to workers (the server has no labels): the retired v1 requires the labels gpu and
// eu, the deployed v2 only gpu. n executions pinned to v1 (E_V1_<i>) are due; a worker
// with the label gpu alone may not take them. create creates one of v2.
func newTwoVersionWorkerEngine(tb testing.TB, n int) (e *Engine, create func(id string)) {
	tb.Helper()
	ctx := context.Background()
	v1Path := filepath.Join(cmp.Or(os.Getenv("OBELISK_COMPONENTS"), filepath.Join("..", "build", "components")), "fibo.wasm")
	bin, err := os.ReadFile(v1Path)
	if err != nil {
		tb.Skipf("fibo is not built (make build): %v", err)
	}
	// v2 is fibo's file with a custom section appended: the same code, another digest.
	name, data := "obelisk-test", "v2"
	bin = append(bin, 0, byte(1+len(name)+len(data)), byte(len(name)))
	bin = append(bin, name+data...)
	v2Path := filepath.Join(tb.TempDir(), "fibo-v2.wasm")
	if err := os.WriteFile(v2Path, bin, 0o644); err != nil {
		tb.Fatal(err)
	}
	dir, cache := tb.TempDir(), tb.TempDir()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	fibo := ComponentConfig{Name: "fibo", Type: ActivityWasm, Path: v1Path, LockExpiry: time.Minute, RequiredLabels: []string{"gpu", "eu"}}
	createIn := func(e *Engine, id, component string) {
		now := time.Now()
		if _, err := e.store.Commit(ctx, &events.Tx{Appends: []events.Append{{ExecutionID: id, Events: []*pb.Event{{
			CreatedAt: now.UnixNano(),
			Kind: &pb.Event_Created{Created: &pb.Created{Ffqn: fiboFFQN, Params: []byte(`[10]`), ScheduledAt: now.Add(-time.Hour).UnixNano(),
				Queue: fibo.QueueName(), ComponentId: component, ComponentType: pb.ComponentType_COMPONENT_TYPE_ACTIVITY_WASM}},
		}}}}}); err != nil {
			tb.Fatal(err)
		}
	}
	e, err = New(ctx, Config{DataDir: dir, CacheDir: cache, Logger: logger, Components: []ComponentConfig{fibo}})
	if err != nil {
		tb.Fatal(err)
	}
	v1 := e.reg.byFFQN[fiboFFQN].Component.ID
	for i := range n {
		createIn(e, fmt.Sprintf("E_V1_%04d", i), v1)
	}
	if err := e.Close(ctx); err != nil {
		tb.Fatal(err)
	}
	fibo.Path, fibo.RequiredLabels = v2Path, []string{"gpu"}
	e, err = New(ctx, Config{DataDir: dir, CacheDir: cache, Logger: logger, Components: []ComponentConfig{fibo}})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.Close(context.Background()) })
	v2 := e.reg.byFFQN[fiboFFQN].Component.ID
	if c := e.reg.byID[v1]; v2 == v1 || c == nil || !c.Retired {
		tb.Fatalf("v1 %s is not kept beside v2 %s", v1, v2)
	}
	return e, func(id string) { createIn(e, id, v2) }
}

// fiboLock is a worker's request for fibo with labels.
func fiboLock(max int, labels ...string) WorkerLockRequest {
	return WorkerLockRequest{Worker: "w", FFQNs: []string{fiboFFQN}, Labels: labels, Max: max}
}

// TestWorkerLockPassesOverOtherVersions: executions pinned to a version whose labels the
// worker lacks, due before the deployed version's, neither hold the worker up nor are
// locked by it; a worker with their labels takes them.
func TestWorkerLockPassesOverOtherVersions(t *testing.T) {
	e, create := newTwoVersionWorkerEngine(t, 5)
	ctx := context.Background()
	create("E_V2")
	tasks, err := e.LockForWorker(ctx, fiboLock(1, "gpu"))
	if err != nil || len(tasks) != 1 || tasks[0].ExecutionID != "E_V2" {
		t.Fatalf("the gpu worker: %+v %v, want E_V2 (the v1 executions before it are not its)", tasks, err)
	}
	create("E_V2b")
	tasks, err = e.LockForWorker(ctx, fiboLock(1, "gpu")) // the v1 executions remembered
	if err != nil || len(tasks) != 1 || tasks[0].ExecutionID != "E_V2b" {
		t.Fatalf("the gpu worker again: %+v %v", tasks, err)
	}
	if _, ok := e.workerPins.get("E_V1_0000"); !ok {
		t.Fatal("the v1 executions passed over are not remembered")
	}
	tasks, err = e.LockForWorker(ctx, fiboLock(10, "gpu", "eu"))
	if err != nil || len(tasks) != 5 {
		t.Fatalf("the gpu+eu worker: %d tasks %v", len(tasks), err)
	}
	if _, ok := e.workerPins.get("E_V1_0000"); ok || e.workerPins.n.Load() != 0 {
		t.Fatal("the v1 executions are still remembered after their locks were committed")
	}
}

// BenchmarkWorkerPinsForgetIdle is what every commit pays for workerPins while it
// remembers nothing (onCommit).
func BenchmarkWorkerPinsForgetIdle(b *testing.B) {
	var w workerPins
	for b.Loop() {
		w.forget("E_1")
	}
}

// BenchmarkWorkerLockPassOverOtherVersions is one pass of a worker's lock over 100 due
// executions pinned to a version it may not do.
func BenchmarkWorkerLockPassOverOtherVersions(b *testing.B) {
	e, _ := newTwoVersionWorkerEngine(b, 100)
	ctx := context.Background()
	p, err := e.planWorkerLock(fiboLock(100, "gpu"))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if tasks, _, err := e.lockForWorker(ctx, p); err != nil || len(tasks) != 0 {
			b.Fatalf("%d tasks %v", len(tasks), err)
		}
	}
}

// TestWorkerAttemptSpans: a worker's run is a span, child of its execution's, with the
// span ID of the traceparent its lock gave the worker; it ends when the worker
// completes, when the lock expires, and when the execution is cancelled.
func TestWorkerAttemptSpans(t *testing.T) {
	ctx := context.Background()
	exp := tracetest.NewInMemoryExporter()
	tr, err := tracing.New(ctx, tracing.Config{Exporter: exp, Synchronous: true, SampleRatio: 1})
	if err != nil {
		t.Fatal(err)
	}
	cfg := workerEngineConfig(t.TempDir())
	cfg.Tracer = tr
	e, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	// outcome waits for the span of task's run and returns its outcome.
	outcome := func(task WorkerTask) string {
		t.Helper()
		if !strings.HasPrefix(task.TraceParent, "00-") || !strings.Contains(task.TraceParent, tracing.RunSpanID(task.RunID).String()) {
			t.Fatalf("task traceparent %q, want the run's span %s", task.TraceParent, tracing.RunSpanID(task.RunID))
		}
		for wait := time.Now().Add(30 * time.Second); time.Now().Before(wait); time.Sleep(5 * time.Millisecond) {
			for _, s := range exp.GetSpans() {
				if s.SpanContext.SpanID() != tracing.RunSpanID(task.RunID) {
					continue
				}
				if s.Parent.SpanID() != tracing.ExecutionSpanID(task.ExecutionID) {
					t.Errorf("span of %s: parent %s, want its execution's", task.RunID, s.Parent.SpanID())
				}
				for _, kv := range s.Attributes {
					if kv.Key == "obelisk.outcome" {
						return kv.Value.AsString()
					}
				}
			}
		}
		t.Fatalf("no span of run %s", task.RunID)
		return ""
	}
	lock := func(d time.Duration) WorkerTask {
		t.Helper()
		req := gpuLock(20 * time.Second)
		req.LockDuration = d
		tasks, err := e.LockForWorker(ctx, req)
		if err != nil || len(tasks) != 1 {
			t.Fatalf("lock: %+v %v", tasks, err)
		}
		return tasks[0]
	}

	createApproval(t, e, "E_T1")
	done := lock(0)
	if _, err := e.CompleteForWorker(ctx, "E_T1", done.RunID, json.RawMessage(`{"ok": true}`), ""); err != nil {
		t.Fatal(err)
	}
	if got := outcome(done); got != "ok" {
		t.Errorf("completed run's span: outcome %q", got)
	}

	createApproval(t, e, "E_T2")
	expired := lock(MinWorkerLock)
	if got := outcome(expired); got != "retried_timeout" {
		t.Errorf("expired run's span: outcome %q", got)
	}
	cancelled := lock(time.Minute) // the retry
	if _, err := e.Cancel(ctx, "E_T2"); err != nil {
		t.Fatal(err)
	}
	if got := outcome(cancelled); got != "failed" {
		t.Errorf("cancelled run's span: outcome %q", got)
	}

	// A deadline that stops an execution a worker holds ends the worker's run: its span
	// is emitted too.
	createApproval(t, e, "E_T3", func(c *pb.Created) { c.Deadline = time.Now().Add(500 * time.Millisecond).UnixNano() })
	stopped := lock(time.Minute)
	if got := outcome(stopped); got != "deadline_exceeded" {
		t.Errorf("run stopped by its deadline: span outcome %q", got)
	}
	if st, err := e.store.State(ctx, "E_T3"); err != nil || st.Status != pb.Status_STATUS_FINISHED {
		t.Errorf("E_T3 after its deadline: %v %v", st.GetStatus(), err)
	}
}
