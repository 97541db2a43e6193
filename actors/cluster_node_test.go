package actors

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// TestNodeRecoversOnlyItsOwnLocks: a cluster's node, starting, releases the locks its
// own earlier processes held (they died with it) and leaves the other nodes' alone
// (they may be running there: their locks expire if not); a single node releases every
// server lock, as before.
func TestNodeRecoversOnlyItsOwnLocks(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	open := func(node string) *Engine {
		t.Helper()
		cfg := workerEngineConfig(dir)
		cfg.NodeName = node
		e, err := New(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	e := open("a")
	if want := "@a"; e.executor[len(e.executor)-len(want):] != want {
		t.Fatalf("executor %q does not name node a", e.executor)
	}
	comp := e.reg.byFFQN[approveFFQN].Component
	for id, executor := range map[string]string{"E_A": "Exr_01@a", "E_B": "Exr_02@b"} {
		createApproval(t, e, id)
		now := time.Now()
		st, err := e.store.State(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.store.Commit(ctx, appendTx(st, "", lockedEvent(executor, comp, "Run_"+id, now, now.Add(time.Hour), nil))); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Close(ctx); err != nil {
		t.Fatal(err)
	}
	status := func(e *Engine, id string) pb.Status {
		t.Helper()
		st, err := e.store.State(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return st.Status
	}

	e = open("a")
	if s := status(e, "E_A"); s == pb.Status_STATUS_LOCKED {
		t.Errorf("node a kept the lock of its earlier process: %v", s)
	}
	if s := status(e, "E_B"); s != pb.Status_STATUS_LOCKED {
		t.Errorf("node a released node b's lock: %v", s)
	}
	if err := e.Close(ctx); err != nil {
		t.Fatal(err)
	}
	e = open("") // a single node: every server lock is its own dead process's
	defer e.Close(ctx)
	if s := status(e, "E_B"); s == pb.Status_STATUS_LOCKED {
		t.Errorf("a single node kept a lock of a dead process: %v", s)
	}
}

// TestCommitsAppliedWhileStarting: a cluster node's store applies the other nodes'
// commits from the moment it opens, while the engine still loads its components; the
// engine starts (no wake-up reaches what does not exist yet) and then serves what they
// committed (recover's scans see it).
func TestCommitsAppliedWhileStarting(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := workerEngineConfig(dir)
	cfg.NodeName = "a"
	e, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	createApproval(t, e, "E_before")
	before, err := e.store.State(ctx, "E_before")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// The store reports, as it opens, commits of every kind onCommit wakes for.
	cfg.OpenStore = func(ctx context.Context, dir string, opts events.Options) (LocalStore, error) {
		s, err := events.Open(dir, opts)
		if err != nil {
			return nil, err
		}
		now := time.Now()
		locked := proto.Clone(before).(*pb.ExecutionState)
		locked.Status, locked.LockExpiresAt, locked.ExecutorId = pb.Status_STATUS_LOCKED, now.Add(time.Hour).UnixNano(), "Exr_01@b"
		finished := proto.Clone(before).(*pb.ExecutionState)
		finished.Status = pb.Status_STATUS_FINISHED
		cancelled := proto.Clone(before).(*pb.ExecutionState)
		cancelled.CancelRequested = true
		opts.OnCommit([]*pb.ExecutionState{before, locked, finished, cancelled})
		return s, nil
	}
	e, err = New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	if st, err := e.store.State(ctx, "E_before"); err != nil || st.Status != pb.Status_STATUS_PENDING_AT {
		t.Fatalf("E_before after the start: %v, %v", st.GetStatus(), err)
	}
}
