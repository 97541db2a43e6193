package e2e

import (
	"bufio"
	"context"
	"io"
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

// TestExternalWorker: the example worker, a separate process, does the activity stub a
// workflow calls; a worker SIGKILLed mid-activity loses its lock at expiry, and the
// retry goes to the next worker: the workflow finishes once, with its answer. An
// activity that requires a label the server lacks waits for a worker that has it.
func TestExternalWorker(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "external-worker")
	if out, err := exec.Command("go", "build", "-o", bin, "../../examples/external-worker").CombinedOutput(); err != nil {
		t.Fatalf("build the example worker: %v\n%s", err, out)
	}
	o := stubOptions(t, false)
	o.Deployment += "required_labels = [\"human\"]\nmax_retries = 3\nretry_exp_backoff = \"10ms\"\n"
	o.ExtraTOML = map[string]string{"fibo": "required_labels = [\"gpu\"]\n"}
	s := harness.Start(t, o)
	const await = "testing:joinset-workflow/workflow.await-stub"

	// The server's own executor never runs fibo: it lacks the label.
	fibo := s.Submit("testing:fibo/fibo.fibo", "[10]")

	w1 := startWorker(t, bin, s.URL, "-name", "w1", "-labels", "human")
	id := s.Submit(await, `["how many words here"]`)
	harness.JSONEq(t, s.Result(id, time.Minute), `{"ok":4}`)
	w1.cmd.Process.Kill()
	w1.cmd.Wait()

	// A slow worker with a short lock is killed while it answers.
	w2 := startWorker(t, bin, s.URL, "-name", "w2", "-labels", "human", "-lock", "2s", "-slow", "10m")
	id = s.Submit(await, `["killed mid activity"]`)
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
	// The same result again (its answer lost) is acknowledged; another is refused.
	if again, err := ws.Complete(ctx, connect.NewRequest(&pb.WorkerCompleteRequest{ExecutionId: fibo, RunId: task.RunId, ResultJson: `{"ok": 55}`})); err != nil || again.Msg.Outcome != "ok" {
		t.Fatalf("the complete sent again: %v %v", again, err)
	}
	_, err = ws.Complete(ctx, connect.NewRequest(&pb.WorkerCompleteRequest{ExecutionId: fibo, RunId: task.RunId, ResultJson: `{"ok": 54}`}))
	if connect.CodeOf(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), "lock lost") {
		t.Fatalf("a second, other result: %v", err)
	}
}
