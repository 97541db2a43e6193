// Command joinset-workflow is a test-only workflow exercising join sets,
// delays and stubs: each export checks one behaviour of the host and
// reports what it saw.
package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
)

const (
	fibo   = "testing:fibo/fibo.fibo"
	sleep  = "testing:sleep/sleep.sleep"
	answer = "testing:stub/stub.answer"
)

func init() {
	obelisk.Export("testing:joinset-workflow/workflow.named-conflict", namedConflict)
	obelisk.Export("testing:joinset-workflow/workflow.try-then-next", tryThenNext)
	obelisk.Export("testing:joinset-workflow/workflow.delay-and-child", delayAndChild)
	obelisk.Export("testing:joinset-workflow/workflow.close-cancels", closeCancels)
	obelisk.Export("testing:joinset-workflow/workflow.await-stub", awaitStub)
	obelisk.Export("testing:joinset-workflow/workflow.stub-self", stubSelf)
	obelisk.Export("testing:joinset-workflow/workflow.mismatch", mismatch)
	obelisk.Export("testing:joinset-workflow/workflow.schedule-stub", scheduleStub)
}

// hostErrorKind returns the kind of err, which must be a *HostError.
func hostErrorKind(what string, err error) (string, error) {
	if err == nil {
		return "", fmt.Errorf("%s: no error", what)
	}
	herr, ok := errors.AsType[*obelisk.HostError](err)
	if !ok {
		return "", fmt.Errorf("%s: %T %v, want a host error", what, err, err)
	}
	return herr.Kind, nil
}

// namedConflict creates the named join set `name` twice and returns the kind
// of the second attempt's host error.
func namedConflict(ctx obelisk.Context, name string) (string, error) {
	if _, err := obelisk.NewJoinSetNamed(ctx, name); err != nil {
		return "", err
	}
	_, err := obelisk.NewJoinSetNamed(ctx, name)
	return hostErrorKind("second join_set_create", err)
}

// tryThenNext submits fibo(n), takes its response without waiting if it is
// there ("found"), else waits for it ("pending"), and gets its result.
func tryThenNext(ctx obelisk.Context, n uint8) (string, error) {
	js, err := obelisk.NewJoinSet(ctx)
	if err != nil {
		return "", err
	}
	id, err := obelisk.Submit(ctx, js, fibo, n)
	if err != nil {
		return "", err
	}
	state := "found"
	r, ok, err := obelisk.JoinNextTry(ctx, js)
	if err != nil {
		return "", err
	}
	if !ok {
		state = "pending"
		if r, err = obelisk.JoinNext(ctx, js); err != nil {
			return "", err
		}
	}
	if r.ID != id {
		return "", fmt.Errorf("response of %s, want %s", r.ID, id)
	}
	v, err := obelisk.Get[uint64](ctx, id)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s:%d", state, v), nil
}

// delayAndChild submits a delay and fibo(n) into one join set and returns
// the kinds of their responses in arrival order.
func delayAndChild(ctx obelisk.Context, delayMillis uint64, n uint8) (string, error) {
	js, err := obelisk.NewJoinSet(ctx)
	if err != nil {
		return "", err
	}
	if _, err := obelisk.SubmitDelay(ctx, js, obelisk.In(time.Duration(delayMillis)*time.Millisecond)); err != nil {
		return "", err
	}
	if _, err := obelisk.Submit(ctx, js, fibo, n); err != nil {
		return "", err
	}
	var kinds []string
	for range 2 {
		r, err := obelisk.JoinNext(ctx, js)
		if err != nil {
			return "", err
		}
		kinds = append(kinds, r.Kind)
	}
	return strings.Join(kinds, ","), nil
}

// closeCancels submits a sleep and a delay, closes the join set, and returns
// the kind of the sleep's execution failure.
func closeCancels(ctx obelisk.Context, activityMillis uint64) (string, error) {
	js, err := obelisk.NewJoinSet(ctx)
	if err != nil {
		return "", err
	}
	id, err := obelisk.Submit(ctx, js, sleep, activityMillis)
	if err != nil {
		return "", err
	}
	if _, err := obelisk.SubmitDelay(ctx, js, obelisk.In(time.Duration(activityMillis)*time.Millisecond)); err != nil {
		return "", err
	}
	if err := js.Close(ctx); err != nil {
		return "", fmt.Errorf("close: %w", err)
	}
	_, err = obelisk.Get[struct{}](ctx, id)
	if err == nil {
		return "", fmt.Errorf("%s was not cancelled: it returned ok", id)
	}
	failure, ok := errors.AsType[*obelisk.ExecutionFailure](err)
	if !ok {
		return "", fmt.Errorf("get %s: %T %v, want an execution failure", id, err, err)
	}
	return failure.Kind, nil
}

// awaitStub submits a question to the stub and awaits its answer; the
// stub's err passes through unchanged.
func awaitStub(ctx obelisk.Context, question string) (uint64, error) {
	js, err := obelisk.NewJoinSet(ctx)
	if err != nil {
		return 0, err
	}
	if _, err := obelisk.Submit(ctx, js, answer, question); err != nil {
		return 0, err
	}
	_, v, err := obelisk.AwaitNext[uint64](ctx, js, answer)
	return v, err
}

// stubSelf submits a question to the stub and answers it itself: value,
// value again (fine), then value+1 (a conflict), and awaits the answer.
func stubSelf(ctx obelisk.Context, value uint64) (string, error) {
	js, err := obelisk.NewJoinSet(ctx)
	if err != nil {
		return "", err
	}
	id, err := obelisk.Submit(ctx, js, answer, "q")
	if err != nil {
		return "", err
	}
	if err := obelisk.StubOk(ctx, id, value); err != nil {
		return "", fmt.Errorf("first stub: %w", err)
	}
	if err := obelisk.StubOk(ctx, id, value); err != nil {
		return "", fmt.Errorf("second stub, same value: %w", err)
	}
	kind, err := hostErrorKind("third stub, another value", obelisk.StubOk(ctx, id, value+1))
	if err != nil {
		return "", err
	}
	_, v, err := obelisk.AwaitNext[uint64](ctx, js, answer)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("ok,ok,%s:%d", kind, v), nil
}

// mismatch submits a sleep and awaits it as fibo: the host answers
// function_mismatch.
func mismatch(ctx obelisk.Context) (string, error) {
	js, err := obelisk.NewJoinSet(ctx)
	if err != nil {
		return "", err
	}
	if _, err := obelisk.Submit(ctx, js, sleep, uint64(1)); err != nil {
		return "", err
	}
	_, _, err = obelisk.AwaitNext[uint64](ctx, js, fibo)
	return hostErrorKind("join_next of fibo", err)
}

// scheduleStub schedules the stub's function as a top-level execution: the host refuses
// (an activity stub's executions are only a workflow's children).
func scheduleStub(ctx obelisk.Context) (string, error) {
	_, err := obelisk.Schedule(ctx, obelisk.Now(), answer, "q")
	return hostErrorKind("schedule of a stub", err)
}

func main() {}
