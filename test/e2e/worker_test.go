package e2e

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
	"github.com/obelisk-go/obelisk/proto/obelisk/v1/obeliskv1connect"
	"github.com/obelisk-go/obelisk/test/harness"
)

// workerProcess is a running examples/external-worker. Its log lines go to lines.
type workerProcess struct {
	cmd   *exec.Cmd
	lines chan string
}

func startWorker(t *testing.T, bin, url string, args ...string) *workerProcess {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"-api", url}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &workerProcess{cmd: cmd, lines: make(chan string, 100)}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			t.Logf("worker %s: %s", args, sc.Text())
			select {
			case w.lines <- sc.Text():
			default:
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return w
}

var answeringRe = regexp.MustCompile(`msg=answering execution=(\S+) attempt=(\d+)`)

// answering waits for the worker to start answering an execution, and returns its ID
// and attempt.
func (w *workerProcess) answering(t *testing.T) (id, attempt string) {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		select {
		case l := <-w.lines:
			if m := answeringRe.FindStringSubmatch(l); m != nil {
				return m[1], m[2]
			}
		case <-timeout:
			t.Fatal("the worker did not start answering")
		}
	}
}

// outcomeOf returns the obelisk.outcome of the spans of trace tid that are attempts of
// execution id, by span ID.
func (o *otlpReceiver) outcomeOf(tid, id string) map[string]string {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string]string{}
	for _, s := range o.spans {
		if hex.EncodeToString(s.TraceId) == tid && attr(s, "obelisk.execution_id") == id && attr(s, "obelisk.run_id") != "" {
			out[hex.EncodeToString(s.SpanId)] = attr(s, "obelisk.outcome")
		}
	}
	return out
}

