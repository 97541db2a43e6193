// Command flaky is an activity that fails on purpose, for testing retries.
//
// Build it as a WASI reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o flaky.wasm ./test/components/flaky
package main

import (
	"fmt"
	"os"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
)

func init() {
	obelisk.Export("testing:flaky/flaky.fail-until", failUntil)
	obelisk.Export("testing:flaky/flaky.fail-permanently", failPermanently)
}

// flakyError is the WIT variant `error { permanent-failure(string),
// transient(string) }`. Exactly one field is set; it encodes as
// {"permanent_failure": "..."} or {"transient": "..."}.
type flakyError struct {
	PermanentFailure *string `json:"permanent_failure,omitempty"`
	Transient        *string `json:"transient,omitempty"`
}

// failUntil implements `fail-until: func(attempts: u32) -> result<u32,
// string>`: it returns err("attempt N") while the attempt number N is below
// attempts, then ok(N). An err is retried with a fresh instance and N+1. It
// writes each attempt to standard output and each failure to standard error
// (stored as log lines with stdout = "log", stderr = "log").
func failUntil(ctx obelisk.Context, attempts uint32) (uint32, error) {
	n := uint32(ctx.Attempt())
	fmt.Printf("attempt %d of %d\n", n, attempts)
	if n < attempts {
		fmt.Fprintf(os.Stderr, "attempt %d fails\n", n)
		return 0, fmt.Errorf("attempt %d", n)
	}
	return n, nil
}

// failPermanently implements `fail-permanently: func() -> result<_, error>`.
// Its err is a variant case whose name contains "permanent", which the host
// never retries.
func failPermanently(ctx obelisk.Context) error {
	return obelisk.Err(flakyError{PermanentFailure: new("this function always fails")})
}

func main() {}
