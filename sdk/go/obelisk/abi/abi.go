// Package abi is the guest ABI v1 of Obelisk in one place: the names of the
// host operations, the JSON shapes of their requests and answers, the input of
// a run, and the kinds of host errors and execution failures.
//
// The host (packages actors and wasmhost) decodes what guests send into these
// types and encodes its answers from them; the Go SDK (package obelisk and its
// sub-packages) and its TestHost do the reverse. docs/abi.md explains the ABI
// in prose; where the two disagree, this package is right and the document is
// a bug.
//
// The package imports only the standard library and compiles for every
// GOOS, wasip1 included: guests link it through the SDK.
//
// The wire format is fixed: already-built guests depend on it. Member names
// never change, and the members of the answers the host encodes are declared
// in the order the host has always written them, so that what a guest reads
// stays the same byte for byte.
package abi

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Version is the ABI version: the "v1" of the obelisk_v1 import module and of
// the obelisk_v1_alloc and obelisk_v1_run exports.
const Version = 1

// The names of the host operations: the "op" member of a host_call request.
const (
	// OpLog writes a message to the execution's log ([LogRequest]), as
	// LoggingModule's log does; kept for guests built before it. Every kind of
	// component, also during _initialize. Its ok value is null.
	OpLog = "log"
	// OpHTTP makes one HTTP request ([HTTPRequest], answered by an
	// [HTTPResponse]); activities and webhook endpoints.
	OpHTTP = "http"
	// OpCall runs a child execution and waits for its result ([CallRequest]);
	// workflows and webhook endpoints. The ok value is the child's result.
	OpCall = "call"
	// OpSchedule creates a top-level execution, not waited for
	// ([ScheduleRequest]); workflows and webhook endpoints. The ok value is
	// its ID.
	OpSchedule = "schedule"
	// OpRandomU64 makes a recorded random integer ([RandomU64Request]);
	// workflows.
	OpRandomU64 = "random_u64"
	// OpRandomString makes a recorded random alphanumeric string
	// ([RandomStringRequest]); workflows.
	OpRandomString = "random_string"
	// OpExecutionIDGenerate makes a fresh top-level execution ID (no request
	// members), recorded in workflows; workflows and webhook endpoints.
	OpExecutionIDGenerate = "execution_id_generate"
	// OpJoinSetCreate creates a join set ([JoinSetCreateRequest]); the ok
	// value is its ID. Workflows.
	OpJoinSetCreate = "join_set_create"
	// OpSubmit starts a child execution in a join set ([SubmitRequest]); the
	// ok value is the child's ID. Workflows.
	OpSubmit = "submit"
	// OpSubmitDelay adds a delay to a join set ([SubmitDelayRequest]); the ok
	// value is the delay's ID. Workflows.
	OpSubmitDelay = "submit_delay"
	// OpJoinNext takes the next response of a join set, waiting for it
	// ([JoinNextRequest], answered by a [Response]). Workflows.
	OpJoinNext = "join_next"
	// OpJoinNextTry is OpJoinNext without waiting ([JoinNextTryRequest]);
	// [KindPending] when nothing has arrived. Workflows.
	OpJoinNextTry = "join_next_try"
	// OpGet returns the result of a child whose response was taken
	// ([GetRequest]). Workflows.
	OpGet = "get"
	// OpJoinSetClose closes a join set ([JoinSetCloseRequest]); the ok value
	// is null. Workflows.
	OpJoinSetClose = "join_set_close"
	// OpSleep waits durably ([SleepRequest], answered by a [Woke]).
	// Workflows.
	OpSleep = "sleep"
	// OpStub writes the result of an activity stub's execution
	// ([StubRequest]); the ok value is null. Workflows.
	OpStub = "stub"
	// OpGetStatus reads the status of any execution ([GetStatusRequest],
	// answered by a [Status]). Webhook endpoints.
	OpGetStatus = "get_status"
	// OpKV runs a function of the built-in obelisk:kv/store ([KVRequest]); the ok
	// value is the function's result ({"ok": v} or {"err": e}), as a call's is.
	// Activities and webhook endpoints run it directly; workflows call it as a
	// child execution (OpCall), so that it is recorded and replayed.
	OpKV = "kv"
	// OpHTTPBodyRead reads the next bytes of a streamed HTTP response body
	// ([HTTPBodyReadRequest], answered by an [HTTPBodyChunk]): the body of an
	// [OpHTTP] request made with Stream. Activities, webhook endpoints and
	// triggers.
	OpHTTPBodyRead = "http_body_read"
	// OpHTTPBodyClose closes a streamed HTTP response body
	// ([HTTPBodyCloseRequest]); the ok value is null.
	OpHTTPBodyClose = "http_body_close"
)

