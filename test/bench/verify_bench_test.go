package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	"github.com/obelisk-go/obelisk/test/harness"
)

// BenchmarkVerify measures `obelisk verify --data-dir` (offline: every execution
// refolded and compared with its state, every hash chain checked) of a store of N
// executions (OBELISK_BENCH_VERIFY_EXECUTIONS, default 20,000), written straight
// through the store, each shaped like a workflow that waited for two children:
// created, locked, two responses, three history events, finished (6 events and 2
// responses). Metric: executions verified per second, the process's start included.
// Their type is activity_wasm: verify replays every workflow execution against its
// pinned component, which these made-up histories have none of; what a replay adds is
// measured on real executions by the e2e harness (docs/benchmarks.md).
func BenchmarkVerify(b *testing.B) {
	n := 20000
	if v := os.Getenv("OBELISK_BENCH_VERIFY_EXECUTIONS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			b.Fatalf("OBELISK_BENCH_VERIFY_EXECUTIONS=%q: want a positive number", v)
		}
	}
	dataDir := b.TempDir()
	writeVerifyStore(b, filepath.Join(dataDir, "store"), n)
	b.ResetTimer()
	for range b.N {
		cmd := exec.Command(harness.Binary(), "verify", "--data-dir", dataDir)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			b.Fatalf("verify: %v\n%s", err, out.String())
		}
		if want := fmt.Sprintf("verified %d executions: 0 mismatches", n); !strings.Contains(out.String(), want) {
			b.Fatalf("verify: want %q in\n%s", want, out.String())
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "executions/s")
}

// writeVerifyStore writes n workflow-shaped executions into a new store in dir.
func writeVerifyStore(b *testing.B, dir string, n int) {
	b.Helper()
	ctx := context.Background()
	s, err := events.Open(dir, events.Options{NoSync: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	now := time.Now().UnixNano()
	history := func() *pb.Event {
		return &pb.Event{CreatedAt: now, Kind: &pb.Event_History{History: &pb.HistoryEvent{Kind: &pb.HistoryEvent_Persist{Persist: &pb.Persist{Kind: "random_u64", Value: []byte("12345678")}}}}}
	}
	const perTx = 100
	for first := 0; first < n; first += perTx {
		var create, respond, finish events.Tx
		for i := first; i < min(first+perTx, n); i++ {
			id := fmt.Sprintf("E_bench%08d", i)
			create.Appends = append(create.Appends, events.Append{ExecutionID: id, Events: []*pb.Event{
				{CreatedAt: now, Kind: &pb.Event_Created{Created: &pb.Created{Ffqn: "testing:fibo-workflow/workflow.fiboa", Params: []byte("[1, 3]"),
					Queue: "fibo_workflow", ScheduledAt: now, ComponentType: pb.ComponentType_COMPONENT_TYPE_ACTIVITY_WASM}}},
				{CreatedAt: now, Kind: &pb.Event_Locked{Locked: &pb.Locked{ExecutorId: "Exr_bench", RunId: "Run_1", LockExpiresAt: now + 1e12}}},
			}})
			for c := range 2 {
				respond.Responses = append(respond.Responses, events.ResponseAppend{ExecutionID: id, Response: &pb.Response{CreatedAt: now, JoinSetId: "o:1-fibo",
					Kind: &pb.Response_Child{Child: &pb.ChildFinished{ChildExecutionId: fmt.Sprintf("%s.o:1-fibo_%d", id, c), Result: []byte(`{"ok":1}`)}}}})
			}
			finish.Appends = append(finish.Appends, events.Append{ExecutionID: id, ExpectedVersion: 2, RunID: "Run_1", Events: []*pb.Event{
				history(), history(), history(),
				{CreatedAt: now, Kind: &pb.Event_Finished{Finished: &pb.Finished{Result: []byte(`{"ok":3}`)}}},
			}})
		}
		for _, tx := range []*events.Tx{&create, &respond, &finish} {
			if _, err := s.Commit(ctx, tx); err != nil {
				b.Fatal(err)
			}
		}
	}
}
