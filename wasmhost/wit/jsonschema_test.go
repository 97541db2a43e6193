package wit

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"pgregory.net/rapid"
)

// compileSchema compiles a schema made here with a JSON Schema validator.
func compileSchema(t testing.TB, s map[string]any) *jsonschema.Schema {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource("mem://schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("mem://schema.json")
	if err != nil {
		t.Fatalf("compile %s: %v", b, err)
	}
	return sch
}

// schemaAccepts validates the JSON text v against sch.
func schemaAccepts(t testing.TB, sch *jsonschema.Schema, v string) bool {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(strings.NewReader(v))
	if err != nil {
		t.Fatalf("test value %s: %v", v, err)
	}
	return sch.Validate(inst) == nil
}

// TestJSONSchemaAgreesWithCheckValue: for every kind of WIT type, the JSON Schema of
// the type accepts exactly the values CheckValue accepts.
func TestJSONSchemaAgreesWithCheckValue(t *testing.T) {
	tests := []struct {
		typ    string
		values []string
	}{
		{"bool", []string{`true`, `false`, `1`, `"true"`, `null`}},
		{"u8", []string{`0`, `255`, `3.0`, `1e2`, `2.55E2`, `-0`, `0.0e5`, `256`, `-1`, `3.5`, `"5"`, `[1]`, `{}`, `1e-1`}},
		{"s8", []string{`-128`, `127`, `-129`, `128`}},
		{"u16", []string{`65535`, `65536`}},
		{"s16", []string{`-32768`, `32767`, `-32769`, `32768`}},
		{"u32", []string{`4294967295`, `4294967296`, `0`}},
		{"s32", []string{`-2147483648`, `2147483647`, `2147483648`, `-2147483649`}},
		{"u64", []string{`18446744073709551615`, `0`, `1.8446744073709551615e19`, `18446744073709551615.000`,
			`18446744073709551616`, `18446744073709551615.5`, `1e20`, `-1`, `1e400`}},
		{"s64", []string{`-9223372036854775808`, `9223372036854775807`, `-9223372036854775809`, `9223372036854775808`}},
		{"f32", []string{`1.5`, `1`, `-3.4e38`, `3.4028235e38`, `-3.4028235e38`, `1e-50`, `3.5e38`, `-3.5e38`,
			`340282356779733661637539395458142568447`, `340282356779733661637539395458142568448`, `"1"`}},
		{"float64", []string{`1e308`, `1.7976931348623158e308`, `1.7976931348623159e308`, `1e309`, `-1e309`, `true`}},
		{"char", []string{`"a"`, `"é"`, `"😀"`, `"\u00e9"`, `"ab"`, `""`, `5`}},
		{"string", []string{`"x"`, `""`, `5`, `null`}},
		{"list<u8>", []string{`[]`, `[1, 2, 255]`, `[1, 256]`, `{}`, `null`}},
		{"list<u8, 3>", []string{`[1, 2, 3]`, `[1, 2]`, `[1, 2, 3, 4]`}},
		{"list<list<string>>", []string{`[["a"], [], ["b", "c"]]`, `[["a"], [1]]`}},
		{"tuple<u8, string>", []string{`[1, "a"]`, `[1]`, `[1, "a", 2]`, `["a", 1]`, `{}`}},
		{"option<u32>", []string{`null`, `5`, `"x"`}},
		{"option<option<u32>>", []string{`null`, `5`, `[]`}},
		{"result", []string{`{"ok": null}`, `{"err": null}`, `"ok"`, `"err"`, `{"ok": 5}`, `{}`,
			`{"ok": null, "err": null}`, `{"value": 1}`, `"fine"`, `null`}},
		{"result<u64>", []string{`{"ok": 5}`, `{"err": null}`, `"err"`, `{"ok": 18446744073709551615}`, `{"ok": null}`,
			`{"ok": -1}`, `"ok"`, `{"err": "x"}`}},
		{"result<_, string>", []string{`{"err": "x"}`, `{"ok": null}`, `"ok"`, `{"err": 1}`, `"err"`}},
		{"result<u64, string>", []string{`{"ok": 1}`, `{"err": "x"}`, `{"err": 5}`, `{"ok": 1, "err": "x"}`}},
		{"point", []string{`{"x": 1, "y": -2}`, `{"y": 1, "x": 2}`, `{"x": 1}`, `{"x": 1, "y": 2, "z": 3}`,
			`[1, 2]`, `{"x": 1, "y": 2.5}`}},
		{"opt", []string{`{"req": "a", "field_2": 1}`, `{"req": "a", "field_2": 1, "maybe": null, "alias_opt": 3}`,
			`{"req": "a", "field-2": 1}`, `{"req": "a"}`, `{"field_2": 1, "maybe": 1}`,
			`{"req": "a", "field_2": 1, "alias_opt": "x"}`}},
		{"shape", []string{`"none"`, `{"circle": 1.5}`, `{"poly": [{"x": 1, "y": 2}]}`, `{"named_thing": "x"}`,
			`"circle"`, `{"none": null}`, `"square"`, `{"named-thing": "x"}`, `{"circle": 1, "none": null}`,
			`{"poly": [{"x": 1}]}`, `5`, `{}`}},
		{"HTTP-error", []string{`"NOT_FOUND"`, `{"bad_request": "x"}`, `"not_found"`}},
		{"error", []string{`"permanent"`, `{"transient": "x"}`, `{"permanent": null}`}},
		{"color", []string{`"red"`, `"dark_blue"`, `"dark-blue"`, `"purple"`, `1`}},
		{"perms", []string{`[]`, `["read", "exec_all"]`, `["exec_all", "write", "read"]`, `["read", "read"]`,
			`["fly"]`, `[1]`, `"read"`}},
		{"nested", []string{`{"items": [], "shape": "none"}`, `{"items": [{"x": 1, "y": 2}, {"x": 1, "y": "a"}], "shape": "none"}`,
			`{"items": [], "shape": {"poly": [{"x": 1, "y": 2, "w": 0}]}}`}},
		{"count", []string{`5`, `-1`}},
		{"maybe-u32", []string{`null`, `1`, `"1"`}},
		{"res", []string{`1`, `null`}},
		{"borrow<res>", []string{`1`}},
		{"own<res>", []string{`null`}},
		{"option<res>", []string{`null`, `1`}},
		{"stream<u8>", []string{`[]`}},
		{"future", []string{`null`}},
	}
	accepted, rejected := 0, 0
	for _, tt := range tests {
		typ := typeOf(t, tt.typ)
		sch := compileSchema(t, JSONSchema(typ))
		for _, v := range tt.values {
			want := CheckValue(typ, json.RawMessage(v))
			got := schemaAccepts(t, sch, v)
			if got != (want == nil) && !(got && spellingOnly(want)) {
				s, _ := json.Marshal(JSONSchema(typ))
				t.Errorf("%s: %s: schema accepts=%v, CheckValue: %v\nschema: %s", tt.typ, v, got, want, s)
			}
			if want == nil {
				accepted++
			} else {
				rejected++
			}
		}
	}
	if accepted < 50 || rejected < 50 {
		t.Errorf("the table has %d accepted and %d rejected values: too few", accepted, rejected)
	}
}

// TestParamsJSONSchema: a function's parameter schema is a tuple of its parameters'
// schemas, agreeing with CheckParams.
func TestParamsJSONSchema(t *testing.T) {
	r := parseMain(t, withFunc("f: func(n: u8, p: point, tags: list<string>) -> result<u64, error>;"))
	fn := r.Main().Interface("v").Function("f")
	params := ParamsJSONSchema(fn)
	if params["$schema"] != SchemaDialect {
		t.Errorf("$schema = %v", params["$schema"])
	}
	sch := compileSchema(t, params)
	for _, v := range []string{
		`[1, {"x": 1, "y": 2}, []]`, `[1, {"x": 1, "y": 2}, ["a"]]`,
		`[]`, `[1]`, `[1, {"x": 1, "y": 2}]`, `[1, {"x": 1, "y": 2}, [], 4]`, `[256, {"x": 1, "y": 2}, []]`,
		`[1, {"x": 1}, []]`, `{}`, `null`,
	} {
		want := CheckParams(fn, json.RawMessage(v))
		if got := schemaAccepts(t, sch, v); got != (want == nil) {
			t.Errorf("params %s: schema accepts=%v, CheckParams: %v", v, got, want)
		}
	}
	res := compileSchema(t, ResultJSONSchema(fn))
	for _, v := range []string{`{"ok": 1}`, `{"err": "permanent"}`, `{"err": {"transient": "x"}}`, `{"ok": "x"}`, `"ok"`} {
		want := CheckValue(fn.Result, json.RawMessage(v))
		if got := schemaAccepts(t, res, v); got != (want == nil) {
			t.Errorf("result %s: schema accepts=%v, CheckValue: %v", v, got, want)
		}
	}
	noParams := parseMain(t, withFunc("g: func();")).Main().Interface("v").Function("g")
	sch = compileSchema(t, ParamsJSONSchema(noParams))
	if !schemaAccepts(t, sch, `[]`) || schemaAccepts(t, sch, `[1]`) {
		t.Error("the parameter schema of func() must accept [] only")
	}
	if !schemaAccepts(t, compileSchema(t, ResultJSONSchema(noParams)), `null`) {
		t.Error("the result schema of a function without result must accept null")
	}
}

// TestJSONSchemaAgreesRandomly: random JSON values shaped after the types, mostly
// valid with now and then a wrong part (a value from the vocabulary of all the types: their
// keys, labels, boundary numbers), get the same verdict from the schema and CheckValue.
func TestJSONSchemaAgreesRandomly(t *testing.T) {
	types := []string{"u8", "s64", "u64", "f32", "char", "option<u32>", "result<u64, string>", "result",
		"point", "opt", "shape", "color", "perms", "nested", "tuple<u8, option<string>>", "list<color, 2>",
		"option<list<perms>>", "result<_, shape>", "error", "HTTP-error"}
	schemas := map[string]*jsonschema.Schema{}
	for _, ty := range types {
		schemas[ty] = compileSchema(t, JSONSchema(typeOf(t, ty)))
	}
	words := []string{"ok", "err", "x", "y", "req", "maybe", "field_2", "alias_opt", "circle", "none", "poly",
		"named_thing", "red", "green", "dark_blue", "dark-blue", "read", "write", "exec_all", "items", "shape",
		"permanent", "transient", "a", "é", "NOT_FOUND", "bad_request"}
	numbers := []string{"0", "1", "-1", "255", "256", "1.5", "2e0", "18446744073709551615", "18446744073709551616",
		"-9223372036854775808", "9223372036854775808", "3.5e38", "4294967296", "1e-3", "-128"}
	str := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	var anyValue func(rt *rapid.T, depth int) string
	anyValue = func(rt *rapid.T, depth int) string {
		max := 6
		if depth >= 2 {
			max = 3
		}
		switch rapid.IntRange(0, max).Draw(rt, "kind") {
		case 0:
			return "null"
		case 1:
			return rapid.SampledFrom([]string{"true", "false"}).Draw(rt, "bool")
		case 2:
			return rapid.SampledFrom(numbers).Draw(rt, "number")
		case 3:
			return str(rapid.SampledFrom(words).Draw(rt, "string"))
		case 4, 5:
			elems := make([]string, rapid.IntRange(0, 3).Draw(rt, "len"))
			for i := range elems {
				elems[i] = anyValue(rt, depth+1)
			}
			return "[" + strings.Join(elems, ",") + "]"
		}
		seen := map[string]bool{}
		var members []string
		for range rapid.IntRange(0, 3).Draw(rt, "len") {
			if k := rapid.SampledFrom(words).Draw(rt, "key"); !seen[k] { // CheckValue rejects duplicate keys, a schema cannot
				seen[k] = true
				members = append(members, str(k)+":"+anyValue(rt, depth+1))
			}
		}
		return "{" + strings.Join(members, ",") + "}"
	}
	// shaped draws a value of type ty, now and then wrong somewhere.
	var shaped func(rt *rapid.T, ty *Type, depth int) string
	shaped = func(rt *rapid.T, ty *Type, depth int) string {
		if rapid.IntRange(0, 9).Draw(rt, "wrong") == 0 || depth > 4 {
			return anyValue(rt, depth)
		}
		u := ty.Underlying()
		switch u.Kind {
		case KindBool:
			return "true"
		case KindS8, KindS16, KindS32, KindS64, KindU8, KindU16, KindU32, KindU64, KindF32, KindF64:
			return rapid.SampledFrom(numbers).Draw(rt, "number")
		case KindChar, KindString:
			return str(rapid.SampledFrom(words).Draw(rt, "string"))
		case KindList, KindTuple:
			n := rapid.IntRange(0, 3).Draw(rt, "len")
			if u.Kind == KindTuple || u.Len > 0 {
				n = max(len(u.Tuple), u.Len) + rapid.IntRange(-1, 1).Draw(rt, "len-off")
			}
			elems := make([]string, max(n, 0))
			for i := range elems {
				e := u.Elem
				if u.Kind == KindTuple {
					e = u.Tuple[min(i, len(u.Tuple)-1)]
				}
				elems[i] = shaped(rt, e, depth+1)
			}
			return "[" + strings.Join(elems, ",") + "]"
		case KindOption:
			if rapid.Bool().Draw(rt, "none") {
				return "null"
			}
			return shaped(rt, u.Elem, depth+1)
		case KindResult:
			key, side := "ok", u.Ok
			if rapid.Bool().Draw(rt, "err") {
				key, side = "err", u.Err
			}
			if side == nil {
				return rapid.SampledFrom([]string{str(key), "{" + str(key) + ":null}"}).Draw(rt, "empty-side")
			}
			return "{" + str(key) + ":" + shaped(rt, side, depth+1) + "}"
		case KindRecord:
			var members []string
			for _, f := range u.Fields {
				if rapid.IntRange(0, 4).Draw(rt, "omit") > 0 {
					members = append(members, str(SnakeCase(f.Name))+":"+shaped(rt, f.Type, depth+1))
				}
			}
			if rapid.IntRange(0, 5).Draw(rt, "extra") == 0 {
				members = append(members, `"extra":1`)
			}
			return "{" + strings.Join(members, ",") + "}"
		case KindVariant:
			c := u.Cases[rapid.IntRange(0, len(u.Cases)-1).Draw(rt, "case")]
			if c.Type == nil {
				return str(SnakeCase(c.Name))
			}
			return "{" + str(SnakeCase(c.Name)) + ":" + shaped(rt, c.Type, depth+1) + "}"
		case KindEnum:
			return str(SnakeCase(u.Labels[rapid.IntRange(0, len(u.Labels)-1).Draw(rt, "label")]))
		case KindFlags:
			var elems []string
			for range rapid.IntRange(0, 3).Draw(rt, "len") {
				elems = append(elems, str(SnakeCase(u.Labels[rapid.IntRange(0, len(u.Labels)-1).Draw(rt, "flag")])))
			}
			return "[" + strings.Join(elems, ",") + "]"
		}
		return anyValue(rt, depth)
	}
	valid := 0
	rapid.Check(t, func(rt *rapid.T) {
		name := rapid.SampledFrom(types).Draw(rt, "type")
		ty := typeOf(t, name)
		v := shaped(rt, ty, 0)
		want := CheckValue(ty, json.RawMessage(v))
		if want == nil {
			valid++
		}
		if got := schemaAccepts(t, schemas[name], v); got != (want == nil) && !(got && spellingOnly(want)) {
			rt.Fatalf("%s: %s: schema accepts=%v, CheckValue: %v", name, v, got, want)
		}
	})
	if valid == 0 {
		t.Error("no random value was valid: the generator is broken")
	}
}

// spellingOnly reports whether CheckValue rejected a value for how an integer in it is
// written (10.0, 1e1, -0 for an unsigned type), which a schema, comparing numbers by
// value, cannot see.
func spellingOnly(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "(an integer is written without a fraction or an exponent)") ||
		strings.HasSuffix(err.Error(), ", got -0"))
}
