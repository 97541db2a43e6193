package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
	"github.com/obelisk-go/obelisk/test/harness"
)

// subscriber is a WatchEvents client that keeps everything it received.
type subscriber struct {
	s   *harness.Server
	mu  sync.Mutex
	got []*pb.WatchEventsResponse
}

func (w *subscriber) last() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.got) == 0 {
		return 0
	}
	return w.got[len(w.got)-1].Position
}

func (w *subscriber) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.got)
}

// stream resumes after the last position received and receives until ctx ends or the
// stream breaks.
func (w *subscriber) stream(ctx context.Context, req *pb.WatchEventsRequest) error {
	req.FromPosition = w.last()
	st, err := w.s.Exec.WatchEvents(ctx, connect.NewRequest(req))
	if err != nil {
		return err
	}
	defer st.Close()
	for st.Receive() {
		w.mu.Lock()
		w.got = append(w.got, st.Msg())
		w.mu.Unlock()
	}
	return st.Err()
}

// run streams in the background, reconnecting until ctx ends; stop waits for it.
func (w *subscriber) run(ctx context.Context, req *pb.WatchEventsRequest) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			_ = w.stream(ctx, proto.CloneOf(req))
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return func() { cancel(); <-done }
}

func (w *subscriber) waitCount(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	waitUntil(t, timeout, func() bool { return w.count() >= n })
}

// allExecutions lists every execution (children too).
func allExecutions(t *testing.T, s *harness.Server) []*pb.ExecutionSummary {
	t.Helper()
	var out []*pb.ExecutionSummary
	cursor := ""
	for {
		resp, err := s.Exec.ListExecutions(context.Background(), connect.NewRequest(&pb.ListExecutionsRequest{Limit: 1000, Cursor: cursor}))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, resp.Msg.Executions...)
		if cursor = resp.Msg.NextCursor; cursor == "" {
			return out
		}
	}
}

func submitMany(s *harness.Server, n int, ffqn, params string) []string {
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids[i] = s.Submit(ffqn, params)
		}()
	}
	wg.Wait()
	return ids
}

// TestWatchEvents follows the global event log while workflows run: the subscriber
// disconnects and resumes, the server is SIGKILLed under it and restarted, and in the end
// it has received every stored event exactly once, at positions 1..N, and each
// execution's events as its stream holds them.
func TestWatchEvents(t *testing.T) {
	t.Parallel()
	const n, iterations = 60, 5
	const fiboa, params = "testing:fibo-workflow/workflow.fiboa", "[10, 5]"
	s := harness.Start(t, harness.Options{})
	w := &subscriber{s: s}
	ctx := context.Background()

	ids := submitMany(s, n, fiboa, params)
	// A first connection, closed by the subscriber after a while.
	stop := w.run(ctx, &pb.WatchEventsRequest{})
	w.waitCount(t, 100, time.Minute)
	stop()
	// A second one from where the first stopped, broken by the SIGKILL.
	before := w.count()
	broken := make(chan error, 1)
	go func() { broken <- w.stream(ctx, &pb.WatchEventsRequest{}) }()
	w.waitCount(t, before+100, time.Minute)
	finished := countFinished(s, ids)
	s.Kill()
	if err := <-broken; err == nil {
		t.Fatal("the stream ended without an error when the server was killed")
	}
	t.Logf("killed the server after %d events, with %d/%d workflows finished", w.count(), finished, n)

	s.Start()
	stop = w.run(ctx, &pb.WatchEventsRequest{})
	defer stop()
	ids = append(ids, submitMany(s, n/2, fiboa, params)...)
	for _, id := range ids {
		harness.JSONEq(t, s.Result(id, 3*time.Minute), `{"ok":275}`)
	}
	// Everything has finished: the log holds every event of every execution.
	execs := allExecutions(t, s)
	total := 0
	for _, e := range execs {
		total += int(e.Version)
	}
	w.waitCount(t, total, time.Minute)
	time.Sleep(200 * time.Millisecond) // anything extra would show now
	stop()

	if len(w.got) != total {
		t.Fatalf("received %d events, the store has %d", len(w.got), total)
	}
	byExec := map[string][]*pb.EventView{}
	for i, m := range w.got {
		if m.Position != uint64(i+1) {
			t.Fatalf("message %d has position %d: a gap or a duplicate", i, m.Position)
		}
		byExec[m.ExecutionId] = append(byExec[m.ExecutionId], m.Event)
	}
	if len(byExec) != len(execs) {
		t.Fatalf("events of %d executions received, %d exist", len(byExec), len(execs))
	}
	for _, e := range execs {
		got, want := byExec[e.ExecutionId], s.Events(e.ExecutionId)
		if len(got) != len(want) {
			t.Fatalf("%s: received %d events, stored %d", e.ExecutionId, len(got), len(want))
		}
		for i := range want {
			if !proto.Equal(got[i], want[i]) {
				t.Fatalf("%s: event %d received as %v, stored as %v", e.ExecutionId, i, got[i], want[i])
			}
		}
	}
	t.Logf("%d events of %d executions received once each", total, len(execs))
}

