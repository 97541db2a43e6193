package wit

import (
	"encoding/json"
	"math"
	"math/big"
	"strconv"
)

// SchemaDialect is the JSON Schema dialect of the schemas made here.
const SchemaDialect = "https://json-schema.org/draft/2020-12/schema"

// JSONSchema returns the JSON Schema (draft 2020-12) of the JSON encoding of values of
// type t, the encoding [CheckValue] checks (docs/abi.md, "Values"): a value is valid for
// the schema exactly when CheckValue accepts it, except that a schema cannot see
// duplicate object keys or how a number is written, and CheckValue rejects duplicate keys
// and integers written with a fraction or an exponent (10.0, 1e1) or, unsigned, as -0.
//
//   - bool: boolean; integers: integer with the type's bounds (u64 up to 2^64-1);
//     f32/f64: a number that does not round to infinity;
//   - char: a string of one character; string: string;
//   - list<T>: array of T (list<T, N>: exactly N); tuple: array with prefixItems;
//   - option<T>: anyOf null or T;
//   - result<O, E>: {"ok": O} or {"err": E}; a side without type is "ok" / {"ok": null};
//   - record: object with the snake_case fields, required unless of option type, no others;
//   - variant: enum of the cases without payload, or an object with one case key;
//   - enum: enum of the snake_case labels; flags: array of unique labels;
//   - resources, handles, futures, streams, error-context: {"not": {}} (no JSON encoding).
//
// Named types carry their WIT name as "title". The schema has no "$schema" key; see
// [ParamsJSONSchema] and [ResultJSONSchema] for complete documents.
func JSONSchema(t *Type) map[string]any {
	if t == nil {
		return map[string]any{"type": "null"}
	}
	s := typeSchema(t.Underlying())
	if t.Name != "" {
		s["title"] = t.Name
	}
	return s
}

// ParamsJSONSchema returns the JSON Schema document of a function's parameters as they
// are submitted (params_json): an array with one element per parameter, in order.
func ParamsJSONSchema(fn *Function) map[string]any {
	items := make([]any, len(fn.Params))
	for i, p := range fn.Params {
		s := JSONSchema(p.Type)
		if _, ok := s["title"]; !ok {
			s["title"] = p.Name
		}
		s["description"] = "parameter " + strconv.Itoa(i) + " " + p.Name + ": " + p.Type.String()
		items[i] = s
	}
	s := tupleSchema(items)
	s["$schema"] = SchemaDialect
	s["title"] = fn.FFQN() + " parameters"
	return s
}

// ResultJSONSchema returns the JSON Schema document of a function's return value
// ({"ok": ..} or {"err": ..} for the result types of exported functions), or of null
// for a function without result.
func ResultJSONSchema(fn *Function) map[string]any {
	s := JSONSchema(fn.Result)
	s["$schema"] = SchemaDialect
	s["title"] = fn.FFQN() + " result"
	return s
}

func intSchema(min, max any) map[string]any {
	return map[string]any{"type": "integer", "minimum": min, "maximum": max}
}

// f32Overflow and f64Overflow are the smallest magnitudes that round to infinity, which
// strconv.ParseFloat (and so CheckValue) rejects as out of range: the largest finite
// value plus half a unit in the last place. They are exact JSON integers.
var (
	f32Overflow = overflowBound(math.MaxFloat32, 104)
	f64Overflow = overflowBound(math.MaxFloat64, 971)
)

func overflowBound(max float64, ulpExp int) json.Number {
	m, _ := new(big.Float).SetFloat64(max).Int(nil)
	half := new(big.Int).Lsh(big.NewInt(1), uint(ulpExp-1))
	return json.Number(m.Add(m, half).String())
}

func floatSchema(bound json.Number) map[string]any {
	return map[string]any{"type": "number", "exclusiveMinimum": json.Number("-" + bound), "exclusiveMaximum": bound}
}

func tupleSchema(items []any) map[string]any {
	s := map[string]any{"type": "array", "minItems": len(items), "maxItems": len(items), "items": false}
	if len(items) > 0 {
		s["prefixItems"] = items
	}
	return s
}

