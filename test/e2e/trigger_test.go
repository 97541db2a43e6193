package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/obelisktrigger"
	"github.com/obelisk-go/obelisk/test/harness"
)

// TestTrigger: the line-trigger reads a stream of lines served slowly here and calls
// fibo once per line, with an execution ID derived from the line; after the 3rd line it
// traps, once. The trigger is restarted, reads the stream again from its start, and
// every line ends up as exactly one execution with the right result. Then the server is
// stopped while the trigger waits on the open stream: it exits at once, with status 0.
func TestTrigger(t *testing.T) {
	t.Parallel()
	const lines, trapAfter = 8, 3
	var connections, served atomic.Int32 // served: lines written, on any connection
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		connections.Add(1)
		w.Header().Set("Content-Type", "text/plain")
		for i := range lines {
			fmt.Fprintf(w, "line-%d %d\n", i, 10+i)
			w.(http.Flusher).Flush()
			served.Add(1)
			select {
			case <-time.After(100 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
		// The stream stays open: the trigger waits for more.
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // before srv.Close, which waits for the handlers

	settings := filepath.Join(t.TempDir(), "line-trigger.toml")
	if err := os.WriteFile(settings, fmt.Appendf(nil, "url = %q\ntrap_after = \"%d\"\n", srv.URL+"/lines", trapAfter), 0o644); err != nil {
		t.Fatal(err)
	}
	s := harness.Start(t, harness.Options{Deployment: fmt.Sprintf(`
[[kv_config]]
bucket = "line-trigger"
location.path = %q

[[trigger]]
name = "lines"
location.path = %q
allowed_hosts = ["127.0.0.1:*"]
backoff.first = "200ms"
backoff.max = "10s"
`, settings, filepath.Join(harness.ComponentsDir(), "line-trigger.wasm"))})

	want := map[string]string{} // execution ID -> result
	for i := range lines {
		want[obelisktrigger.DerivedID("line-trigger", fmt.Sprintf("line-%d %d", i, 10+i))] = fmt.Sprintf(`{"ok":%d}`, fibo(10+i))
	}
	deadline := time.Now().Add(3 * time.Minute)
	for id, result := range want {
		for {
			st, err := s.State(id)
			if err == nil && st.Status == "finished" {
				harness.JSONEq(t, st.ResultJson, result)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("execution %s of a line: %v, %v (lines served %d, connections %d)", id, st, err, served.Load(), connections.Load())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	list, err := s.Exec.ListExecutions(context.Background(), connect.NewRequest(&pb.ListExecutionsRequest{FfqnPrefix: "testing:fibo/fibo.fibo", Limit: 1000}))
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Msg.Executions) != lines {
		t.Fatalf("%d executions of fibo for %d lines: %v", len(list.Msg.Executions), lines, list.Msg.Executions)
	}
	for _, e := range list.Msg.Executions {
		if _, ok := want[e.ExecutionId]; !ok {
			t.Errorf("execution %s is of no line", e.ExecutionId)
		}
	}
	if c := connections.Load(); c < 2 {
		t.Fatalf("%d connections: the trigger was not restarted", c)
	}
	m := s.Metrics()
	if v, _ := m("obelisk_trigger_restarts_total", map[string]string{"trigger": "lines", "outcome": "trapped"}); v != 1 {
		t.Fatalf("obelisk_trigger_restarts_total{trigger=lines,outcome=trapped} = %v, want 1", v)
	}
	if log := s.Log(); !strings.Contains(log, "the injected trap after line 3") || !strings.Contains(log, "trigger: the run ended, restarting it") {
		t.Fatalf("the server log does not tell the trap and the restart:\n%s", log)
	}

	// Every line has been read by the second run (the lines after the trap only by
	// it): the trigger waits on the open stream, in http_body_read, when the server
	// is asked to stop.
	time.Sleep(200 * time.Millisecond)
	code, took := s.StopWithin(30 * time.Second)
	if code != 0 {
		t.Fatalf("the server exited with %d after %v, want 0 at once", code, took)
	}
	t.Logf("stopped in %v with the trigger reading an open stream", took)
	if n := strings.Count(s.Log(), "trigger: the run ended, restarting it"); n != 1 {
		t.Fatalf("the trigger was restarted %d times, want once (after the trap), not at shutdown:\n%s", n, s.Log())
	}
}

func fibo(n int) uint64 {
	a, b := uint64(0), uint64(1)
	for range n {
		a, b = b, a+b
	}
	return a
}