// TestWatchEventsFilters checks the server-side filters, the request errors and the CLI.
func TestWatchEventsFilters(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ids := submitMany(s, 3, "testing:fibo-workflow/workflow.fiboa", "[10, 2]")
	finishedOf := map[string]*pb.EventView{}
	for _, id := range ids {
		harness.JSONEq(t, s.Result(id, time.Minute), `{"ok":110}`)
		evs := s.Events(id)
		finishedOf[id] = evs[len(evs)-1]
	}
	collect := func(req *pb.WatchEventsRequest, want int) []*pb.WatchEventsResponse {
		t.Helper()
		w := &subscriber{s: s}
		stop := w.run(ctx, req)
		w.waitCount(t, want, time.Minute)
		time.Sleep(200 * time.Millisecond)
		stop()
		if len(w.got) != want {
			t.Fatalf("%v: %d events, want %d", req, len(w.got), want)
		}
		return w.got
	}
	// Finished top-level workflows only (the children are activities).
	for _, m := range collect(&pb.WatchEventsRequest{FfqnPrefix: "testing:fibo-workflow/", Kinds: []string{"finished"}}, 3) {
		if want := finishedOf[m.ExecutionId]; want == nil || !proto.Equal(m.Event, want) {
			t.Fatalf("unexpected %v", m)
		}
	}
	// One execution and its children (their IDs extend the parent's).
	one := collect(&pb.WatchEventsRequest{ExecutionIdPrefix: ids[0]}, len(s.Events(ids[0]))+len(s.Events(ids[0]+".o:1-fibo_1"))+len(s.Events(ids[0]+".o:2-fibo_1")))
	for i := 1; i < len(one); i++ {
		if one[i].Position <= one[i-1].Position {
			t.Fatalf("positions out of order: %d after %d", one[i].Position, one[i-1].Position)
		}
	}
	// "history" is every history.* kind; a kind filter combines with an ID prefix.
	hist := 0
	for _, e := range s.Events(ids[1]) {
		if len(e.Kind) > 8 && e.Kind[:8] == "history." {
			hist++
		}
	}
	collect(&pb.WatchEventsRequest{ExecutionIdPrefix: ids[1], Kinds: []string{"history"}}, hist)

	// Bad requests.
	expectCode := func(req *pb.WatchEventsRequest, code connect.Code) {
		t.Helper()
		st, err := s.Exec.WatchEvents(ctx, connect.NewRequest(req))
		if err == nil {
			for st.Receive() {
			}
			err = st.Err()
			st.Close()
		}
		if connect.CodeOf(err) != code {
			t.Fatalf("%v: %v, want %v", req, err, code)
		}
	}
	expectCode(&pb.WatchEventsRequest{Kinds: []string{"finish"}}, connect.CodeInvalidArgument)
	expectCode(&pb.WatchEventsRequest{FromPosition: 1 << 40}, connect.CodeOutOfRange)

	// The CLI prints one JSON object per line until interrupted.
	cmd := exec.CommandContext(ctx, harness.Binary(), "client", "events", "watch", "--json", "--kind", "finished", "--ffqn-prefix", "testing:fibo-workflow/", "--from", "1")
	cmd.Env = append(os.Environ(), "OBELISK_API_URL="+s.URL)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	seen := map[string]bool{}
	for len(seen) < 3 && sc.Scan() {
		var line struct {
			Position    uint64          `json:"position"`
			ExecutionID string          `json:"execution_id"`
			Version     uint32          `json:"version"`
			Kind        string          `json:"kind"`
			Details     json.RawMessage `json:"details"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("CLI line %q: %v", sc.Text(), err)
		}
		want := finishedOf[line.ExecutionID]
		if want == nil || line.Kind != "finished" || line.Position == 0 || line.Version != want.Version {
			t.Fatalf("CLI line %q", sc.Text())
		}
		harness.JSONEq(t, string(line.Details), want.DetailsJson)
		seen[line.ExecutionID] = true
	}
	for _, id := range ids {
		if !seen[id] {
			t.Fatalf("the CLI did not print %s finishing (saw %v)", id, seen)
		}
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	var exit *exec.ExitError
	if err := cmd.Wait(); err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	} else if exit != nil {
		t.Fatalf("the CLI exited with %d after SIGINT", exit.ExitCode())
	}

	// A graceful stop ends the streams at once, as unavailable (resume later).
	st, err := s.Exec.WatchEvents(ctx, connect.NewRequest(&pb.WatchEventsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ended := make(chan error, 1)
	go func() {
		for st.Receive() {
		}
		ended <- st.Err()
	}()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	s.Stop()
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the server took %v to stop with a watcher", took)
	}
	if err := <-ended; connect.CodeOf(err) != connect.CodeUnavailable {
		t.Errorf("stream ended with %v, want unavailable", err)
	}
}