func snakeLabels(labels []string) []any {
	out := make([]any, len(labels))
	for i, l := range labels {
		out[i] = SnakeCase(l)
	}
	return out
}

// oneKey is an object with exactly the key k, whose value matches s.
func oneKey(k string, s any) map[string]any {
	return map[string]any{"type": "object", "properties": map[string]any{k: s}, "required": []any{k}, "additionalProperties": false}
}

func typeSchema(u *Type) map[string]any {
	if u == nil {
		return map[string]any{"not": map[string]any{}, "description": "unresolved type"}
	}
	switch u.Kind {
	case KindBool:
		return map[string]any{"type": "boolean"}
	case KindS8:
		return intSchema(math.MinInt8, math.MaxInt8)
	case KindS16:
		return intSchema(math.MinInt16, math.MaxInt16)
	case KindS32:
		return intSchema(math.MinInt32, math.MaxInt32)
	case KindS64:
		return intSchema(int64(math.MinInt64), int64(math.MaxInt64))
	case KindU8:
		return intSchema(0, math.MaxUint8)
	case KindU16:
		return intSchema(0, math.MaxUint16)
	case KindU32:
		return intSchema(0, uint64(math.MaxUint32))
	case KindU64:
		return intSchema(0, uint64(math.MaxUint64))
	case KindF32:
		return floatSchema(f32Overflow)
	case KindF64:
		return floatSchema(f64Overflow)
	case KindChar:
		return map[string]any{"type": "string", "minLength": 1, "maxLength": 1}
	case KindString:
		return map[string]any{"type": "string"}
	case KindList:
		s := map[string]any{"type": "array", "items": JSONSchema(u.Elem)}
		if u.Len > 0 {
			s["minItems"], s["maxItems"] = u.Len, u.Len
		}
		return s
	case KindTuple:
		items := make([]any, len(u.Tuple))
		for i, e := range u.Tuple {
			items[i] = JSONSchema(e)
		}
		return tupleSchema(items)
	case KindOption:
		return map[string]any{"anyOf": []any{map[string]any{"type": "null"}, JSONSchema(u.Elem)}}
	case KindResult:
		var alts []any
		for _, side := range []struct {
			key string
			t   *Type
		}{{"ok", u.Ok}, {"err", u.Err}} {
			if side.t == nil {
				alts = append(alts, map[string]any{"const": side.key}, oneKey(side.key, map[string]any{"type": "null"}))
			} else {
				alts = append(alts, oneKey(side.key, JSONSchema(side.t)))
			}
		}
		return map[string]any{"anyOf": alts}
	case KindRecord:
		props := map[string]any{}
		required := []any{}
		for _, f := range u.Fields {
			key := SnakeCase(f.Name)
			props[key] = JSONSchema(f.Type)
			if ft := f.Type.Underlying(); ft == nil || ft.Kind != KindOption {
				required = append(required, key)
			}
		}
		return map[string]any{"type": "object", "properties": props, "required": required, "additionalProperties": false}
	case KindVariant:
		var bare []any
		var alts []any
		for _, c := range u.Cases {
			if c.Type == nil {
				bare = append(bare, SnakeCase(c.Name))
			} else {
				alts = append(alts, oneKey(SnakeCase(c.Name), JSONSchema(c.Type)))
			}
		}
		if len(bare) > 0 {
			alts = append([]any{map[string]any{"enum": bare}}, alts...)
		}
		switch len(alts) {
		case 0:
			return map[string]any{"not": map[string]any{}, "description": "a variant without cases"}
		case 1:
			return alts[0].(map[string]any)
		}
		return map[string]any{"anyOf": alts}
	case KindEnum:
		return map[string]any{"enum": snakeLabels(u.Labels)}
	case KindFlags:
		return map[string]any{"type": "array", "items": map[string]any{"enum": snakeLabels(u.Labels)}, "uniqueItems": true}
	}
	return map[string]any{"not": map[string]any{}, "description": "values of type " + u.Kind.String() + " cannot be represented in JSON"}
}