// Ops returns the name of every host operation, in the order of docs/abi.md.
func Ops() []string {
	return []string{
		OpLog, OpHTTP, OpCall, OpRandomU64, OpRandomString, OpExecutionIDGenerate, OpSchedule,
		OpJoinSetCreate, OpSubmit, OpSubmitDelay, OpJoinNext, OpJoinNextTry, OpGet, OpJoinSetClose,
		OpSleep, OpStub, OpGetStatus, OpKV, OpHTTPBodyRead, OpHTTPBodyClose,
	}
}

// Head is the member every request has: the operation's name. Decoding a
// request into it finds the operation.
type Head struct {
	Op string `json:"op"`
}

// RunInput is the input of obelisk_v1_run: the exported function to run and
// its execution.
type RunInput struct {
	// FFQN of the exported function, e.g. "testing:fibo/fibo.fibo".
	FFQN string `json:"ffqn"`
	// Params is the positional JSON array of parameters, already type-checked.
	// Empty means [].
	Params json.RawMessage `json:"params"`
	// ExecutionID of the execution being run.
	ExecutionID string `json:"execution_id"`
	// Attempt is 1 for the first attempt of an activity, incremented on every
	// retry; always 1 for workflows and webhook requests.
	Attempt int `json:"attempt"`
}

// Log levels of [LogRequest], from the least to the most severe: the cases of
// wasi:logging's enum level, in its order (LoggingLevels).
const (
	LevelTrace    = "trace"
	LevelDebug    = "debug"
	LevelInfo     = "info"
	LevelWarn     = "warn"
	LevelError    = "error"
	LevelCritical = "critical"
)

// LoggingLevels are the levels in the order of wasi:logging's enum level: the
// level argument of LoggingModule's log is an index in it.
var LoggingLevels = [...]string{LevelTrace, LevelDebug, LevelInfo, LevelWarn, LevelError, LevelCritical}

// LogLevel is a level as a number: its index in LoggingLevels, as wasi:logging passes
// it and the store keeps it.
type LogLevel uint8

// The levels as numbers, in wasi:logging's order.
const (
	LogTrace LogLevel = iota
	LogDebug
	LogInfo
	LogWarn
	LogError
	LogCritical
)

// String returns the level's name, e.g. "info".
func (l LogLevel) String() string {
	if int(l) < len(LoggingLevels) {
		return LoggingLevels[l]
	}
	return "level(" + strconv.Itoa(int(l)) + ")"
}

// ParseLogLevel returns the level named name ("trace" ... "critical").
func ParseLogLevel(name string) (LogLevel, bool) {
	for i, n := range LoggingLevels {
		if n == name {
			return LogLevel(i), true
		}
	}
	return 0, false
}

// The wasi:logging import: LoggingModule's function LoggingLog, lowered to core wasm as
// (level: i32, context_ptr: i32, context_len: i32, message_ptr: i32, message_len: i32) -> ().
const (
	LoggingModule = "wasi:logging/logging@0.1.0-draft"
	LoggingLog    = "log"
)

// LogRequest is the request of [OpLog] without the op.
type LogRequest struct {
	// Level is one of LevelTrace ... LevelCritical.
	Level   string `json:"level"`
	Message string `json:"message"`
	// Context is wasi:logging's context (a logger's name; often empty).
	Context string `json:"context,omitempty"`
}

