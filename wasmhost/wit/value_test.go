package wit

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// valuesWIT defines the named types the value tests refer to.
const valuesWIT = `package test:values;

interface v {
  record point { x: s32, y: s32 }
  type maybe-u32 = option<u32>;
  record opt { req: string, maybe: option<u32>, field-2: u8, alias-opt: maybe-u32 }
  variant shape { circle(f64), none, poly(list<point>), named-thing(string) }
  enum color { red, green, dark-blue }
  flags perms { read, write, exec-all }
  resource res;
  type count = u32;
  record nested { items: list<point>, shape: shape }
  variant error { permanent-failure(string), transient(string), permanent }
  enum errkind { permanent-bad, temporary }
  variant HTTP-error { NOT-FOUND, bad-request(string) }
}
`

// withFunc adds a function declaration to the interface of valuesWIT.
func withFunc(decl string) string {
	i := strings.LastIndex(valuesWIT, "}")
	return valuesWIT[:i] + "  " + decl + "\n" + valuesWIT[i:]
}

// typeOf parses a type expression in the scope of valuesWIT.
func typeOf(t testing.TB, expr string) *Type {
	t.Helper()
	r := parseMain(t, withFunc("probe: func(x: "+expr+");"))
	return r.Main().Interface("v").Function("probe").Params[0].Type
}

