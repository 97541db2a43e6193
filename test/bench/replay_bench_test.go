package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
	"github.com/obelisk-go/obelisk/test/harness"
)

// BenchmarkReplay: a workflow records 10,000 random values (10,000 history events), then
// sleeps durably; the wake-up replays the whole history from the store (the run that
// recorded it is gone: a sleep beyond the lease interrupts). Snapshots are off
// (workflows.snapshot_every = 0): every run replays from the start. The metric is the
// time from the delay's answer to the workflow's finished event, and the history events
// replayed per second. Then the same after a restart: the server is killed during the
// sleep and started again after the delay expired; the metrics are the time from the
// restart to the workflow's finished event (recovery of one execution), and from the
// delay's answer after the restart to the finished event (the run itself: history read,
// instance, replay; the module's code and its initialised image, kept in the cache dir,
// are prepared from the server's start on, and the run waits for what is not ready
// yet), and the
// server's CPU time from its start to the finished event (restart-cpu-ms: start-up and
// the one run).
func BenchmarkReplay(b *testing.B) { benchReplay(b, "snapshot_every = 0") }

// BenchmarkReplaySnapshots is BenchmarkReplay with workflow memory snapshots (the
// default, snapshot_every = 1000): the instance that leaves memory at the sleep is
// snapshotted, and the wake-up (after the restart too) resumes from the snapshot.
func BenchmarkReplaySnapshots(b *testing.B) { benchReplay(b, "snapshot_every = 1000") }

func benchReplay(b *testing.B, workflows string) {
	const n = 10000
	s := harness.Start(b, harness.Options{Workflows: workflows, ExtraWorkflows: map[string]string{"replay_workflow": "test/bench/testdata/replay-workflow"}})
	const fn = "testing:replay-workflow/workflow.persist-then-sleep"
	for range b.N {
		id := s.Submit(fn, fmt.Sprintf("[%d, 1500]", n))
		s.Result(id, 5*time.Minute)
		replay, history := wakeToFinish(b, s, id)
		b.ReportMetric(float64(replay.Microseconds())/1000, "replay-ms")
		b.ReportMetric(float64(history)/replay.Seconds(), "events/s")

		id = s.Submit(fn, fmt.Sprintf("[%d, 2000]", n))
		waitEvent(b, s, id, "history.join_next")
		time.Sleep(500 * time.Millisecond) // the run leaves memory (and snapshots it) at the sleep
		s.Kill()
		time.Sleep(2000 * time.Millisecond) // the delay expires while the server is down
		restart := time.Now()
		s.Start()
		s.Result(id, 5*time.Minute)
		if cpu, err := s.CPUTime(); err == nil {
			b.ReportMetric(float64(cpu.Milliseconds()), "restart-cpu-ms")
		}
		evs := s.Events(id)
		finished, _ := time.Parse(time.RFC3339Nano, evs[len(evs)-1].CreatedAt)
		b.ReportMetric(float64(finished.Sub(restart).Milliseconds()), "restart-to-finished-ms")
		resumed, _ := wakeToFinish(b, s, id)
		b.ReportMetric(float64(resumed.Microseconds())/1000, "restart-replay-ms")
	}
}

// wakeToFinish returns the time from the delay's answer to the finished event, and the
// number of history events.
func wakeToFinish(b *testing.B, s *harness.Server, id string) (time.Duration, int) {
	b.Helper()
	resp, err := s.Exec.ListResponses(context.Background(), connect.NewRequest(&pb.ListResponsesRequest{ExecutionId: id}))
	if err != nil || len(resp.Msg.Responses) != 1 {
		b.Fatalf("responses of %s: %v %v", id, resp, err)
	}
	fired, _ := time.Parse(time.RFC3339Nano, resp.Msg.Responses[0].CreatedAt)
	evs := s.Events(id)
	finished, _ := time.Parse(time.RFC3339Nano, evs[len(evs)-1].CreatedAt)
	history := 0
	for _, e := range evs {
		if len(e.Kind) > 8 && e.Kind[:8] == "history." {
			history++
		}
	}
	return finished.Sub(fired), history
}

func waitEvent(b *testing.B, s *harness.Server, id, kind string) {
	b.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		if harness.CountKind(s.Events(id), kind) > 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.Fatalf("%s has no %s event", id, kind)
}

// BenchmarkShadowReplay: shadow replays (the Replay RPC) of BenchmarkReplay's finished
// 10,000-event workflow on its pinned component, which reproduce it to its result.
// first-shadow-replay-ms is the first one's duration on the server (read, instantiate,
// replay, compare); shadow-replay-ms and events/s the best of the next three.
func BenchmarkShadowReplay(b *testing.B) {
	const n = 10000
	s := harness.Start(b, harness.Options{ExtraWorkflows: map[string]string{"replay_workflow": "test/bench/testdata/replay-workflow"}})
	id := s.Submit("testing:replay-workflow/workflow.persist-then-sleep", fmt.Sprintf("[%d, 1]", n))
	s.Result(id, 5*time.Minute)
	b.ResetTimer()
	for range b.N {
		var best time.Duration
		var replayed uint32
		for i := range 4 {
			resp, err := s.Exec.Replay(context.Background(), connect.NewRequest(&pb.ReplayRequest{ExecutionId: id}))
			if err != nil || !resp.Msg.Ok || resp.Msg.Replayed < n {
				b.Fatalf("replay of %s: %v %v", id, resp, err)
			}
			took := time.Duration(resp.Msg.TookMicros) * time.Microsecond
			if i == 0 {
				b.ReportMetric(float64(took.Microseconds())/1000, "first-shadow-replay-ms")
			} else if best == 0 || took < best {
				best, replayed = took, resp.Msg.Replayed
			}
		}
		b.ReportMetric(float64(best.Microseconds())/1000, "shadow-replay-ms")
		b.ReportMetric(float64(replayed)/best.Seconds(), "events/s")
	}
}