// waitOutcomes waits until trace tid has attempt spans of execution id with at least
// the outcomes of want, and returns the outcomes by span ID.
func (o *otlpReceiver) waitOutcomes(t *testing.T, tid, id string, want ...string) map[string]string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		got := o.outcomeOf(tid, id)
		n := map[string]int{}
		for _, w := range want {
			n[w]++
		}
		for _, g := range got {
			n[g]--
		}
		missing := false
		for _, k := range n {
			missing = missing || k > 0
		}
		if !missing {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace %s: attempt spans of %s with outcomes %v, want %v", tid, id, got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestExternalWorker: the example worker, a separate process, does the activity stub a
// workflow calls; a worker SIGKILLed mid-activity loses its lock at expiry, and the
// retry goes to the next worker: the workflow finishes once, with its answer. An
// activity that requires a label the server lacks waits for a worker that has it. With
// tracing on, each worker's attempt is a span under its execution's, in the workflow's
// trace, whether it completed or its lock expired, and the worker is given its context.
func TestExternalWorker(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "external-worker")
	if out, err := exec.Command("go", "build", "-o", bin, "../../examples/external-worker").CombinedOutput(); err != nil {
		t.Fatalf("build the example worker: %v\n%s", err, out)
	}
	o := stubOptions(t, false)
	o.Deployment += "required_labels = [\"human\"]\nmax_retries = 3\nretry_exp_backoff = \"10ms\"\n"
	o.ExtraTOML = map[string]string{"fibo": "required_labels = [\"gpu\"]\n"}
	recv := &otlpReceiver{services: map[string]bool{}}
	collector := httptest.NewServer(recv)
	defer collector.Close()
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100") // milliseconds: the SDK's batch delay
	o.Deployment += fmt.Sprintf("\n[tracing]\nenabled = true\nendpoint = \"%s/v1/traces\"\nsample_ratio = 1.0\n", collector.URL)
	s := harness.Start(t, o)
	const await = "testing:joinset-workflow/workflow.await-stub"
	const answer = "testing:stub/stub.answer"
	submitTraced := func(params, tid string) string {
		req := connect.NewRequest(&pb.SubmitRequest{Ffqn: await, ParamsJson: params})
		req.Header().Set("traceparent", "00-"+tid+"-aaaabbbbccccdddd-01")
		resp, err := s.Exec.Submit(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Msg.ExecutionId
	}

	// The server's own executor never runs fibo: it lacks the label.
	fibo := s.Submit("testing:fibo/fibo.fibo", "[10]")

	w1 := startWorker(t, bin, s.URL, "-name", "w1", "-labels", "human")
	const tid1 = "0102030405060708090a0b0c0d0e0f10"
	id := submitTraced(`["how many words here"]`, tid1)
	harness.JSONEq(t, s.Result(id, time.Minute), `{"ok":4}`)
	execs, attempts := spansOf(recv.waitSpans(t, tid1, await, answer))
	checkAttempts(t, execs, attempts, "stub")
	w1.cmd.Process.Kill()
	w1.cmd.Wait()

	// A slow worker with a short lock is killed while it answers.
	w2 := startWorker(t, bin, s.URL, "-name", "w2", "-labels", "human", "-lock", "2s", "-slow", "10m")
	const tid2 = "1112131415161718191a1b1c1d1e1f20"
	id = submitTraced(`["killed mid activity"]`, tid2)
	child, attempt := w2.answering(t)
	if attempt != "1" {
		t.Fatalf("first attempt numbered %s", attempt)
	}
	if err := w2.cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	w2.cmd.Wait()
	w3 := startWorker(t, bin, s.URL, "-name", "w3", "-labels", "human")
	harness.JSONEq(t, s.Result(id, time.Minute), `{"ok":3}`)
	if retried, attempt := w3.answering(t); retried != child || attempt == "1" {
		t.Errorf("w3 answered %s attempt %s, want a retry of %s", retried, attempt, child)
	}
	evs := s.Events(child)
	var kinds, executors []string
	for _, ev := range evs {
		kinds = append(kinds, ev.Kind)
		if ev.Kind == "locked" {
			executors = append(executors, regexp.MustCompile(`"executor_id":"([^"]*)"`).FindStringSubmatch(ev.DetailsJson)[1])
		}
	}
	// Under a heavy load w2 may have lost a lock before it was killed, and retried it
	// itself: the first lock is w2's, the last w3's, and a timeout lies between.
	if k := strings.Join(kinds, ","); !strings.HasPrefix(k, "created,locked,temporarily_timed_out,") || !strings.HasSuffix(k, ",locked,finished") ||
		len(executors) < 2 || executors[0] != "worker:w2" || executors[len(executors)-1] != "worker:w3" {
		t.Errorf("the stub's events: %v, locked by %v", kinds, executors)
	}
	if st, err := s.State(id); err != nil || harness.CountKind(s.Events(id), "finished") != 1 {
		t.Errorf("the workflow: %v %v", st, err)
	}
	// w2's run ended when its lock expired, w3's when it completed: both are spans.
	recv.waitOutcomes(t, tid2, child, "retried_timeout", "ok")

	// fibo waited, pending, all along; a worker with the label does it.
	st, err := s.State(fibo)
	if err != nil || st.Status != "pending_at" || st.AttemptsFailed != 0 {
		t.Fatalf("fibo without a labelled executor: %v %v", st, err)
	}
	ws := obeliskv1connect.NewWorkerServiceClient(s.HTTP, s.URL)
	ctx := context.Background()
	_, err = ws.Lock(ctx, connect.NewRequest(&pb.WorkerLockRequest{Ffqns: []string{"testing:fibo/fibo.fibo"}}))
	if connect.CodeOf(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), `"gpu"`) {
		t.Fatalf("lock without the label: %v", err)
	}
	lock, err := ws.Lock(ctx, connect.NewRequest(&pb.WorkerLockRequest{Ffqns: []string{"testing:fibo/fibo.fibo"}, Labels: []string{"gpu"}, WaitMillis: 10000}))
	if err != nil || len(lock.Msg.Tasks) != 1 || lock.Msg.Tasks[0].ExecutionId != fibo || lock.Msg.Tasks[0].ParamsJson != "[10]" {
		t.Fatalf("lock with the label: %v %v", lock, err)
	}
	task := lock.Msg.Tasks[0]
	// The task's traceparent names the span its run gets, in fibo's trace, under fibo's.
	tp := strings.Split(task.Traceparent, "-")
	if len(tp) != 4 || tp[2] == "" {
		t.Fatalf("task traceparent %q", task.Traceparent)
	}
	_, err = ws.Complete(ctx, connect.NewRequest(&pb.WorkerCompleteRequest{ExecutionId: fibo, RunId: task.RunId, ResultJson: `{"ok": "55"}`}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "u64") {
		t.Fatalf("a result of the wrong type: %v", err)
	}
	if _, err := ws.Renew(ctx, connect.NewRequest(&pb.WorkerRenewRequest{ExecutionId: fibo, RunId: task.RunId})); err != nil {
		t.Fatalf("renew: %v", err)
	}
	done, err := ws.Complete(ctx, connect.NewRequest(&pb.WorkerCompleteRequest{ExecutionId: fibo, RunId: task.RunId, ResultJson: `{"ok": 55}`}))
	if err != nil || done.Msg.Outcome != "ok" {
		t.Fatalf("complete: %v %v", done, err)
	}
	harness.JSONEq(t, s.Result(fibo, time.Minute), `{"ok":55}`)
	if got := recv.waitOutcomes(t, tp[1], fibo, "ok"); got[tp[2]] != "ok" {
		t.Errorf("attempt spans of fibo %v: want span %s of the task's traceparent", got, tp[2])
	}
	execs, attempts = spansOf(recv.waitSpans(t, tp[1], "testing:fibo/fibo.fibo"))
	checkAttempts(t, execs, attempts, "fibo")
	// The same result again (its answer lost) is acknowledged; another is refused.
	if again, err := ws.Complete(ctx, connect.NewRequest(&pb.WorkerCompleteRequest{ExecutionId: fibo, RunId: task.RunId, ResultJson: `{"ok": 55}`})); err != nil || again.Msg.Outcome != "ok" {
		t.Fatalf("the complete sent again: %v %v", again, err)
	}
	_, err = ws.Complete(ctx, connect.NewRequest(&pb.WorkerCompleteRequest{ExecutionId: fibo, RunId: task.RunId, ResultJson: `{"ok": 54}`}))
	if connect.CodeOf(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), "lock lost") {
		t.Fatalf("a second, other result: %v", err)
	}
}