func TestCheckValue(t *testing.T) {
	type check struct {
		json string
		err  string // "" when valid, else the exact error; "~x": containing x; "invalid JSON...": prefix
	}
	tests := []struct {
		typ    string
		checks []check
	}{
		{"bool", []check{
			{`true`, ""}, {`false`, ""},
			{`1`, "expected bool, got 1"}, {`"true"`, `expected bool, got "true"`}, {`null`, "expected bool, got null"},
		}},
		{"u8", []check{
			{`0`, ""}, {`255`, ""},
			// The guest decodes integers with strconv.ParseUint: these are refused, not
			// accepted to fail in the guest once the execution exists.
			{`3.0`, "expected u8, got 3.0 (an integer is written without a fraction or an exponent)"}, {`1e1`, "expected u8, got 1e1 (an integer is written without a fraction or an exponent)"},
			{`10.0`, "expected u8, got 10.0 (an integer is written without a fraction or an exponent)"}, {`2.55E2`, "expected u8, got 2.55E2 (an integer is written without a fraction or an exponent)"},
			{`-0`, "expected u8, got -0"}, {`0.0e5`, "expected u8, got 0.0e5 (an integer is written without a fraction or an exponent)"},
			{`256`, "expected u8, got 256"}, {`-1`, "expected u8, got -1"}, {`3.5`, "expected u8, got 3.5 (an integer is written without a fraction or an exponent)"},
			{`"5"`, `expected u8, got "5"`}, {`[1]`, "expected u8, got an array of 1 element"},
			{`{}`, "expected u8, got an empty object"}, {`1e-1`, "expected u8, got 1e-1 (an integer is written without a fraction or an exponent)"},
		}},
		{"s8", []check{
			{`-128`, ""}, {`127`, ""}, {`-0`, ""}, {`-129`, "expected s8, got -129"}, {`128`, "expected s8, got 128"},
			{`-1e1`, "expected s8, got -1e1 (an integer is written without a fraction or an exponent)"},
		}},
		{"u16", []check{{`65535`, ""}, {`65536`, "expected u16, got 65536"}}},
		{"s16", []check{{`-32768`, ""}, {`32767`, ""}, {`-32769`, "expected s16, got -32769"}, {`32768`, "expected s16, got 32768"}}},
		{"u32", []check{{`4294967295`, ""}, {`4294967296`, "expected u32, got 4294967296"}}},
		{"s32", []check{{`-2147483648`, ""}, {`2147483647`, ""}, {`2147483648`, "expected s32, got 2147483648"}}},
		{"u64", []check{
			{`18446744073709551615`, ""}, {`0`, ""},
			{`1.8446744073709551615e19`, "expected u64, got 1.8446744073709551615e19 (an integer is written without a fraction or an exponent)"},
			{`18446744073709551615.000`, "expected u64, got 18446744073709551615.000 (an integer is written without a fraction or an exponent)"},
			{`0e999999999999`, "expected u64, got 0e999999999999 (an integer is written without a fraction or an exponent)"},
			{`18446744073709551616`, "expected u64, got 18446744073709551616"},
			{`18446744073709551615.5`, "expected u64, got 18446744073709551615.5 (an integer is written without a fraction or an exponent)"},
			{`1e20`, "expected u64, got 1e20 (an integer is written without a fraction or an exponent)"}, {`-1`, "expected u64, got -1"}, {`-0`, "expected u64, got -0"},
		}},
		{"s64", []check{
			{`-9223372036854775808`, ""}, {`9223372036854775807`, ""},
			{`-9223372036854775809`, "expected s64, got -9223372036854775809"},
			{`9223372036854775808`, "expected s64, got 9223372036854775808"},
		}},
		{"f32", []check{
			{`1.5`, ""}, {`1`, ""}, {`-3.4e38`, ""}, {`1e-50`, ""},
			{`3.5e38`, "expected f32, got 3.5e38 (out of range)"}, {`"1"`, `expected f32, got "1"`},
		}},
		{"float64", []check{{`1e308`, ""}, {`1e309`, "expected f64, got 1e309 (out of range)"}, {`true`, "expected f64, got true"}}},
		{"char", []check{
			{`"a"`, ""}, {`"é"`, ""}, {`"😀"`, ""}, {`"\u00e9"`, ""},
			{`"ab"`, `expected char (a string of one character), got "ab"`},
			{`""`, `expected char (a string of one character), got ""`},
			{`5`, "expected char (a string of one character), got 5"},
		}},
		{"string", []check{
			{`"x"`, ""}, {`""`, ""}, {`"tab\there"`, ""},
			{`5`, "expected string, got 5"}, {`null`, "expected string, got null"},
			{`1234567890123456789012345678901234567890123456789012345678901234567890`,
				"expected string, got 1234567890123456789012345678901234567890..."},
		}},
		{"list<u8>", []check{
			{`[]`, ""}, {`[1, 2, 255]`, ""},
			{`[1, 256]`, "[1]: expected u8, got 256"}, {`{}`, "expected list<u8>, got an empty object"},
			{`null`, "expected list<u8>, got null"},
		}},
		{"list<u8, 3>", []check{
			{`[1, 2, 3]`, ""}, {`[1, 2]`, "expected list<u8, 3> (3 elements), got an array of 2 elements"},
		}},
		{"list<list<string>>", []check{{`[["a"], [], ["b", "c"]]`, ""}, {`[["a"], [1]]`, "[1][0]: expected string, got 1"}}},
		{"tuple<u8, string>", []check{
			{`[1, "a"]`, ""},
			{`[1]`, "expected tuple<u8, string> (an array of 2 elements), got an array of 1 element"},
			{`[1, "a", 2]`, "expected tuple<u8, string> (an array of 2 elements), got an array of 3 elements"},
			{`["a", 1]`, `[0]: expected u8, got "a"`},
		}},
		{"option<u32>", []check{{`null`, ""}, {`5`, ""}, {`"x"`, `expected u32, got "x"`}}},
		{"option<option<u32>>", []check{{`null`, ""}, {`5`, ""}}},
		{"result", []check{
			{`{"ok": null}`, ""}, {`{"err": null}`, ""}, {`"ok"`, ""}, {`"err"`, ""},
			{`{"ok": 5}`, "ok: result has no ok payload: expected null, got 5"},
			{`{}`, `expected result ({"ok": ...} or {"err": ...}), got an empty object`},
			{`{"ok": null, "err": null}`, `expected result ({"ok": ...} or {"err": ...}), got an object`},
			{`{"value": 1}`, `expected result ({"ok": ...} or {"err": ...}), got an object`},
			{`"fine"`, `expected result ({"ok": ...} or {"err": ...}), got "fine"`},
			{`null`, `expected result ({"ok": ...} or {"err": ...}), got null`},
		}},
		{"result<u64>", []check{
			{`{"ok": 5}`, ""}, {`{"err": null}`, ""}, {`{"ok": 18446744073709551615}`, ""},
			{`{"ok": null}`, "ok: expected u64, got null"},
			{`{"ok": -1}`, "ok: expected u64, got -1"},
			{`"ok"`, `result<u64> needs an ok payload: {"ok": <u64>}`},
			{`{"err": "x"}`, `err: result<u64> has no err payload: expected null, got "x"`},
		}},
		{"result<_, string>", []check{{`{"err": "x"}`, ""}, {`{"ok": null}`, ""}, {`{"err": 1}`, "err: expected string, got 1"}}},
		{"result<u64, string>", []check{{`{"ok": 1}`, ""}, {`{"err": "x"}`, ""}, {`{"err": 5}`, "err: expected string, got 5"}}},
		{"point", []check{
			{`{"x": 1, "y": -2}`, ""}, {`{"y": 1, "x": 2}`, ""},
			{`{"x": 1}`, `missing field "y" (s32) in record point`},
			{`{"x": 1, "y": 2, "z": 3}`, `unknown field "z" in record point (fields: "x", "y")`},
			{`[1, 2]`, "expected record point (an object), got an array of 2 elements"},
			{`{"x": 1, "x": 2, "y": 1}`, `duplicate key "x"`},
			{`[{"a": [{"b": 1, "b": 2}]}]`, `[0].a[0]: duplicate key "b"`},
			{`{"x": 1, "y": 2.5}`, "y: expected s32, got 2.5 (an integer is written without a fraction or an exponent)"},
		}},
		{"opt", []check{
			{`{"req": "a", "field_2": 1}`, ""},
			{`{"req": "a", "field_2": 1, "maybe": null, "alias_opt": 3}`, ""},
			{`{"req": "a", "field-2": 1}`, `unknown field "field-2" in record opt (fields: "req", "maybe", "field_2", "alias_opt")`},
			{`{"req": "a"}`, `missing field "field_2" (u8) in record opt`},
			{`{"field_2": 1, "maybe": 1}`, `missing field "req" (string) in record opt`},
			{`{"req": "a", "field_2": 1, "alias_opt": "x"}`, `alias_opt: expected u32, got "x"`},
		}},
		{"shape", []check{
			{`"none"`, ""}, {`{"circle": 1.5}`, ""}, {`{"poly": [{"x": 1, "y": 2}]}`, ""}, {`{"named_thing": "x"}`, ""},
			{`"circle"`, `case "circle" of variant shape needs a payload: {"circle": <f64>}`},
			{`{"none": null}`, `case "none" of variant shape has no payload: write it as the string "none"`},
			{`"square"`, `unknown case "square" of variant shape (cases: "circle", "none", "poly", "named_thing")`},
			{`{"named-thing": "x"}`, `unknown case "named-thing" of variant shape (cases: "circle", "none", "poly", "named_thing")`},
			{`{"circle": 1, "none": null}`, `expected variant shape ("case" or {"case": value} with a case of "circle", "none", "poly", "named_thing"), got an object`},
			{`{"poly": [{"x": 1}]}`, `poly[0]: missing field "y" (s32) in record point`},
			{`5`, `expected variant shape ("case" or {"case": value} with a case of "circle", "none", "poly", "named_thing"), got 5`},
		}},
		{"HTTP-error", []check{{`"NOT_FOUND"`, ""}, {`{"bad_request": "x"}`, ""}, {`"not_found"`, `~unknown case "not_found"`}}},
		{"color", []check{
			{`"red"`, ""}, {`"dark_blue"`, ""},
			{`"dark-blue"`, `expected enum color (one of "red", "green", "dark_blue"), got "dark-blue"`},
			{`"purple"`, `expected enum color (one of "red", "green", "dark_blue"), got "purple"`},
			{`1`, `expected enum color (one of "red", "green", "dark_blue"), got 1`},
		}},
		{"perms", []check{
			{`[]`, ""}, {`["read", "exec_all"]`, ""}, {`["exec_all", "write", "read"]`, ""},
			{`["read", "read"]`, `[1]: flag "read" is given more than once`},
			{`["fly"]`, `[0]: expected a flag of flags perms (one of "read", "write", "exec_all"), got "fly"`},
			{`[1]`, `[0]: expected a flag of flags perms (one of "read", "write", "exec_all"), got 1`},
			{`"read"`, `expected flags perms (an array of flag names out of "read", "write", "exec_all"), got "read"`},
		}},
		{"nested", []check{
			{`{"items": [], "shape": "none"}`, ""},
			{`{"items": [{"x": 1, "y": 2}, {"x": 1, "y": "a"}], "shape": "none"}`, `items[1].y: expected s32, got "a"`},
			{`{"items": [], "shape": {"poly": [{"x": 1, "y": 2, "w": 0}]}}`, `shape.poly[0]: unknown field "w" in record point (fields: "x", "y")`},
		}},
		{"count", []check{{`5`, ""}, {`-1`, "expected count (u32), got -1"}}},
		{"maybe-u32", []check{{`null`, ""}, {`1`, ""}, {`"1"`, `expected u32, got "1"`}}},
		{"res", []check{{`1`, "values of type resource res cannot be represented in JSON (resource types are not supported)"}}},
		{"borrow<res>", []check{{`1`, "values of type borrow<res> cannot be represented in JSON (borrow types are not supported)"}}},
		{"own<res>", []check{{`null`, "values of type own<res> cannot be represented in JSON (own types are not supported)"}}},
		{"option<res>", []check{{`null`, ""}, {`1`, "~cannot be represented in JSON"}}},
		{"stream<u8>", []check{{`[]`, "values of type stream<u8> cannot be represented in JSON (stream types are not supported)"}}},
		{"u8", []check{ // malformed JSON
			{``, "invalid JSON: empty input"}, {`  `, "invalid JSON: empty input"},
			{`1 2`, "invalid JSON: unexpected data after the value"},
			{`{`, "invalid JSON: unexpected end of input"}, {`[1 2]`, "invalid JSON: invalid character '2' after array element"}, {`[1,`, "invalid JSON"}, {`nul`, "invalid JSON"},
			{`01`, "invalid JSON"}, {`NaN`, "invalid JSON"},
			{strings.Repeat("[", 2000), "invalid JSON: nested more than 1000 levels deep"},
			{`"` + strings.Repeat("x", 41) + `"`, `expected u8, got "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"...`},
		}},
	}
	for _, tt := range tests {
		typ := typeOf(t, tt.typ)
		for _, c := range tt.checks {
			err := CheckValue(typ, json.RawMessage(c.json))
			switch {
			case c.err == "" && err != nil:
				t.Errorf("CheckValue(%s, %s) = %v, want nil", tt.typ, c.json, err)
			case c.err != "" && err == nil:
				t.Errorf("CheckValue(%s, %s) = nil, want %q", tt.typ, c.json, c.err)
			case c.err != "" && !errorMatches(err.Error(), c.err):
				t.Errorf("CheckValue(%s, %s) = %q, want %q", tt.typ, c.json, err, c.err)
			}
			if err != nil {
				var ve *ValueError
				if !errors.As(err, &ve) {
					t.Errorf("CheckValue(%s, %s) error %T is not a *ValueError", tt.typ, c.json, err)
				}
			}
		}
	}
}

