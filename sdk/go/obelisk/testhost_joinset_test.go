package obelisk

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// runWorkflow runs fn as an exported function on h and returns its output.
func runWorkflow(t *testing.T, h *TestHost, fn func(ctx Context) (string, error)) string {
	t.Helper()
	return string(h.Run(register(t, fn)))
}

// kindOf returns the kind of a *HostError or *ExecutionFailure, else the error.
func kindOf(err error) string {
	if he, ok := errors.AsType[*HostError](err); ok {
		return he.Kind
	}
	if ef, ok := errors.AsType[*ExecutionFailure](err); ok {
		return "failure " + ef.Kind
	}
	return fmt.Sprint(err)
}

func TestTestHostJoinSets(t *testing.T) {
	var calls []string
	h := &TestHost{ExecutionID: "E_W", Call: func(ffqn string, params json.RawMessage) (json.RawMessage, error) {
		calls = append(calls, ffqn+string(params))
		switch ffqn {
		case "t:f/f.f":
			return json.RawMessage(`{"ok":` + string(params[1:len(params)-1]) + `}`), nil
		case "t:f/f.stub":
			return nil, nil
		}
		return nil, errors.New("no such function")
	}}
	out := runWorkflow(t, h, func(ctx Context) (string, error) {
		var log []string
		add := func(format string, args ...any) { log = append(log, fmt.Sprintf(format, args...)) }
		js, _ := NewJoinSet(ctx)
		js2, _ := NewJoinSet(ctx)
		named, _ := NewJoinSetNamed(ctx, "n-1/x")
		_, err := NewJoinSetNamed(ctx, "n-1/x")
		add("%s %s %s conflict=%s", js, js2, named, kindOf(err))
		_, err = NewJoinSetNamed(ctx, "a b")
		add("invalid=%s", kindOf(err))

		id1, _ := Submit(ctx, js, "t:f/f.f", 1)
		id2, _ := Submit(ctx, js, "t:f/f.f", 2)
		_, err = Submit(ctx, js, "t:f/f.none")
		add("%s %s missing=%s", id1, id2, kindOf(err))
		_, err = Get[int](ctx, id1)
		add("get before=%s", kindOf(err))
		r, _ := JoinNext(ctx, js)
		add("next=%s", r.ID)
		v, _ := Get[int](ctx, id1)
		add("get=%d", v)
		_, _, err = AwaitNext[int](ctx, js, "t:f/f.g")
		add("mismatch=%s", kindOf(err))
		_, err = JoinNext(ctx, js)
		add("then=%s", kindOf(err))
		_, ok, err := JoinNextTry(ctx, js)
		add("try=%v %s", ok, kindOf(err))

		// A stub arrives when it is written; a delay when the workflow waits.
		stubID, _ := Submit(ctx, js2, "t:f/f.stub")
		delayID, _ := SubmitDelay(ctx, js2, In(time.Hour))
		_, ok, err = JoinNextTry(ctx, js2)
		add("%s %s pending=%v %v", stubID, delayID, ok, err)
		add("stub=%s,%s,%s", kindOf(StubOk(ctx, stubID, 7)), kindOf(StubOk(ctx, stubID, 7)), kindOf(StubOk(ctx, stubID, 8)))
		add("stub unknown=%s", kindOf(StubOk(ctx, "E_X", 1)))
		id, v, err := AwaitNext[int](ctx, js2, "t:f/f.stub")
		add("await=%s %d %v", id, v, err)
		r, _ = JoinNext(ctx, js2)
		add("delay=%s %s cancelled=%v", r.Kind, r.ID, r.Cancelled)

		// Close cancels what has no response yet.
		stubID, _ = Submit(ctx, named, "t:f/f.stub")
		doneID, _ := Submit(ctx, named, "t:f/f.f", 3)
		SubmitDelay(ctx, named, In(time.Minute))
		add("close=%v", named.Close(ctx))
		_, err = Get[int](ctx, stubID)
		v, _ = Get[int](ctx, doneID)
		add("closed: %s %d", kindOf(err), v)
		_, err = Submit(ctx, named, "t:f/f.f", 4)
		add("submit closed=%s", kindOf(err))
		_, err = JoinNext(ctx, named)
		add("next closed=%s", kindOf(err))
		add("unknown=%s", kindOf(JoinSet{id: "g:9"}.Close(ctx)))
		return strings.Join(log, "\n"), nil
	})
	var got string
	if err := json.Unmarshal([]byte(out), &struct{ Ok *string }{&got}); err != nil {
		t.Fatalf("output %s", out)
	}
	want := `g:1 g:2 n:n-1/x conflict=conflict
invalid=invalid_name
E_W.g:1_1 E_W.g:1_2 missing=function_not_found
get before=not_found
next=E_W.g:1_1
get=1
mismatch=function_mismatch
then=all_processed
try=false all_processed
E_W.g:2_1 Delay_W.g:2_2 pending=false <nil>
stub=<nil>,<nil>,conflict
stub unknown=execution_not_found
await=E_W.g:2_1 7 <nil>
delay=delay Delay_W.g:2_2 cancelled=false
close=<nil>
closed: failure cancelled 3
submit closed=join_set_closed
next closed=all_processed
unknown=unknown_join_set`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if want := "t:f/f.f[1] t:f/f.f[2] t:f/f.none[] t:f/f.stub[] t:f/f.stub[] t:f/f.f[3]"; strings.Join(calls, " ") != want {
		t.Errorf("calls %s, want %s", strings.Join(calls, " "), want)
	}
}