// The built-in key-value store: the interface its functions are exported in, and
// their names (KVRequest.Fn).
const (
	KVInterface = "obelisk:kv/store"
	KVGet       = "get"
	KVSet       = "set"
	KVDelete    = "delete"
	KVList      = "list"
	KVCAS       = "cas"
)

// KVRequest is the request of [OpKV] without the op.
type KVRequest struct {
	// Fn is the function of KVInterface: KVGet, KVSet, KVDelete, KVList or KVCAS.
	Fn string `json:"fn"`
	// Params is the positional JSON array of the function's parameters, as a
	// call of KVInterface+"."+Fn takes them.
	Params json.RawMessage `json:"params"`
}

// KVEntry is an entry of a [KVPage].
type KVEntry struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// KVPage is the ok value of KVList: entries in key order, and the cursor of the
// next page (nil: no more).
type KVPage struct {
	Entries []KVEntry `json:"entries"`
	Cursor  *string   `json:"cursor"`
}

// HTTPRequest is the request of [OpHTTP] without the op.
type HTTPRequest struct {
	// Method defaults to GET.
	Method string `json:"method"`
	URL    string `json:"url"`
	// Headers maps names to values; a Host header sets the request's host.
	Headers map[string][]string `json:"headers"`
	// Body is base64; absent or "" for none.
	Body string `json:"body,omitempty"`
	// TimeoutMS bounds the request; 0 for none. With Stream it bounds the
	// reading of the body too.
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
	// Stream: the response's body is not in the answer; the answer's
	// BodyStream names it, to be read with [OpHTTPBodyRead] as it arrives.
	Stream bool `json:"stream,omitempty"`
}

// HTTPResponse is the ok value of [OpHTTP].
type HTTPResponse struct {
	Status  int                 `json:"status"`
	Headers map[string][]string `json:"headers"`
	// Body is base64, as received (not decompressed); empty for a streamed
	// request.
	Body string `json:"body"`
	// BodyStream names the body of a streamed request (HTTPRequest.Stream),
	// for [OpHTTPBodyRead] and [OpHTTPBodyClose]; 0 otherwise.
	BodyStream int `json:"body_stream,omitempty"`
}

// HTTPBodyReadRequest is the request of [OpHTTPBodyRead] without the op.
type HTTPBodyReadRequest struct {
	// Stream is an HTTPResponse.BodyStream.
	Stream int `json:"stream"`
	// MaxBytes bounds the chunk (at most 1 MiB are answered; 0 means 64 KiB).
	MaxBytes int `json:"max_bytes,omitempty"`
}

// HTTPBodyChunk is the ok value of [OpHTTPBodyRead]: the bytes that arrived,
// at least one unless EOF, waiting for them if none has.
type HTTPBodyChunk struct {
	// Data is base64.
	Data []byte `json:"data"`
	// EOF: the body has ended (after Data); the stream is closed.
	EOF bool `json:"eof,omitempty"`
}

// HTTPBodyCloseRequest is the request of [OpHTTPBodyClose] without the op.
type HTTPBodyCloseRequest struct {
	Stream int `json:"stream"`
}

// CallRequest is the request of [OpCall] without the op.
type CallRequest struct {
	FFQN string `json:"ffqn"`
	// Params is the positional JSON array of parameters; absent means [].
	Params json.RawMessage `json:"params"`
	// ExecutionID is the called execution's ID; triggers only (a top-level
	// execution, E_<ULID>), empty for a fresh one. Calling an ID that exists
	// with the same function and parameters waits for that execution.
	ExecutionID string `json:"execution_id,omitempty"`
}

