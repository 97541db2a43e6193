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
	var raw json.RawMessage
	var err error
	if req, ok := callRequestJSON(ffqn, params); ok {
		raw, err = send(ctx.host(), "call", req)
	} else {
		raw, err = invoke(ctx.host(), "call", callRequest{FFQN: ffqn, Params: params})
	}
	if err != nil {
		return nil, err
	}
	if key, v, ok := singleMember(raw); ok {
		switch string(key) {
		case "ok":
			return v, nil
		case "err":
			return nil, &ErrResult{FFQN: ffqn, Value: v}
		case "execution_failure":
			f := &ExecutionFailure{FFQN: ffqn}
			if stringMembers(v, func(key []byte, value string) bool {
				switch string(key) {
				case "kind":
					f.Kind = value
				case "reason":
					f.Reason = value
				default:
					return false
				}
				return true
			}) {
				return nil, f
			}
		}
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

// callRequestJSON is the fast path of encoding the request of the call op,
// for params that are all nil or scalars: it returns what
// encodeRequest("call", callRequest{ffqn, params}) would.
func callRequestJSON(ffqn string, params []any) ([]byte, bool) {
	req := make([]byte, 0, 64+len(ffqn)+8*len(params))
	req = append(req, `{"op":"call","ffqn":`...)
	req = appendString(req, ffqn)
	req = append(req, `,"params":[`...)
	for i, p := range params {
		if i > 0 {
			req = append(req, ',')
		}
		var ok bool
		if req, ok = appendValue(req, p); !ok {
			return nil, false
		}
	}
	return append(req, "]}"...), true
}
