package obelisk_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
)

// An activity implementing `fibo: func(n: u8) -> result<u64>`, run with a
// TestHost as the Obelisk host would run it.
func Example() {
	// In a component, call Export from an init function.
	obelisk.Export("example:fibo/fibo.fibo", func(ctx obelisk.Context, n uint8) (uint64, error) {
		a, b := uint64(0), uint64(1)
		for range n {
			a, b = b, a+b
		}
		return a, nil
	})

	out := new(obelisk.TestHost).Run("example:fibo/fibo.fibo", 10)
	fmt.Printf("%s\n", out)
	// Output: {"ok":55}
}

// A workflow implementing `fiboa: func(n: u8, iterations: u32) ->
// result<u64>` calls an activity in a loop. The TestHost answers the calls in
// place of the activity.
func ExampleCall() {
	obelisk.Export("example:workflow/workflow.fiboa", func(ctx obelisk.Context, n uint8, iterations uint32) (uint64, error) {
		var sum uint64
		for range iterations {
			v, err := obelisk.Call[uint64](ctx, "example:fibo/fibo.fibo", n)
			if err != nil {
				return 0, err
			}
			sum += v
		}
		return sum, nil
	})

	host := &obelisk.TestHost{
		Call: func(ffqn string, params json.RawMessage) (json.RawMessage, error) {
			fmt.Println("call", ffqn, string(params))
			return json.RawMessage(`{"ok":55}`), nil
		},
	}
	fmt.Printf("%s\n", host.Run("example:workflow/workflow.fiboa", 10, 2))
	// Output:
	// call example:fibo/fibo.fibo [10]
	// call example:fibo/fibo.fibo [10]
	// {"ok":110}
}

// Call returns the err value of a child as an *ErrResult, and a child that
// failed without a result as an *ExecutionFailure.
func ExampleCall_errors() {
	obelisk.Export("example:errors/workflow.run", func(ctx obelisk.Context) (string, error) {
		_, err := obelisk.Call[string](ctx, "example:http/http-get.get", "https://example.com/")
		if errResult, ok := errors.AsType[*obelisk.ErrResult](err); ok {
			var msg string
			if err := errResult.Decode(&msg); err != nil {
				return "", err
			}
			return "child returned err: " + msg, nil
		}
		if failure, ok := errors.AsType[*obelisk.ExecutionFailure](err); ok {
			return "child failed: " + failure.Kind, nil
		}
		return "", err
	})

	for _, result := range []string{
		`{"err":"status 404"}`,
		`{"execution_failure":{"kind":"timed_out","reason":"lock expired"}}`,
	} {
		host := &obelisk.TestHost{
			Call: func(string, json.RawMessage) (json.RawMessage, error) {
				return json.RawMessage(result), nil
			},
		}
		fmt.Printf("%s\n", host.Run("example:errors/workflow.run"))
	}
	// Output:
	// {"ok":"child returned err: status 404"}
	// {"ok":"child failed: timed_out"}
}

// For `fail: func() -> result<_, error>` where error is a WIT variant, Err
// returns a variant case as the err value. A plain Go error gives its
// message, which fits a result<T, string>.
func ExampleErr() {
	obelisk.Export("example:flaky/flaky.fail", func(ctx obelisk.Context) error {
		return obelisk.Err(map[string]string{"permanent_failure": "bad input"})
	})
	obelisk.Export("example:flaky/flaky.fail-with-message", func(ctx obelisk.Context) (uint32, error) {
		return 0, fmt.Errorf("attempt %d", ctx.Attempt())
	})

	fmt.Printf("%s\n", new(obelisk.TestHost).Run("example:flaky/flaky.fail"))
	fmt.Printf("%s\n", new(obelisk.TestHost).Run("example:flaky/flaky.fail-with-message"))
	// Output:
	// {"err":{"permanent_failure":"bad input"}}
	// {"err":"attempt 1"}
}

