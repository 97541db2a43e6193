package obelisk

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
)

// The fast paths of fastjson.go must give the same results as encoding/json
// wherever they accept an input. These tests compare them on tables of edge
// cases and, as fuzz tests, on random inputs; `go test` runs the seeds.

// Named types without methods take the fast paths; types with methods
// (json.Number, time.Duration) must not.
type (
	myInt    int16
	myUint   uint32
	myFloat  float32
	myString string
	myBool   bool
)

var stringCases = []string{
	"", "a", "fibo", `"`, `\`, `\"\\`, "a\"b\\c/d",
	"\x00\x01\x07\b\t\n\v\f\r\x0e\x1f", "\x7f", "<a href='x'>&amp;</a>",
	"é", "日本語", "😀", "\u2028\u2029", "a\u2028b\u2029c", "\ufffd", "\u00ff\u0100",
	"\xff", "a\xffb", "\xc3", "\xc3\x28", "\xe2\x82", "\xed\xa0\x80", "\xed\xbf\xbf",
	"\xf4\x90\x80\x80", "\xf0\x9f\x98", "\xf0\x9f\x98\x80\x80",
	strings.Repeat("x", 300), strings.Repeat("é\n", 50),
}

func TestAppendString(t *testing.T) {
	for _, s := range stringCases {
		checkAppendString(t, s)
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range stringCases {
		f.Add(s)
	}
	f.Fuzz(checkAppendString)
}

func checkAppendString(t *testing.T, s string) {
	want, err := marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if got := appendString([]byte("prefix"), s); string(got) != "prefix"+string(want) {
		t.Errorf("appendString(%q) = %s, want %s", s, got[6:], want)
	}
}

var floatCases = []float64{
	0, math.Copysign(0, -1), 1, -1, 0.1, 0.2, 1.0 / 3, 100, 1e6, 1e20, 1e21, 1.5e21, 123456789012345678901.0,
	1e-6, 9.99999e-7, 1e-7, 1.5e-7, 5e-324, math.SmallestNonzeroFloat32, math.MaxFloat32, math.MaxFloat64,
	-math.MaxFloat64, 1e100, 1e-100, 12345.678, 0.000001, 0.0000012345, 2.5e-8, 3.4028234663852886e38,
	float64(float32(0.1)), float64(float32(1e21)), float64(float32(1e-6)), float64(float32(9.999999e-7)),
	1 << 53, 1<<53 + 1, -(1 << 63), 1e23, 5e-7,
}

func TestAppendFloat(t *testing.T) {
	for _, f := range floatCases {
		checkFloat(t, f)
	}
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		for _, v := range []any{f, float32(f)} {
			if b, ok := appendValue(nil, v); ok {
				t.Errorf("appendValue(%v) = %s, want it declined", v, b)
			}
		}
	}
}

func FuzzAppendFloat(f *testing.F) {
	for _, x := range floatCases {
		f.Add(math.Float64bits(x))
	}
	f.Fuzz(func(t *testing.T, bits uint64) {
		checkFloat(t, math.Float64frombits(bits))
		checkFloat(t, float64(math.Float32frombits(uint32(bits))))
	})
}

// checkFloat compares the encodings of f as a float64 and, when it is one,
// as a float32.
func checkFloat(t *testing.T, f float64) {
	t.Helper()
	vals := []any{f}
	if float64(float32(f)) == f || math.IsNaN(f) {
		vals = append(vals, float32(f), myFloat(f))
	}
	for _, v := range vals {
		want, err := marshal(v)
		got, ok := appendValue(nil, v)
		if !ok {
			if err == nil {
				t.Errorf("appendValue(%T %v) declined, encoding/json gives %s", v, v, want)
			}
			continue
		}
		if err != nil || string(got) != string(want) {
			t.Errorf("appendValue(%T %v) = %s, encoding/json gives %s, %v", v, v, got, want, err)
		}
	}
}

