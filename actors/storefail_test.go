package actors

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// When the store's disk fails, the engine stops: the commit that met the failure and
// every later one fail with events.ErrFailed, Failed is closed, followers are released
// with the error, the engine's loops end, and Close returns.
func TestEngineStopsOnStoreFailure(t *testing.T) {
	ctx := context.Background()
	var broken errorfs.Toggle
	fs := errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind.ReadOrWrite() == errorfs.OpIsWrite && strings.HasSuffix(op.Path, ".log") {
			return broken.MaybeError(op)
		}
		return nil
	}))
	broken.Injector = errorfs.ErrInjected
	e, err := New(ctx, Config{DataDir: t.TempDir(), StoreFS: fs, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			e.Close(ctx)
		}
	})
	ok := events.NewExecutionID(time.Now())
	if _, err := e.change(ctx, ok, func(*pb.ExecutionState) (*events.Tx, error) { return createdTx(ok, time.Now()), nil }); err != nil {
		t.Fatal(err)
	}
	followed := make(chan error, 1)
	go func() {
		_, err := e.Follow(ctx, ok, func(st *pb.ExecutionState) bool { return st.Status == pb.Status_STATUS_FINISHED })
		followed <- err
	}()

	broken.On()
	id := events.NewExecutionID(time.Now())
	if _, err := e.change(ctx, id, func(*pb.ExecutionState) (*events.Tx, error) { return createdTx(id, time.Now()), nil }); !errors.Is(err, events.ErrFailed) {
		t.Fatalf("commit on a failed disk: %v, want ErrFailed", err)
	}
	select {
	case <-e.Failed():
	case <-time.After(time.Minute):
		t.Fatal("the engine did not report the failure")
	}
	if err := e.Err(); !errors.Is(err, events.ErrFailed) || !errors.Is(err, errorfs.ErrInjected) {
		t.Fatalf("Err() = %v, want the store's failure caused by the injected error", err)
	}
	select {
	case err := <-followed:
		if !errors.Is(err, events.ErrFailed) {
			t.Fatalf("Follow ended with %v, want ErrFailed", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Follow still waits on a failed store")
	}
	broken.Off() // a healthy disk again: the store must stay failed all the same
	later := events.NewExecutionID(time.Now())
	if _, err := e.change(ctx, later, func(*pb.ExecutionState) (*events.Tx, error) { return createdTx(later, time.Now()), nil }); !errors.Is(err, events.ErrFailed) {
		t.Fatalf("commit after the failure: %v, want ErrFailed", err)
	}
	// The services (timers, delays, cancellations) and the executors stop by themselves.
	stopped := make(chan struct{})
	go func() { e.wg.Wait(); <-e.servicesStopped; close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(time.Minute):
		t.Fatal("the engine's loops still run after the store failed")
	}
	done := make(chan error, 1)
	go func() { done <- e.Close(ctx) }()
	select {
	case <-done:
		closed = true
	case <-time.After(time.Minute):
		t.Fatal("Close hangs after the store failed")
	}
}
