package obelisk

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
)

var registered int

// register exports fn under a new name.
func register(t *testing.T, fn any) string {
	t.Helper()
	registered++
	ffqn := fmt.Sprintf("test:sdk/fns.fn-%d", registered)
	Export(ffqn, fn)
	t.Cleanup(func() { delete(exports, ffqn) })
	return ffqn
}

// mustPanic runs f and returns the panic message, failing if f returns.
func mustPanic(t *testing.T, f func()) (msg string) {
	t.Helper()
	defer func() {
		r := recover()
		if r == nil {
			t.Fatal("no panic")
		}
		msg = fmt.Sprint(r)
	}()
	f()
	return ""
}

func TestResults(t *testing.T) {
	type rec struct {
		FirstName string `json:"first_name"`
		Tags      []string
	}
	cases := []struct {
		name string
		fn   any
		want string
	}{
		{"ok value", func(Context) (uint64, error) { return math.MaxUint64, nil }, `{"ok":18446744073709551615}`},
		{"ok record", func(Context) (rec, error) { return rec{"a<b>", nil}, nil }, `{"ok":{"first_name":"a<b>","Tags":null}}`},
		{"ok no value", func(Context) error { return nil }, `{"ok":null}`},
		{"plain error", func(Context) (uint32, error) { return 7, errors.New("boom") }, `{"err":"boom"}`},
		{"plain error no value", func(Context) error { return errors.New("boom") }, `{"err":"boom"}`},
		{"Err variant", func(Context) error {
			return Err(map[string]string{"permanent_failure": "bad"})
		}, `{"err":{"permanent_failure":"bad"}}`},
		{"wrapped Err", func(Context) (string, error) {
			return "", fmt.Errorf("context: %w", Err("value"))
		}, `{"err":"value"}`},
		{"Err nil", func(Context) error { return Err(nil) }, `{"err":null}`},
		{"zero ErrResult", func(Context) error { return &ErrResult{} }, `{"err":null}`},
		{"child err passes through", func(Context) error {
			return &ErrResult{FFQN: "a:b/c.d", Value: json.RawMessage(`{"transient":"x"}`)}
		}, `{"err":{"transient":"x"}}`},
		{"child err message with %v", func(Context) error {
			return fmt.Errorf("child: %v", &ErrResult{FFQN: "a:b/c.d", Value: json.RawMessage(`"x"`)})
		}, `{"err":"child: a:b/c.d returned err \"x\""}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ffqn := register(t, c.fn)
			if got := string(new(TestHost).Run(ffqn)); got != c.want {
				t.Errorf("got %s, want %s", got, c.want)
			}
		})
	}
}

func TestParams(t *testing.T) {
	type point struct {
		X int32 `json:"x"`
		Y int32 `json:"y"`
	}
	var got []any
	ffqn := register(t, func(ctx Context, a uint64, s string, p point, o *string, l []uint8, v any) error {
		got = []any{a, s, p, o, l, v}
		return nil
	})
	out := run([]byte(`{"ffqn":"`+ffqn+`","params":[18446744073709551615,"x",{"x":1,"y":-2},null,[1,2],12345678901234567890],"execution_id":"E_1","attempt":3}`), nil, nil, nil)
	if string(out) != `{"ok":null}` {
		t.Fatalf("output %s", out)
	}
	want := []any{uint64(math.MaxUint64), "x", point{1, -2}, (*string)(nil), []uint8{1, 2}, json.Number("12345678901234567890")}
	if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", want) {
		t.Errorf("got %#v\nwant %#v", got, want)
	}
}

func TestContext(t *testing.T) {
	var gotID string
	var gotAttempt int
	ffqn := register(t, func(ctx Context) error {
		gotID, gotAttempt = ctx.ExecutionID(), ctx.Attempt()
		return nil
	})
	(&TestHost{ExecutionID: "E_42", Attempt: 3}).Run(ffqn)
	if gotID != "E_42" || gotAttempt != 3 {
		t.Errorf("got %q, %d", gotID, gotAttempt)
	}
	(&TestHost{}).Run(ffqn)
	if gotID != "E_TEST" || gotAttempt != 1 {
		t.Errorf("defaults: got %q, %d", gotID, gotAttempt)
	}
}

func TestTraps(t *testing.T) {
	ffqn := register(t, func(ctx Context, n uint8) error {
		if n == 0 {
			panic("zero")
		}
		return nil
	})
	cases := []struct {
		name, input, want string
	}{
		{"malformed input", `{`, "malformed run input"},
		{"unknown function", `{"ffqn":"a:b/c.d","params":[]}`, `function "a:b/c.d" is not exported by this component (it exports ` + ffqn},
		{"too few params", `{"ffqn":"` + ffqn + `","params":[]}`, "got 0 params, want 1"},
		{"too many params", `{"ffqn":"` + ffqn + `","params":[1,2]}`, "got 2 params, want 1"},
		{"params not an array", `{"ffqn":"` + ffqn + `","params":{}}`, "params are not a JSON array"},
		{"param out of range", `{"ffqn":"` + ffqn + `","params":[256]}`, "param 0 (256) does not decode into uint8"},
		{"panic", `{"ffqn":"` + ffqn + `","params":[0]}`, "zero"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msg := mustPanic(t, func() { run([]byte(c.input), nil, nil, nil) })
			if !strings.Contains(msg, c.want) {
				t.Errorf("panic %q does not contain %q", msg, c.want)
			}
		})
	}
}

func TestExportRejects(t *testing.T) {
	cases := []struct {
		name, ffqn string
		fn         any
		want       string
	}{
		{"not a func", "a:b/c.d", 42, "want a func"},
		{"nil func", "a:b/c.d", (func(Context) error)(nil), "want a func"},
		{"no context", "a:b/c.d", func(uint8) error { return nil }, "first parameter must be an obelisk.Context"},
		{"no error", "a:b/c.d", func(Context) uint8 { return 0 }, "want results"},
		{"three results", "a:b/c.d", func(Context) (int, int, error) { return 0, 0, nil }, "want results"},
		{"variadic", "a:b/c.d", func(Context, ...int) error { return nil }, "variadic"},
		{"bad ffqn", "fibo", func(Context) error { return nil }, "want namespace:package/interface.function"},
		{"no function", "a:b/c", func(Context) error { return nil }, "want namespace:package/interface.function"},
		{"no interface", "a:b.c", func(Context) error { return nil }, "want namespace:package/interface.function"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msg := mustPanic(t, func() { Export(c.ffqn, c.fn) })
			if !strings.Contains(msg, c.want) {
				t.Errorf("panic %q does not contain %q", msg, c.want)
			}
		})
	}
	ffqn := register(t, func(Context) error { return nil })
	if msg := mustPanic(t, func() { Export(ffqn, func(Context) error { return nil }) }); !strings.Contains(msg, "exported twice") {
		t.Errorf("duplicate: %q", msg)
	}
	// Versions are allowed, and split at the last dot.
	Export("a:b/c@1.2.3.d", func(Context) error { return nil })
	delete(exports, "a:b/c@1.2.3.d")
}

// fakeHost answers every host request with resp and records the requests.
type fakeHost struct {
	requests []string
	resp     string
}

func (f *fakeHost) call(req []byte) ([]byte, error) {
	f.requests = append(f.requests, string(req))
	return []byte(f.resp), nil
}

func TestCall(t *testing.T) {
	ctx := func(resp string) (Context, *fakeHost) {
		f := &fakeHost{resp: resp}
		return Context{&runState{host: f.call}}, f
	}

	c, f := ctx(`{"ok":{"ok":18446744073709551615}}`)
	v, err := Call[uint64](c, "t:f/f.f", uint8(10), "s", []int{1})
	if err != nil || v != math.MaxUint64 {
		t.Errorf("ok: %v, %v", v, err)
	}
	if want := `{"op":"call","ffqn":"t:f/f.f","params":[10,"s",[1]]}`; f.requests[0] != want {
		t.Errorf("request %s, want %s", f.requests[0], want)
	}

	c, f = ctx(`{"ok":{"ok":null}}`)
	if err := CallVoid(c, "t:f/f.f"); err != nil {
		t.Errorf("CallVoid: %v", err)
	}
	if want := `{"op":"call","ffqn":"t:f/f.f","params":[]}`; f.requests[0] != want {
		t.Errorf("request %s, want %s", f.requests[0], want)
	}

	c, _ = ctx(`{"ok":{"err":{"permanent_failure":"x"}}}`)
	_, err = Call[uint64](c, "t:f/f.f")
	er, ok := errors.AsType[*ErrResult](err)
	if !ok {
		t.Fatalf("err: %T %v", err, err)
	}
	var variant map[string]string
	if err := er.Decode(&variant); err != nil || variant["permanent_failure"] != "x" {
		t.Errorf("decode: %v %v", variant, err)
	}
	if got, want := err.Error(), `t:f/f.f returned err {"permanent_failure":"x"}`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}

	c, _ = ctx(`{"ok":{"execution_failure":{"kind":"timed_out","reason":"lock expired"}}}`)
	err = CallVoid(c, "t:f/f.f")
	ef, ok := errors.AsType[*ExecutionFailure](err)
	if !ok || *ef != (ExecutionFailure{FFQN: "t:f/f.f", Kind: "timed_out", Reason: "lock expired"}) {
		t.Errorf("execution failure: %T %v", err, err)
	}
	if got, want := err.Error(), "t:f/f.f failed: timed_out: lock expired"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}

	for _, kind := range []string{KindFunctionNotFound, KindTypeCheck} {
		c, _ = ctx(`{"error":{"kind":"` + kind + `","message":"m"}}`)
		_, err = Call[string](c, "t:f/f.f")
		he, ok := errors.AsType[*HostError](err)
		if !ok || *he != (HostError{"call", kind, "m"}) {
			t.Errorf("%s: %T %v", kind, err, err)
		}
		if got, want := err.Error(), "obelisk: call: "+kind+": m"; got != want {
			t.Errorf("Error() = %q, want %q", got, want)
		}
	}

	c, _ = ctx(`{"ok":{"ok":"text"}}`)
	if _, err := Call[uint64](c, "t:f/f.f"); err == nil || !strings.Contains(err.Error(), "decoding the result of t:f/f.f as uint64") {
		t.Errorf("decode error: %v", err)
	}

	c, _ = ctx(`{"ok":{"ok":12345678901234567890}}`)
	if v, err := Call[any](c, "t:f/f.f"); err != nil || v != json.Number("12345678901234567890") {
		t.Errorf("any: %#v %v", v, err)
	}

	if _, err := Call[int](c, "t:f/f.f", make(chan int)); err == nil {
		t.Error("unencodable param: no error")
	}

	for _, resp := range []string{`nope`, `{}`, `{"ok":{}}`, `{"ok":[1]}`} {
		c, _ = ctx(resp)
		mustPanic(t, func() { _ = CallVoid(c, "t:f/f.f") })
	}
}

func TestNoHost(t *testing.T) {
	if _, err := Call[int](Context{}, "t:f/f.f"); err != errNoHost {
		t.Errorf("Call: %v", err)
	}
	if err := (Context{}).HostCall("x", nil, nil); err != errNoHost {
		t.Errorf("HostCall: %v", err)
	}
	if got := errNoHost.Error(); got != "obelisk: not running in an Obelisk host" {
		t.Errorf("message %q", got)
	}
}

func TestLog(t *testing.T) {
	var logs []string
	ffqn := register(t, func(ctx Context) error {
		ctx.Log(LevelWarn, "plain")
		ctx.Log(LevelTrace, "a\nb")
		return nil
	})
	(&TestHost{Log: func(level Level, msg string) { logs = append(logs, string(level)+" "+msg) }}).Run(ffqn)
	if got, want := strings.Join(logs, "|"), "warn plain|trace a\nb"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	f := &fakeHost{resp: `{"ok":null}`}
	Context{&runState{host: f.call}}.Log(LevelInfo, "m")
	if len(f.requests) != 1 || f.requests[0] != `{"op":"log","level":"info","message":"m"}` {
		t.Errorf("requests %q", f.requests)
	}
}

func TestTestHostCall(t *testing.T) {
	ffqn := register(t, func(ctx Context, n uint8) (uint64, error) {
		v, err := Call[uint64](ctx, "t:f/f.f", n)
		if err != nil {
			return 0, err
		}
		return v + 1, nil
	})
	h := &TestHost{Call: func(ffqn string, params json.RawMessage) (json.RawMessage, error) {
		switch string(params) {
		case "[1]":
			return json.RawMessage(`{"ok":41}`), nil
		case "[2]":
			return nil, &HostError{Kind: KindTypeCheck, Message: "bad"}
		default:
			return nil, errors.New("no such function")
		}
	}}
	for params, want := range map[uint8]string{
		1: `{"ok":42}`,
		2: `{"err":"obelisk: call: type_check: bad"}`,
		3: `{"err":"obelisk: call: function_not_found: no such function"}`,
	} {
		if got := string(h.Run(ffqn, params)); got != want {
			t.Errorf("%d: got %s, want %s", params, got, want)
		}
	}
}

func TestErrPanicsOnUnencodable(t *testing.T) {
	if msg := mustPanic(t, func() { Err(make(chan int)) }); !strings.Contains(msg, "cannot encode chan int") {
		t.Errorf("panic %q", msg)
	}
}

func TestBytes(t *testing.T) {
	b, err := json.Marshal(struct {
		A Bytes
		B Bytes
		C Bytes
	}{Bytes{0, 1, 255}, Bytes{}, nil})
	if err != nil || string(b) != `{"A":[0,1,255],"B":[],"C":null}` {
		t.Errorf("marshal: %s %v", b, err)
	}
	var v Bytes
	if err := json.Unmarshal([]byte(`[0,1,255]`), &v); err != nil || string(v) != "\x00\x01\xff" {
		t.Errorf("unmarshal: %v %v", v, err)
	}
	for _, bad := range []string{`[256]`, `"AAE="`, `{}`} {
		if err := json.Unmarshal([]byte(bad), &v); err == nil {
			t.Errorf("unmarshal %s: no error", bad)
		}
	}
	ffqn := register(t, func(ctx Context, in Bytes) (Bytes, error) { return append(in, 9), nil })
	if got := string(new(TestHost).Run(ffqn, Bytes{1, 2})); got != `{"ok":[1,2,9]}` {
		t.Errorf("round trip: %s", got)
	}
}

func TestHostCall(t *testing.T) {
	ctx := func(resp string) (Context, *fakeHost) {
		f := &fakeHost{resp: resp}
		return Context{&runState{host: f.call}}, f
	}
	type req struct {
		A string `json:"a"`
		B int    `json:"b,omitempty"`
	}
	for _, c := range []struct {
		request any
		want    string
	}{
		{nil, `{"op":"x.y"}`},
		{struct{}{}, `{"op":"x.y"}`},
		{(*req)(nil), `{"op":"x.y"}`},
		{map[string]any(nil), `{"op":"x.y"}`},
		{req{A: "<&>"}, `{"op":"x.y","a":"<&>"}`},
		{&req{A: "a", B: 2}, `{"op":"x.y","a":"a","b":2}`},
		{map[string]any{"k": []int{1}}, `{"op":"x.y","k":[1]}`},
		{json.RawMessage(` {"k":1} `), `{"op":"x.y","k":1}`},
	} {
		c0, f := ctx(`{"ok":null}`)
		if err := c0.HostCall("x.y", c.request, nil); err != nil {
			t.Errorf("%#v: %v", c.request, err)
		} else if f.requests[0] != c.want {
			t.Errorf("%#v: request %s, want %s", c.request, f.requests[0], c.want)
		}
	}
	for _, bad := range []any{"s", 1, []int{}, make(chan int)} {
		c0, f := ctx(`{"ok":null}`)
		if err := c0.HostCall("x", bad, nil); err == nil || !strings.Contains(err.Error(), "obelisk: x: encoding the request") {
			t.Errorf("%#v: %v", bad, err)
		}
		if len(f.requests) != 0 {
			t.Errorf("%#v: sent %v", bad, f.requests)
		}
	}

	c, _ := ctx(`{"ok":{"n":18446744073709551615,"m":1}}`)
	var v struct{ N uint64 }
	if err := c.HostCall("x", nil, &v); err != nil || v.N != math.MaxUint64 {
		t.Errorf("struct: %v %v", v, err)
	}
	var a map[string]any
	if err := c.HostCall("x", nil, &a); err != nil || a["m"] != json.Number("1") {
		t.Errorf("any: %#v %v", a, err)
	}
	var raw json.RawMessage
	if err := c.HostCall("x", nil, &raw); err != nil || string(raw) != `{"n":18446744073709551615,"m":1}` {
		t.Errorf("raw: %s %v", raw, err)
	}
	var s string
	if err := c.HostCall("x", nil, &s); err == nil || !strings.Contains(err.Error(), "obelisk: x: decoding the response") {
		t.Errorf("decode: %v", err)
	}

	c, _ = ctx(`{"error":{"kind":"unsupported_op","message":"m"}}`)
	err := c.HostCall("x", nil, &s)
	if he, ok := errors.AsType[*HostError](err); !ok || *he != (HostError{"x", KindUnsupportedOp, "m"}) {
		t.Errorf("host error: %T %v", err, err)
	}

	for _, resp := range []string{`nope`, `{}`, `{"error":1}`} {
		c, _ = ctx(resp)
		mustPanic(t, func() { _ = c.HostCall("x", nil, nil) })
	}
}

func TestTestHostOps(t *testing.T) {
	var got []string
	ffqn := register(t, func(ctx Context, op string) (json.RawMessage, error) {
		var v json.RawMessage
		err := ctx.HostCall(op, map[string]int{"n": 1}, &v)
		return v, err
	})
	h := &TestHost{Ops: map[string]OpHandler{
		"echo": func(req json.RawMessage) (any, error) {
			got = append(got, string(req))
			return req, nil
		},
		"host-error": func(json.RawMessage) (any, error) {
			return nil, fmt.Errorf("wrapped: %w", &HostError{Op: "ignored", Kind: KindNotAllowed, Message: "no"})
		},
		"error": func(json.RawMessage) (any, error) { return nil, errors.New("oops") },
	}}
	for op, want := range map[string]string{
		"echo":       `{"ok":{"op":"echo","n":1}}`,
		"host-error": `{"err":"obelisk: host-error: not_allowed: no"}`,
		"error":      `{"err":"obelisk: error: bad_request: oops"}`,
		"http":       `{"err":"obelisk: http: unsupported_op: op \"http\" is not supported: TestHost.Ops has no handler for it"}`,
	} {
		if out := string(h.Run(ffqn, op)); out != want {
			t.Errorf("%s: got %s, want %s", op, out, want)
		}
	}
	if len(got) != 1 || got[0] != `{"op":"echo","n":1}` {
		t.Errorf("requests %q", got)
	}
}

// TestWarmup: the warm-up the host runs before it snapshots a module goes through every
// export's decoding, reflective call and encoding without calling the function itself
// or the host.
func TestWarmup(t *testing.T) {
	called := false
	Export("testing:warmup/ifc.f", func(ctx Context, n uint8, s string, xs []int) (map[string]int, error) {
		called = true
		return nil, nil
	})
	defer delete(exports, "testing:warmup/ifc.f")
	warmup()
	if called {
		t.Fatal("warmup called an exported function")
	}
}
