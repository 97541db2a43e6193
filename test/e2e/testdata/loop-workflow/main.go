// Command loop-workflow is a test-only workflow that never finishes: each run computes
// until its lock expires, so its executions can only end by the bound on timed-out
// attempts.
package main

import (
	"math"
	"strconv"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
)

func init() {
	obelisk.Export("testing:loop-workflow/workflow.spin", func(ctx obelisk.Context) (string, error) {
		var sum uint64
		for i := uint64(0); i < math.MaxUint64; i++ {
			sum += i
		}
		return strconv.FormatUint(sum, 10), nil
	})
}

func main() {}
