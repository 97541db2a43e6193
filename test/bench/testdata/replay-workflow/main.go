// Command replay-workflow is a benchmark-only workflow with a long history: n random
// values recorded, then a durable sleep, whose wake-up replays all of it.
package main

import (
	"time"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
)

func init() {
	obelisk.Export("testing:replay-workflow/workflow.persist-then-sleep", func(ctx obelisk.Context, n uint32, millis uint64) (uint64, error) {
		var sum uint64
		for range n {
			v, err := obelisk.RandomU64(ctx, 0, 1000)
			if err != nil {
				return 0, err
			}
			sum += v
		}
		if err := obelisk.SleepFor(ctx, time.Duration(millis)*time.Millisecond); err != nil {
			return 0, err
		}
		return sum, nil
	})
}

func main() {}
