package obelisk

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// exchange is one host call a scriptedHost expects: the exact request, and
// the response it answers.
type exchange struct {
	request, response string
}

// scriptedHost answers the host calls of a test with a script, failing the
// test on a request it does not expect.
type scriptedHost struct {
	t      *testing.T
	script []exchange
}

func (s *scriptedHost) call(req []byte) ([]byte, error) {
	s.t.Helper()
	if len(s.script) == 0 {
		s.t.Fatalf("unexpected request %s", req)
	}
	e := s.script[0]
	s.script = s.script[1:]
	if string(req) != e.request {
		s.t.Errorf("request %s\n want %s", req, e.request)
	}
	return []byte(e.response), nil
}

// script returns a Context whose host answers with the script.
func script(t *testing.T, exchanges ...exchange) (Context, *scriptedHost) {
	s := &scriptedHost{t: t, script: exchanges}
	t.Cleanup(func() {
		if len(s.script) > 0 {
			t.Errorf("requests not made: %v", s.script)
		}
	})
	return Context{&runState{host: s.call}}, s
}

func check(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func TestJoinSetRequests(t *testing.T) {
	ctx, _ := script(t,
		exchange{`{"op":"join_set_create"}`, `{"ok":"g:1"}`},
		exchange{`{"op":"join_set_create","name":"a/b-1"}`, `{"ok":"n:a/b-1"}`},
		exchange{`{"op":"submit","join_set":"g:1","ffqn":"t:f/f.f","params":[10,"s"]}`, `{"ok":"E_1.g:1_1"}`},
		exchange{`{"op":"submit","join_set":"g:1","ffqn":"t:f/f.f","params":[]}`, `{"ok":"E_1.g:1_2"}`},
		exchange{`{"op":"submit","join_set":"n:a/b-1","ffqn":"t:f/f.g","params":[[1,2],{"x":"<"}]}`, `{"ok":"E_1.n:a/b-1_1"}`},
		exchange{`{"op":"submit_delay","join_set":"g:1","schedule_at":{"in":{"milliseconds":1500}}}`, `{"ok":"Delay_1.g:1_3"}`},
		exchange{`{"op":"submit_delay","join_set":"g:1","schedule_at":{"at":{"seconds":5,"nanoseconds":6}}}`, `{"ok":"Delay_1.g:1_4"}`},
		exchange{`{"op":"submit_delay","join_set":"g:1","schedule_at":"now"}`, `{"ok":"Delay_1.g:1_5"}`},
		exchange{`{"op":"join_next","join_set":"g:1"}`, `{"ok":{"kind":"execution","id":"E_1.g:1_1","ffqn":"t:f/f.f","result":{"ok":55}}}`},
		exchange{`{"op":"join_next_try","join_set":"g:1"}`, `{"error":{"kind":"pending","message":"m"}}`},
		exchange{`{"op":"join_next_try","join_set":"g:1"}`, `{"ok":{"kind":"delay","id":"Delay_1.g:1_5","cancelled":false}}`},
		exchange{`{"op":"join_next","join_set":"g:1","ffqn":"t:f/f.f"}`, `{"ok":{"kind":"execution","id":"E_1.g:1_2","ffqn":"t:f/f.f","result":{"ok":18446744073709551615}}}`},
		exchange{`{"op":"get","execution_id":"E_1.g:1_1"}`, `{"ok":{"ok":55}}`},
		exchange{`{"op":"join_set_close","join_set":"g:1"}`, `{"ok":null}`},
		exchange{`{"op":"sleep","schedule_at":{"in":{"milliseconds":2000}}}`, `{"ok":{"seconds":10,"nanoseconds":5}}`},
		exchange{`{"op":"sleep","schedule_at":{"in":{"milliseconds":3}}}`, `{"ok":{"seconds":10,"nanoseconds":6}}`},
		exchange{`{"op":"stub","execution_id":"E_1.n:a/b-1_1","result":{"ok":7}}`, `{"ok":null}`},
		exchange{`{"op":"stub","execution_id":"E_1.n:a/b-1_1","result":{"err":{"permanent_failure":"x"}}}`, `{"ok":null}`},
		exchange{`{"op":"stub","execution_id":"E_1.n:a/b-1_1","result":{"ok":null}}`, `{"ok":null}`},
		exchange{`{"op":"schedule","ffqn":"t:f/f.f","params":[1],"schedule_at":"now"}`, `{"ok":"E_2"}`},
	)
	js, err := NewJoinSet(ctx)
	check(t, "NewJoinSet", err)
	if js.ID() != "g:1" || js.String() != "g:1" {
		t.Errorf("ID %q", js.ID())
	}
	named, err := NewJoinSetNamed(ctx, "a/b-1")
	check(t, "NewJoinSetNamed", err)
	if named.ID() != "n:a/b-1" {
		t.Errorf("named ID %q", named.ID())
	}
	if id, err := Submit(ctx, js, "t:f/f.f", uint8(10), "s"); err != nil || id != "E_1.g:1_1" {
		t.Errorf("Submit: %q %v", id, err)
	}
	if id, err := Submit(ctx, js, "t:f/f.f"); err != nil || id != "E_1.g:1_2" {
		t.Errorf("Submit without params: %q %v", id, err)
	}
	if id, err := Submit(ctx, named, "t:f/f.g", []int{1, 2}, map[string]string{"x": "<"}); err != nil || id != "E_1.n:a/b-1_1" {
		t.Errorf("Submit, slow path: %q %v", id, err)
	}
	for i, at := range []ScheduleAt{In(1500 * time.Millisecond), At(time.Unix(5, 6)), Now()} {
		if _, err := SubmitDelay(ctx, js, at); err != nil {
			t.Errorf("SubmitDelay %d: %v", i, err)
		}
	}
	r, err := JoinNext(ctx, js)
	check(t, "JoinNext", err)
	if want := (Response{Kind: ResponseExecution, ID: "E_1.g:1_1", FFQN: "t:f/f.f", Result: json.RawMessage(`{"ok":55}`)}); !reflect.DeepEqual(r, want) {
		t.Errorf("JoinNext = %+v, want %+v", r, want)
	}
	var v uint64
	if err := r.Decode(&v); err != nil || v != 55 {
		t.Errorf("Decode: %v %v", v, err)
	}
	if _, ok, err := JoinNextTry(ctx, js); ok || err != nil {
		t.Errorf("JoinNextTry pending: %v %v", ok, err)
	}
	r, ok, err := JoinNextTry(ctx, js)
	if want := (Response{Kind: ResponseDelay, ID: "Delay_1.g:1_5"}); !ok || err != nil || !reflect.DeepEqual(r, want) {
		t.Errorf("JoinNextTry = %+v, %v, %v", r, ok, err)
	}
	if err := r.Decode(nil); err == nil || !strings.Contains(err.Error(), "Delay_1.g:1_5 is a delay, not an execution") {
		t.Errorf("Decode of a delay: %v", err)
	}
	if id, v, err := AwaitNext[uint64](ctx, js, "t:f/f.f"); err != nil || id != "E_1.g:1_2" || v != 18446744073709551615 {
		t.Errorf("AwaitNext: %q %v %v", id, v, err)
	}
	if v, err := Get[uint64](ctx, "E_1.g:1_1"); err != nil || v != 55 {
		t.Errorf("Get: %v %v", v, err)
	}
	check(t, "Close", js.Close(ctx))
	if woke, err := Sleep(ctx, In(2*time.Second)); err != nil || !woke.Equal(time.Unix(10, 5)) {
		t.Errorf("Sleep: %v %v", woke, err)
	}
	check(t, "SleepFor", SleepFor(ctx, 3*time.Millisecond))
	check(t, "StubOk", StubOk(ctx, "E_1.n:a/b-1_1", uint64(7)))
	check(t, "StubErr", StubErr(ctx, "E_1.n:a/b-1_1", map[string]string{"permanent_failure": "x"}))
	check(t, "StubOk nil", StubOk(ctx, "E_1.n:a/b-1_1", nil))
	if id, err := Schedule(ctx, ScheduleAt{}, "t:f/f.f", 1); err != nil || id != "E_2" {
		t.Errorf("Schedule: %q %v", id, err)
	}
}

// The hand-written requests are what encoding/json makes of them.
func TestJoinSetRequestsEscaping(t *testing.T) {
	for _, s := range []string{"", `a"b\c`, "\xff\u2028<&>\n"} {
		want, err := encodeRequest("get", struct {
			ExecutionID string `json:"execution_id"`
		}{s})
		check(t, "encodeRequest", err)
		got := append(appendStringMember(newRequest("get", 0), "execution_id", s), '}')
		if string(got) != string(want) {
			t.Errorf("%q: got %s, want %s", s, got, want)
		}
		want, err = encodeRequest("stub", struct {
			ExecutionID string         `json:"execution_id"`
			Result      map[string]any `json:"result"`
		}{s, map[string]any{"ok": []string{s}}})
		check(t, "encodeRequest", err)
		host := &fakeHost{resp: `{"ok":null}`}
		check(t, "StubOk", StubOk(Context{&runState{host: host.call}}, s, []string{s}))
		if host.requests[0] != string(want) {
			t.Errorf("%q: stub %s, want %s", s, host.requests[0], want)
		}
	}
	if err := StubOk(Context{&runState{host: new(fakeHost).call}}, "E", make(chan int)); err == nil || !strings.Contains(err.Error(), "obelisk: stub: encoding the result") {
		t.Errorf("unencodable stub: %v", err)
	}
}

func TestJoinSetErrors(t *testing.T) {
	hostErr := func(kind string) string { return `{"error":{"kind":"` + kind + `","message":"m"}}` }
	isHostErr := func(t *testing.T, err error, op, kind string) {
		t.Helper()
		if he, ok := errors.AsType[*HostError](err); !ok || *he != (HostError{op, kind, "m"}) {
			t.Errorf("got %T %v, want a %s host error of %s", err, err, kind, op)
		}
	}
	js := JoinSet{id: "g:1"}

	ctx, _ := script(t, exchange{`{"op":"join_set_create","name":"a a"}`, hostErr(KindInvalidName)})
	_, err := NewJoinSetNamed(ctx, "a a")
	isHostErr(t, err, "join_set_create", KindInvalidName)

	ctx, _ = script(t, exchange{`{"op":"submit","join_set":"g:1","ffqn":"t:f/f.f","params":[]}`, hostErr(KindJoinSetClosed)})
	_, err = Submit(ctx, js, "t:f/f.f")
	isHostErr(t, err, "submit", KindJoinSetClosed)

	ctx, _ = script(t, exchange{`{"op":"submit_delay","join_set":"g:1","schedule_at":"now"}`, hostErr(KindUnknownJoinSet)})
	_, err = SubmitDelay(ctx, js, Now())
	isHostErr(t, err, "submit_delay", KindUnknownJoinSet)

	ctx, _ = script(t, exchange{`{"op":"join_next","join_set":"g:1"}`, hostErr(KindAllProcessed)})
	_, err = JoinNext(ctx, js)
	isHostErr(t, err, "join_next", KindAllProcessed)

	ctx, _ = script(t, exchange{`{"op":"join_next_try","join_set":"g:1"}`, hostErr(KindAllProcessed)})
	_, ok, err := JoinNextTry(ctx, js)
	if ok {
		t.Error("JoinNextTry all processed: ok")
	}
	isHostErr(t, err, "join_next_try", KindAllProcessed)

	ctx, _ = script(t, exchange{`{"op":"join_next","join_set":"g:1","ffqn":"t:f/f.f"}`, hostErr(KindFunctionMismatch)})
	_, _, err = AwaitNext[uint64](ctx, js, "t:f/f.f")
	isHostErr(t, err, "join_next", KindFunctionMismatch)

	ctx, _ = script(t, exchange{`{"op":"get","execution_id":"E_1"}`, hostErr(KindNotFound)})
	_, err = Get[uint64](ctx, "E_1")
	isHostErr(t, err, "get", KindNotFound)

	ctx, _ = script(t, exchange{`{"op":"join_set_close","join_set":"g:1"}`, hostErr(KindUnknownJoinSet)})
	isHostErr(t, js.Close(ctx), "join_set_close", KindUnknownJoinSet)

	ctx, _ = script(t, exchange{`{"op":"sleep","schedule_at":"now"}`, hostErr(KindCancelled)})
	_, err = Sleep(ctx, Now())
	isHostErr(t, err, "sleep", KindCancelled)

	for _, kind := range []string{KindConflict, KindExecutionNotFound, KindTypeCheck} {
		ctx, _ = script(t, exchange{`{"op":"stub","execution_id":"E_1","result":{"ok":1}}`, hostErr(kind)})
		isHostErr(t, StubOk(ctx, "E_1", 1), "stub", kind)
	}

	// A delay where AwaitNext accepts any function.
	ctx, _ = script(t, exchange{`{"op":"join_next","join_set":"g:1"}`, `{"ok":{"kind":"delay","id":"Delay_1","cancelled":true}}`})
	if id, _, err := AwaitNext[uint64](ctx, js, ""); id != "Delay_1" || err == nil || !strings.Contains(err.Error(), "Delay_1 is a delay, not an execution") {
		t.Errorf("AwaitNext of a delay: %q %v", id, err)
	}
}

// The child's outcome comes back as Call returns it, with the execution ID.
func TestJoinSetResults(t *testing.T) {
	js := JoinSet{id: "g:1"}
	next := func(result string) exchange {
		return exchange{`{"op":"join_next","join_set":"g:1","ffqn":"t:f/f.f"}`,
			`{"ok":{"kind":"execution","id":"E_1.g:1_1","ffqn":"t:f/f.f","result":` + result + `}}`}
	}
	get := func(result string) exchange {
		return exchange{`{"op":"get","execution_id":"E_1.g:1_1"}`, `{"ok":` + result + `}`}
	}

	ctx, _ := script(t, next(`{"err":"boom"}`), get(`{"err":"boom"}`))
	id, _, err := AwaitNext[uint64](ctx, js, "t:f/f.f")
	if er, ok := errors.AsType[*ErrResult](err); !ok || id != "E_1.g:1_1" || er.FFQN != "t:f/f.f" || er.ExecutionID != "E_1.g:1_1" || string(er.Value) != `"boom"` {
		t.Errorf("AwaitNext err: %q %#v", id, err)
	} else if got, want := err.Error(), `t:f/f.f (E_1.g:1_1) returned err "boom"`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	_, err = Get[uint64](ctx, "E_1.g:1_1")
	if er, ok := errors.AsType[*ErrResult](err); !ok || er.FFQN != "" || er.ExecutionID != "E_1.g:1_1" {
		t.Errorf("Get err: %#v", err)
	} else if got, want := err.Error(), `E_1.g:1_1 returned err "boom"`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}

	failure := `{"execution_failure":{"kind":"cancelled","reason":"r"}}`
	ctx, _ = script(t, next(failure), get(failure))
	_, _, err = AwaitNext[uint64](ctx, js, "t:f/f.f")
	if ef, ok := errors.AsType[*ExecutionFailure](err); !ok || *ef != (ExecutionFailure{FFQN: "t:f/f.f", ExecutionID: "E_1.g:1_1", Kind: "cancelled", Reason: "r"}) {
		t.Errorf("AwaitNext failure: %#v", err)
	} else if got, want := err.Error(), "t:f/f.f (E_1.g:1_1) failed: cancelled: r"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	_, err = Get[struct{}](ctx, "E_1.g:1_1")
	if ef, ok := errors.AsType[*ExecutionFailure](err); !ok || ef.Kind != "cancelled" || ef.ExecutionID != "E_1.g:1_1" {
		t.Errorf("Get failure: %#v", err)
	} else if got, want := err.Error(), "E_1.g:1_1 failed: cancelled: r"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}

	ctx, _ = script(t, next(`{"ok":"text"}`), get(`{"ok":"text"}`))
	if _, _, err := AwaitNext[uint64](ctx, js, "t:f/f.f"); err == nil || !strings.Contains(err.Error(), "decoding the result of t:f/f.f (E_1.g:1_1) as uint64") {
		t.Errorf("AwaitNext decoding: %v", err)
	}
	if _, err := Get[uint64](ctx, "E_1.g:1_1"); err == nil || !strings.Contains(err.Error(), "decoding the result of E_1.g:1_1 as uint64") {
		t.Errorf("Get decoding: %v", err)
	}

	ctx, _ = script(t, next(`{"ok":null}`), get(`{"ok":{"a":[1]}}`))
	if _, _, err := AwaitNext[struct{}](ctx, js, "t:f/f.f"); err != nil {
		t.Errorf("AwaitNext no value: %v", err)
	}
	if v, err := Get[map[string][]int](ctx, "E_1.g:1_1"); err != nil || len(v["a"]) != 1 {
		t.Errorf("Get record: %v %v", v, err)
	}

	r := Response{Kind: ResponseExecution, ID: "E_1", FFQN: "t:f/f.f", Result: json.RawMessage(`{"ok":[1]}`)}
	var n uint64
	if err := r.Decode(&n); err == nil || !strings.Contains(err.Error(), "decoding the result of t:f/f.f (E_1) as *uint64") {
		t.Errorf("Decode: %v", err)
	}
	if err := r.Decode(nil); err != nil {
		t.Errorf("Decode(nil): %v", err)
	}
}

