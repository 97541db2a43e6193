// Command schedule-workflow is a test-only workflow that schedules executions.
package main

import (
	"time"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
)

func init() {
	// Schedules fibo(n) to run in-millis after now, then calls fibo(1) so that under the
	// interrupt strategy the workflow is replayed past the schedule; returns the ID.
	obelisk.Export("testing:schedule-workflow/workflow.schedule-fibo", func(ctx obelisk.Context, n uint8, inMillis uint64) (string, error) {
		id, err := obelisk.Schedule(ctx, obelisk.In(time.Duration(inMillis)*time.Millisecond), "testing:fibo/fibo.fibo", n)
		if err != nil {
			return "", err
		}
		if _, err := obelisk.Call[uint64](ctx, "testing:fibo/fibo.fibo", uint8(1)); err != nil {
			return "", err
		}
		return id, nil
	})
}

func main() {}