func TestAppendValue(t *testing.T) {
	cases := []any{
		nil, true, false,
		0, math.MinInt64, math.MaxInt64, int8(math.MinInt8), int8(math.MaxInt8), int16(math.MinInt16),
		int16(math.MaxInt16), int32(math.MinInt32), int32(math.MaxInt32), int64(math.MinInt64), int64(math.MaxInt64),
		uint(math.MaxUint), uint8(255), uint16(math.MaxUint16), uint32(math.MaxUint32), uint64(math.MaxUint64), uintptr(7),
		float32(1.5), 2.5, "s", "<&>",
		myInt(-3), myUint(3), myFloat(0.1), myString("x\ny"), myBool(true),
		json.RawMessage(nil), json.RawMessage(`{"a" : [1, 2 ,{"b":null}] }`), json.RawMessage(" \"x y\" "),
		json.RawMessage(`"\u00e9 \" "`), json.RawMessage("[]"), json.RawMessage(`{}`), json.RawMessage("\t-1.5e+3\n"),
	}
	for _, v := range cases {
		want, err := marshal(v)
		if err != nil {
			t.Fatalf("%T %v: %v", v, v, err)
		}
		got, ok := appendValue([]byte("x"), v)
		if !ok {
			t.Errorf("appendValue(%T %v) declined", v, v)
		} else if string(got) != "x"+string(want) {
			t.Errorf("appendValue(%T %v) = %s, want %s", v, v, got[1:], want)
		}
	}
	// Values that encoding/json encodes with methods, or refuses, or that
	// are not scalars.
	for _, v := range []any{
		json.Number("1"), time.Second, Bytes{1}, []int{1}, map[string]int{}, struct{}{}, new(int), (*int)(nil),
		json.RawMessage{}, json.RawMessage("{"), json.RawMessage("1 2"), json.RawMessage("nul"), make(chan int),
	} {
		if got, ok := appendValue(nil, v); ok {
			t.Errorf("appendValue(%T %v) = %s, want it declined", v, v, got)
		}
	}
}

var jsonCases = []string{
	``, ` `, `0`, `-0`, `1`, `-1`, `01`, `1.`, `.5`, `1.5`, `-1.5e10`, `1e`, `1e+`, `1E-2`, `1e400`, `-1e400`, `1e-400`,
	`255`, `256`, `-129`, `127`, `128`, `32767`, `65535`, `65536`, `2147483647`, `2147483648`, `4294967295`, `4294967296`,
	`9223372036854775807`, `9223372036854775808`, `-9223372036854775808`, `-9223372036854775809`,
	`18446744073709551615`, `18446744073709551616`, `3.4028235e38`, `3.5e38`, `1.0`, `10e-1`, `0.1e1`, `+1`, `- 1`,
	`true`, `false`, `null`, `tru`, `nul`, `True`, `nulll`, ` true `, "\ttrue\n\r",
	`""`, `"a"`, `"\""`, `"\\"`, `"\/"`, `"\b\f\n\r\t"`, `"\u0000"`, `"\u00e9"`, `"\u00E9"`, `"\u2028"`,
	`"\ud83d\ude00"`, `"\ud83d"`, `"\ud83dx"`, `"\ud83d\u0041"`, `"\ude00"`, `"\ude00\ud83d"`, `"\ud83d\ud83d\ude00"`,
	`"\ud83d\\"`, `"\u12"`, `"\u12g4"`, `"\x"`, `"\'"`, `"a`, `"a"b`, "\"\x01\"", "\"\x7f\"", "\"\xff\"",
	"\"\xed\xa0\x80\"", "\"é\"", "\"\xc3\"", `"a" "b"`, `"a",`,
	`[]`, `[1]`, `[1,]`, `[,1]`, `[1 2]`, ` [ 1 , "x" , true , null , 1.5 ] `, `[[[]]]`, `[`, `]`,
	`{}`, `{"a":1}`, `{"a":1,}`, `{"a" 1}`, `{"a":}`, `{a:1}`, `{"a":1 "b":2}`, `{"a":{"b":[{"c":null}]}}`, `{`,
	`{"ok":55}`, `{"ok":{"ok":55}}`, `{"err":"x"}`, `{"ok":1,"ok":2}`, `{"ok":1,"err":2}`, `{"o\u006b":1}`, ` {"ok" : [1] } `,
	`{"error":{"kind":"k","message":"m"}}`, `{"error":{"kind":"k","message":"m","x":1}}`, `{"error":{"kind":1}}`,
	`{"execution_failure":{"kind":"timed_out","reason":"lock expired"}}`, `{"OK":1}`, `{"ok":1}x`, `{"ok":1}}`,
}

