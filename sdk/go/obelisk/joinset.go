package obelisk

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
)

// JoinSet groups child executions and delays of a workflow, so that the
// workflow can start several of them and wait for their responses in the
// order they finish. Create one with [NewJoinSet] or [NewJoinSetNamed],
// start children in it with [Submit] and delays with [SubmitDelay], and take
// their responses with [AwaitNext], [JoinNext] or [JoinNextTry]:
//
//	js, err := obelisk.NewJoinSet(ctx)
//	...
//	for _, n := range inputs {
//		if _, err := obelisk.Submit(ctx, js, "testing:fibo/fibo.fibo", n); err != nil {
//			return 0, err
//		}
//	}
//	for range inputs {
//		_, v, err := obelisk.AwaitNext[uint64](ctx, js, "testing:fibo/fibo.fibo")
//		...
//	}
//
// Every operation on a join set is recorded in the workflow's history and
// replayed, like [Call]: the sequence of operations must be deterministic.
// A join set still open when the workflow returns is closed (see
// [JoinSet.Close]) before the workflow's result is recorded: no child
// outlives its workflow.
//
// A JoinSet is a handle, the join set's ID: copy it freely. Only workflows
// have join sets.
type JoinSet struct {
	id    string
	queue string           // of its submits; "" = each child's component's queue
	retry *abi.RetryPolicy // of its submits; nil = each child's component's
}

// ID returns the join set's ID: "g:<n>" for a generated one, "n:<name>" for
// a named one.
func (js JoinSet) ID() string { return js.id }

// String returns the join set's ID.
func (js JoinSet) String() string { return js.id }

// InQueue returns a handle of the same join set whose [Submit]s create their
// children in the named execution queue rather than in the queue of each
// child's component (its exec.queue, by default its name):
//
//	obelisk.Submit(ctx, js.InQueue("gpu"), "my:render/render.frame", n)
//
// Such a child runs when an executor serving that queue and the child's
// component runs: until then it stays pending in the queue. A name that is not
// 1 to 255 ASCII letters, digits, '_', '-', '.', ':' or '/' makes Submit fail
// with kind [KindInvalidName]. An empty name is the default queue again. The
// queue is not recorded in the history: a replay finds the child created.
func (js JoinSet) InQueue(queue string) JoinSet {
	js.queue = queue
	return js
}

// RetryOption sets one field of a child's retry policy (see [JoinSet.WithRetry]).
type RetryOption func(*abi.RetryPolicy)

// MaxRetries sets how many times a child is retried after its first attempt.
func MaxRetries(n uint32) RetryOption {
	return func(p *abi.RetryPolicy) { p.MaxRetries = &n }
}

// RetryBackoff sets a child's first-retry delay (each further one doubles it),
// in whole milliseconds, rounded up; 0 keeps the child component's.
func RetryBackoff(d time.Duration) RetryOption {
	ms := d.Milliseconds()
	if d > 0 && d%time.Millisecond != 0 {
		ms++
	}
	return func(p *abi.RetryPolicy) { p.RetryExpBackoffMS = ms }
}

// RetryJitter scales each of a child's retry delays by a factor from 1-j to
// 1+j, 0 <= j <= 1.
func RetryJitter(j float64) RetryOption {
	return func(p *abi.RetryPolicy) { p.RetryJitter = &j }
}

// WithRetry returns a handle of the same join set whose [Submit]s give their
// children their own retry policy, each option replacing the setting of the
// child's component (max_retries, retry_exp_backoff, retry_jitter):
//
//	obelisk.Submit(ctx, js.WithRetry(obelisk.MaxRetries(10), obelisk.RetryBackoff(time.Second)), "my:pay/pay.charge", id)
//
// The generated -obelisk-ext functions (f-submit) take such a handle too. A
// backoff under 1ms or a jitter outside 0..1 makes Submit fail with kind
// [KindBadRequest]. No option is the components' policies again. Like the
// queue, the policy is recorded in the child's created event, not in the
// workflow's history: a replay finds the child created.
func (js JoinSet) WithRetry(opts ...RetryOption) JoinSet {
	if len(opts) == 0 {
		js.retry = nil
		return js
	}
	p := &abi.RetryPolicy{}
	for _, o := range opts {
		o(p)
	}
	js.retry = p
	return js
}

