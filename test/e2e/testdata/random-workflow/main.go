// Command random-workflow is a test-only workflow using the deterministic helpers between
// child calls, so that replays (interrupt strategy) must return the recorded values.
package main

import (
	"strconv"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
)

func init() {
	obelisk.Export("testing:random-workflow/workflow.values", func(ctx obelisk.Context) (string, error) {
		n, err := obelisk.RandomU64(ctx, 10, 1_000_000)
		if err != nil {
			return "", err
		}
		if _, err := obelisk.Call[uint64](ctx, "testing:fibo/fibo.fibo", uint8(5)); err != nil {
			return "", err
		}
		s, err := obelisk.RandomString(ctx, 5, 20)
		if err != nil {
			return "", err
		}
		if _, err := obelisk.Call[uint64](ctx, "testing:fibo/fibo.fibo", uint8(6)); err != nil {
			return "", err
		}
		id, err := obelisk.NewExecutionID(ctx)
		if err != nil {
			return "", err
		}
		if _, err := obelisk.RandomU64(ctx, 5, 5); err == nil {
			return "", obelisk.Err("an empty range was accepted")
		}
		return strconv.FormatUint(n, 10) + "|" + s + "|" + id, nil
	})
}

func main() {}
