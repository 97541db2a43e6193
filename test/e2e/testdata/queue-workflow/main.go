// Command queue-workflow is a test-only workflow that submits its child into a named
// execution queue (obelisk.JoinSet.InQueue).
package main

import "github.com/obelisk-go/obelisk/sdk/go/obelisk"

func init() {
	obelisk.Export("testing:queue-workflow/workflow.fibo-in", func(ctx obelisk.Context, queue string, n uint8) (uint64, error) {
		js, err := obelisk.NewJoinSet(ctx)
		if err != nil {
			return 0, err
		}
		if _, err := obelisk.Submit(ctx, js.InQueue(queue), "testing:fibo/fibo.fibo", n); err != nil {
			return 0, err
		}
		_, v, err := obelisk.AwaitNext[uint64](ctx, js, "testing:fibo/fibo.fibo")
		return v, err
	})
}

func main() {}
