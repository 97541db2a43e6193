// Command sleep-workflow is a workflow that calls the testing:sleep activity.
//
// Build it as a WASI reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o sleep-workflow.wasm ./test/components/sleep-workflow
package main

import "github.com/obelisk-go/obelisk/sdk/go/obelisk"

func init() {
	obelisk.Export("testing:sleep-workflow/workflow.sleep-activity", sleepActivity)
}

// sleepActivity implements `sleep-activity: func(millis: u64) -> result`. The
// workflow waits, blocked in the call, until the activity has finished.
func sleepActivity(ctx obelisk.Context, millis uint64) error {
	return obelisk.CallVoid(ctx, "testing:sleep/sleep.sleep", millis)
}

func main() {}