// SubmitRequest is the request of [OpSubmit] without the op.
type SubmitRequest struct {
	JoinSet string `json:"join_set"`
	FFQN    string `json:"ffqn"`
	// Params is the positional JSON array of parameters; absent means [].
	Params json.RawMessage `json:"params"`
	// Queue is the execution queue of the child (see [ValidQueueName]); absent
	// means the queue its component is configured with.
	Queue string `json:"queue,omitempty"`
	// Retry is the child's own retry policy; absent means its component's.
	Retry *RetryPolicy `json:"retry,omitempty"`
}

// RetryPolicy is an execution's own retry policy, given by its submitter. Each
// member present replaces the setting of the component that runs it; the
// policy is recorded in the execution's created event.
type RetryPolicy struct {
	// MaxRetries is how many times it is retried after its first attempt.
	MaxRetries *uint32 `json:"max_retries,omitempty"`
	// RetryExpBackoffMS is the first retry's delay in milliseconds (each
	// further one doubles it): at least [MinRetryExpBackoff]; 0 or absent
	// means the component's.
	RetryExpBackoffMS int64 `json:"retry_exp_backoff_ms,omitempty"`
	// RetryJitter scales each delay by a factor from 1-j to 1+j; see
	// [CheckRetryJitter].
	RetryJitter *float64 `json:"retry_jitter,omitempty"`
}

// MinRetryExpBackoff is the least first-retry delay a component or a submitter
// may set: below it a failing execution would spin.
const MinRetryExpBackoff = time.Millisecond

// CheckRetryBackoff refuses a first-retry delay below [MinRetryExpBackoff].
func CheckRetryBackoff(d time.Duration) error {
	if d < MinRetryExpBackoff {
		return fmt.Errorf("retry backoff %s: must be at least %s", d, MinRetryExpBackoff)
	}
	return nil
}

// CheckRetryJitter refuses a jitter that is not a fraction from 0 to 1.
func CheckRetryJitter(j float64) error {
	if !(j >= 0 && j <= 1) {
		return fmt.Errorf("retry jitter %v: must be a fraction from 0 to 1", j)
	}
	return nil
}

// Check refuses a policy whose backoff or jitter is out of bounds.
func (p *RetryPolicy) Check() error {
	if p.RetryExpBackoffMS != 0 {
		if err := CheckRetryBackoff(time.Duration(p.RetryExpBackoffMS) * time.Millisecond); err != nil {
			return err
		}
	}
	if p.RetryJitter != nil {
		return CheckRetryJitter(*p.RetryJitter)
	}
	return nil
}

// ScheduleRequest is the request of [OpSchedule] without the op.
type ScheduleRequest struct {
	FFQN string `json:"ffqn"`
	// Params is the positional JSON array of parameters; absent means [].
	Params json.RawMessage `json:"params"`
	// ScheduleAt is a [ScheduleAt] value; absent means "now".
	ScheduleAt json.RawMessage `json:"schedule_at,omitempty"`
	// ExecutionID is the new execution's ID; webhook endpoints and triggers
	// only, empty for a fresh one.
	ExecutionID string `json:"execution_id,omitempty"`
}

// ScheduleAt is the JSON of a schedule_at member: "now" (ScheduleNow), an
// absolute time {"at": Time}, or a duration from when the request is recorded
// {"in": {unit: n}} with one of the DurationUnits.
type ScheduleAt struct {
	At *Time             `json:"at,omitempty"`
	In map[string]uint64 `json:"in,omitempty"`
}

// ScheduleNow is the schedule_at value of "due at once", a JSON string.
const ScheduleNow = "now"

// DurationUnit returns the length of a unit of an {"in": {unit: n}}
// schedule_at value: milliseconds, seconds, minutes, hours or days.
func DurationUnit(unit string) (time.Duration, bool) {
	switch unit {
	case "milliseconds":
		return time.Millisecond, true
	case "seconds":
		return time.Second, true
	case "minutes":
		return time.Minute, true
	case "hours":
		return time.Hour, true
	case "days":
		return 24 * time.Hour, true
	}
	return 0, false
}