func TestParseResponse(t *testing.T) {
	for _, c := range []struct {
		raw  string
		fast bool
		want Response
	}{
		{`{"kind":"execution","id":"E_1","ffqn":"a:b/c.d","result":{"ok":1}}`, true,
			Response{Kind: "execution", ID: "E_1", FFQN: "a:b/c.d", Result: json.RawMessage(`{"ok":1}`)}},
		{` { "kind" : "delay" , "id" : "D\u00e9" , "cancelled" : true } `, true, Response{Kind: "delay", ID: "Dé", Cancelled: true}},
		{`{"kind":"delay","id":"D","cancelled":false}`, true, Response{Kind: "delay", ID: "D"}},
		{`{"kind":"delay","id":"D","extra":1}`, false, Response{Kind: "delay", ID: "D"}},
		{`{"kind":"execution","id":"E","ffqn":"f","result":{"ok":1},"cancelled":null}`, false,
			Response{Kind: "execution", ID: "E", FFQN: "f", Result: json.RawMessage(`{"ok":1}`)}},
	} {
		r, ok := parseResponse([]byte(c.raw))
		if ok != c.fast || ok && !reflect.DeepEqual(r, c.want) {
			t.Errorf("parseResponse(%s) = %+v, %v", c.raw, r, ok)
		}
		host := &fakeHost{resp: `{"ok":` + c.raw + `}`}
		r, err := JoinNext(Context{&runState{host: host.call}}, JoinSet{id: "g:1"})
		if err != nil || !reflect.DeepEqual(r, c.want) {
			t.Errorf("JoinNext of %s = %+v, %v", c.raw, r, err)
		}
	}
	for _, bad := range []string{`1`, `{}`, `{"kind":"other","id":"x"}`, `{"kind":"execution","id":"E"}`, `{"kind":"delay"}`, `{"kind":"execution","id":"E","result":null}`} {
		host := &fakeHost{resp: `{"ok":` + bad + `}`}
		if msg := mustPanic(t, func() { _, _ = JoinNext(Context{&runState{host: host.call}}, JoinSet{id: "g:1"}) }); !strings.Contains(msg, "obelisk: join_next: malformed response") {
			t.Errorf("%s: panic %q", bad, msg)
		}
	}
}