func errorMatches(got, want string) bool {
	switch {
	case strings.HasPrefix(want, "~"):
		return strings.Contains(got, want[1:])
	case strings.HasPrefix(want, "invalid JSON"):
		return strings.HasPrefix(got, want)
	}
	return got == want
}

func TestValueErrorPath(t *testing.T) {
	err := CheckValue(typeOf(t, "nested"), json.RawMessage(`{"items": [{"x": 1, "y": 2}, {"x": "a", "y": 2}], "shape": "none"}`))
	var ve *ValueError
	if !errors.As(err, &ve) || ve.Path != "items[1].x" || ve.Msg != `expected s32, got "a"` {
		t.Errorf("error = %#v", err)
	}
	if err := CheckValue(nil, json.RawMessage(`1`)); err == nil {
		t.Error("CheckValue(nil type) succeeded")
	}
}

func TestCheckParams(t *testing.T) {
	fibo := mustParse(t, loadTestdata(t, "components/fibo")).Exports()[0]
	cfgFn := parseMain(t, withFunc("g: func(a: u8, cfg: nested, c: option<string>);")).
		Main().Interface("v").Function("g")
	none := parseMain(t, "package a:b; interface i { f: func(); }").Exports()[0]
	tests := []struct {
		fn     *Function
		params string
		err    string
	}{
		{fibo, `[10]`, ""},
		{fibo, `[255]`, ""},
		{fibo, `[300]`, `parameter 0 "n": expected u8, got 300`},
		{fibo, `["10"]`, `parameter 0 "n": expected u8, got "10"`},
		{fibo, `[]`, "fibo takes 1 parameter [n: u8], got 0 values"},
		{fibo, `[1, 2]`, "fibo takes 1 parameter [n: u8], got 2 values"},
		{fibo, `{"n": 1}`, "parameters must be a JSON array [n: u8], got an object"},
		{fibo, `10`, "parameters must be a JSON array [n: u8], got 10"},
		{fibo, `[10`, "invalid JSON"},
		{none, `[]`, ""},
		{none, `[null]`, "f takes 0 parameters [], got 1 value"},
		{cfgFn, `[1, {"items": [], "shape": "none"}, null]`, ""},
		{cfgFn, `[1, {"items": [], "shape": "none"}]`, "g takes 3 parameters [a: u8, cfg: nested, c: option<string>], got 2 values"},
		{cfgFn, `[1, {"items": [{"x": 1, "y": 2}, {"x": 1, "y": 2}, {"x": 1, "y": 2}, {"x": 1, "y": "no"}], "shape": "none"}, null]`,
			`parameter 1 "cfg": params[1].items[3].y: expected s32, got "no"`},
		{cfgFn, `[1, {"items": [], "shape": "none"}, 5]`, `parameter 2 "c": expected string, got 5`},
	}
	for _, tt := range tests {
		err := CheckParams(tt.fn, json.RawMessage(tt.params))
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("CheckParams(%s, %s) = %v", tt.fn.Name, tt.params, err)
		case tt.err != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.err)):
			t.Errorf("CheckParams(%s, %s) = %v, want %q", tt.fn.Name, tt.params, err, tt.err)
		}
	}

	err := CheckParams(cfgFn, json.RawMessage(`[1, {"items": [{"x": 1, "y": 2}, {"x": 1}], "shape": "none"}, null]`))
	var pe *ParamError
	if !errors.As(err, &pe) || pe.Index != 1 || pe.Name != "cfg" || pe.Path() != "params[1].items[1]" {
		t.Fatalf("error = %#v", err)
	}
	var ve *ValueError
	if !errors.As(err, &ve) || ve.Msg != `missing field "y" (s32) in record point` {
		t.Errorf("unwrapped = %#v", ve)
	}
	if err := CheckParams(nil, json.RawMessage(`[]`)); err == nil {
		t.Error("CheckParams(nil) succeeded")
	}
}