// scalarTargets returns fresh pointers to every scalar type the fast paths
// decode, and to types they must decline.
func scalarTargets() []any {
	return []any{
		new(bool), new(int), new(int8), new(int16), new(int32), new(int64),
		new(uint), new(uint8), new(uint16), new(uint32), new(uint64), new(uintptr),
		new(float32), new(float64), new(string),
		new(myInt), new(myUint), new(myFloat), new(myString), new(myBool),
		new(json.RawMessage), new(json.Number), new(time.Duration), new(any), new(Bytes), new([]int),
	}
}

func TestFastDecode(t *testing.T) {
	for _, data := range jsonCases {
		checkFastDecode(t, data)
	}
}

func FuzzFastDecode(f *testing.F) {
	for _, data := range jsonCases {
		f.Add(data)
	}
	f.Fuzz(checkFastDecode)
}

// checkFastDecode decodes data into every scalar target with fastDecode and
// with encoding/json, starting from the same non-zero values (a null leaves
// them unchanged).
func checkFastDecode(t *testing.T, data string) {
	fast, slow := scalarTargets(), scalarTargets()
	for i := range fast {
		initTarget(fast[i])
		initTarget(slow[i])
		if !fastDecode([]byte(data), fast[i]) {
			continue
		}
		switch fast[i].(type) {
		case *json.Number, *time.Duration, *any, *Bytes, *[]int:
			t.Errorf("fastDecode(%q) into %T: accepted, want it declined", data, fast[i])
			continue
		}
		if err := decodeJSON([]byte(data), slow[i]); err != nil {
			t.Errorf("fastDecode(%q) into %T: accepted, encoding/json fails: %v", data, fast[i], err)
			continue
		}
		got, want := reflect.ValueOf(fast[i]).Elem(), reflect.ValueOf(slow[i]).Elem()
		if !sameValue(got, want) {
			t.Errorf("fastDecode(%q) into %T: %#v, encoding/json gives %#v", data, fast[i], got, want)
		}
	}
}

// initTarget sets a scalar target to a non-zero value.
func initTarget(p any) {
	v := reflect.ValueOf(p).Elem()
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(7)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		v.SetUint(7)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(7)
	case reflect.String:
		v.SetString("7")
	}
}

// sameValue compares two values of the same type, floats by their bits (so
// that -0 and 0 differ).
func sameValue(a, b reflect.Value) bool {
	switch a.Kind() {
	case reflect.Float32, reflect.Float64:
		return math.Float64bits(a.Float()) == math.Float64bits(b.Float())
	case reflect.Slice:
		return a.IsNil() == b.IsNil() && bytes.Equal(a.Bytes(), b.Bytes())
	}
	return a.Interface() == b.Interface()
}

func TestFastDecodeTaken(t *testing.T) {
	var u uint64
	var s string
	var raw json.RawMessage
	for _, c := range []struct {
		data string
		v    any
	}{
		{"18446744073709551615", &u}, {`"a\u00e9\ud83d\ude00"`, &s}, {` {"a": 1} `, &raw},
	} {
		if !fastDecode([]byte(c.data), c.v) {
			t.Errorf("fastDecode(%s) into %T declined", c.data, c.v)
		}
	}
	if u != math.MaxUint64 || s != "aé😀" || string(raw) != `{"a": 1}` {
		t.Errorf("got %v %q %s", u, s, raw)
	}
}

func TestScanValue(t *testing.T) {
	for _, data := range jsonCases {
		checkScanValue(t, data)
	}
	deep := strings.Repeat("[", maxFastDepth+1) + strings.Repeat("]", maxFastDepth+1)
	if _, _, ok := wholeValue([]byte(deep)); ok {
		t.Error("too deep a document was accepted")
	}
}

