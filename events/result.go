package events

import (
	"encoding/json"
	"fmt"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
)

// FailureKind names why an execution finished without a return value.
type FailureKind string

// The execution failure kinds (contract: they appear in results, and guests read them:
// package abi is their home).
const (
	FailureTimedOut               FailureKind = abi.FailureTimedOut
	FailureNondeterminismDetected FailureKind = abi.FailureNondeterminismDetected
	FailureCancelled              FailureKind = abi.FailureCancelled
	FailureUncategorized          FailureKind = abi.FailureUncategorized
	FailureDeadlineExceeded       FailureKind = abi.FailureDeadlineExceeded
)

// ExecutionFailure is the payload of an {"execution_failure": ...} result.
type ExecutionFailure struct {
	Kind   FailureKind `json:"kind"`
	Reason string      `json:"reason,omitempty"`
	Detail string      `json:"detail,omitempty"`
}

// Result is the decoded form of a finished execution's result: exactly one of the
// fields is set (Ok and Err hold raw JSON, "null" for no payload).
type Result struct {
	Ok               json.RawMessage   `json:"ok,omitempty"`
	Err              json.RawMessage   `json:"err,omitempty"`
	ExecutionFailure *ExecutionFailure `json:"execution_failure,omitempty"`
}

// FailureResult encodes an execution failure result.
func FailureResult(kind FailureKind, reason string) []byte {
	b, _ := json.Marshal(map[string]ExecutionFailure{"execution_failure": {Kind: kind, Reason: reason}})
	return b
}

// ParseResult decodes and checks a result JSON document: one key, ok|err|execution_failure.
func ParseResult(b []byte) (ResultKindAndValue, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return ResultKindAndValue{}, fmt.Errorf("result %s: %w", truncate(b), err)
	}
	if len(m) != 1 {
		return ResultKindAndValue{}, fmt.Errorf("result %s: want exactly one of ok, err, execution_failure", truncate(b))
	}
	for k, v := range m {
		switch k {
		case "ok":
			return ResultKindAndValue{Kind: pb.ResultKind_RESULT_KIND_OK, Value: orNull(v)}, nil
		case "err":
			return ResultKindAndValue{Kind: pb.ResultKind_RESULT_KIND_ERR, Value: orNull(v)}, nil
		case "execution_failure":
			var f ExecutionFailure
			if err := json.Unmarshal(v, &f); err != nil {
				return ResultKindAndValue{}, fmt.Errorf("result %s: %w", truncate(b), err)
			}
			return ResultKindAndValue{Kind: pb.ResultKind_RESULT_KIND_EXECUTION_FAILURE, Value: v, Failure: &f}, nil
		}
	}
	return ResultKindAndValue{}, fmt.Errorf("result %s: unknown key, want ok, err or execution_failure", truncate(b))
}

// ResultKindAndValue is a parsed result: its kind and the JSON payload of that kind.
type ResultKindAndValue struct {
	Kind    pb.ResultKind
	Value   json.RawMessage
	Failure *ExecutionFailure
}

func orNull(v json.RawMessage) json.RawMessage {
	if len(v) == 0 {
		return json.RawMessage("null")
	}
	return v
}

func truncate(b []byte) string {
	const max = 200
	if len(b) > max {
		return string(b[:max]) + "..."
	}
	return string(b)
}