// ResolveScheduleAt returns the time a schedule_at value raw means when it is
// recorded at now; an empty raw means "now".
func ResolveScheduleAt(raw json.RawMessage, now time.Time) (time.Time, error) {
	if len(raw) == 0 {
		return now, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if s == ScheduleNow {
			return now, nil
		}
		return time.Time{}, fmt.Errorf("want \"now\", {\"at\": ...} or {\"in\": ...}, got %q", s)
	}
	var v ScheduleAt
	if err := json.Unmarshal(raw, &v); err != nil {
		return time.Time{}, err
	}
	switch {
	case v.At != nil && v.In == nil:
		return time.Unix(v.At.Seconds, v.At.Nanoseconds), nil
	case v.In != nil && v.At == nil && len(v.In) == 1:
		for unit, n := range v.In {
			d, ok := DurationUnit(unit)
			if !ok {
				return time.Time{}, fmt.Errorf("unknown duration unit %q", unit)
			}
			return now.Add(time.Duration(n) * d), nil
		}
	}
	return time.Time{}, fmt.Errorf("want \"now\", {\"at\": ...} or {\"in\": ...}, got %s", raw)
}

// Time is a point in time in a schedule_at value: seconds and nanoseconds
// since the Unix epoch. A workflow's history records schedule_at values as
// the guest wrote them, and a replay compares them byte for byte: the Go SDK
// writes them in this order.
type Time struct {
	Seconds     int64 `json:"seconds"`
	Nanoseconds int64 `json:"nanoseconds"`
}

// Woke is the ok value of [OpSleep]: the time the workflow woke, which is the
// delay's due time. Its members are written nanoseconds first, as the host
// always has.
type Woke struct {
	Nanoseconds int64 `json:"nanoseconds"`
	Seconds     int64 `json:"seconds"`
}

// RandomU64Request is the request of [OpRandomU64] without the op: a number in
// [Min, MaxExclusive).
type RandomU64Request struct {
	Min          uint64 `json:"min"`
	MaxExclusive uint64 `json:"max_exclusive"`
}

// MaxRandomStringLength bounds RandomStringRequest.MaxLengthExclusive.
const MaxRandomStringLength = 1 << 20

// RandomStringRequest is the request of [OpRandomString] without the op: a
// string whose length is in [MinLength, MaxLengthExclusive).
type RandomStringRequest struct {
	MinLength          uint32 `json:"min_length"`
	MaxLengthExclusive uint32 `json:"max_length_exclusive"`
}

// JoinSetCreateRequest is the request of [OpJoinSetCreate] without the op.
type JoinSetCreateRequest struct {
	// Name makes a named join set, n:<name>; nil a generated one, g:<n>.
	Name *string `json:"name,omitempty"`
}

// MaxJoinSetNameLength bounds the name of a named join set.
const MaxJoinSetNameLength = 64

// ValidJoinSetName reports whether name may name a join set: 1 to
// MaxJoinSetNameLength ASCII letters, digits, '-' and '/'. ('.' and '_' are
// out: join set IDs are parts of child IDs, <parent>.<join-set>_<n>.)
func ValidJoinSetName(name string) bool {
	if name == "" || len(name) > MaxJoinSetNameLength {
		return false
	}
	for _, c := range []byte(name) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '/') {
			return false
		}
	}
	return true
}

// MaxQueueNameLength bounds the name of an execution queue.
const MaxQueueNameLength = 255

// ValidQueueName reports whether name may name an execution queue: 1 to
// MaxQueueNameLength ASCII letters, digits, '_', '-', '.', ':' and '/'. A
// component's default queue is its name, which is always one.
func ValidQueueName(name string) bool {
	if name == "" || len(name) > MaxQueueNameLength {
		return false
	}
	for _, c := range []byte(name) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.' || c == ':' || c == '/') {
			return false
		}
	}
	return true
}

// QueueNameRule says, for error messages, what [ValidQueueName] accepts.
const QueueNameRule = "1 to 255 ASCII letters, digits, '_', '-', '.', ':' or '/'"