// NewJoinSet creates a join set with a generated ID: g:1, g:2... in the order
// the workflow creates them.
func NewJoinSet(ctx Context) (JoinSet, error) {
	return newJoinSet(ctx, newRequest(abi.OpJoinSetCreate, 0))
}

// NewJoinSetNamed creates a join set named name, with the ID "n:<name>".
// The name is 1 to 64 ASCII letters, digits, '-' and '/'; else the error is
// a [*HostError] of kind [KindInvalidName]. A workflow can use a name once:
// creating a second join set of that name fails with kind [KindConflict].
func NewJoinSetNamed(ctx Context, name string) (JoinSet, error) {
	req := appendStringMember(newRequest(abi.OpJoinSetCreate, 10+len(name)), "name", name)
	return newJoinSet(ctx, req)
}

func newJoinSet(ctx Context, req []byte) (JoinSet, error) {
	var id string
	if err := sendDecode(ctx, abi.OpJoinSetCreate, append(req, '}'), &id); err != nil {
		return JoinSet{}, err
	}
	return JoinSet{id: id}, nil
}

// Close closes the join set: it cancels what in it has not been taken yet
// and can be cancelled (activities, activity stubs and delays; child
// workflows run on), then waits until every request has a response. Their
// results can then be read with [Get]. Nothing can be submitted into a
// closed join set: [Submit] and [SubmitDelay] fail with kind
// [KindJoinSetClosed].
func (js JoinSet) Close(ctx Context) error {
	return sendDecode(ctx, abi.OpJoinSetClose, js.request(abi.OpJoinSetClose, 0), nil)
}

// request returns the request of op on the join set, closed, with room for
// extra more bytes.
func (js JoinSet) request(op string, extra int) []byte {
	req := appendStringMember(newRequest(op, 16+len(js.id)+extra), "join_set", js.id)
	return append(req, '}')
}

// Submit starts a child execution of ffqn with params in the join set and
// returns its ID, "<workflow's ID>.<join set ID>_<n>", without waiting for
// it. ffqn is an activity or a workflow that the workflow's world imports,
// or a function of the workflow's own component. Take its response with
// [AwaitNext], [JoinNext] or [JoinNextTry].
//
// The error is a [*HostError] of kind [KindFunctionNotFound],
// [KindTypeCheck], [KindUnknownJoinSet] or [KindJoinSetClosed], or another
// error when a parameter cannot be encoded.
func Submit(ctx Context, js JoinSet, ffqn string, params ...any) (string, error) {
	var raw json.RawMessage
	var err error
	if js.queue == "" && js.retry == nil {
		raw, err = sendCall(ctx, abi.OpSubmit, js.id, ffqn, params)
	} else {
		// Rare enough for encoding/json: the fast path writes the common request.
		req := callRequestOf(js.id, ffqn, params)
		if r, ok := req.(abi.SubmitRequest); ok {
			r.Queue, r.Retry = js.queue, js.retry
			req = r
		}
		raw, err = invoke(ctx.host(), abi.OpSubmit, req)
	}
	if err != nil {
		return "", err
	}
	return decodeID(abi.OpSubmit, raw)
}

// SubmitDelay adds to the join set a delay that expires at the given time,
// and returns its ID, "Delay_<...>". Its response, of kind [ResponseDelay],
// arrives when it expires, or when it is cancelled (by [JoinSet.Close], or
// with `obelisk client execution cancel ID`). Racing a delay against
// children in one join set gives a timeout:
//
//	_, err := obelisk.Submit(ctx, js, "testing:sleep/sleep.sleep", millis)
//	...
//	_, err = obelisk.SubmitDelay(ctx, js, obelisk.In(time.Second))
//	...
//	r, err := obelisk.JoinNext(ctx, js)
//	... // r.Kind == obelisk.ResponseDelay: timed out
//	err = js.Close(ctx) // cancels the other one
func SubmitDelay(ctx Context, js JoinSet, at ScheduleAt) (string, error) {
	sa := at.json()
	req := newRequest(abi.OpSubmitDelay, 32+len(js.id)+len(sa))
	req = appendStringMember(req, "join_set", js.id)
	req = append(appendRawMember(req, "schedule_at", sa), '}')
	raw, err := send(ctx.host(), abi.OpSubmitDelay, req)
	if err != nil {
		return "", err
	}
	return decodeID(abi.OpSubmitDelay, raw)
}