func TestIsPermanentError(t *testing.T) {
	flaky := mustParse(t, loadTestdata(t, "components/flaky"))
	failPerm, _ := flaky.Function("testing:flaky/flaky.fail-permanently")
	failUntil, _ := flaky.Function("testing:flaky/flaky.fail-until")
	errType := typeOf(t, "error")
	tests := []struct {
		name    string
		typ     *Type
		payload string
		want    bool
	}{
		{"permanent-failure case", failPerm.Result, `{"permanent_failure": "x"}`, true},
		{"transient case", failPerm.Result, `{"transient": "x"}`, false},
		{"kebab-case key", failPerm.Result, `{"permanent-failure": "x"}`, true},
		{"string error type", failUntil.Result, `"permanent"`, false},
		{"payload-less case", typeOf(t, "result<u8, error>"), `"permanent"`, true},
		{"variant given directly", errType, `{"permanent_failure": "boom"}`, true},
		{"enum case", typeOf(t, "result<_, errkind>"), `"permanent_bad"`, true},
		{"other enum case", typeOf(t, "result<_, errkind>"), `"temporary"`, false},
		{"unknown case", typeOf(t, "result<_, error>"), `{"permanent_other": 1}`, false},
		{"two keys", typeOf(t, "result<_, error>"), `{"permanent": null, "transient": "x"}`, false},
		{"invalid JSON", failPerm.Result, `{`, false},
		{"null", failPerm.Result, `null`, false},
		{"nil type", nil, `"permanent"`, false},
		{"result without err type", typeOf(t, "result<u8>"), `null`, false},
		{"alias to result", typeOf(t, "count"), `"permanent"`, false},
	}
	for _, tt := range tests {
		if got := IsPermanentError(tt.typ, json.RawMessage(tt.payload)); got != tt.want {
			t.Errorf("%s: IsPermanentError(%v, %s) = %v, want %v", tt.name, tt.typ, tt.payload, got, tt.want)
		}
	}
}