// SubmitDelayRequest is the request of [OpSubmitDelay] without the op.
type SubmitDelayRequest struct {
	JoinSet string `json:"join_set"`
	// ScheduleAt is a [ScheduleAt] value; required.
	ScheduleAt json.RawMessage `json:"schedule_at"`
}

// JoinNextRequest is the request of [OpJoinNext] without the op.
type JoinNextRequest struct {
	JoinSet string `json:"join_set"`
	// FFQN is the function the caller expects; another one (or a delay)
	// answers KindFunctionMismatch. Empty accepts anything.
	FFQN string `json:"ffqn,omitempty"`
}

// JoinNextTryRequest is the request of [OpJoinNextTry] without the op.
type JoinNextTryRequest struct {
	JoinSet string `json:"join_set"`
}

// JoinSetCloseRequest is the request of [OpJoinSetClose] without the op.
type JoinSetCloseRequest struct {
	JoinSet string `json:"join_set"`
}

// GetRequest is the request of [OpGet] without the op.
type GetRequest struct {
	ExecutionID string `json:"execution_id"`
}

// SleepRequest is the request of [OpSleep] without the op.
type SleepRequest struct {
	// ScheduleAt is a [ScheduleAt] value; required.
	ScheduleAt json.RawMessage `json:"schedule_at"`
}

// StubRequest is the request of [OpStub] without the op.
type StubRequest struct {
	ExecutionID string `json:"execution_id"`
	// Result is {"ok": v} or {"err": v}.
	Result json.RawMessage `json:"result"`
}

// GetStatusRequest is the request of [OpGetStatus] without the op.
type GetStatusRequest struct {
	ExecutionID string `json:"execution_id"`
}

// Status is the ok value of [OpGetStatus].
type Status struct {
	// Status is pending_at, locked, blocked_by_join_set or finished.
	Status string `json:"status"`
	// Result is the execution's result, once finished.
	Result          json.RawMessage `json:"result,omitempty"`
	Paused          bool            `json:"paused,omitempty"`
	CancelRequested bool            `json:"cancel_requested,omitempty"`
}

// Kinds of [Response].
const (
	// ResponseExecution: a child execution finished.
	ResponseExecution = "execution"
	// ResponseDelay: a delay expired or was cancelled.
	ResponseDelay = "delay"
)

// Response is the ok value of [OpJoinNext] and [OpJoinNextTry]: a child
// execution that finished, or a delay. Its members are written in name order,
// as the host always has.
type Response struct {
	// Cancelled is set for a delay only: whether it was cancelled rather
	// than expired.
	Cancelled *bool `json:"cancelled,omitempty"`
	// FFQN is a child's function; empty for a delay.
	FFQN string `json:"ffqn,omitempty"`
	// ID is the child execution's or the delay's ID.
	ID string `json:"id"`
	// Kind is ResponseExecution or ResponseDelay.
	Kind string `json:"kind"`
	// Result is a child's result: {"ok": v}, {"err": v} or
	// {"execution_failure": {"kind": k, "reason": r}}; nil for a delay.
	Result json.RawMessage `json:"result,omitempty"`
}

// ExecutionResponse is the Response of a child execution that finished.
func ExecutionResponse(id, ffqn string, result json.RawMessage) Response {
	return Response{Kind: ResponseExecution, ID: id, FFQN: ffqn, Result: result}
}

// DelayResponse is the Response of a delay that expired or was cancelled.
func DelayResponse(id string, cancelled bool) Response {
	return Response{Kind: ResponseDelay, ID: id, Cancelled: &cancelled}
}

// The members of a host_call answer, {"ok": value} or {"error": Error}.
const (
	MemberOk    = "ok"
	MemberError = "error"
)

// ErrorAnswer is a host_call answer that fails the operation.
type ErrorAnswer struct {
	Error Error `json:"error"`
}

// Error is the error of a failed host operation.
type Error struct {
	// Kind is one of the kinds of [Kinds].
	Kind    string `json:"kind"`
	Message string `json:"message"`
}