func TestTestHostDelays(t *testing.T) {
	h := &TestHost{Call: func(ffqn string, params json.RawMessage) (json.RawMessage, error) {
		if ffqn == "t:f/f.slow" {
			return nil, nil
		}
		return json.RawMessage(`{"ok":null}`), nil
	}}
	out := runWorkflow(t, h, func(ctx Context) (string, error) {
		var log []string
		js, _ := NewJoinSet(ctx)
		// Children beat delays; delays come in the order they are due.
		SubmitDelay(ctx, js, In(2*time.Second))
		SubmitDelay(ctx, js, In(time.Second))
		Submit(ctx, js, "t:f/f.fast")
		for range 3 {
			r, _ := JoinNext(ctx, js)
			log = append(log, r.ID)
		}
		// A delay already due arrives before what is submitted next.
		SubmitDelay(ctx, js, Now())
		Submit(ctx, js, "t:f/f.fast")
		for range 2 {
			r, _ := JoinNext(ctx, js)
			log = append(log, r.ID)
		}
		// A child without a result loses against a delay.
		Submit(ctx, js, "t:f/f.slow")
		SubmitDelay(ctx, js, In(time.Millisecond))
		r, _ := JoinNext(ctx, js)
		log = append(log, r.ID)
		js.Close(ctx)

		// Sleep moves the clock; a delay due before the wake time has arrived.
		js2, _ := NewJoinSet(ctx)
		SubmitDelay(ctx, js2, In(time.Hour))
		start, _ := Sleep(ctx, Now())
		woke, _ := Sleep(ctx, In(2*time.Hour))
		_, ok, _ := JoinNextTry(ctx, js2)
		log = append(log, fmt.Sprintf("slept %v, delay arrived %v", woke.Sub(start), ok))
		at, _ := Sleep(ctx, At(time.Unix(1, 0)))
		log = append(log, fmt.Sprintf("past %v", at.Equal(woke)))
		return strings.Join(log, " "), nil
	})
	want := `{"ok":"E_TEST.g:1_3 Delay_TEST.g:1_2 Delay_TEST.g:1_1 Delay_TEST.g:1_4 E_TEST.g:1_5 Delay_TEST.g:1_7 slept 2h0m0s, delay arrived true past true"}`
	if out != want {
		t.Errorf("got  %s\nwant %s", out, want)
	}
}

func TestTestHostWaitsForever(t *testing.T) {
	h := &TestHost{Call: func(string, json.RawMessage) (json.RawMessage, error) { return nil, nil }}
	ffqn := register(t, func(ctx Context) error {
		js, _ := NewJoinSet(ctx)
		Submit(ctx, js, "t:f/f.stub")
		_, err := JoinNext(ctx, js)
		return err
	})
	if msg := mustPanic(t, func() { h.Run(ffqn) }); !strings.Contains(msg, `join_next on join set "g:1" would wait forever: E_TEST.g:1_1 has no result`) {
		t.Errorf("panic %q", msg)
	}
	ffqn = register(t, func(ctx Context) error { return CallVoid(ctx, "t:f/f.stub") })
	if msg := mustPanic(t, func() { h.Run(ffqn) }); !strings.Contains(msg, "the call would wait forever") {
		t.Errorf("panic %q", msg)
	}
}

// A handler in Ops replaces the simulation.
func TestTestHostOpsOverride(t *testing.T) {
	h := &TestHost{Ops: map[string]OpHandler{
		"join_set_create": func(req json.RawMessage) (any, error) { return "n:mine", nil },
	}}
	out := runWorkflow(t, h, func(ctx Context) (string, error) {
		js, err := NewJoinSet(ctx)
		if err != nil {
			return "", err
		}
		_, err = SubmitDelay(ctx, js, Now())
		return js.ID(), err
	})
	if want := `{"err":"obelisk: submit_delay: unknown_join_set: no join set \"n:mine\""}`; out != want {
		t.Errorf("got %s, want %s", out, want)
	}
}

func TestTestHostBadRequests(t *testing.T) {
	out := runWorkflow(t, new(TestHost), func(ctx Context) (string, error) {
		var kinds []string
		for _, op := range []struct {
			op  string
			req any
		}{
			{"sleep", map[string]any{"schedule_at": "later"}},
			{"sleep", map[string]any{"schedule_at": map[string]any{"in": map[string]int{"weeks": 1}}}},
			{"sleep", map[string]any{"schedule_at": map[string]any{"in": map[string]int{"days": 1, "hours": 1}}}},
			{"sleep", map[string]any{"schedule_at": 5}},
			{"stub", map[string]any{"execution_id": "E", "result": 5}},
			{"submit", map[string]any{"join_set": 5}},
		} {
			kinds = append(kinds, kindOf(ctx.HostCall(op.op, op.req, nil)))
		}
		return strings.Join(kinds, " "), nil
	})
	if want := `{"ok":"bad_request bad_request bad_request bad_request bad_request bad_request"}`; out != want {
		t.Errorf("got %s, want %s", out, want)
	}
}