func FuzzScanValue(f *testing.F) {
	for _, data := range jsonCases {
		f.Add(data)
	}
	f.Fuzz(checkScanValue)
}

// checkScanValue compares the validation of wholeValue with json.Valid, and
// the compaction of appendCompact with encoding/json's.
func checkScanValue(t *testing.T, data string) {
	_, _, ok := wholeValue([]byte(data))
	valid := json.Valid([]byte(data))
	if ok != valid && (ok || strings.Count(data, "[")+strings.Count(data, "{") < maxFastDepth) {
		t.Errorf("wholeValue(%q) = %v, json.Valid = %v", data, ok, valid)
	}
	got, ok := appendCompact(nil, []byte(data))
	want, err := marshal(json.RawMessage(data))
	if ok && (err != nil || string(got) != string(want)) {
		t.Errorf("appendCompact(%q) = %s, encoding/json gives %s, %v", data, got, want, err)
	}
}

func FuzzMembers(f *testing.F) {
	for _, data := range jsonCases {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data string) {
		var m map[string]json.RawMessage
		key, v, ok := singleMember([]byte(data))
		if ok {
			if err := json.Unmarshal([]byte(data), &m); err != nil || len(m) != 1 || string(m[string(key)]) != string(v) {
				t.Errorf("singleMember(%q) = %q, %s; encoding/json gives %v, %v", data, key, v, m, err)
			}
		}
		got := map[string]string{}
		if stringMembers([]byte(data), func(key []byte, value string) bool {
			got[string(key)] = value
			return true
		}) {
			var want map[string]string
			if err := json.Unmarshal([]byte(data), &want); err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("stringMembers(%q) = %v; encoding/json gives %v, %v", data, got, want, err)
			}
		}
	})
}

var runInputCases = []string{
	`{"ffqn":"testing:fibo/fibo.fibo","params":[10],"execution_id":"E_01J","attempt":1}`,
	` { "attempt" : 3 , "execution_id" : "E\u0041" , "params" : [ 1 , "x" ] , "ffqn" : "a:b/c.d" } `,
	`{"ffqn":"a:b/c.d"}`, `{}`, `{"params":null}`, `{"params":{"a":[1]}}`, `{"attempt":-0}`,
	`{"attempt":1.0}`, `{"attempt":1e0}`, `{"attempt":"1"}`, `{"attempt":null}`, `{"attempt":9223372036854775808}`,
	`{"ffqn":null}`, `{"ffqn":1}`, `{"FFQN":"x"}`, `{"ffqn":"a","ffqn":"b"}`, `{"other":1}`, `{"ffqn":"\ud83d"}`,
	`{"ffqn":"x"} x`, `{"ffqn":"x"`, `[]`, `null`, ``, `{"params":[1,]}`,
}

func FuzzRunInput(f *testing.F) {
	for _, data := range runInputCases {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data string) {
		var fast, slow runInput
		if !fast.parse([]byte(data)) {
			return
		}
		if err := json.Unmarshal([]byte(data), &slow); err != nil {
			t.Fatalf("parse(%q) accepted, encoding/json fails: %v", data, err)
		}
		if fast.FFQN != slow.FFQN || fast.ExecutionID != slow.ExecutionID || fast.Attempt != slow.Attempt ||
			string(fast.Params) != string(slow.Params) {
			t.Errorf("parse(%q) = %+v, encoding/json gives %+v", data, fast, slow)
		}
	})
}

func TestRunInputTaken(t *testing.T) {
	var in runInput
	if !in.parse([]byte(runInputCases[0])) {
		t.Fatal("declined")
	}
	want := runInput{"testing:fibo/fibo.fibo", json.RawMessage("[10]"), "E_01J", 1}
	if fmt.Sprint(in) != fmt.Sprint(want) {
		t.Errorf("got %+v, want %+v", in, want)
	}
}

