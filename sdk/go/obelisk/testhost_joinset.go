package obelisk

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
)

// This file simulates join sets, delays, sleep and stub for TestHost, as
// its documentation describes.

// testRun is the state of one TestHost.Run.
type testRun struct {
	h           *TestHost
	executionID string
	// clock is the simulated time: it moves only when the workflow waits.
	clock     time.Time
	generated int // join sets with a generated ID so far
	joinSets  map[string]*testJoinSet
	children  map[string]*testRequest // by ID
}

// testJoinSet is a join set of a testRun.
type testJoinSet struct {
	id       string
	requests int // submitted so far
	closed   bool
	arrived  []*testRequest // responses not taken yet, in arrival order
	waiting  []*testRequest // children without a result and delays, by submission
}

// testRequest is a child execution or a delay of a join set.
type testRequest struct {
	id      string
	ffqn    string          // empty for a delay
	result  json.RawMessage // a child's result; nil while it has none
	due     time.Time       // a delay's
	expired bool            // a delay that arrived
	taken   bool
	// stub: a child that had no result when it was submitted, and so stands
	// for an execution of an activity stub, which only such can be stubbed.
	stub bool
}

func (q *testRequest) isDelay() bool { return q.ffqn == "" }

// testRunOps are the operations testRun simulates.
var testRunOps = map[string]func(*testRun, []byte) (any, *HostError){
	abi.OpJoinSetCreate: (*testRun).joinSetCreate,
	abi.OpSubmit:        (*testRun).submit,
	abi.OpSubmitDelay:   (*testRun).submitDelay,
	abi.OpJoinNext:      (*testRun).joinNext,
	abi.OpJoinNextTry:   (*testRun).joinNextTry,
	abi.OpGet:           (*testRun).get,
	abi.OpJoinSetClose:  (*testRun).joinSetClose,
	abi.OpSleep:         (*testRun).sleep,
	abi.OpStub:          (*testRun).stub,
}

// op answers a simulated operation.
func (r *testRun) op(op string, req []byte) (any, *HostError) {
	r.expire()
	return testRunOps[op](r, req)
}

// parse decodes a request into v, a pointer to a struct.
func parse(req []byte, v any) *HostError {
	if err := json.Unmarshal(req, v); err != nil {
		return &HostError{Kind: KindBadRequest, Message: err.Error()}
	}
	return nil
}

// expire moves the delays whose time has come to the responses of their
// join sets, the earliest first.
func (r *testRun) expire() {
	for _, js := range r.joinSets {
		for {
			q := js.nextDelay()
			if q == nil || q.due.After(r.clock) {
				break
			}
			js.arrive(q)
		}
	}
}

// nextDelay returns the waiting delay due first, nil if there is none.
func (js *testJoinSet) nextDelay() *testRequest {
	var next *testRequest
	for _, q := range js.waiting {
		if q.isDelay() && (next == nil || q.due.Before(next.due)) {
			next = q
		}
	}
	return next
}

// arrive moves q from the waiting requests to the responses.
func (js *testJoinSet) arrive(q *testRequest) {
	js.waiting = slices.DeleteFunc(js.waiting, func(w *testRequest) bool { return w == q })
	if q.isDelay() {
		q.expired = true
	}
	js.arrived = append(js.arrived, q)
}

// joinSet returns the join set with the given ID.
func (r *testRun) joinSet(id string) (*testJoinSet, *HostError) {
	if js := r.joinSets[id]; js != nil {
		return js, nil
	}
	return nil, &HostError{Kind: KindUnknownJoinSet, Message: fmt.Sprintf("no join set %q", id)}
}

func (r *testRun) joinSetCreate(req []byte) (any, *HostError) {
	var q abi.JoinSetCreateRequest
	if herr := parse(req, &q); herr != nil {
		return nil, herr
	}
	var id string
	if q.Name == nil {
		r.generated++
		id = "g:" + strconv.Itoa(r.generated)
	} else {
		if !abi.ValidJoinSetName(*q.Name) {
			return nil, &HostError{Kind: KindInvalidName, Message: fmt.Sprintf("join set name %q: want 1 to 64 ASCII letters, digits, '-' and '/'", *q.Name)}
		}
		id = "n:" + *q.Name
		if r.joinSets[id] != nil {
			return nil, &HostError{Kind: KindConflict, Message: fmt.Sprintf("join set %q exists", id)}
		}
	}
	if r.joinSets == nil {
		r.joinSets = map[string]*testJoinSet{}
	}
	r.joinSets[id] = &testJoinSet{id: id}
	return id, nil
}

