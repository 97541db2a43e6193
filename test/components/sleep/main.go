// Command sleep is an activity that sleeps, for testing timeouts and
// concurrency.
//
// Build it as a WASI reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o sleep.wasm ./test/components/sleep
package main

import (
	"fmt"
	"time"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
)

func init() {
	obelisk.Export("testing:sleep/sleep.sleep", sleep)
}

// sleep implements `sleep: func(millis: u64) -> result`. Activities get the
// real clock, so this really sleeps. (In a workflow, time.Sleep returns at
// once: the workflow clock is deterministic.) It logs that it starts to sleep.
func sleep(ctx obelisk.Context, millis uint64) error {
	ctx.Log(obelisk.LevelInfo, fmt.Sprintf("attempt %d: sleeping %d ms", ctx.Attempt(), millis))
	time.Sleep(time.Duration(millis) * time.Millisecond)
	return nil
}

func main() {}