// decodeID decodes the ok value of op, a string.
func decodeID(op string, raw json.RawMessage) (string, error) {
	var id string
	if err := decode(raw, &id); err != nil {
		return "", fmt.Errorf("obelisk: %s: decoding the response %s: %w", op, raw, err)
	}
	return id, nil
}

// sendDecode sends req, the request of op, and decodes its ok value into
// response, as HostCall does.
func sendDecode(ctx Context, op string, req []byte, response any) error {
	raw, err := send(ctx.host(), op, req)
	if err != nil || response == nil {
		return err
	}
	if err := decode(raw, response); err != nil {
		return fmt.Errorf("obelisk: %s: decoding the response %s: %w", op, raw, err)
	}
	return nil
}

// Kinds of [Response].
const (
	// ResponseExecution: a child execution finished.
	ResponseExecution = abi.ResponseExecution
	// ResponseDelay: a delay expired or was cancelled.
	ResponseDelay = abi.ResponseDelay
)

// Response is what a join set answers [JoinNext] and [JoinNextTry] with: a
// child execution that finished, or a delay that expired.
type Response struct {
	// Kind is [ResponseExecution] or [ResponseDelay].
	Kind string `json:"kind"`
	// ID is the ID of the child execution or of the delay, as Submit or
	// SubmitDelay returned it.
	ID string `json:"id"`
	// FFQN is the child's function; empty for a delay.
	FFQN string `json:"ffqn,omitempty"`
	// Result is the child's result, {"ok": v}, {"err": v} or
	// {"execution_failure": {"kind": k, "reason": r}}; empty for a delay.
	// Decode it with [Response.Decode].
	Result json.RawMessage `json:"result,omitempty"`
	// Cancelled reports a delay that was cancelled rather than expired.
	Cancelled bool `json:"cancelled,omitempty"`
}

// Decode returns the outcome of a child execution's response as [Call]
// does: it decodes the ok value into v, a pointer (a nil v discards it), or
// returns an [*ErrResult] when the child returned an err value, or an
// [*ExecutionFailure] when it failed without a result. For a delay it
// returns an error.
func (r Response) Decode(v any) error {
	if r.Kind != ResponseExecution {
		return fmt.Errorf("obelisk: %s is a %s, not an execution", r.ID, r.Kind)
	}
	raw, err := decodeResult(abi.OpJoinNext, r.Result, r.FFQN, r.ID)
	if err != nil || v == nil {
		return err
	}
	if err := decode(raw, v); err != nil {
		return fmt.Errorf("obelisk: decoding the result of %s (%s) as %T: %w", r.FFQN, r.ID, v, err)
	}
	return nil
}

// JoinNext waits until the join set has a response the workflow has not
// taken yet, and takes it: responses are taken in the order they arrived,
// which is the order the children and delays finished. A child that failed
// is a response like any other: read its outcome with [Response.Decode].
//
// The error is a [*HostError] of kind [KindAllProcessed] when every
// request of the join set has been taken, or [KindUnknownJoinSet].
func JoinNext(ctx Context, js JoinSet) (Response, error) {
	return joinNext(ctx, abi.OpJoinNext, js.request(abi.OpJoinNext, 0))
}

// JoinNextTry is [JoinNext] without waiting: ok is false, with a nil error,
// when no response has arrived yet. Its outcome is recorded in the history,
// so a replay answers the same.
func JoinNextTry(ctx Context, js JoinSet) (r Response, ok bool, err error) {
	r, err = joinNext(ctx, abi.OpJoinNextTry, js.request(abi.OpJoinNextTry, 0))
	if herr, isHostErr := errors.AsType[*HostError](err); isHostErr && herr.Kind == KindPending {
		return Response{}, false, nil
	}
	return r, err == nil, err
}

