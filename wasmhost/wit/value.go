package wit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ValueError is a JSON value that does not match its WIT type. Its message can
// be shown to users verbatim: it names what was expected and what was given.
type ValueError struct {
	// Path locates the offending value inside the checked one, as a JSON path
	// such as "items[3].name" or "[0]"; "" for the checked value itself.
	Path string
	// Msg says what is wrong, e.g. `expected u8, got 300`.
	Msg string

	located bool // while decoding: Path is meaningful (not a syntax error)
}

// Error returns "path: message", or the message alone for the checked value
// itself.
func (e *ValueError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// ParamError is a parameter that does not match its WIT type, reported by
// [CheckParams] as `parameter 0 "n": expected u8, got 300` or, for a nested
// value, `parameter 1 "cfg": params[1].items[3]: expected string, got 5`.
type ParamError struct {
	Index int         // 0-based position of the parameter
	Name  string      // WIT name of the parameter
	Err   *ValueError // the mismatch, its Path relative to the parameter
}

// Path returns the JSON path of the offending value within the parameter
// array, e.g. "params[1].items[3]".
func (e *ParamError) Path() string {
	return joinPath(fmt.Sprintf("params[%d]", e.Index), e.Err.Path)
}

// Error names the parameter, then the path and the mismatch.
func (e *ParamError) Error() string {
	if e.Err.Path == "" {
		return fmt.Sprintf("parameter %d %q: %s", e.Index, e.Name, e.Err.Msg)
	}
	return fmt.Sprintf("parameter %d %q: %s: %s", e.Index, e.Name, e.Path(), e.Err.Msg)
}

// Unwrap returns the underlying [*ValueError].
func (e *ParamError) Unwrap() error { return e.Err }

// joinPath appends a relative JSON path ("x.y", "[2]") to a base path.
func joinPath(base, rel string) string {
	switch {
	case rel == "":
		return base
	case base == "" || strings.HasPrefix(rel, "["):
		return base + rel
	}
	return base + "." + rel
}

func fieldPath(base, key string) string {
	if base == "" {
		return key
	}
	return base + "." + key
}

func indexPath(base string, i int) string { return base + "[" + strconv.Itoa(i) + "]" }

// CheckValue checks that the JSON value v is a valid value of WIT type t under
// the JSON mapping of the guest ABI. A mismatch is a [*ValueError].
//
// The mapping: bool is true/false; integers are JSON numbers within range
// written as integers (digits, a minus sign only if signed: 3.0, 1e2 and, for
// unsigned types, -0 are rejected, as the guest's decoder rejects them); f32/f64 are finite numbers within range; char
// is a string of one character; list and tuple are arrays (a tuple or a
// list<T, N> of exact length); a record is an object with snake_case keys
// where a missing field of option type means none and unknown keys are
// rejected; a variant case is "case" without payload or {"case": value}; an
// enum is a snake_case string; flags are an array of distinct snake_case
// strings; option<T> is null or the value; a result is {"ok": v} or
// {"err": v}, where a side without type takes null (or the bare string "ok"
// / "err"). Resources, handles, futures, streams and error-context values
// cannot be represented and are rejected. Duplicate object keys and trailing
// data are rejected.
func CheckValue(t *Type, v json.RawMessage) error {
	if t == nil {
		return errors.New("wit: CheckValue: nil type")
	}
	val, verr := decodeJSON(v)
	if verr != nil {
		return verr
	}
	if err := checkValue(t, val, ""); err != nil {
		return err
	}
	return nil
}

// CheckParams checks a JSON array of parameters against a function's
// parameters: it must have exactly one element per parameter, each valid for
// its parameter's type. A mismatching element is a [*ParamError]; a malformed
// array is a [*ValueError].
func CheckParams(fn *Function, params json.RawMessage) error {
	if fn == nil {
		return errors.New("wit: CheckParams: nil function")
	}
	val, verr := decodeJSON(params)
	if verr != nil {
		return verr
	}
	arr, ok := val.([]any)
	if !ok {
		return &ValueError{Msg: fmt.Sprintf("parameters must be a JSON array %s, got %s", paramList(fn), describe(val))}
	}
	if len(arr) != len(fn.Params) {
		return &ValueError{Msg: fmt.Sprintf("%s takes %s %s, got %s",
			fn.Name, plural(len(fn.Params), "parameter"), paramList(fn), plural(len(arr), "value"))}
	}
	for i, p := range fn.Params {
		if err := checkValue(p.Type, arr[i], ""); err != nil {
			return &ParamError{Index: i, Name: p.Name, Err: err}
		}
	}
	return nil
}

func paramList(fn *Function) string {
	var b strings.Builder
	b.WriteString("[")
	for i, p := range fn.Params {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(p.Name + ": ")
		writeTypeRef(&b, p.Type)
	}
	b.WriteString("]")
	return b.String()
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

// IsPermanentError reports whether errPayload, the value of an {"err": ...}
// result, is a case of a variant (or enum) whose name contains "permanent",
// such as {"permanent_failure": "x"} or "permanent". Activities are not retried
// on such errors. resultType is the function's result type; the error type
// itself (a variant or enum) is accepted too.
func IsPermanentError(resultType *Type, errPayload json.RawMessage) bool {
	t := resultType.Underlying()
	if t == nil {
		return false
	}
	if t.Kind == KindResult {
		t = t.Err.Underlying()
		if t == nil {
			return false
		}
	}
	var name string
	var payload any
	if err := json.Unmarshal(errPayload, &payload); err != nil {
		return false
	}
	switch p := payload.(type) {
	case string:
		name = p
	case map[string]any:
		if len(p) != 1 {
			return false
		}
		for k := range p {
			name = k
		}
	default:
		return false
	}
	switch t.Kind {
	case KindVariant:
		for _, c := range t.Cases {
			if SnakeCase(c.Name) == name || c.Name == name {
				return strings.Contains(c.Name, "permanent")
			}
		}
	case KindEnum:
		for _, l := range t.Labels {
			if SnakeCase(l) == name || l == name {
				return strings.Contains(l, "permanent")
			}
		}
	}
	return false
}

// ---- JSON decoding ----

// jsonObject keeps the keys of a JSON object in order.
type jsonObject struct {
	keys []string
	vals map[string]any
}

const maxJSONDepth = 1000

// decodeJSON decodes one JSON value, numbers as json.Number, objects as
// *jsonObject. It rejects duplicate keys and trailing data.
func decodeJSON(raw []byte) (any, *ValueError) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, &ValueError{Msg: "invalid JSON: empty input"}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	v, err := decodeValue(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, terr := dec.Token(); terr != io.EOF {
		return nil, &ValueError{Msg: "invalid JSON: unexpected data after the value"}
	}
	return v, nil
}

// decodeValue decodes the next value. Errors about the structure (duplicate
// keys) carry a path relative to the value; syntax errors carry none.
func decodeValue(dec *json.Decoder, depth int) (any, *ValueError) {
	if depth > maxJSONDepth {
		return nil, &ValueError{Msg: fmt.Sprintf("invalid JSON: nested more than %d levels deep", maxJSONDepth)}
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, syntaxError(err)
	}
	switch tok {
	case json.Delim('['):
		arr := []any{}
		for dec.More() {
			v, verr := decodeValue(dec, depth+1)
			if verr != nil {
				return nil, prefixPath(verr, indexPath("", len(arr)))
			}
			arr = append(arr, v)
		}
		if _, err := dec.Token(); err != nil {
			return nil, syntaxError(err)
		}
		return arr, nil
	case json.Delim('{'):
		obj := &jsonObject{vals: map[string]any{}}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return nil, syntaxError(err)
			}
			key, ok := kt.(string)
			if !ok {
				return nil, &ValueError{Msg: "invalid JSON: object key is not a string"}
			}
			if _, dup := obj.vals[key]; dup {
				return nil, &ValueError{Msg: fmt.Sprintf("duplicate key %q", key), located: true}
			}
			v, verr := decodeValue(dec, depth+1)
			if verr != nil {
				return nil, prefixPath(verr, key)
			}
			obj.keys = append(obj.keys, key)
			obj.vals[key] = v
		}
		if _, err := dec.Token(); err != nil {
			return nil, syntaxError(err)
		}
		return obj, nil
	}
	return tok, nil
}

