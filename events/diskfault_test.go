package events_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"google.golang.org/protobuf/proto"

	"github.com/obelisk-go/obelisk/events"
)

// TestStoreDiskFaults: when the disk fails under the store at a random write or sync
// (once, or from then on), the store acknowledges nothing it has not persisted and
// nothing after the failure, and a crash image of the disk (what was synced, plus a
// random part of what was not) reopens with every acknowledged commit.
//
// The faults hit the WAL's writes and syncs, or, under a load that makes Pebble rotate
// its WAL, the store's record of WALs. Not tested here, because Pebble takes the
// process down: a failure of the WAL's own rotation (Pebble panics with a mutex
// unlocked twice, a fatal error) or of its MANIFEST (Pebble's Logger.Fatalf in a
// background goroutine). The store has failed, and logged why, before either.
func TestStoreDiskFaults(t *testing.T) {
	for seed := range uint64(12) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { diskFault(t, seed) })
	}
}

// stepTx is the i-th transaction of an execution's life: created, locked, a history
// event of pad bytes, finished (a submit and the steps of a workflow).
func stepTx(id string, i, pad int) *events.Tx {
	at := int64(i + 1)
	switch i {
	case 0:
		return appendTx(id, 0, "", createdEv("testing:fibo/fibo.fibo", "q", at, at))
	case 1:
		return appendTx(id, 1, "", lockedEv("Run_"+id, at, 1<<62))
	case 2:
		ev := persistEv(at)
		ev.GetHistory().GetPersist().Value = []byte(strings.Repeat("x", pad))
		return appendTx(id, 2, "Run_"+id, ev)
	}
	return appendTx(id, 3, "Run_"+id, finishedEv(at, `{"ok":1}`))
}

const stepsPerExecution = 4

func diskFault(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x0be115c))
	mem := vfs.NewCrashableMem()
	persistent := seed%2 == 0
	// Big events make Pebble rotate its WAL (and the store rewrite its record of WALs,
	// a few writes and syncs each time) during the load.
	pad := []int{1, 64 << 10}[seed%3/2]
	failAt := rng.Int64N(400)
	if pad > 1 {
		failAt = rng.Int64N(20)
	}
	var armed atomic.Bool
	var ops atomic.Int64
	inj := errorfs.InjectorFunc(func(op errorfs.Op) error {
		target := strings.HasSuffix(op.Path, ".log") && op.Kind != errorfs.OpCreate && op.Kind != errorfs.OpReuseForWrite
		if pad > 1 {
			target = strings.Contains(op.Path, "OBELISK-WALS")
		}
		if !armed.Load() || op.Kind.ReadOrWrite() != errorfs.OpIsWrite || !target {
			return nil
		}
		n := ops.Add(1) - 1
		if n == failAt || persistent && n > failAt {
			return errorfs.ErrInjected
		}
		return nil
	})
	s, err := events.Open("store", events.Options{FS: errorfs.Wrap(mem, inj), Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	armed.Store(true)
	waited := make(chan error, 1)
	go func() { _, err := s.WaitPosition(context.Background(), math.MaxUint64-1); waited <- err }()

	const workers, perWorker = 8, 40
	var (
		mu      sync.Mutex
		acked   = map[string]int{} // execution -> transactions acknowledged
		failed  atomic.Bool        // a commit has failed
		wg      sync.WaitGroup
		ctx     = context.Background()
		lateAck atomic.Int64
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				id := fmt.Sprintf("E_%d_%03d", w, i)
				for step := range stepsPerExecution {
					seenFailed := failed.Load()
					_, err := s.Commit(ctx, stepTx(id, step, pad))
					if err != nil {
						if !errors.Is(err, events.ErrFailed) {
							t.Errorf("commit %s step %d: %v, want an error matching ErrFailed", id, step, err)
						}
						failed.Store(true)
						break
					}
					if seenFailed {
						lateAck.Add(1)
					}
					mu.Lock()
					acked[id] = step + 1
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if !failed.Load() {
		t.Fatalf("no commit failed (fault at write %d of %d)", failAt, ops.Load())
	}
	if n := lateAck.Load(); n > 0 {
		t.Errorf("%d commits acknowledged after a commit had failed", n)
	}
	if err := s.Err(); !errors.Is(err, events.ErrFailed) || !strings.Contains(err.Error(), "store") {
		t.Errorf("Err() = %v, want the store's failure", err)
	}
	if _, err := s.Commit(ctx, stepTx("E_after", 0, pad)); !errors.Is(err, events.ErrFailed) {
		t.Errorf("commit after the failure: %v, want ErrFailed", err)
	}
	if _, err := s.State(ctx, "E_0_000"); !errors.Is(err, events.ErrFailed) {
		t.Errorf("read after the failure: %v, want ErrFailed", err)
	}
	select {
	case err := <-waited:
		if !errors.Is(err, events.ErrFailed) {
			t.Errorf("WaitPosition ended with %v, want ErrFailed", err)
		}
	case <-time.After(time.Minute):
		t.Error("WaitPosition still waits on a failed store")
	}
	t.Logf("fault at write %d of %d (persistent %v): %d executions acknowledged; %v", failAt, ops.Load(), persistent, len(acked), s.Err())

	// A crash now: what was synced survives, and a random part of the rest.
	img := mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: rng.IntN(101), RNG: rand.New(rand.NewPCG(seed, 1))})
	r, err := events.Open("store", events.Options{FS: img, Logger: quiet()})
	if err != nil {
		t.Fatalf("reopen after the fault: %v", err)
	}
	defer r.Close()
	for id, n := range acked {
		evs, err := r.Events(ctx, id, 0, 0)
		if err != nil {
			t.Fatalf("events of acknowledged %s: %v", id, err)
		}
		if len(evs) < n {
			t.Errorf("%s: %d transactions acknowledged, %d events after reopening", id, n, len(evs))
			continue
		}
		for i := range n {
			if want := stepTx(id, i, pad).Appends[0].Events[0]; !proto.Equal(evs[i], want) {
				t.Errorf("%s v%d: got %v, want %v", id, i, evs[i], want)
			}
		}
	}
	if _, err := r.Commit(ctx, stepTx("E_reopened", 0, pad)); err != nil {
		t.Errorf("commit after reopening: %v", err)
	}
}
