package actors

import (
	"context"
	"fmt"

	"github.com/obelisk-go/obelisk/events"
	"github.com/obelisk-go/obelisk/verify"
)

// Verify checks the engine's store as it is now (package verify), while the engine goes
// on: it reads a consistent view of the store, so that what commits meanwhile is neither
// seen half nor reported as a mismatch. failed is called with each failure.
//
// Workflow executions are not replayed yet: Options.Replay is where a shadow replay of
// an execution against its pinned component plugs in.
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
	return verify.Run(ctx, view, verify.Options{}, failed)
}