// prefixPath prepends a path segment to a located error.
func prefixPath(e *ValueError, seg string) *ValueError {
	if e.located {
		e.Path = joinPath(seg, e.Path)
	}
	return e
}

func syntaxError(err error) *ValueError {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return &ValueError{Msg: "invalid JSON: unexpected end of input"}
	}
	return &ValueError{Msg: "invalid JSON: " + err.Error()}
}

// describe renders a JSON value for "got ..." in messages.
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case bool:
		return strconv.FormatBool(v)
	case json.Number:
		if len(v) > 40 {
			return string(v[:40]) + "..."
		}
		return string(v)
	case string:
		if utf8.RuneCountInString(v) > 40 {
			return strconv.Quote(truncate(v, 40)) + "..."
		}
		return strconv.Quote(v)
	case []any:
		return fmt.Sprintf("an array of %s", plural(len(v), "element"))
	case *jsonObject:
		if len(v.keys) == 0 {
			return "an empty object"
		}
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n])
}

// ---- checking ----

// typeDesc names a type for "expected ..." in messages.
func typeDesc(t *Type) string {
	if t.Kind == KindAlias {
		u := t.Underlying()
		if u == nil {
			return t.Name
		}
		return t.Name + " (" + typeDesc(u) + ")"
	}
	if t.Name != "" {
		return t.Kind.String() + " " + t.Name
	}
	return t.String()
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(SnakeCase(n))
	}
	return strings.Join(q, ", ")
}

