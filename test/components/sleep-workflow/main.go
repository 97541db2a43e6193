// Command sleep-workflow is a workflow that calls the testing:sleep activity,
// sleeps durably, and races an activity against a timeout.
//
// Build it as a WASI reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o sleep-workflow.wasm ./test/components/sleep-workflow
package main

import (
	"crypto/rand"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
)

func init() {
	obelisk.Export("testing:sleep-workflow/workflow.sleep-activity", sleepActivity)
	obelisk.Export("testing:sleep-workflow/workflow.sleep-durable", sleepDurable)
	obelisk.Export("testing:sleep-workflow/workflow.sleep-then-call", sleepThenCall)
	obelisk.Export("testing:sleep-workflow/workflow.race", race)
	obelisk.Export("testing:sleep-workflow/workflow.identity", identity)
}

// sleepActivity implements `sleep-activity: func(millis: u64) -> result`. The
// workflow waits, blocked in the call, until the activity has finished.
func sleepActivity(ctx obelisk.Context, millis uint64) error {
	return obelisk.CallVoid(ctx, "testing:sleep/sleep.sleep", millis)
}

// sleepDurable implements `sleep-durable: func(millis: u64) -> result`: a
// durable sleep, which survives a restart of the server.
func sleepDurable(ctx obelisk.Context, millis uint64) error {
	return obelisk.SleepFor(ctx, time.Duration(millis)*time.Millisecond)
}

// sleepThenCall implements `sleep-then-call: func(millis: u64, n: u8) ->
// result<u64>`: a durable sleep, then a call of the fibo activity. It logs
// what it does (stored once, however often the workflow is replayed).
func sleepThenCall(ctx obelisk.Context, millis uint64, n uint8) (uint64, error) {
	ctx.Log(obelisk.LevelInfo, fmt.Sprintf("sleeping %d ms", millis))
	if err := obelisk.SleepFor(ctx, time.Duration(millis)*time.Millisecond); err != nil {
		return 0, err
	}
	ctx.Log(obelisk.LevelInfo, fmt.Sprintf("slept; calling fibo(%d)", n))
	r, err := obelisk.Call[uint64](ctx, "testing:fibo/fibo.fibo", n)
	if err != nil {
		return 0, err
	}
	ctx.LogWithContext(obelisk.LevelWarn, "result", fmt.Sprintf("fibo(%d) returned %d", n, r))
	return r, nil
}

// race implements `race: func(activity-millis: u64, timeout-millis: u64) ->
// result<string>`: the sleep activity races a delay in one join set. The
// first response decides: "activity" or "timeout". Closing the join set
// cancels the other.
func race(ctx obelisk.Context, activityMillis, timeoutMillis uint64) (string, error) {
	js, err := obelisk.NewJoinSet(ctx)
	if err != nil {
		return "", err
	}
	if _, err := obelisk.Submit(ctx, js, "testing:sleep/sleep.sleep", activityMillis); err != nil {
		return "", err
	}
	if _, err := obelisk.SubmitDelay(ctx, js, obelisk.In(time.Duration(timeoutMillis)*time.Millisecond)); err != nil {
		return "", err
	}
	first, err := obelisk.JoinNext(ctx, js)
	if err != nil {
		return "", err
	}
	var winner string
	switch first.Kind {
	case obelisk.ResponseExecution:
		winner = "activity"
	case obelisk.ResponseDelay:
		winner = "timeout"
	default:
		return "", fmt.Errorf("unexpected response %+v", first)
	}
	if err := js.Close(ctx); err != nil {
		return "", err
	}
	return winner, nil
}

// identity implements `identity: func(millis: u64) -> result<string>`: it names a
// join set after its own execution ID and 4 bytes of WASI randomness, sleeps durably
// (unless millis is 0), and returns "<execution ID> <random hex>". A replay under another ID or random seed
// diverges at the join set's name (a fork's must not: it runs as its original).
func identity(ctx obelisk.Context, millis uint64) (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	h := fnv.New32a()
	h.Write([]byte(ctx.ExecutionID()))
	if _, err := obelisk.NewJoinSetNamed(ctx, fmt.Sprintf("id-%08x-%x", h.Sum32(), b)); err != nil {
		return "", err
	}
	if millis > 0 {
		if err := obelisk.SleepFor(ctx, time.Duration(millis)*time.Millisecond); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("%s %x", ctx.ExecutionID(), b), nil
}

func main() {}
