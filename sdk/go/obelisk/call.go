package obelisk

import (
	"encoding/json"
	"fmt"
	"reflect"
)

// callRequest is the request of the call op, without the op.
type callRequest struct {
	FFQN   string `json:"ffqn"`
	Params []any  `json:"params"`
}

// Call runs the function ffqn, an activity or a workflow, as a child
// execution of the calling workflow, waits until it has finished, and returns
// its result. params are its WIT parameters, encoded as JSON; the ok value is
// decoded into a T (numbers decoded into an interface value become
// json.Number, so that u64 values stay exact).
//
// The error is:
//   - an [*ErrResult] when the child returned an err value;
//   - an [*ExecutionFailure] when the child failed without a result (a trap
//     on its last attempt, a timeout, a cancellation);
//   - a [*HostError] of kind [KindFunctionNotFound] or [KindTypeCheck] when
//     the host refused the call;
//   - another error when a parameter cannot be encoded or the ok value
//     cannot be decoded into a T.
//
// Calls are recorded in the workflow's history: on replay Call returns the
// recorded answer without running the child again, so the sequence of calls
// must be deterministic: make them from one goroutine. Only workflows can
// call.
func Call[T any](ctx Context, ffqn string, params ...any) (T, error) {
	var v T
	raw, err := call(ctx, ffqn, params)
	if err != nil {
		return v, err
	}
	if err := decode(raw, &v); err != nil {
		var zero T
		return zero, fmt.Errorf("obelisk: decoding the result of %s as %v: %w", ffqn, reflect.TypeFor[T](), err)
	}
	return v, nil
}

// CallVoid is [Call] for a function whose result has no ok value, such as
// `func(millis: u64) -> result`. It returns nil if the child returned ok.
func CallVoid(ctx Context, ffqn string, params ...any) error {
	_, err := call(ctx, ffqn, params)
	return err
}

// call performs the call op and returns the ok value of the child's result,
// or the error Call documents.
func call(ctx Context, ffqn string, params []any) (json.RawMessage, error) {
	if params == nil {
		params = []any{}
	}
	raw, err := invoke(ctx.host(), "call", callRequest{FFQN: ffqn, Params: params})
	if err != nil {
		return nil, err
	}
	var result map[string]json.RawMessage
	if err := json.Unmarshal(raw, &result); err != nil {
		panic(fmt.Sprintf("obelisk: call %s: malformed result %q: %v", ffqn, raw, err))
	}
	if v, ok := result["ok"]; ok {
		return v, nil
	}
	if v, ok := result["err"]; ok {
		return nil, &ErrResult{FFQN: ffqn, Value: v}
	}
	if v, ok := result["execution_failure"]; ok {
		var f struct {
			Kind   string `json:"kind"`
			Reason string `json:"reason"`
		}
		if err := json.Unmarshal(v, &f); err != nil {
			panic(fmt.Sprintf("obelisk: call %s: malformed execution failure %q: %v", ffqn, v, err))
		}
		return nil, &ExecutionFailure{FFQN: ffqn, Kind: f.Kind, Reason: f.Reason}
	}
	panic(fmt.Sprintf("obelisk: call %s: result %q has neither ok, err nor execution_failure", ffqn, raw))
}