// paramFuncs are exported functions whose params the fast path decodes,
// except the last two, which it must decline.
var paramFuncs = []any{
	func(Context) error { return nil },
	func(Context, uint8) error { return nil },
	func(Context, bool, int8, int16, int32, int64, int) error { return nil },
	func(Context, uint16, uint32, uint64, uint, string, float32, float64) error { return nil },
	func(Context, myInt, myUint, myFloat, myString, myBool) error { return nil },
	func(Context, json.Number) error { return nil },
	func(Context, uint8, []int) error { return nil },
}

var paramsCases = []string{
	``, `[]`, ` [ ] `, `[1]`, `[255]`, `[256]`, `[-1]`, `[1.0]`, `[null]`, `["1"]`, `[1,2]`, `[1,]`, `[1`, `1`, `{}`, `null`,
	`[true,-128,32767,-2147483648,9223372036854775807,-1]`, `[false,127,-32768,2147483647,-9223372036854775808,0]`,
	`[true,-129,0,0,0,0]`, `[null,null,null,null,null,null]`, `[1,0,0,0,0,0]`,
	`[65535,4294967295,18446744073709551615,0,"s\u00e9\ud83d",3.4e38,-1e-300]`, `[0,0,0,0,"",3.5e38,0]`,
	`[0,0,18446744073709551616,0,"",0,0]`, `[1, 2, 3, 4, "x\ny", 1e-46, 5e-324]`,
	`[-1,2,0.5,"s",true]`, `[1,2,3,4,5]`, `["1"]`, `[1,[2]]`, ` [1,{"a":2}] `,
}

func FuzzParams(f *testing.F) {
	for _, p := range paramsCases {
		f.Add(p)
	}
	exps := make([]*exported, len(paramFuncs))
	for i, fn := range paramFuncs {
		e, err := newExported("t:f/f.f", fn)
		if err != nil {
			f.Fatal(err)
		}
		exps[i] = e
	}
	f.Fuzz(func(t *testing.T, params string) {
		for i, e := range exps {
			fast, ok := e.decodeScalarParams([]byte(params))
			if !ok {
				continue
			}
			if i >= len(exps)-2 && len(fast) > 1 {
				t.Errorf("%v: params %s accepted, want them declined", e.fnType, params)
			}
			slow, err := paramsJSON(e, []byte(params))
			if err != nil {
				t.Errorf("%v: params %s accepted, encoding/json fails: %v", e.fnType, params, err)
				continue
			}
			for j := 1; j < len(fast); j++ {
				if !sameValue(fast[j], slow[j]) {
					t.Errorf("%v: params %s: param %d = %#v, encoding/json gives %#v", e.fnType, params, j-1, fast[j], slow[j])
				}
			}
		}
	})
}

// paramsJSON decodes params as decodeParamsJSON does, with encoding/json
// only.
func paramsJSON(e *exported, params []byte) ([]reflect.Value, error) {
	var raws []json.RawMessage
	if len(params) > 0 {
		if err := json.Unmarshal(params, &raws); err != nil {
			return nil, err
		}
	}
	if len(raws) != e.nparams {
		return nil, fmt.Errorf("got %d params, want %d", len(raws), e.nparams)
	}
	args := make([]reflect.Value, 1+e.nparams)
	for i := range e.nparams {
		p := reflect.New(e.param(i))
		if err := decodeJSON(raws[i], p.Interface()); err != nil {
			return nil, err
		}
		args[1+i] = p.Elem()
	}
	return args, nil
}

func TestParamsTaken(t *testing.T) {
	for _, c := range []struct {
		fn     int
		params string
	}{
		{0, ``}, {0, `[]`}, {1, `[10]`}, {2, paramsCases[16]}, {3, paramsCases[21]}, {4, paramsCases[25]},
	} {
		e, err := newExported("t:f/f.f", paramFuncs[c.fn])
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := e.decodeScalarParams([]byte(c.params)); !ok {
			t.Errorf("%v: params %s declined", e.fnType, c.params)
		}
	}
}