// AwaitNext is [JoinNext] for a join set of children of one function, ffqn:
// it takes the next response and returns the child's ID and its ok value
// decoded into a T, or the error [Call] would return. Use a T of struct{}
// for a function whose result has no ok value.
//
// When the response is of another function, or is a delay, the error is a
// [*HostError] of kind [KindFunctionMismatch]: the response is taken all
// the same. An empty ffqn accepts any child (and a delay is then an error
// too). The other errors are those of JoinNext.
func AwaitNext[T any](ctx Context, js JoinSet, ffqn string) (id string, v T, err error) {
	req := appendStringMember(newRequest(abi.OpJoinNext, 32+len(js.id)+len(ffqn)), "join_set", js.id)
	if ffqn != "" {
		req = appendStringMember(req, "ffqn", ffqn)
	}
	r, err := joinNext(ctx, abi.OpJoinNext, append(req, '}'))
	if err != nil {
		return "", v, err
	}
	if r.Kind != ResponseExecution {
		return r.ID, v, fmt.Errorf("obelisk: join_next: %s is a %s, not an execution", r.ID, r.Kind)
	}
	raw, err := decodeResult(abi.OpJoinNext, r.Result, r.FFQN, r.ID)
	if err != nil {
		return r.ID, v, err
	}
	if err := decode(raw, &v); err != nil {
		var zero T
		return r.ID, zero, fmt.Errorf("obelisk: decoding the result of %s (%s) as %v: %w", r.FFQN, r.ID, reflect.TypeFor[T](), err)
	}
	return r.ID, v, nil
}

// joinNext sends req, the request of op (join_next or join_next_try), and
// decodes the response.
func joinNext(ctx Context, op string, req []byte) (Response, error) {
	raw, err := send(ctx.host(), op, req)
	if err != nil {
		return Response{}, err
	}
	if r, ok := parseResponse(raw); ok {
		return r, nil
	}
	var r Response
	if err := json.Unmarshal(raw, &r); err != nil {
		panic(fmt.Sprintf("obelisk: %s: malformed response %q: %v", op, raw, err))
	}
	if err := r.check(); err != nil {
		panic(fmt.Sprintf("obelisk: %s: malformed response %q: %v", op, raw, err))
	}
	return r, nil
}

// check reports a response that does not have the shape of its kind.
func (r Response) check() error {
	switch r.Kind {
	case ResponseExecution:
		if len(r.Result) == 0 || string(r.Result) == "null" {
			return errors.New("an execution without a result")
		}
	case ResponseDelay:
	default:
		return fmt.Errorf("unknown kind %q", r.Kind)
	}
	if r.ID == "" {
		return errors.New("no id")
	}
	return nil
}

// parseResponse is the fast path of decoding a response: it handles an
// object whose members are those of Response (kind, id and ffqn strings, a
// result object, a cancelled boolean) and declines anything else.
func parseResponse(raw []byte) (Response, bool) {
	var r Response
	s, ok := newObjectScanner(raw)
	if !ok {
		return r, false
	}
	i := 0
	for {
		key, v, done, ok := s.next(i)
		if !ok {
			return r, false
		}
		if done {
			return r, r.check() == nil
		}
		switch string(key) {
		case "kind", "id", "ffqn":
			end, plain, ok := scanString(raw, v)
			if !ok {
				return r, false
			}
			str := unquote(raw[v:end], plain)
			switch string(key) {
			case "kind":
				r.Kind = str
			case "id":
				r.ID = str
			default:
				r.FFQN = str
			}
			i = end
		case "result":
			if v >= len(raw) || raw[v] != '{' {
				return r, false
			}
			end, ok := scanValue(raw, v, 0)
			if !ok {
				return r, false
			}
			r.Result = raw[v:end]
			i = end
		case "cancelled":
			if end, ok := scanLiteral(raw, v, "true"); ok {
				r.Cancelled, i = true, end
			} else if end, ok := scanLiteral(raw, v, "false"); ok {
				r.Cancelled, i = false, end
			} else {
				return r, false
			}
		default:
			return r, false
		}
	}
}

// Get returns the result of a child execution whose response the workflow
// has already taken (with JoinNext, AwaitNext, JoinNextTry, or by closing
// its join set), decoded as [Call] does: the ok value as a T, an
// [*ErrResult] or an [*ExecutionFailure]. Get records nothing in the
// history.
//
// The error is a [*HostError] of kind [KindNotFound] when the response has
// not been taken (or the execution is not a child of the workflow).
func Get[T any](ctx Context, executionID string) (T, error) {
	var v T
	req := appendStringMember(newRequest(abi.OpGet, 24+len(executionID)), "execution_id", executionID)
	raw, err := send(ctx.host(), abi.OpGet, append(req, '}'))
	if err != nil {
		return v, err
	}
	if raw, err = decodeResult(abi.OpGet, raw, "", executionID); err != nil {
		return v, err
	}
	if err := decode(raw, &v); err != nil {
		var zero T
		return zero, fmt.Errorf("obelisk: decoding the result of %s as %v: %w", executionID, reflect.TypeFor[T](), err)
	}
	return v, nil
}
