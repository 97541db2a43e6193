// Command fibo-workflow is a workflow computing Fibonacci numbers, either
// itself or by calling the testing:fibo activity.
//
// Build it as a WASI reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o fibo-workflow.wasm ./test/components/fibo-workflow
package main

import (
	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
	"github.com/obelisk-go/obelisk/test/components/fibo-workflow/internal/fibo"
)

func init() {
	obelisk.Export("testing:fibo-workflow/workflow.fibow", fibow)
	obelisk.Export("testing:fibo-workflow/workflow.fiboa", fiboa)
	obelisk.Export("testing:fibo-workflow/workflow.fiboa-concurrent", fiboaConcurrent)
}

// fibow implements `fibow: func(n: u8, iterations: u32) -> result<u64>`:
// it computes fib(n) `iterations` times in the workflow itself and returns it.
func fibow(ctx obelisk.Context, n uint8, iterations uint32) (uint64, error) {
	var v uint64
	for range iterations {
		v = fib(n)
	}
	return v, nil
}

// fiboa implements `fiboa: func(n: u8, iterations: u32) -> result<u64>`: it
// calls the fibo activity `iterations` times in sequence and returns the sum.
// Every call is a child execution recorded in the workflow's history, so a
// replay after a crash returns the recorded results instead of calling again.
func fiboa(ctx obelisk.Context, n uint8, iterations uint32) (uint64, error) {
	var sum uint64
	for range iterations {
		v, err := obelisk.Call[uint64](ctx, "testing:fibo/fibo.fibo", n)
		if err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, nil
}

// fiboaConcurrent implements `fiboa-concurrent: func(n: u8, iterations: u32)
// -> result<u64>`: it submits `iterations` calls of the fibo activity into one
// join set, so that they run concurrently, then awaits them all, in the
// order they finish, and returns the sum. It uses the bindings generated from
// the fibo activity's WIT (internal/fibo, `make bindings`).
func fiboaConcurrent(ctx obelisk.Context, n uint8, iterations uint32) (uint64, error) {
	js, err := obelisk.NewJoinSet(ctx)
	if err != nil {
		return 0, err
	}
	for range iterations {
		if _, err := fibo.FiboSubmit(ctx, js, n); err != nil {
			return 0, err
		}
	}
	var sum uint64
	for range iterations {
		_, v, err := fibo.FiboAwaitNext(ctx, js)
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