func FuzzCallRequest(f *testing.F) {
	f.Add("t:f/f.f", int64(-1), uint64(math.MaxUint64), 1.5, "s", true, uint8(3))
	f.Add("a\"b", int64(0), uint64(0), math.Inf(1), "\xff\u2028", false, uint8(0))
	f.Fuzz(func(t *testing.T, ffqn string, i int64, u uint64, fl float64, s string, b bool, n uint8) {
		scalars := []any{i, u, fl, float32(fl), s, b, nil, int8(i), int16(i), int32(i), int(i), uint8(u), uint16(u), uint32(u), uint(u), myString(s)}
		finite := !math.IsInf(fl, 0) && !math.IsNaN(fl) && !math.IsInf(float64(float32(fl)), 0)
		for k, params := range [][]any{{}, scalars, scalars[int(n)%len(scalars):], {json.Number("1")}, {1, []int{1}}} {
			for _, joinSet := range []string{"", s} {
				op := abi.OpCall
				if joinSet != "" {
					op = abi.OpSubmit
				}
				want, err := encodeRequest(op, callRequestOf(joinSet, ffqn, params))
				got, ok := callRequestJSON(op, joinSet, ffqn, params)
				if ok && (err != nil || string(got) != string(want)) {
					t.Errorf("callRequestJSON(%q, %q, %q, %v) = %s, encoding/json gives %s, %v", op, joinSet, ffqn, params, got, want, err)
				}
				if !ok && k < 3 && finite {
					t.Errorf("callRequestJSON(%q, %q, %q, %v) declined", op, joinSet, ffqn, params)
				}
			}
		}
	})
}

func FuzzLogRequest(f *testing.F) {
	f.Add("info", "message")
	f.Add("warn", "a\nb\"\xff<&>\u2028")
	f.Fuzz(func(t *testing.T, level, msg string) {
		h := &fakeHost{resp: `{"ok":null}`}
		Context{&runState{host: h.call}}.Log(Level(level), msg)
		want, err := encodeRequest("log", struct {
			Level   Level  `json:"level"`
			Message string `json:"message"`
		}{Level(level), msg})
		if err != nil || len(h.requests) != 1 || h.requests[0] != string(want) {
			t.Errorf("Log(%q, %q) sent %q, want %s", level, msg, h.requests, want)
		}
	})
}

// FuzzRunResults compares whole runs: the output of functions returning
// scalars and errors with the output encoding/json gives.
func FuzzRunResults(f *testing.F) {
	f.Add("s", int64(1), uint64(2), 1.5, true)
	f.Add("\xff\u2028<>\"\\\x01", int64(math.MinInt64), uint64(math.MaxUint64), 1e21, false)
	f.Fuzz(func(t *testing.T, s string, i int64, u uint64, fl float64, b bool) {
		results := []any{s, i, u, fl, float32(fl), b, int8(i), uint16(u), myString(s), myFloat(fl), json.RawMessage(s)}
		for _, r := range results {
			fn := reflect.MakeFunc(reflect.FuncOf([]reflect.Type{contextType}, []reflect.Type{reflect.TypeOf(r), errorType}, false),
				func([]reflect.Value) []reflect.Value {
					return []reflect.Value{reflect.ValueOf(r), reflect.Zero(errorType)}
				})
			e, err := newExported("t:f/f.f", fn.Interface())
			if err != nil {
				t.Fatal(err)
			}
			want, werr := marshal(struct {
				Ok any `json:"ok"`
			}{r})
			got, gerr := e.encodeResult(e.fn.Call([]reflect.Value{reflect.ValueOf(Context{})}), []byte("x"))
			if (werr == nil) != (gerr == nil) || werr == nil && string(got) != "x"+string(want) {
				t.Errorf("result %T %v: got %s, %v; encoding/json gives %s, %v", r, r, got, gerr, want, werr)
			}
		}
		for _, err := range []error{fmt.Errorf("%s", s), &ErrResult{Value: json.RawMessage(s)}, &ErrResult{}} {
			var v any = err.Error()
			if er, ok := err.(*ErrResult); ok {
				v = nil
				if len(er.Value) > 0 {
					v = er.Value
				}
			}
			want, werr := marshal(struct {
				Err any `json:"err"`
			}{v})
			got, gerr := encodeErr(err, nil)
			if (werr == nil) != (gerr == nil) || werr == nil && string(got) != string(want) {
				t.Errorf("error %#v: got %s, %v; encoding/json gives %s, %v", err, got, gerr, want, werr)
			}
		}
	})
}

