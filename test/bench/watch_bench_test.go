package bench

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
	"github.com/obelisk-go/obelisk/test/harness"
)

// BenchmarkWatchEvents: 200 fiboa(1, 3) workflows run to the end; then a subscriber
// reads the global event log from the first position (WatchEvents, stored events). The
// metric is the events per second it receives.
func BenchmarkWatchEvents(b *testing.B) {
	const n = 200
	s := harness.Start(b, harness.Options{})
	ids := submitAll(s, n, "testing:fibo-workflow/workflow.fiboa", "[1, 3]")
	for _, id := range ids {
		if r := s.Result(id, 10*time.Minute); r != `{"ok":3}` {
			b.Fatalf("%s: %s", id, r)
		}
	}
	// Every event stored: the sum of the stream lengths of every execution.
	total := 0
	for cursor := ""; ; {
		resp, err := s.Exec.ListExecutions(context.Background(), connect.NewRequest(&pb.ListExecutionsRequest{Limit: 1000, Cursor: cursor}))
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range resp.Msg.Executions {
			total += int(e.Version)
		}
		if cursor = resp.Msg.NextCursor; cursor == "" {
			break
		}
	}
	b.ResetTimer()
	var elapsed time.Duration
	for range b.N {
		ctx, cancel := context.WithCancel(context.Background())
		start := time.Now()
		st, err := s.Exec.WatchEvents(ctx, connect.NewRequest(&pb.WatchEventsRequest{}))
		if err != nil {
			b.Fatal(err)
		}
		got := 0
		for got < total && st.Receive() {
			got++
		}
		elapsed += time.Since(start)
		cancel()
		st.Close()
		if got != total {
			b.Fatalf("received %d of %d events: %v", got, total, st.Err())
		}
	}
	b.ReportMetric(float64(total*b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(total), "events")
}
