package obelisk

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
)

// TestHost runs exported functions in an ordinary Go program or test,
// outside an Obelisk host, answering their host operations with Go values
// and functions. A nil field makes the corresponding operation fail.
//
// Unlike a real host, TestHost does not type-check values against the WIT,
// does not persist calls, calls Call synchronously, and offers every
// operation to every function, whether an activity or a workflow.
//
// Join sets, delays, [Sleep] and [StubOk] are simulated, on each Run anew,
// unless Ops has a handler for their operation:
//   - A child submitted into a join set is run at once with Call, and its
//     response arrives then: responses of children arrive in the order they
//     were submitted. When Call returns a nil result and a nil error, the
//     child has no result yet (an activity stub, or a child still running):
//     its response arrives when the workflow writes its result with StubOk
//     or StubErr. Only such a child can be stubbed, as only executions of
//     an activity stub can in a real host.
//   - Time only passes when the workflow waits: a Sleep returns at once and
//     moves the clock (which starts at the real time when Run starts) to its
//     due time, and a JoinNext with no response to take expires the join
//     set's next delay. A delay whose time has come arrives before what the
//     workflow submits next.
//   - JoinNext with no response to take, no delay and children without a
//     result would wait forever: it panics.
//   - Closing a join set cancels every child without a result (child
//     workflows too, unlike a real host) and every delay not taken.
//
// test/conformance runs the same join set scripts in a TestHost and in the
// real engine, so that this simulation and the host agree.
type TestHost struct {
	// ExecutionID is the execution ID the function sees; "E_TEST" if empty.
	ExecutionID string
	// Attempt is the attempt number the function sees; 1 if zero.
	Attempt int
	// Call answers the child calls of a workflow. params is the JSON array of
	// parameters; it returns the child's result: {"ok": v}, {"err": v} or
	// {"execution_failure": {"kind": k, "reason": r}}. A *HostError is
	// answered as that host error, any other error as a function_not_found
	// host error. It also runs the children submitted into join sets, which
	// it may leave without a result by returning nil, nil (see above).
	Call func(ffqn string, params json.RawMessage) (result json.RawMessage, err error)
	// Log receives log messages.
	Log func(level Level, message string)
	// Ops answers the operations other than log and call, by name; an
	// operation without a handler is answered with an unsupported_op host
	// error, except those TestHost simulates (join sets, sleep and stub).
	// For the http op, use obeliskhttp.TestHandler:
	//
	//	host := &obelisk.TestHost{Ops: map[string]obelisk.OpHandler{
	//		"http": obeliskhttp.TestHandler(http.DefaultTransport),
	//	}}
	Ops map[string]OpHandler
}

// OpHandler answers one host operation for a [TestHost]. request is the
// operation's JSON request, including its "op" member. The handler returns
// the ok value, which is encoded as JSON, or an error: a [*HostError] (its Op
// is ignored) is answered as that host error, any other error as a host
// error of kind bad_request.
type OpHandler func(request json.RawMessage) (ok any, err error)

// Run runs the exported function ffqn with params, each encoded as JSON, as
// the host would, and returns its output: {"ok": value} or {"err": value}.
// It panics where the module would trap: if ffqn is not exported, if the
// params do not decode, or if the function panics.
func (h *TestHost) Run(ffqn string, params ...any) []byte {
	if params == nil {
		params = []any{}
	}
	raw, err := marshal(params)
	if err != nil {
		panic(fmt.Sprintf("obelisk: TestHost.Run(%q): encoding params: %v", ffqn, err))
	}
	in := abi.RunInput{FFQN: ffqn, Params: raw, ExecutionID: cmp.Or(h.ExecutionID, "E_TEST"), Attempt: cmp.Or(h.Attempt, 1)}
	input, err := marshal(in)
	if err != nil {
		panic(fmt.Sprintf("obelisk: TestHost.Run(%q): encoding the input: %v", ffqn, err))
	}
	r := &testRun{h: h, executionID: in.ExecutionID, clock: time.Now()}
	return run(input, r.hostCall, nil, nil)
}

// hostCall answers one host operation of the run like the real host does.
func (r *testRun) hostCall(req []byte) ([]byte, error) {
	h := r.h
	var head abi.Head
	if err := json.Unmarshal(req, &head); err != nil {
		return errorResponse(KindBadRequest, err.Error())
	}
	var ok any
	var herr *HostError
	switch {
	case head.Op == abi.OpLog:
		ok, herr = h.log(req)
	case head.Op == abi.OpCall:
		ok, herr = h.call(req)
	case h.Ops[head.Op] == nil && testRunOps[head.Op] != nil:
		ok, herr = r.op(head.Op, req)
	default:
		ok, herr = h.op(head.Op, req)
	}
	if herr != nil {
		return errorResponse(herr.Kind, herr.Message)
	}
	return marshal(map[string]any{abi.MemberOk: ok})
}

func errorResponse(kind, message string) ([]byte, error) {
	return marshal(abi.ErrorAnswer{Error: abi.Error{Kind: kind, Message: message}})
}

func (h *TestHost) log(req []byte) (any, *HostError) {
	var r abi.LogRequest
	if err := json.Unmarshal(req, &r); err != nil {
		return nil, &HostError{Kind: KindBadRequest, Message: err.Error()}
	}
	if h.Log != nil {
		h.Log(Level(r.Level), r.Message)
	}
	return nil, nil
}

func (h *TestHost) call(req []byte) (any, *HostError) {
	var r abi.CallRequest
	if err := json.Unmarshal(req, &r); err != nil {
		return nil, &HostError{Kind: KindBadRequest, Message: err.Error()}
	}
	result, herr := h.runChild(r.FFQN, r.Params)
	if herr == nil && result == nil {
		panic(fmt.Sprintf("obelisk: TestHost.Call(%q) returned no result: the call would wait forever", r.FFQN))
	}
	return result, herr
}

// runChild runs a child with Call: it returns its result, nil if it has none
// yet, or the host error.
func (h *TestHost) runChild(ffqn string, params json.RawMessage) (json.RawMessage, *HostError) {
	if h.Call == nil {
		return nil, &HostError{Kind: KindFunctionNotFound, Message: "TestHost.Call is nil: " + ffqn}
	}
	result, err := h.Call(ffqn, params)
	if err != nil {
		if herr, ok := errors.AsType[*HostError](err); ok {
			return nil, herr
		}
		return nil, &HostError{Kind: KindFunctionNotFound, Message: err.Error()}
	}
	if result == nil {
		return nil, nil
	}
	if !json.Valid(result) {
		panic(fmt.Sprintf("obelisk: TestHost.Call(%q) returned invalid JSON %q", ffqn, result))
	}
	return result, nil
}

// op answers an operation with its handler in Ops.
func (h *TestHost) op(op string, req []byte) (any, *HostError) {
	handler := h.Ops[op]
	if handler == nil {
		return nil, &HostError{Kind: KindUnsupportedOp, Message: fmt.Sprintf("op %q is not supported: TestHost.Ops has no handler for it", op)}
	}
	ok, err := handler(req)
	if err != nil {
		if herr, isHostErr := errors.AsType[*HostError](err); isHostErr {
			return nil, herr
		}
		return nil, &HostError{Kind: KindBadRequest, Message: err.Error()}
	}
	return ok, nil
}
