package obelisk

import (
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
)

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
// must be deterministic: make them from one goroutine. Workflows and webhook
// endpoints (package obeliskwebhook, whose calls are recorded but never
// replayed) can call; activities cannot.
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
	raw, err := sendCall(ctx, abi.OpCall, "", ffqn, params)
	if err != nil {
		return nil, err
	}
	return decodeResult(abi.OpCall, raw, ffqn, "")
}

// sendCall performs op, call or submit (into joinSet), with ffqn and params,
// and returns its ok value.
func sendCall(ctx Context, op, joinSet, ffqn string, params []any) (json.RawMessage, error) {
	if params == nil {
		params = []any{}
	}
	if req, ok := callRequestJSON(op, joinSet, ffqn, params); ok {
		return send(ctx.host(), op, req)
	}
	return invoke(ctx.host(), op, callRequestOf(joinSet, ffqn, params))
}

// callRequestOf returns the request of the call op (joinSet empty) or of the submit
// op, without the op, for encodeRequest: an abi.CallRequest or an abi.SubmitRequest.
// A parameter that cannot be encoded is reported by encodeRequest.
func callRequestOf(joinSet, ffqn string, params []any) any {
	raw, err := marshal(params)
	if err != nil {
		return unencodable{err}
	}
	if joinSet == "" {
		return abi.CallRequest{FFQN: ffqn, Params: raw}
	}
	return abi.SubmitRequest{JoinSet: joinSet, FFQN: ffqn, Params: raw}
}

// unencodable is a request whose encoding fails with err.
type unencodable struct{ err error }

// MarshalJSON returns err.
func (u unencodable) MarshalJSON() ([]byte, error) { return nil, u.err }

// decodeResult returns the ok value of result, a child's result as the host
// answers it ({"ok": v}, {"err": v} or {"execution_failure": {...}}): the
// err side becomes an *ErrResult, an execution failure an
// *ExecutionFailure, both naming ffqn and executionID (either may be empty).
// A result of another shape means a broken host: it panics, naming op.
func decodeResult(op string, result json.RawMessage, ffqn, executionID string) (json.RawMessage, error) {
	if key, v, ok := singleMember(result); ok {
		switch string(key) {
		case "ok":
			return v, nil
		case "err":
			return nil, &ErrResult{FFQN: ffqn, ExecutionID: executionID, Value: v}
		case "execution_failure":
			f := &ExecutionFailure{FFQN: ffqn, ExecutionID: executionID}
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
	what := op
	if ffqn != "" {
		what += " " + ffqn
	} else if executionID != "" {
		what += " " + executionID
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(result, &fields); err != nil {
		panic(fmt.Sprintf("obelisk: %s: malformed result %q: %v", what, result, err))
	}
	if v, ok := fields["ok"]; ok {
		return v, nil
	}
	if v, ok := fields["err"]; ok {
		return nil, &ErrResult{FFQN: ffqn, ExecutionID: executionID, Value: v}
	}
	if v, ok := fields["execution_failure"]; ok {
		var f struct {
			Kind   string `json:"kind"`
			Reason string `json:"reason"`
		}
		if err := json.Unmarshal(v, &f); err != nil {
			panic(fmt.Sprintf("obelisk: %s: malformed execution failure %q: %v", what, v, err))
		}
		return nil, &ExecutionFailure{FFQN: ffqn, ExecutionID: executionID, Kind: f.Kind, Reason: f.Reason}
	}
	panic(fmt.Sprintf("obelisk: %s: result %q has neither ok, err nor execution_failure", what, result))
}

// callRequestJSON is the fast path of encoding the request of the call and
// submit ops, for params that are all nil or scalars: it returns what
// encodeRequest(op, callRequestOf(joinSet, ffqn, params)) would.
func callRequestJSON(op, joinSet, ffqn string, params []any) ([]byte, bool) {
	req := newRequest(op, 32+len(joinSet)+len(ffqn)+8*len(params))
	if joinSet != "" {
		req = appendStringMember(req, "join_set", joinSet)
	}
	req = appendStringMember(req, "ffqn", ffqn)
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