func checkValue(t *Type, v any, path string) *ValueError {
	u := t.Underlying()
	if u == nil || u.Kind == KindInvalid {
		return &ValueError{Path: path, Msg: fmt.Sprintf("type %s is not resolved", t)}
	}
	mismatch := func() *ValueError {
		return &ValueError{Path: path, Msg: fmt.Sprintf("expected %s, got %s", typeDesc(t), describe(v))}
	}
	switch u.Kind {
	case KindBool:
		if _, ok := v.(bool); !ok {
			return mismatch()
		}
	case KindS8, KindS16, KindS32, KindS64, KindU8, KindU16, KindU32, KindU64:
		n, ok := v.(json.Number)
		if !ok {
			return mismatch()
		}
		if !intInRange(string(n), u.Kind) {
			if strings.ContainsAny(string(n), ".eE") {
				return &ValueError{Path: path, Msg: fmt.Sprintf("expected %s, got %s (an integer is written without a fraction or an exponent)", typeDesc(t), describe(v))}
			}
			return mismatch()
		}
	case KindF32, KindF64:
		n, ok := v.(json.Number)
		if !ok {
			return mismatch()
		}
		bits := 64
		if u.Kind == KindF32 {
			bits = 32
		}
		if _, err := strconv.ParseFloat(string(n), bits); err != nil {
			return &ValueError{Path: path, Msg: fmt.Sprintf("expected %s, got %s (out of range)", typeDesc(t), describe(v))}
		}
	case KindChar:
		s, ok := v.(string)
		if !ok || utf8.RuneCountInString(s) != 1 {
			return &ValueError{Path: path, Msg: fmt.Sprintf("expected %s (a string of one character), got %s", typeDesc(t), describe(v))}
		}
	case KindString:
		if _, ok := v.(string); !ok {
			return mismatch()
		}
	case KindList:
		arr, ok := v.([]any)
		if !ok {
			return mismatch()
		}
		if u.Len > 0 && len(arr) != u.Len {
			return &ValueError{Path: path, Msg: fmt.Sprintf("expected %s (%s), got %s", typeDesc(t), plural(u.Len, "element"), describe(v))}
		}
		for i, e := range arr {
			if err := checkValue(u.Elem, e, indexPath(path, i)); err != nil {
				return err
			}
		}
	case KindTuple:
		arr, ok := v.([]any)
		if !ok {
			return mismatch()
		}
		if len(arr) != len(u.Tuple) {
			return &ValueError{Path: path, Msg: fmt.Sprintf("expected %s (an array of %s), got %s", typeDesc(t), plural(len(u.Tuple), "element"), describe(v))}
		}
		for i, e := range arr {
			if err := checkValue(u.Tuple[i], e, indexPath(path, i)); err != nil {
				return err
			}
		}
	case KindOption:
		if v == nil {
			return nil
		}
		return checkValue(u.Elem, v, path)
	case KindResult:
		return checkResult(t, u, v, path)
	case KindRecord:
		return checkRecord(t, u, v, path)
	case KindVariant:
		return checkVariant(t, u, v, path)
	case KindEnum:
		s, ok := v.(string)
		if ok {
			for _, l := range u.Labels {
				if SnakeCase(l) == s {
					return nil
				}
			}
		}
		return &ValueError{Path: path, Msg: fmt.Sprintf("expected %s (one of %s), got %s", typeDesc(t), quoteList(u.Labels), describe(v))}
	case KindFlags:
		arr, ok := v.([]any)
		if !ok {
			return &ValueError{Path: path, Msg: fmt.Sprintf("expected %s (an array of flag names out of %s), got %s", typeDesc(t), quoteList(u.Labels), describe(v))}
		}
		seen := map[string]bool{}
		for i, e := range arr {
			s, ok := e.(string)
			known := false
			for _, l := range u.Labels {
				known = known || (ok && SnakeCase(l) == s)
			}
			if !known {
				return &ValueError{Path: indexPath(path, i), Msg: fmt.Sprintf("expected a flag of %s (one of %s), got %s", typeDesc(t), quoteList(u.Labels), describe(e))}
			}
			if seen[s] {
				return &ValueError{Path: indexPath(path, i), Msg: fmt.Sprintf("flag %q is given more than once", s)}
			}
			seen[s] = true
		}
	default: // resources, handles, futures, streams, error-context
		return &ValueError{Path: path, Msg: fmt.Sprintf("values of type %s cannot be represented in JSON (%s types are not supported)", typeDesc(t), u.Kind)}
	}
	return nil
}

