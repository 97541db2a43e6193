package actors

import (
	"context"
	"errors"
	"fmt"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	"github.com/obelisk-go/obelisk/verify"
)

// Verify checks the engine's store as it is now (package verify), while the engine goes
// on: it reads each execution from a consistent view of the store, so that what commits
// meanwhile is neither seen half nor reported as a mismatch. Every workflow execution is also replayed
// against its pinned component in a sandbox (Replay), which reads the store as it is
// when the replay begins. failed is called with each failure.
func (e *Engine) Verify(ctx context.Context, failed func(verify.Failure) error) (verify.Report, error) {
	v, ok := e.store.(events.Viewer)
	if !ok {
		return verify.Report{}, fmt.Errorf("verify: the store (%T) cannot be read as of one moment", e.store)
	}
	view, err := v.View()
	if err != nil {
		return verify.Report{}, fmt.Errorf("verify: %w", err)
	}
	defer view.Close()
	return verify.Run(ctx, view, verify.Options{Replay: e.verifyReplay}, failed)
}

// verifyReplay is verify's Replayer: a shadow replay against the pinned component.
// A finished execution whose version is no longer kept (dropped once no unfinished
// execution needed it, versions.go, or never recorded) is not replayable: another
// version's code would tell nothing about its history.
func (e *Engine) verifyReplay(ctx context.Context, st *pb.ExecutionState) error {
	if st.Status == pb.Status_STATUS_FINISHED && e.reg.byID[st.ComponentId] == nil && e.unavailable[st.ComponentId] == nil {
		return fmt.Errorf("execution %s finished on component version %q, which is no longer kept: %w", st.ExecutionId, st.ComponentId, verify.ErrNotReplayable)
	}
	rep, err := e.Replay(ctx, st.ExecutionId, ReplayTarget{})
	if errors.Is(err, events.ErrNotFound) {
		return nil // deleted by retention since the view was taken
	}
	if err != nil {
		return err
	}
	if rep.OK {
		return nil
	}
	if nondeterministic(st) {
		// It finished as nondeterminism_detected: its code diverged from its history
		// when its last run replayed, and diverges again. That is its record, not a
		// corruption of the store (an upgrade repairs it).
		return nil
	}
	detail := "it does not reproduce its history"
	if d := rep.Divergence; d != nil {
		detail = fmt.Sprintf("at history event %d: %s", d.Index, d.Detail)
	}
	return &verify.DivergenceError{Detail: fmt.Sprintf("against %s: %s", rep.ComponentID, detail)}
}