// openJoinSet returns the join set with the given ID if it is open.
func (r *testRun) openJoinSet(id string) (*testJoinSet, *HostError) {
	js, herr := r.joinSet(id)
	if herr != nil {
		return nil, herr
	}
	if js.closed {
		return nil, &HostError{Kind: KindJoinSetClosed, Message: fmt.Sprintf("join set %q is closed", id)}
	}
	return js, nil
}

func (r *testRun) submit(req []byte) (any, *HostError) {
	var q abi.SubmitRequest
	if herr := parse(req, &q); herr != nil {
		return nil, herr
	}
	js, herr := r.openJoinSet(q.JoinSet)
	if herr != nil {
		return nil, herr
	}
	if q.Queue != "" && !abi.ValidQueueName(q.Queue) { // the queue itself means nothing here
		return nil, &HostError{Kind: KindInvalidName, Message: fmt.Sprintf("queue %q: want %s", q.Queue, abi.QueueNameRule)}
	}
	if q.Retry != nil { // nor does the policy: a child here runs once
		if err := q.Retry.Check(); err != nil {
			return nil, &HostError{Kind: KindBadRequest, Message: err.Error()}
		}
	}
	result, herr := r.h.runChild(q.FFQN, q.Params)
	if herr != nil {
		return nil, herr
	}
	js.requests++
	child := &testRequest{id: r.executionID + "." + js.id + "_" + strconv.Itoa(js.requests), ffqn: q.FFQN}
	if r.children == nil {
		r.children = map[string]*testRequest{}
	}
	r.children[child.id] = child
	if result == nil {
		child.stub = true
		js.waiting = append(js.waiting, child)
	} else {
		child.result = result
		js.arrived = append(js.arrived, child)
	}
	return child.id, nil
}

// due returns the time schedule_at says, from the current clock. Delays and
// sleeps need one.
func (r *testRun) due(scheduleAt json.RawMessage) (time.Time, *HostError) {
	if len(scheduleAt) == 0 {
		return time.Time{}, &HostError{Kind: KindBadRequest, Message: "schedule_at is missing"}
	}
	t, err := abi.ResolveScheduleAt(scheduleAt, r.clock)
	if err != nil {
		return time.Time{}, &HostError{Kind: KindBadRequest, Message: fmt.Sprintf("schedule_at: %v", err)}
	}
	return t, nil
}

func (r *testRun) submitDelay(req []byte) (any, *HostError) {
	var q abi.SubmitDelayRequest
	if herr := parse(req, &q); herr != nil {
		return nil, herr
	}
	js, herr := r.openJoinSet(q.JoinSet)
	if herr != nil {
		return nil, herr
	}
	due, herr := r.due(q.ScheduleAt)
	if herr != nil {
		return nil, herr
	}
	js.requests++
	id := "Delay_" + strings.TrimPrefix(r.executionID, "E_") + "." + js.id + "_" + strconv.Itoa(js.requests)
	js.waiting = append(js.waiting, &testRequest{id: id, due: due})
	return id, nil
}

// response is the answer of join_next and join_next_try that takes q.
func (q *testRequest) response() abi.Response {
	if q.isDelay() {
		return abi.DelayResponse(q.id, !q.expired)
	}
	return abi.ExecutionResponse(q.id, q.ffqn, q.result)
}

func (r *testRun) joinNext(req []byte) (any, *HostError) {
	var q abi.JoinNextRequest
	if herr := parse(req, &q); herr != nil {
		return nil, herr
	}
	js, herr := r.joinSet(q.JoinSet)
	if herr != nil {
		return nil, herr
	}
	if len(js.arrived) == 0 {
		// Wait: time passes until the next delay.
		if d := js.nextDelay(); d != nil {
			r.clock = d.due
			r.expire()
		} else if len(js.waiting) > 0 {
			panic(fmt.Sprintf("obelisk: TestHost: join_next on join set %q would wait forever: %s has no result", js.id, js.waiting[0].id))
		}
	}
	next, herr := js.take()
	if herr != nil {
		return nil, herr
	}
	if q.FFQN != "" && next.ffqn != q.FFQN {
		what := "a delay"
		if !next.isDelay() {
			what = "of " + next.ffqn
		}
		return nil, &HostError{Kind: KindFunctionMismatch, Message: fmt.Sprintf("the response of %s is %s, not of %s", next.id, what, q.FFQN)}
	}
	return next.response(), nil
}

