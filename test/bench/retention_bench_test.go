package bench

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/test/harness"
)

// BenchmarkRetention: N finished fiboa(1, 3) trees (4 executions each; N from
// OBELISK_BENCH_RETENTION_TREES, default 2,000; the figure is 100,000; the
// store's memtable_size from OBELISK_BENCH_RETENTION_MEMTABLE if set) are created
// on a server without retention, which is then restarted with [retention] finished_after
// = "30s" once they are all older. Metrics: the executions the first retention pass
// deleted per second (from its log line), the round trips of sequential workflows
// (fiboa(1, N), workflow→activity→workflow) at p99 without deletion (before the restart)
// and while the pass ran (seq-calls-during of them), and the
// store's size on disk before creating the trees, after, and after deletion and
// compaction (each with the server stopped). On a loaded machine the wall rate says
// little, so also: the server's CPU during the pass per deleted execution (less the
// sequential calls' own CPU, measured without the pass), and the store's background
// work during the pass (Pebble's flushes and compactions and the MiB they wrote).
func BenchmarkRetention(b *testing.B) {
	n := 2000
	if v := os.Getenv("OBELISK_BENCH_RETENTION_TREES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			b.Fatalf("OBELISK_BENCH_RETENTION_TREES=%q: want a positive number", v)
		}
	}
	// A smaller memtable stands for a larger pass: a pass over fewer trees fills fewer
	// memtables, and its flushes and compactions are what slow the foreground at scale.
	memtable := os.Getenv("OBELISK_BENCH_RETENTION_MEMTABLE") // e.g. "4MiB"; default the store's
	for range b.N {
		s := harness.Start(b, harness.Options{})
		if memtable != "" {
			s.Stop()
			s.AppendConfig(fmt.Sprintf("[store]\nmemtable_size = %q\n", memtable))
			s.Start()
		}
		warm := s.Submit("testing:fibo-workflow/workflow.fiboa", "[1, 10]")
		harness.JSONEq(b, s.Result(warm, time.Minute), `{"ok":10}`)
		waitPrepared(b, s, "fibo", "fibo_workflow")
		s.Stop()
		sizeBefore := harness.DirSize(b, s.DataDir())
		s.Start()
		cpu0 := cpuTime(b, s)
		_, baseline := sequentialGaps(b, s, 1000)
		seqCPU := (cpuTime(b, s) - cpu0) / time.Duration(len(baseline)+1) // per call
		ids := submitAll(s, n, "testing:fibo-workflow/workflow.fiboa", "[1, 3]")
		for _, id := range ids {
			if r := s.Result(id, 30*time.Minute); r != `{"ok":3}` {
				b.Fatalf("%s: %s", id, r)
			}
		}
		s.Stop()
		sizeCreated := harness.DirSize(b, s.DataDir())
		// 30 s: every tree created is due at the restart, and the sequential workflows
		// run during the pass are not deleted before their events are read.
		time.Sleep(30 * time.Second)
		s.AppendConfig("[retention]\nfinished_after = \"30s\"\n")
		s.Start()
		cpu := sampleCPU(b, s)
		// The pass starts 5 s after the engine (retentionStartDelay): sequential
		// workflows run from before it starts until it has ended.
		var runs [][]time.Time
		var deleted, took float64
		var passEnd time.Time
		deadline := time.Now().Add(30 * time.Minute)
		for deleted < float64(4*n) {
			if time.Now().After(deadline) {
				b.Fatalf("retention did not delete the %d trees in 30 minutes", n)
			}
			calls, _ := sequentialGaps(b, s, 300)
			runs = append(runs, calls)
			deleted, took, passEnd = retentionLog(b, s.Log())
		}
		passStart := passEnd.Add(-time.Duration(took * float64(time.Second)))
		var during []time.Duration
		for _, calls := range runs {
			for i := 1; i < len(calls); i++ {
				if calls[i-1].After(passStart) && calls[i].Before(passEnd) {
					during = append(during, calls[i].Sub(calls[i-1]))
				}
			}
		}
		waitFor(b, 30*time.Minute, func() bool { return strings.Contains(s.Log(), "retention: compacted what was deleted") })
		// The pass's CPU, less the sequential calls' own (at their rate without it).
		passCPU := cpu.between(passStart, passEnd) - time.Duration(len(during))*seqCPU
		cpu.stop()
		bg := retentionBackground(b, s.Log())
		s.Stop()
		sizeDeleted := harness.DirSize(b, s.DataDir())
		b.ReportMetric(deleted/took, "deleted-executions/s")
		b.ReportMetric(deleted, "deleted-executions")
		reportP99(b, "seq-p99-ms-without", baseline)
		reportP99(b, "seq-p99-ms-during", during)
		b.ReportMetric(float64(len(during)), "seq-calls-during")
		b.ReportMetric(float64(passCPU.Microseconds())/deleted, "pass-cpu-µs/execution")
		b.ReportMetric(float64(seqCPU.Microseconds()), "seq-cpu-µs/call")
		for _, name := range []string{"flushes", "compactions", "flushed_mib", "compacted_mib"} {
			b.ReportMetric(bg[name], "pass-"+strings.ReplaceAll(name, "_", "-"))
		}
		b.ReportMetric(float64(sizeBefore)/(1<<20), "store-MiB-before")
		b.ReportMetric(float64(sizeCreated)/(1<<20), "store-MiB-created")
		b.ReportMetric(float64(sizeDeleted)/(1<<20), "store-MiB-deleted")
	}
}

