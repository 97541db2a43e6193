// Command fibo-workflow-v2 is a second build of fibo-workflow, exporting the same
// functions, whose fiboa makes one more call: before its iterations it calls
// fibo(1) and adds the result. A history recorded by fibo-workflow (whose first
// call is fibo(n)) does not replay on it: the versions test deploys it in place of
// fibo-workflow to check that executions started on the old version finish on it.
//
// Build it as a WASI reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o fibo-workflow-v2.wasm ./test/components/fibo-workflow-v2
package main

import (
	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
)

const fiboFFQN = "testing:fibo/fibo.fibo"

func init() {
	obelisk.Export("testing:fibo-workflow/workflow.fibow", fibow)
	obelisk.Export("testing:fibo-workflow/workflow.fiboa", fiboa)
	obelisk.Export("testing:fibo-workflow/workflow.fiboa-concurrent", fiboaConcurrent)
}

// fibow is fibo-workflow's: fib(n), computed `iterations` times in the workflow.
func fibow(ctx obelisk.Context, n uint8, iterations uint32) (uint64, error) {
	var v uint64
	for range iterations {
		v = fib(n)
	}
	return v, nil
}

// fiboa calls fibo(1) (v2's extra call), then the fibo activity `iterations` times
// in sequence, and returns the sum of all: fiboa(n, k) = k*fib(n) + 1.
func fiboa(ctx obelisk.Context, n uint8, iterations uint32) (uint64, error) {
	sum, err := obelisk.Call[uint64](ctx, fiboFFQN, uint8(1))
	if err != nil {
		return 0, err
	}
	for range iterations {
		v, err := obelisk.Call[uint64](ctx, fiboFFQN, n)
		if err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, nil
}

// fiboaConcurrent is fibo-workflow's: `iterations` concurrent calls of fibo(n),
// summed.
func fiboaConcurrent(ctx obelisk.Context, n uint8, iterations uint32) (uint64, error) {
	js, err := obelisk.NewJoinSet(ctx)
	if err != nil {
		return 0, err
	}
	for range iterations {
		if _, err := obelisk.Submit(ctx, js, fiboFFQN, n); err != nil {
			return 0, err
		}
	}
	var sum uint64
	for range iterations {
		_, v, err := obelisk.AwaitNext[uint64](ctx, js, fiboFFQN)
		if err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, nil
}

func fib(n uint8) uint64 {
	a, b := uint64(0), uint64(1)
	for range n {
		a, b = b, a+b
	}
	return a
}

func main() {}
