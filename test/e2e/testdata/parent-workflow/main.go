// Command parent-workflow is a test-only workflow whose children are workflows: it calls
// testing:fibo-workflow/workflow.fiboa twice, so every call is a child workflow with
// children of its own.
package main

import "github.com/obelisk-go/obelisk/sdk/go/obelisk"

func init() {
	obelisk.Export("testing:parent-workflow/workflow.fiboa-twice", func(ctx obelisk.Context, n uint8, iterations uint32) (uint64, error) {
		var sum uint64
		for range 2 {
			v, err := obelisk.Call[uint64](ctx, "testing:fibo-workflow/workflow.fiboa", n, iterations)
			if err != nil {
				return 0, err
			}
			sum += v
		}
		return sum, nil
	})
}

func main() {}