// sequentialGaps runs fiboa(1, iterations) and returns the times its calls were recorded
// and the gaps between them (workflow→activity→workflow round trips).
func sequentialGaps(b *testing.B, s *harness.Server, iterations int) ([]time.Time, []time.Duration) {
	id := s.Submit("testing:fibo-workflow/workflow.fiboa", fmt.Sprintf("[1, %d]", iterations))
	harness.JSONEq(b, s.Result(id, 10*time.Minute), fmt.Sprintf(`{"ok":%d}`, iterations))
	return harness.CallGaps(s, id)
}

func reportP99(b *testing.B, name string, ds []time.Duration) {
	if len(ds) == 0 {
		b.ReportMetric(0, name)
		return
	}
	slices.Sort(ds)
	b.ReportMetric(float64(ds[len(ds)*99/100].Microseconds())/1000, name)
}

var retentionLine = regexp.MustCompile(`time=(\S+) level=INFO msg="retention: deleted finished execution trees" trees=\d+ executions=(\d+) events=\d+ took=(\S+)`)

// retentionLog returns what the first retention pass logged: the executions it deleted,
// how long it took (seconds) and when it ended.
func retentionLog(b *testing.B, log string) (executions, took float64, end time.Time) {
	m := retentionLine.FindStringSubmatch(log)
	if m == nil {
		return 0, 0, time.Time{}
	}
	executions, _ = strconv.ParseFloat(m[2], 64)
	d, err := time.ParseDuration(m[3])
	if err != nil {
		b.Fatalf("retention log line %q: %v", m[0], err)
	}
	end, _ = time.Parse(time.RFC3339Nano, m[1])
	return executions, d.Seconds(), end
}

var retentionBackgroundLine = regexp.MustCompile(`msg="retention: deleted finished execution trees" .* flushes=(\d+) compactions=(\d+) flushed_mib=(\S+) compacted_mib=(\S+)`)

// retentionBackground returns the store's background work during the first retention
// pass, from its log line: flushes, compactions, flushed_mib and compacted_mib (all 0
// from a server that does not log them).
func retentionBackground(b *testing.B, log string) map[string]float64 {
	out := map[string]float64{}
	m := retentionBackgroundLine.FindStringSubmatch(log)
	if m == nil {
		return out
	}
	for i, name := range []string{"flushes", "compactions", "flushed_mib", "compacted_mib"} {
		v, err := strconv.ParseFloat(m[i+1], 64)
		if err != nil {
			b.Fatalf("retention log line %q: %s: %v", m[0], name, err)
		}
		out[name] = v
	}
	return out
}

func cpuTime(b *testing.B, s *harness.Server) time.Duration {
	d, err := s.CPUTime()
	if err != nil {
		b.Fatalf("server CPU time: %v", err)
	}
	return d
}

// cpuSamples is the server's CPU time sampled every 100 ms.
type cpuSamples struct {
	mu   sync.Mutex
	at   []time.Time
	cpu  []time.Duration
	done chan struct{}
}

func sampleCPU(b *testing.B, s *harness.Server) *cpuSamples {
	c := &cpuSamples{done: make(chan struct{})}
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if d, err := s.CPUTime(); err == nil {
				c.mu.Lock()
				c.at, c.cpu = append(c.at, time.Now()), append(c.cpu, d)
				c.mu.Unlock()
			}
			select {
			case <-c.done:
				return
			case <-t.C:
			}
		}
	}()
	return c
}

func (c *cpuSamples) stop() { close(c.done) }

// between returns the CPU used from the last sample at or before from to the first at
// or after to.
func (c *cpuSamples) between(from, to time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := sort.Search(len(c.at), func(i int) bool { return c.at[i].After(from) })
	j := sort.Search(len(c.at), func(j int) bool { return !c.at[j].Before(to) })
	if i > 0 {
		i--
	}
	if j >= len(c.at) {
		j = len(c.at) - 1
	}
	if j <= i {
		return 0
	}
	return c.cpu[j] - c.cpu[i]
}

func waitFor(b *testing.B, timeout time.Duration, cond func() bool) {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("condition not met in %v", timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