func checkResult(t, u *Type, v any, path string) *ValueError {
	shape := func() *ValueError {
		return &ValueError{Path: path, Msg: fmt.Sprintf(`expected %s ({"ok": ...} or {"err": ...}), got %s`, typeDesc(t), describe(v))}
	}
	var key string
	var payload any
	hasPayload := false
	switch x := v.(type) {
	case string:
		key = x
	case *jsonObject:
		if len(x.keys) != 1 {
			return shape()
		}
		key, payload, hasPayload = x.keys[0], x.vals[x.keys[0]], true
	default:
		return shape()
	}
	var side *Type
	switch key {
	case "ok":
		side = u.Ok
	case "err":
		side = u.Err
	default:
		return shape()
	}
	p := fieldPath(path, key)
	if side == nil {
		if hasPayload && payload != nil {
			return &ValueError{Path: p, Msg: fmt.Sprintf("%s has no %s payload: expected null, got %s", typeDesc(t), key, describe(payload))}
		}
		return nil
	}
	if !hasPayload {
		return &ValueError{Path: path, Msg: fmt.Sprintf(`%s needs an %s payload: {"%s": <%s>}`, typeDesc(t), key, key, side)}
	}
	return checkValue(side, payload, p)
}

func checkRecord(t, u *Type, v any, path string) *ValueError {
	obj, ok := v.(*jsonObject)
	if !ok {
		return &ValueError{Path: path, Msg: fmt.Sprintf("expected %s (an object), got %s", typeDesc(t), describe(v))}
	}
	names := make([]string, len(u.Fields))
	for i, f := range u.Fields {
		names[i] = f.Name
	}
	for _, k := range obj.keys {
		found := false
		for _, f := range u.Fields {
			if SnakeCase(f.Name) == k {
				found = true
				break
			}
		}
		if !found {
			return &ValueError{Path: path, Msg: fmt.Sprintf("unknown field %q in %s (fields: %s)", k, typeDesc(t), quoteList(names))}
		}
	}
	for _, f := range u.Fields {
		key := SnakeCase(f.Name)
		fv, present := obj.vals[key]
		if !present {
			if ft := f.Type.Underlying(); ft != nil && ft.Kind == KindOption {
				continue // a missing option field is none
			}
			return &ValueError{Path: path, Msg: fmt.Sprintf("missing field %q (%s) in %s", key, f.Type, typeDesc(t))}
		}
		if err := checkValue(f.Type, fv, fieldPath(path, key)); err != nil {
			return err
		}
	}
	return nil
}

