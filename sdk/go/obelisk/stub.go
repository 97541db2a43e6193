package obelisk

import (
	"fmt"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
)

// StubOk writes {"ok": value} as the result of executionID, an execution of
// an activity stub (a component deployed as `activity_stub`, whose
// executions wait until something writes their result): typically a child the
// workflow submitted into a join set, answered by the workflow itself or by
// a person through the API. A nil value is the ok of a result without an
// ok value.
//
// The result is type-checked against the function's WIT ([KindTypeCheck]).
// Writing the value the execution already has is fine; another value fails
// with a [*HostError] of kind [KindConflict]; an execution that does not
// exist gives kind [KindExecutionNotFound]. The outcome is recorded in the
// history.
func StubOk(ctx Context, executionID string, value any) error {
	return stub(ctx, executionID, `{"ok":`, value)
}

// StubErr writes {"err": value} as the result of executionID, as [StubOk]
// does.
func StubErr(ctx Context, executionID string, value any) error {
	return stub(ctx, executionID, `{"err":`, value)
}

func stub(ctx Context, executionID, side string, value any) error {
	req := appendStringMember(newRequest(abi.OpStub, 48+len(executionID)), "execution_id", executionID)
	req = append(append(req, `,"result":`...), side...)
	if r, ok := appendValue(req, value); ok {
		req = r
	} else {
		b, err := marshal(value)
		if err != nil {
			return fmt.Errorf("obelisk: stub: encoding the result: %w", err)
		}
		req = append(req, b...)
	}
	return sendDecode(ctx, abi.OpStub, append(req, "}}"...), nil)
}