func TestHostResponses(t *testing.T) {
	for _, c := range []struct {
		resp, ok, err string
	}{
		{`{"ok":null}`, "null", ""},
		{` { "ok" : {"ok": 1} } `, `{"ok": 1}`, ""},
		{`{"error":{"kind":"not_allowed","message":"m\u00e9"}}`, "", "obelisk: x: not_allowed: mé"},
		{`{"error":{"message":"m","kind":"k","extra":1}}`, "", "obelisk: x: k: m"},
		{`{"error":{"kind":"k"},"ok":1}`, "", "obelisk: x: k: "},
		{`{"ok":1,"ok":2}`, "2", ""},
		{`{"ok":7}`, "7", ""},
		{`{"ok":-1.5e3}`, "-1.5e3", ""},
		{`{"ok":true}`, "true", ""},
		{`{"ok":"a,b"}`, `"a,b"`, ""},
		{`{"ok":1,"error":{"kind":"k"}}`, "", "obelisk: x: k: "},
	} {
		raw, err := send((&fakeHost{resp: c.resp}).call, "x", []byte(`{"op":"x"}`))
		if string(raw) != c.ok || (err == nil) != (c.err == "") || err != nil && err.Error() != c.err {
			t.Errorf("%s: got %s, %v; want %s, %s", c.resp, raw, err, c.ok, c.err)
		}
	}
}

// TestResponsesTaken checks that the usual responses take the fast paths.
func TestResponsesTaken(t *testing.T) {
	for _, resp := range []string{`{"ok":null}`, `{"ok":{"ok":55}}`, `{"ok":55}`, `{"err":"x"}`, `{"execution_failure":{"kind":"k","reason":"r"}}`} {
		if _, _, ok := singleMember([]byte(resp)); !ok {
			t.Errorf("singleMember(%s) declined", resp)
		}
	}
	for _, obj := range []string{`{"kind":"timed_out","reason":"lock expired"}`, `{"kind":"type_check","message":"m"}`} {
		if !stringMembers([]byte(obj), func([]byte, string) bool { return true }) {
			t.Errorf("stringMembers(%s) declined", obj)
		}
	}
}

func TestCallResults(t *testing.T) {
	for _, c := range []struct {
		resp, ok, err string
	}{
		{`{"ok":{"ok":55}}`, "55", ""},
		{`{"ok":{"err":"x"}}`, "", `t:f/f.f returned err "x"`},
		{`{"ok":{"err":null}}`, "", `t:f/f.f returned err null`},
		{`{"ok":{"execution_failure":{"kind":"timed_out","reason":"r\n"}}}`, "", "t:f/f.f failed: timed_out: r\n"},
		{`{"ok":{"execution_failure":{"kind":"k","reason":"r","x":null}}}`, "", "t:f/f.f failed: k: r"},
		{`{"ok":{"err":1,"ok":2}}`, "2", ""},
	} {
		raw, err := call(Context{&runState{host: (&fakeHost{resp: c.resp}).call}}, "t:f/f.f", nil)
		if string(raw) != c.ok || (err == nil) != (c.err == "") || err != nil && err.Error() != c.err {
			t.Errorf("%s: got %s, %v; want %s, %s", c.resp, raw, err, c.ok, c.err)
		}
	}
}

func TestFastRun(t *testing.T) {
	ffqn := register(t, func(ctx Context, n uint8, s string, f float64) (string, error) {
		return fmt.Sprintf("%s %d %s %g %d", ctx.ExecutionID(), n, s, f, ctx.Attempt()), nil
	})
	input := `{"ffqn":"` + ffqn + `","params":[7,"a\"\u00e9",-0.5],"execution_id":"E_\u0031","attempt":2}`
	var in runInput
	if !in.parse([]byte(input)) {
		t.Fatal("run input declined")
	}
	if got, want := string(run([]byte(input), nil, nil, make([]byte, 0, 64))), `{"ok":"E_1 7 a\"é -0.5 2"}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
