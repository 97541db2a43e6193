package obelisk

import (
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
)

// CallWithID is [Call] from a trigger (package obelisktrigger), for a top-level
// execution with the ID executionID ("" for a fresh one): when an execution with that
// ID exists already with the same function and parameters, it waits for that one
// and returns its result instead of creating another. An ID derived from what the
// trigger acts on (obelisktrigger.DerivedID) makes a restarted trigger find what it submitted
// before it stopped. Another function or other parameters under the ID are a
// [*HostError] of kind [KindConflict].
func CallWithID[T any](ctx Context, executionID, ffqn string, params ...any) (T, error) {
	var v T
	if params == nil {
		params = []any{}
	}
	raw, err := marshal(params)
	if err != nil {
		return v, fmt.Errorf("obelisk: %s: encoding the request: %w", abi.OpCall, err)
	}
	var result json.RawMessage
	if err := ctx.HostCall(abi.OpCall, abi.CallRequest{FFQN: ffqn, Params: raw, ExecutionID: executionID}, &result); err != nil {
		return v, err
	}
	ok, err := decodeResult(abi.OpCall, result, ffqn, executionID)
	if err != nil {
		return v, err
	}
	if err := decode(ok, &v); err != nil {
		var zero T
		return zero, fmt.Errorf("obelisk: decoding the result of %s as %v: %w", ffqn, reflect.TypeFor[T](), err)
	}
	return v, nil
}

// ScheduleWithID is [Schedule] from a webhook endpoint or a trigger, for a new
// execution with the ID executionID ("" for a fresh one). From a trigger, an ID that
// exists already with the same function and parameters is not an error: nothing new
// is created and the ID is returned; from a webhook endpoint it is a conflict.
func ScheduleWithID(ctx Context, executionID string, at ScheduleAt, ffqn string, params ...any) (string, error) {
	if params == nil {
		params = []any{}
	}
	raw, err := marshal(params)
	if err != nil {
		return "", fmt.Errorf("obelisk: %s: encoding the request: %w", abi.OpSchedule, err)
	}
	var id string
	err = ctx.HostCall(abi.OpSchedule, abi.ScheduleRequest{FFQN: ffqn, Params: raw, ScheduleAt: at.json(), ExecutionID: executionID}, &id)
	return id, err
}