// TestIntegersAsTheGuestDecodes checks the type checker against the decoder of Go
// guests: the SDK decodes parameters and results like encoding/json, and a value the
// checker accepts must decode, in every integer width and for floats.
func TestIntegersAsTheGuestDecodes(t *testing.T) {
	literals := []string{
		"0", "-0", "1", "-1", "10", "1e1", "10.0", "1E1", "1e+1", "100e-1", "0.0", "-0.0", "0e5",
		"127", "128", "-128", "-129", "255", "256", "32767", "32768", "-32768", "-32769", "65535", "65536",
		"2147483647", "2147483648", "-2147483648", "-2147483649", "4294967295", "4294967296",
		"9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
		"18446744073709551615", "18446744073709551616", "1.5", "1e-1", "3.4e38", "3.5e38", "-3.5e38",
		"1e308", "1e309", "1e-400", "123456789012345678901234567890",
	}
	decoders := map[string]func([]byte) error{
		"u8":  func(b []byte) error { var v uint8; return json.Unmarshal(b, &v) },
		"u16": func(b []byte) error { var v uint16; return json.Unmarshal(b, &v) },
		"u32": func(b []byte) error { var v uint32; return json.Unmarshal(b, &v) },
		"u64": func(b []byte) error { var v uint64; return json.Unmarshal(b, &v) },
		"s8":  func(b []byte) error { var v int8; return json.Unmarshal(b, &v) },
		"s16": func(b []byte) error { var v int16; return json.Unmarshal(b, &v) },
		"s32": func(b []byte) error { var v int32; return json.Unmarshal(b, &v) },
		"s64": func(b []byte) error { var v int64; return json.Unmarshal(b, &v) },
		"f32": func(b []byte) error { var v float32; return json.Unmarshal(b, &v) },
		"f64": func(b []byte) error { var v float64; return json.Unmarshal(b, &v) },
	}
	for typ, decode := range decoders {
		ty := typeOf(t, typ)
		for _, lit := range literals {
			checkErr := CheckValue(ty, json.RawMessage(lit))
			decodeErr := decode([]byte(lit))
			if (checkErr == nil) != (decodeErr == nil) {
				t.Errorf("%s %s: CheckValue says %v, the guest's decoder %v", typ, lit, checkErr, decodeErr)
			}
		}
	}
}