func TestSleepResponse(t *testing.T) {
	for raw, want := range map[string]time.Time{
		`{"seconds":1700000000,"nanoseconds":5}`:   time.Unix(1700000000, 5),
		`{"nanoseconds":5,"seconds":-1}`:           time.Unix(-1, 5),
		`{"seconds":7,"nanoseconds":0,"other":""}`: time.Unix(7, 0),
	} {
		host := &fakeHost{resp: `{"ok":` + raw + `}`}
		if got, err := Sleep(Context{&runState{host: host.call}}, Now()); err != nil || !got.Equal(want) {
			t.Errorf("%s: %v %v", raw, got, err)
		}
	}
	host := &fakeHost{resp: `{"ok":"soon"}`}
	if msg := mustPanic(t, func() { _, _ = Sleep(Context{&runState{host: host.call}}, Now()) }); !strings.Contains(msg, "obelisk: sleep: malformed response") {
		t.Errorf("panic %q", msg)
	}
}

func TestScheduleAt(t *testing.T) {
	for _, c := range []struct {
		at   ScheduleAt
		want string
	}{
		{ScheduleAt{}, `"now"`},
		{Now(), `"now"`},
		{In(1500*time.Millisecond + 999*time.Microsecond), `{"in":{"milliseconds":1500}}`},
		{At(time.Unix(-5, 999999999)), `{"at":{"seconds":-5,"nanoseconds":999999999}}`},
	} {
		if got := string(c.at.json()); got != c.want {
			t.Errorf("got %s, want %s", got, c.want)
		}
	}
}

func TestKinds(t *testing.T) {
	for kind, want := range map[string]string{
		KindAllProcessed: "all_processed", KindPending: "pending", KindFunctionMismatch: "function_mismatch",
		KindNotFound: "not_found", KindConflict: "conflict", KindInvalidName: "invalid_name",
		KindUnknownJoinSet: "unknown_join_set", KindJoinSetClosed: "join_set_closed", KindCancelled: "cancelled",
		KindExecutionNotFound: "execution_not_found",
	} {
		if kind != want {
			t.Errorf("%q != %q", kind, want)
		}
	}
}
