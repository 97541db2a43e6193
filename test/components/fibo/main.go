// Command fibo is an activity computing Fibonacci numbers: the smallest
// useful Obelisk component.
//
// Build it as a WASI reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o fibo.wasm ./test/components/fibo
package main

import (
	"fmt"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/obeliskslog"
)

// A reactor module never runs main: exported functions are registered in init.
func init() {
	obelisk.Export("testing:fibo/fibo.fibo", fibo)
}

// fibo implements `fibo: func(n: u8) -> result<u64>`: it computes the n-th
// Fibonacci number iteratively, with fibo(0) = 0 and fibo(1) = 1. It logs
// "fibo(N) = R" at info level, to the execution's log.
func fibo(ctx obelisk.Context, n uint8) (uint64, error) {
	r := fib(n)
	obeliskslog.Logger(ctx).Info(fmt.Sprintf("fibo(%d) = %d", n, r))
	return r, nil
}

func fib(n uint8) uint64 {
	a, b := uint64(0), uint64(1)
	for range n {
		a, b = b, a+b
	}
	return a
}

func main() {}
