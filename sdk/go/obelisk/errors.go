package obelisk

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
)

// ErrResult is the err side of a WIT result: a JSON value carried as an
// error.
//
// [Call] returns an *ErrResult when the child returned {"err": value}. [Err]
// makes one for an exported function to return. Either way, when an exported
// function returns an error that is, or wraps, an *ErrResult, its own result
// is {"err": Value}: a child's err passes through unchanged. To replace it by
// a message instead, return a new error, e.g. fmt.Errorf("...: %v", err).
type ErrResult struct {
	// FFQN is the function that returned the err, for an *ErrResult returned
	// by Call, AwaitNext or Response.Decode; it is empty for one made by Err,
	// and for one returned by Get.
	FFQN string
	// ExecutionID is the child execution that returned the err, when it is
	// known: for an *ErrResult returned by AwaitNext, Response.Decode or
	// Get, not by Call.
	ExecutionID string
	// Value is the JSON encoding of the err value, "null" for none.
	Value json.RawMessage
}

// Err returns an error whose err value, when an exported function returns it,
// is value encoded as JSON instead of the error's message. Use it for WIT
// result types whose err side is not a string, such as a variant:
//
//	return obelisk.Err(map[string]string{"permanent_failure": "bad input"})
//
// Err panics if value cannot be encoded as JSON.
func Err(value any) *ErrResult {
	b, err := marshal(value)
	if err != nil {
		panic(fmt.Sprintf("obelisk.Err: cannot encode %T as JSON: %v", value, err))
	}
	return &ErrResult{Value: b}
}

// Error returns the err value's JSON, prefixed by the function's FFQN and
// the execution ID when they are known, e.g.
// `testing:http/http-get.get returned err "status 404"`, or
// `testing:fibo/fibo.fibo (E_01J...g:1_1) returned err "boom"`.
func (e *ErrResult) Error() string {
	v := string(e.Value)
	if v == "" {
		v = "null"
	}
	if who := child(e.FFQN, e.ExecutionID); who != "" {
		return who + " returned err " + v
	}
	return "err " + v
}

// child names a child execution by its function and its ID, either of which
// may be empty.
func child(ffqn, executionID string) string {
	if ffqn != "" && executionID != "" {
		return ffqn + " (" + executionID + ")"
	}
	return ffqn + executionID
}

// Decode decodes the err value into v, which must be a pointer, as
// json.Unmarshal does. Numbers decoded into an interface value become
// json.Number so that large integers stay exact.
func (e *ErrResult) Decode(v any) error {
	if len(e.Value) == 0 {
		return decode([]byte("null"), v)
	}
	return decode(e.Value, v)
}

// ExecutionFailure is the error [Call] (and [AwaitNext], [Get],
// [Response.Decode]) returns when the child execution did not return a
// result: it trapped or panicked on its last attempt, timed out, was
// cancelled, passed its deadline, or was found to be nondeterministic.
type ExecutionFailure struct {
	// FFQN is the function that was called; empty when it is not known
	// (Get).
	FFQN string
	// ExecutionID is the child execution, when it is known: not for Call.
	ExecutionID string
	// Kind is one of "timed_out", "nondeterminism_detected", "cancelled",
	// "uncategorized" and "deadline_exceeded".
	Kind string
	// Reason describes the failure.
	Reason string
}

// Error returns the FFQN and the execution ID (those known), the kind and
// the reason of the failure.
func (e *ExecutionFailure) Error() string {
	return cmp.Or(child(e.FFQN, e.ExecutionID), "child execution") + " failed: " + e.Kind + ": " + e.Reason
}

// Kinds of [HostError]: those of package abi, where the table of every kind
// is ([abi.Kinds]).
const (
	// KindFunctionNotFound: Call named a function that no component exports.
	KindFunctionNotFound = abi.KindFunctionNotFound
	// KindTypeCheck: Call's parameters do not match the callee's WIT.
	KindTypeCheck = abi.KindTypeCheck
	// KindNotAllowed: an HTTP request to a host that is not in the
	// component's allowed hosts.
	KindNotAllowed = abi.KindNotAllowed
	// KindTransport: an HTTP request failed to connect, resolve, complete TLS
	// or finish in time.
	KindTransport = abi.KindTransport
	// KindBadRequest: a malformed request to the host.
	KindBadRequest = abi.KindBadRequest
	// KindUnsupportedOp: an operation the host does not offer to this kind
	// of component, e.g. an HTTP request from a workflow.
	KindUnsupportedOp = abi.KindUnsupportedOp

	// Kinds of the join set, delay and stub operations.

	// KindAllProcessed: JoinNext or JoinNextTry on a join set whose every
	// request has been taken.
	KindAllProcessed = abi.KindAllProcessed
	// KindPending: JoinNextTry found no response yet. JoinNextTry itself
	// reports it as (Response{}, false, nil); only HostCall returns it.
	KindPending = abi.KindPending
	// KindFunctionMismatch: the response AwaitNext took is not of the
	// function it expected (or is a delay). The response is taken all the
	// same.
	KindFunctionMismatch = abi.KindFunctionMismatch
	// KindNotFound: Get of an execution whose response the workflow has not
	// taken (or that is not its child).
	KindNotFound = abi.KindNotFound
	// KindConflict: NewJoinSetNamed with a name the workflow already used,
	// or a Stub with another value than the one the execution already has.
	KindConflict = abi.KindConflict
	// KindInvalidName: NewJoinSetNamed with a name that is not 1 to 64 ASCII
	// letters, digits, '-' and '/', or a Submit into a queue whose name is not
	// valid (see [JoinSet.InQueue]).
	KindInvalidName = abi.KindInvalidName
	// KindUnknownJoinSet: a join set this workflow did not create.
	KindUnknownJoinSet = abi.KindUnknownJoinSet
	// KindJoinSetClosed: Submit or SubmitDelay into a closed join set.
	KindJoinSetClosed = abi.KindJoinSetClosed
	// KindCancelled: a Sleep whose delay was cancelled.
	KindCancelled = abi.KindCancelled
	// KindExecutionNotFound: a Stub of an execution that does not exist or
	// is not of an activity stub.
	KindExecutionNotFound = abi.KindExecutionNotFound
)

// HostError is an error the host answered an operation with, e.g. a [Call] to
// a function that does not exist, or an HTTP request to a host that is not
// allowed. The HTTP client of package obeliskhttp returns it wrapped in a
// *url.Error; use errors.As to find it.
type HostError struct {
	// Op is the operation, e.g. "call", "http" or "log".
	Op string `json:"-"`
	// Kind categorizes the error, e.g. [KindFunctionNotFound].
	Kind string `json:"kind"`
	// Message describes the error.
	Message string `json:"message"`
}

// Error returns "obelisk: <op>: <kind>: <message>".
func (e *HostError) Error() string {
	return "obelisk: " + e.Op + ": " + e.Kind + ": " + e.Message
}

// marshal encodes v as JSON without escaping <, > and &.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// decode decodes data into v, keeping numbers decoded into interface values
// exact (json.Number), and rejecting trailing data.
func decode(data []byte, v any) error {
	if fastDecode(data, v) {
		return nil
	}
	return decodeJSON(data, v)
}

// decodeJSON is decode with encoding/json only.
func decodeJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("unexpected data after the JSON value")
	}
	return nil
}