func checkVariant(t, u *Type, v any, path string) *ValueError {
	names := make([]string, len(u.Cases))
	for i, c := range u.Cases {
		names[i] = c.Name
	}
	find := func(name string) (Case, bool) {
		for _, c := range u.Cases {
			if SnakeCase(c.Name) == name {
				return c, true
			}
		}
		return Case{}, false
	}
	unknown := func(name string) *ValueError {
		return &ValueError{Path: path, Msg: fmt.Sprintf("unknown case %q of %s (cases: %s)", name, typeDesc(t), quoteList(names))}
	}
	switch x := v.(type) {
	case string:
		c, ok := find(x)
		if !ok {
			return unknown(x)
		}
		if c.Type != nil {
			return &ValueError{Path: path, Msg: fmt.Sprintf(`case %q of %s needs a payload: {"%s": <%s>}`, x, typeDesc(t), x, c.Type)}
		}
		return nil
	case *jsonObject:
		if len(x.keys) == 1 {
			key := x.keys[0]
			c, ok := find(key)
			if !ok {
				return unknown(key)
			}
			if c.Type == nil {
				return &ValueError{Path: path, Msg: fmt.Sprintf(`case %q of %s has no payload: write it as the string "%s"`, key, typeDesc(t), key)}
			}
			return checkValue(c.Type, x.vals[key], fieldPath(path, key))
		}
	}
	return &ValueError{Path: path, Msg: fmt.Sprintf(`expected %s ("case" or {"case": value} with a case of %s), got %s`, typeDesc(t), quoteList(names), describe(v))}
}

// intInRange reports whether the JSON number s is an integer within the range of kind,
// written as a guest decodes integers (the Go SDK, like encoding/json, parses them with
// strconv.ParseInt/ParseUint): digits only, without a fraction or an exponent, and an
// unsigned one without a minus sign. 1e1 or 10.0 for a u8, or -0 for a u64, would pass a
// check of the value but fail in the guest, after the execution had been created.
func intInRange(s string, kind Kind) bool {
	if strings.ContainsAny(s, ".eE") {
		return false
	}
	switch kind {
	case KindS8, KindS16, KindS32, KindS64:
		_, err := strconv.ParseInt(s, 10, intBits(kind))
		return err == nil
	}
	if strings.HasPrefix(s, "-") {
		return false
	}
	_, err := strconv.ParseUint(s, 10, intBits(kind))
	return err == nil
}

func intBits(kind Kind) int {
	switch kind {
	case KindS8, KindU8:
		return 8
	case KindS16, KindU16:
		return 16
	case KindS32, KindU32:
		return 32
	}
	return 64
}
