package abi

// The kinds of host errors: the "kind" of an {"error": {...}} answer. Kinds
// returns them as a table, with what each means and which operations answer
// it.
const (
	// KindBadRequest: a malformed request (not JSON, a member missing or of
	// the wrong type, invalid bounds, an invalid schedule_at).
	KindBadRequest = "bad_request"
	// KindUnsupportedOp: an operation that does not exist, or that the host
	// does not offer to this kind of component or at this time.
	KindUnsupportedOp = "unsupported_op"
	// KindNotAllowed: an HTTP request the component's policy refuses (not in its
	// allowed_hosts, or in its denied_hosts).
	KindNotAllowed = "not_allowed"
	// KindTransport: an HTTP request failed to connect, resolve, complete TLS
	// or finish in time, or its response body was too large.
	KindTransport = "transport"
	// KindFunctionNotFound: a call, submit or schedule of a function that no
	// deployed component exports, that the caller's world does not import, or
	// (for schedule) that is an activity stub's.
	KindFunctionNotFound = "function_not_found"
	// KindTypeCheck: parameters, or a stub's result, that do not match the
	// function's WIT.
	KindTypeCheck = "type_check"
	// KindConflict: a named join set whose name the workflow already used, a
	// stub with another value than the execution already has, or a webhook's
	// schedule with an execution ID that is taken.
	KindConflict = "conflict"
	// KindInvalidName: a join set name that is not 1 to 64 ASCII letters,
	// digits, '-' and '/', or a submit's queue name that is not valid
	// ([ValidQueueName]).
	KindInvalidName = "invalid_name"
	// KindUnknownJoinSet: a join set the workflow did not create.
	KindUnknownJoinSet = "unknown_join_set"
	// KindJoinSetClosed: a submit or submit_delay into a closed join set.
	KindJoinSetClosed = "join_set_closed"
	// KindAllProcessed: join_next or join_next_try on a join set whose every
	// request has been taken.
	KindAllProcessed = "all_processed"
	// KindPending: join_next_try found no response yet.
	KindPending = "pending"
	// KindFunctionMismatch: the response join_next took is not of the
	// function it expected (or is a delay); it is taken all the same.
	KindFunctionMismatch = "function_mismatch"
	// KindNotFound: get of a child whose response the workflow has not
	// taken, get_status of an execution that does not exist, or a read of an
	// HTTP body stream that is not open.
	KindNotFound = "not_found"
	// KindCancelled: a sleep whose delay was cancelled.
	KindCancelled = "cancelled"
	// KindExecutionNotFound: a stub of an execution that does not exist or
	// is not of an activity stub.
	KindExecutionNotFound = "execution_not_found"
)

// KindInfo describes one kind of host error.
type KindInfo struct {
	// Kind is the kind, e.g. KindBadRequest.
	Kind string
	// Meaning says when the host answers it.
	Meaning string
	// Ops are the operations that answer it; nil means every operation.
	Ops []string
	// Retriable: the same request may succeed if made again later, with
	// nothing else done meanwhile (a transport failure, a response not there
	// yet). Workflows record the outcomes of their operations, so for them
	// "later" means a later operation, not a replay.
	Retriable bool
}

// Kinds returns the table of every host error kind, in the order of the
// constants. The slice is the caller's.
func Kinds() []KindInfo {
	return []KindInfo{
		{Kind: KindBadRequest, Meaning: "malformed request: not JSON, a member missing or of the wrong type, invalid bounds or schedule_at"},
		{Kind: KindUnsupportedOp, Meaning: "the operation does not exist, or is not offered to this kind of component or during initialisation"},
		{Kind: KindNotAllowed, Meaning: "the component's policy refuses the request: no allowed_hosts entry allows it, or a denied_hosts entry denies it (the host or the address it resolves to)", Ops: []string{OpHTTP}},
		{Kind: KindTransport, Meaning: "connection, DNS, TLS or timeout failure, or a response body too large", Ops: []string{OpHTTP, OpHTTPBodyRead}, Retriable: true},
		{Kind: KindFunctionNotFound, Meaning: "no deployed component exports the function, the caller's world does not import it, or it cannot be scheduled", Ops: []string{OpCall, OpSubmit, OpSchedule}},
		{Kind: KindTypeCheck, Meaning: "the parameters, or a stub's result, do not match the function's WIT", Ops: []string{OpCall, OpSubmit, OpSchedule, OpStub}},
		{Kind: KindConflict, Meaning: "a join set name already used, a stub with another value, or an execution ID already taken", Ops: []string{OpJoinSetCreate, OpStub, OpSchedule, OpCall}},
		{Kind: KindInvalidName, Meaning: "a join set name that is not 1 to 64 ASCII letters, digits, '-' and '/', or a queue name that is not " + QueueNameRule, Ops: []string{OpJoinSetCreate, OpSubmit}},
		{Kind: KindUnknownJoinSet, Meaning: "the workflow did not create this join set", Ops: []string{OpSubmit, OpSubmitDelay, OpJoinNext, OpJoinNextTry, OpJoinSetClose}},
		{Kind: KindJoinSetClosed, Meaning: "nothing can be submitted into a closed join set", Ops: []string{OpSubmit, OpSubmitDelay}},
		{Kind: KindAllProcessed, Meaning: "every request of the join set has been taken", Ops: []string{OpJoinNext, OpJoinNextTry}},
		{Kind: KindPending, Meaning: "no response has arrived in the join set yet", Ops: []string{OpJoinNextTry}, Retriable: true},
		{Kind: KindFunctionMismatch, Meaning: "the response taken is of another function, or a delay (it is taken all the same)", Ops: []string{OpJoinNext}},
		{Kind: KindNotFound, Meaning: "no such execution, its response has not been taken, or no such open HTTP body stream", Ops: []string{OpGet, OpGetStatus, OpHTTPBodyRead, OpHTTPBodyClose}},
		{Kind: KindCancelled, Meaning: "the delay of the sleep was cancelled", Ops: []string{OpSleep}},
		{Kind: KindExecutionNotFound, Meaning: "no execution of an activity stub with this ID", Ops: []string{OpStub}},
	}
}

// LookupKind returns the description of kind, and whether it is a kind of
// the table.
func LookupKind(kind string) (KindInfo, bool) {
	for _, k := range Kinds() {
		if k.Kind == kind {
			return k, true
		}
	}
	return KindInfo{}, false
}

// The kinds of execution failures: the "kind" of an {"execution_failure":
// {"kind": k, "reason": r}} result, which a workflow receives from a child
// that finished without returning.
const (
	// FailureTimedOut: the execution's lock expired on its last attempt, or a
	// webhook request exceeded its timeout.
	FailureTimedOut = "timed_out"
	// FailureNondeterminismDetected: a workflow's replay diverged from its
	// history.
	FailureNondeterminismDetected = "nondeterminism_detected"
	// FailureCancelled: the execution was cancelled.
	FailureCancelled = "cancelled"
	// FailureUncategorized: anything else, e.g. a trap on the last attempt.
	FailureUncategorized = "uncategorized"
	// FailureDeadlineExceeded: the execution's deadline (its submitter's, or
	// inherited from its parent) passed before it finished.
	FailureDeadlineExceeded = "deadline_exceeded"
)

// FailureKinds returns every execution failure kind.
func FailureKinds() []string {
	return []string{FailureTimedOut, FailureNondeterminismDetected, FailureCancelled, FailureUncategorized, FailureDeadlineExceeded}
}
