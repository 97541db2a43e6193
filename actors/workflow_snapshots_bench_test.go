//go:build linux

package actors

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// BenchmarkSnapshotResume times, stage by stage, the resume of a workflow with a
// 10,000-event history from its memory snapshot after a restart: the engine that ran it
// is closed and a new one opens the store; each iteration then does what a run's resume
// does (list the snapshots, read the history, read the blob, decode it, make the
// instance) and, for comparison in the same run, what it did before snapshots had a
// version (read the whole history, hash its prefix). It reports each stage's median and
// p99, in wall time and in the thread's CPU time (less disturbed by a loaded machine).
// The module's preparation, which the first resume after a restart waits for (as a
// replay waits for the code), is done once before the timed iterations.
//
// It needs the benchmark's replay workflow built (see docs/benchmarks.md):
// OBELISK_REPLAY_WASM=path/to/replay-workflow.wasm.
func BenchmarkSnapshotResume(b *testing.B) {
	wasm := os.Getenv("OBELISK_REPLAY_WASM")
	if wasm == "" {
		b.Skip("OBELISK_REPLAY_WASM is not set (the replay workflow's .wasm)")
	}
	ctx := context.Background()
	dir, cache := b.TempDir(), b.TempDir()
	open := func() *Engine {
		e, err := New(ctx, Config{
			DataDir: dir, CacheDir: cache, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), SnapshotEvery: 1000,
			Components: []ComponentConfig{{Name: "replay_workflow", Type: Workflow, Path: wasm, LockExpiry: time.Minute,
				MaxConcurrency: 1, BlockingStrategy: Interrupt}},
		})
		if err != nil {
			b.Fatal(err)
		}
		return e
	}
	e := open()
	id, _, err := e.Submit(ctx, "", "testing:replay-workflow/workflow.persist-then-sleep", []byte("[10000, 3600000]"))
	if err != nil {
		b.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
		if es, err := e.store.Snapshots(ctx, id); err == nil && len(es) > 0 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("no snapshot at the sleep")
		}
	}
	e.Close(ctx)
	e = open() // the restart: nothing of the execution is in memory
	defer e.Close(ctx)
	c := e.reg.deployed("replay_workflow")
	st, err := e.store.State(ctx, id)
	if err != nil {
		b.Fatal(err)
	}

	// Before: the whole history read and its prefix hashed (what a resume did before
	// snapshots had a Version); after: the events from the snapshot's version read, its
	// link checked (in the listing). Both in one run, alternated, to compare.
	stages := []string{"full-history", "prefix-digest", "list", "history-tail", "blob", "decode", "instance", "before", "after"}
	wall, cpu := map[string][]time.Duration{}, map[string][]time.Duration{}
	runtime.LockOSThread() // for the thread's CPU time
	defer runtime.UnlockOSThread()
	resume := func(timed bool) {
		var lastWall, lastCPU time.Time
		mark := func(stage string) {
			now, nowCPU := time.Now(), threadCPU()
			if timed && stage != "" {
				wall[stage] = append(wall[stage], now.Sub(lastWall))
				cpu[stage] = append(cpu[stage], nowCPU.Sub(lastCPU))
			}
			lastWall, lastCPU = now, nowCPU
		}
		mark("")
		e.histories.Forget(id) // after a restart the history is not cached
		full, err := e.newWorkflowRun(ctx, c, st, "bench", nil)
		if err != nil {
			b.Fatal(err)
		}
		mark("full-history")
		entries, err := e.store.Snapshots(ctx, id)
		if err != nil || len(entries) == 0 || !entries[0].Current {
			b.Fatalf("snapshots: %+v %v", entries, err)
		}
		en := entries[0]
		mark("list")
		_ = historyDigest(full.history[:en.Position])
		mark("prefix-digest")
		r, err := e.runFromVersion(ctx, c, st, "bench", nil, en)
		if err != nil {
			b.Fatal(err)
		}
		mark("history-tail")
		blob, err := e.store.SnapshotBlob(ctx, id, en)
		if err != nil {
			b.Fatal(err)
		}
		mark("blob")
		_, image, err := decodeRunSnapshot(blob)
		if err != nil {
			b.Fatal(err)
		}
		mark("decode")
		inst, err := c.module.ResumeParked(ctx, r.instanceConfig(), image, func(context.Context) ([]byte, error) { return nil, nil })
		if err != nil {
			b.Fatal(err)
		}
		mark("instance")
		inst.Close(ctx)
		mark("")
		if timed {
			for _, m := range []map[string][]time.Duration{wall, cpu} {
				at := func(s string) time.Duration { return m[s][len(m[s])-1] }
				common := at("list") + at("blob") + at("decode") + at("instance")
				m["before"] = append(m["before"], at("full-history")+at("prefix-digest")+common)
				m["after"] = append(m["after"], at("history-tail")+common)
			}
		}
	}
	resume(false) // waits for the module's preparation
	b.ResetTimer()
	for range b.N {
		resume(true)
	}
	b.StopTimer()
	for _, s := range stages {
		for _, m := range []struct {
			name string
			d    []time.Duration
		}{{"", wall[s]}, {"cpu-", cpu[s]}} {
			slices.Sort(m.d)
			b.ReportMetric(float64(m.d[len(m.d)/2].Microseconds())/1000, s+"-"+m.name+"p50-ms")
			b.ReportMetric(float64(m.d[len(m.d)*99/100].Microseconds())/1000, s+"-"+m.name+"p99-ms")
		}
	}
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "snapshot resume: %d iterations\n", b.N)
	}
}

// threadCPU returns the CPU time (user and system) of the calling thread, as a time
// since the epoch (for Sub).
func threadCPU() time.Time {
	var ts syscall.Timespec
	const clockThreadCPUTime = 3 // CLOCK_THREAD_CPUTIME_ID
	if _, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTime, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		return time.Time{}
	}
	return time.Unix(0, ts.Nano())
}