// take takes the next response.
func (js *testJoinSet) take() (*testRequest, *HostError) {
	if len(js.arrived) == 0 {
		if len(js.waiting) > 0 {
			return nil, &HostError{Kind: KindPending, Message: fmt.Sprintf("no response in join set %q yet", js.id)}
		}
		return nil, &HostError{Kind: KindAllProcessed, Message: fmt.Sprintf("every response of join set %q has been taken", js.id)}
	}
	next := js.arrived[0]
	js.arrived = js.arrived[1:]
	next.taken = true
	return next, nil
}

func (r *testRun) joinNextTry(req []byte) (any, *HostError) {
	var q abi.JoinNextTryRequest
	if herr := parse(req, &q); herr != nil {
		return nil, herr
	}
	js, herr := r.joinSet(q.JoinSet)
	if herr != nil {
		return nil, herr
	}
	next, herr := js.take()
	if herr != nil {
		return nil, herr
	}
	return next.response(), nil
}

func (r *testRun) get(req []byte) (any, *HostError) {
	var q abi.GetRequest
	if herr := parse(req, &q); herr != nil {
		return nil, herr
	}
	if child := r.children[q.ExecutionID]; child != nil && child.taken {
		return child.result, nil
	}
	return nil, &HostError{Kind: KindNotFound, Message: fmt.Sprintf("no response of %q has been taken", q.ExecutionID)}
}

func (r *testRun) joinSetClose(req []byte) (any, *HostError) {
	var q abi.JoinSetCloseRequest
	if herr := parse(req, &q); herr != nil {
		return nil, herr
	}
	js, herr := r.joinSet(q.JoinSet)
	if herr != nil {
		return nil, herr
	}
	js.closed = true
	for _, q := range js.waiting {
		if !q.isDelay() {
			q.result = json.RawMessage(`{"execution_failure":{"kind":"` + abi.FailureCancelled + `","reason":"join set closed"}}`)
		}
		q.taken = true
	}
	for _, q := range js.arrived {
		q.taken = true
	}
	js.waiting, js.arrived = nil, nil
	return nil, nil
}

func (r *testRun) sleep(req []byte) (any, *HostError) {
	var q abi.SleepRequest
	if herr := parse(req, &q); herr != nil {
		return nil, herr
	}
	due, herr := r.due(q.ScheduleAt)
	if herr != nil {
		return nil, herr
	}
	if due.After(r.clock) {
		r.clock = due
		r.expire()
	}
	return abi.Woke{Seconds: r.clock.Unix(), Nanoseconds: int64(r.clock.Nanosecond())}, nil
}

func (r *testRun) stub(req []byte) (any, *HostError) {
	var q abi.StubRequest
	if herr := parse(req, &q); herr != nil {
		return nil, herr
	}
	if key, _, ok := singleMember(q.Result); !ok || string(key) != "ok" && string(key) != "err" {
		return nil, &HostError{Kind: KindBadRequest, Message: fmt.Sprintf("result %s: want {\"ok\": v} or {\"err\": v}", q.Result)}
	}
	child := r.children[q.ExecutionID]
	if child == nil || !child.stub {
		return nil, &HostError{Kind: KindExecutionNotFound, Message: fmt.Sprintf("no child execution %q of an activity stub", q.ExecutionID)}
	}
	var result bytes.Buffer
	if err := json.Compact(&result, q.Result); err != nil {
		return nil, &HostError{Kind: KindBadRequest, Message: err.Error()}
	}
	if child.result != nil {
		var have bytes.Buffer
		if json.Compact(&have, child.result) != nil || !bytes.Equal(have.Bytes(), result.Bytes()) {
			return nil, &HostError{Kind: KindConflict, Message: fmt.Sprintf("%s already has the result %s", child.id, child.result)}
		}
		return nil, nil
	}
	child.result = result.Bytes()
	for _, js := range r.joinSets {
		if slices.Contains(js.waiting, child) {
			js.arrive(child)
		}
	}
	return nil, nil
}
