package actors

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/obelisk-go/obelisk/actors/internal/membudget"
)

// Guest memory.
//
// Every component's instances have a memory limit (ComponentConfig.MemoryLimit, enforced
// by wasmhost), and the live instances of the node's activities, workflows and webhook
// endpoints share a budget (Config.MemoryBudget) that counts what each one's linear
// memory holds, not its limit: a Go guest holds 4-6 MiB, its limit is 256 MiB by default.
//
//   - Admission. Before an activity or a workflow is locked (or dispatched eagerly), its
//     executor reserves the most the component's last run held (Component.
//     memoryEstimate; its starting size before any run ended), waiting in the pending
//     queue until there is room: waiting for memory is not an attempt. Webhook requests
//     reserve the same way, bounded by their timeout. The instance then charges its
//     actual size and growths to that reservation first (wasmhost
//     Instance.CountMemoryIn). Reserving the last peak rather than the starting size
//     makes a component whose runs grow large wait before it starts, instead of
//     starting many runs that then wait for (or give way to) one another mid-run.
//   - Growth. Each memory.grow of a run beyond its reservation reserves what it adds
//     before the memory grows. Growths are served before admissions: a run that holds a
//     lock is not made to wait for executions that have not started.
//   - Eviction. Whenever reservations wait, the budget evicts workflow instances parked in
//     memory (workflow_resident.go), least recently parked first, until what they hold covers the
//     waiters. A parked instance only waits, maybe for the very child that waits for
//     memory, and an evicted workflow is replayed when its response arrives.
//   - Failure. Only the oldest run's growth waits for room (until its run's context
//     ends: the lock expires, the execution is cancelled); a younger run's growth that
//     finds no room gives way at once, and so does a younger one waiting when an older
//     one must wait (package membudget). Waiting runs would otherwise hold memory while
//     they wait for one another, each until its lock expired; this way memory flows to
//     the oldest run, which finishes. A run whose growth fails stops (memory.grow fails,
//     the trap wraps wasmhost.ErrMemoryBudget). That is the node's shortage, not the
//     guest's fault: the execution is unlocked and retried after its retry_exp_backoff,
//     and the attempt does not count against max_retries (memoryRetryTx); meanwhile its
//     component's reservation has grown to what the run reached (admitRun).
//   - Replays. A shadow replay's instance (replay, upgrade, online verify) is admitted
//     and counted as a run's is (Engine.replay): it holds as much memory as a run of
//     the same history. An offline engine has no budget: nothing else runs there.
//   - Release. An instance's memory leaves the budget when its run ends or it is closed.
//
// Not counted: instances kept ready in pools or reset for reuse (they belong to no run;
// each holds its initial memory, a few MiB, and they are few: wasmhost bounds them).
//
// Counting limits instead, as a first attempt did, reserved 256 MiB for a workflow
// parked with 5 MiB: 64 of them overflowed a 12 GiB budget, every park evicted, and
// 2,000 concurrent fiboa(1, 3) fell from 571 to 130 workflows/s (docs/RATIONALE.md).

// Defaults of the guest memory settings.
const (
	// DefaultMemoryLimit is a component's memory limit when its config gives none.
	DefaultMemoryLimit = 256 << 20
	// minDefaultMemoryBudget is the least default budget: half the machine's memory,
	// but at least this.
	minDefaultMemoryBudget = 2 << 30
	// wasmPage is the unit of a memory limit.
	wasmPage = 64 << 10
	// maxMemoryLimit is the most a wasm32 memory can hold.
	maxMemoryLimit = 4 << 30
)

// memoryLimit returns the component's memory limit in bytes.
func (c *ComponentConfig) memoryLimit() uint64 {
	if c.MemoryLimit == 0 {
		return DefaultMemoryLimit
	}
	return c.MemoryLimit
}

// checkMemory refuses memory settings that cannot work: a limit that is not a whole
// number of wasm pages, and an activity or workflow whose limit is over the budget (an
// instance growing to its limit would wait for room that can never be).
func checkMemory(budget uint64, cfgs []ComponentConfig) error {
	for _, c := range cfgs {
		limit := c.memoryLimit()
		if limit%wasmPage != 0 {
			return fmt.Errorf("component %q: memory limit of %d bytes is not a multiple of 64 KiB (a wasm page)", c.Name, limit)
		}
		if limit > maxMemoryLimit {
			return fmt.Errorf("component %q: memory limit of %s is over the 4 GiB a wasm32 memory can address", c.Name, membudget.FormatSize(limit))
		}
		if (c.Type == ActivityWasm || c.Type == Workflow) && limit > budget {
			return fmt.Errorf("component %q: memory limit of %s is over the guest memory budget of %s", c.Name, membudget.FormatSize(limit), membudget.FormatSize(budget))
		}
	}
	return nil
}

// defaultMemoryBudget is half the machine's memory, at least minDefaultMemoryBudget.
func defaultMemoryBudget() uint64 {
	return max(minDefaultMemoryBudget, machineMemory()/2)
}

// machineMemory returns MemTotal of /proc/meminfo, or 0 where there is none.
func machineMemory() uint64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// admitRun reserves the guest memory of a run of c before its instance is made: the
// most the last run held (memoryEstimate), so that a component whose runs grow large
// waits for room before it starts, rather than starting and then waiting (or giving way)
// in the middle of its run.
func (e *Engine) admitRun(ctx context.Context, c *Component) (*membudget.Account, error) {
	a, err := e.memory.Admit(ctx, c.memoryEstimate())
	if err != nil {
		return nil, err
	}
	a.SetPeakTo(&c.lastPeak)
	return a, nil
}

// tryAdmitRun is admitRun if the memory is free now and nobody waits; else it returns nil.
func (e *Engine) tryAdmitRun(c *Component) *membudget.Account {
	a := e.memory.TryAdmit(c.memoryEstimate())
	if a != nil {
		a.SetPeakTo(&c.lastPeak)
	}
	return a
}