// HostCall performs a host operation that the package does not wrap. Here a
// TestHost answers an operation named "example-now".
func ExampleContext_HostCall() {
	obelisk.Export("example:raw/raw.now", func(ctx obelisk.Context) (int64, error) {
		var resp struct {
			UnixMillis int64 `json:"unix_millis"`
		}
		// Sends {"op":"example-now","zone":"UTC"}.
		err := ctx.HostCall("example-now", map[string]string{"zone": "UTC"}, &resp)
		return resp.UnixMillis, err
	})

	host := &obelisk.TestHost{Ops: map[string]obelisk.OpHandler{
		"example-now": func(request json.RawMessage) (any, error) {
			fmt.Printf("request %s\n", request)
			return map[string]int64{"unix_millis": 1700000000000}, nil
		},
	}}
	fmt.Printf("%s\n", host.Run("example:raw/raw.now"))
	fmt.Printf("%s\n", new(obelisk.TestHost).Run("example:raw/raw.now"))
	// Output:
	// request {"op":"example-now","zone":"UTC"}
	// {"ok":1700000000000}
	// {"err":"obelisk: example-now: unsupported_op: op \"example-now\" is not supported: TestHost.Ops has no handler for it"}
}

// A workflow fans out: it submits `iterations` children into a join set,
// which run concurrently, then awaits them all in the order they finish.
// The TestHost runs the submitted children with its Call function.
func ExampleAwaitNext() {
	obelisk.Export("example:workflow/workflow.fiboa-concurrent", func(ctx obelisk.Context, n uint8, iterations uint32) (uint64, error) {
		js, err := obelisk.NewJoinSet(ctx)
		if err != nil {
			return 0, err
		}
		for range iterations {
			if _, err := obelisk.Submit(ctx, js, "example:fibo/fibo.fibo", n); err != nil {
				return 0, err
			}
		}
		var sum uint64
		for range iterations {
			_, v, err := obelisk.AwaitNext[uint64](ctx, js, "example:fibo/fibo.fibo")
			if err != nil {
				return 0, err
			}
			sum += v
		}
		return sum, nil
	})

	host := &obelisk.TestHost{
		ExecutionID: "E_01",
		Call: func(ffqn string, params json.RawMessage) (json.RawMessage, error) {
			fmt.Println("submitted", ffqn, string(params))
			return json.RawMessage(`{"ok":55}`), nil
		},
	}
	fmt.Printf("%s\n", host.Run("example:workflow/workflow.fiboa-concurrent", 10, 3))
	// Output:
	// submitted example:fibo/fibo.fibo [10]
	// submitted example:fibo/fibo.fibo [10]
	// submitted example:fibo/fibo.fibo [10]
	// {"ok":165}
}

// A timeout: a child races a delay in one join set; the first response
// decides, and closing the join set cancels the other one. Here the TestHost
// leaves the child without a result (Call returns nil, nil), so the delay
// wins.
func ExampleSubmitDelay() {
	obelisk.Export("example:workflow/workflow.race", func(ctx obelisk.Context, millis uint64) (string, error) {
		js, err := obelisk.NewJoinSet(ctx)
		if err != nil {
			return "", err
		}
		if _, err := obelisk.Submit(ctx, js, "example:sleep/sleep.sleep", millis); err != nil {
			return "", err
		}
		if _, err := obelisk.SubmitDelay(ctx, js, obelisk.In(time.Second)); err != nil {
			return "", err
		}
		first, err := obelisk.JoinNext(ctx, js)
		if err != nil {
			return "", err
		}
		if err := js.Close(ctx); err != nil {
			return "", err
		}
		return first.Kind + " " + first.ID, nil
	})

	host := &obelisk.TestHost{
		ExecutionID: "E_01",
		Call: func(ffqn string, params json.RawMessage) (json.RawMessage, error) {
			return nil, nil // still running
		},
	}
	fmt.Printf("%s\n", host.Run("example:workflow/workflow.race", 60000))
	// Output: {"ok":"delay Delay_01.g:1_2"}
}

// A workflow answers an activity stub it submitted itself: the child waits
// until its result is written. The TestHost leaves stubs without a result
// until then.
func ExampleStubOk() {
	obelisk.Export("example:workflow/workflow.ask", func(ctx obelisk.Context) (uint64, error) {
		js, err := obelisk.NewJoinSet(ctx)
		if err != nil {
			return 0, err
		}
		id, err := obelisk.Submit(ctx, js, "example:stub/stub.answer", "question")
		if err != nil {
			return 0, err
		}
		if err := obelisk.StubOk(ctx, id, 42); err != nil {
			return 0, err
		}
		_, v, err := obelisk.AwaitNext[uint64](ctx, js, "example:stub/stub.answer")
		return v, err
	})

	host := &obelisk.TestHost{
		Call: func(ffqn string, params json.RawMessage) (json.RawMessage, error) {
			return nil, nil // a stub has no result until it is written
		},
	}
	fmt.Printf("%s\n", host.Run("example:workflow/workflow.ask"))
	// Output: {"ok":42}
}
