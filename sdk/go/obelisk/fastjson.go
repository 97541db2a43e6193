package obelisk

import (
	"encoding/json"
	"math"
	"reflect"
	"strconv"
	"unicode/utf8"
)

// This file holds a small JSON scanner and encoder for the values that cross
// the ABI on every run: the run input, scalar parameters and results, the
// call and log requests and the host's responses.
//
// encoding/json builds its encoders, decoders and struct field tables with
// reflection the first time it meets a type, and caches them per process.
// The host makes a fresh instance for every run, so a guest pays that first
// use every time: about half a millisecond, more than the rest of a small
// run. The functions here do not touch that machinery.
//
// They are fast paths, not a second JSON implementation: each one either
// handles its input exactly as encoding/json would (same bytes out, same
// value decoded), or reports that it did not handle it, and the caller falls
// back to encoding/json, which then also produces the errors. So a fast
// path may decline anything unusual (an unknown key, a named type with
// methods, a value that would not decode) and only ever accepts documents
// encoding/json accepts.

// maxFastDepth bounds the nesting the scanner follows; deeper documents go
// to encoding/json (whose own limit is far higher).
const maxFastDepth = 512

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

// skipSpace returns the index of the first non-whitespace byte at or after i.
func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// scanString scans the JSON string starting with the quote at b[i]. It
// returns the index just past the closing quote, and plain when the string
// has no escape and only ASCII bytes (so its contents are b[i+1:end-1] as
// is). ok is false when it is not a valid JSON string.
func scanString(b []byte, i int) (end int, plain, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return 0, false, false
	}
	plain = true
	for i++; i < len(b); {
		c := b[i]
		switch {
		case c == '"':
			return i + 1, plain, true
		case c == '\\':
			plain = false
			if i+1 >= len(b) {
				return 0, false, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) {
					return 0, false, false
				}
				for _, h := range b[i+2 : i+6] {
					if hexValue(h) < 0 {
						return 0, false, false
					}
				}
				i += 6
			default:
				return 0, false, false
			}
		case c < 0x20:
			return 0, false, false
		default:
			if c >= utf8.RuneSelf {
				plain = false
			}
			i++
		}
	}
	return 0, false, false
}

func hexValue(c byte) rune {
	switch {
	case '0' <= c && c <= '9':
		return rune(c - '0')
	case 'a' <= c && c <= 'f':
		return rune(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return rune(c - 'A' + 10)
	}
	return -1
}

// hex4 decodes the 4 hex digits of a \u escape already checked by scanString.
func hex4(b []byte) rune {
	return hexValue(b[0])<<12 | hexValue(b[1])<<8 | hexValue(b[2])<<4 | hexValue(b[3])
}

// unquote returns the value of the JSON string lit, quotes included, that
// scanString accepted. Like encoding/json, it replaces invalid UTF-8 and
// unpaired surrogate escapes with U+FFFD.
func unquote(lit []byte, plain bool) string {
	s := lit[1 : len(lit)-1]
	if plain {
		return string(s)
	}
	i := 0
	for i < len(s) && s[i] != '\\' {
		if s[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			break
		}
		i += size
	}
	if i == len(s) {
		return string(s)
	}
	out := make([]byte, i, len(s)+8)
	copy(out, s[:i])
	for i < len(s) {
		c := s[i]
		if c == '\\' {
			switch c = s[i+1]; c {
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r := hex4(s[i+2:])
				i += 6
				if 0xD800 <= r && r < 0xE000 {
					// A surrogate: valid only as a high one followed by an
					// escaped low one.
					if r < 0xDC00 && i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
						if lo := hex4(s[i+2:]); 0xDC00 <= lo && lo < 0xE000 {
							out = utf8.AppendRune(out, 0x10000+(r-0xD800)<<10+(lo-0xDC00))
							i += 6
							continue
						}
					}
					r = utf8.RuneError
				}
				out = utf8.AppendRune(out, r)
				continue
			default: // '"', '\\', '/'
				out = append(out, c)
			}
			i += 2
			continue
		}
		if c < utf8.RuneSelf {
			out = append(out, c)
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			out = utf8.AppendRune(out, utf8.RuneError)
		} else {
			out = append(out, s[i:i+size]...)
		}
		i += size
	}
	return string(out)
}

// scanNumber scans the JSON number starting at b[i]. integer reports that it
// has neither a fraction nor an exponent.
func scanNumber(b []byte, i int) (end int, integer, ok bool) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return 0, false, false
	case b[i] == '0':
		i++
	case '1' <= b[i] && b[i] <= '9':
		for i++; i < len(b) && '0' <= b[i] && b[i] <= '9'; i++ {
		}
	default:
		return 0, false, false
	}
	integer = true
	if i < len(b) && b[i] == '.' {
		integer = false
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return 0, false, false
		}
		for i++; i < len(b) && '0' <= b[i] && b[i] <= '9'; i++ {
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		integer = false
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return 0, false, false
		}
		for i++; i < len(b) && '0' <= b[i] && b[i] <= '9'; i++ {
		}
	}
	return i, integer, true
}

// scanLiteral scans the literal lit (true, false or null) at b[i].
func scanLiteral(b []byte, i int, lit string) (end int, ok bool) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return 0, false
	}
	return i + len(lit), true
}

// scanValue scans the JSON value starting at b[i] (no leading whitespace)
// and returns the index just past it.
func scanValue(b []byte, i, depth int) (end int, ok bool) {
	if i >= len(b) {
		return 0, false
	}
	switch c := b[i]; c {
	case '"':
		end, _, ok = scanString(b, i)
		return end, ok
	case 't':
		return scanLiteral(b, i, "true")
	case 'f':
		return scanLiteral(b, i, "false")
	case 'n':
		return scanLiteral(b, i, "null")
	case '[', '{':
		if depth >= maxFastDepth {
			return 0, false
		}
		closing := byte(']')
		if c == '{' {
			closing = '}'
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == closing {
			return i + 1, true
		}
		for {
			if c == '{' {
				if i, _, ok = scanString(b, i); !ok {
					return 0, false
				}
				if i = skipSpace(b, i); i >= len(b) || b[i] != ':' {
					return 0, false
				}
				i = skipSpace(b, i+1)
			}
			if i, ok = scanValue(b, i, depth+1); !ok {
				return 0, false
			}
			if i = skipSpace(b, i); i >= len(b) {
				return 0, false
			}
			switch b[i] {
			case ',':
				i = skipSpace(b, i+1)
			case closing:
				return i + 1, true
			default:
				return 0, false
			}
		}
	default:
		end, _, ok = scanNumber(b, i)
		return end, ok
	}
}

// wholeValue returns the bounds of the single JSON value that data holds,
// with optional whitespace around it.
func wholeValue(data []byte) (start, end int, ok bool) {
	start = skipSpace(data, 0)
	if end, ok = scanValue(data, start, 0); !ok || skipSpace(data, end) != len(data) {
		return 0, 0, false
	}
	return start, end, true
}

// objectScanner iterates over the members of a JSON object whose keys have
// no escapes. It declines (ok false) anything else, including keys with
// escapes, which encoding/json would unescape before matching.
type objectScanner struct {
	b     []byte
	i     int
	first bool
}

// newObjectScanner starts scanning the object that is the whole of b.
func newObjectScanner(b []byte) (objectScanner, bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return objectScanner{}, false
	}
	return objectScanner{b: b, i: skipSpace(b, i+1), first: true}, true
}

// next returns the next member: its key and the index of its value, which
// the caller must scan and pass to the following next as i. done reports the
// end of the object, which must also be the end of b (bar whitespace).
func (s *objectScanner) next(i int) (key []byte, value int, done, ok bool) {
	b := s.b
	if !s.first {
		i = skipSpace(b, i)
		if i >= len(b) {
			return nil, 0, false, false
		}
		if b[i] == '}' {
			return nil, 0, true, skipSpace(b, i+1) == len(b)
		}
		if b[i] != ',' {
			return nil, 0, false, false
		}
		i = skipSpace(b, i+1)
	} else {
		i = s.i
		s.first = false
		if i < len(b) && b[i] == '}' {
			return nil, 0, true, skipSpace(b, i+1) == len(b)
		}
	}
	end, _, ok := scanString(b, i)
	if !ok {
		return nil, 0, false, false
	}
	k := b[i+1 : end-1]
	for _, c := range k {
		if c == '\\' || c >= utf8.RuneSelf {
			return nil, 0, false, false
		}
	}
	i = skipSpace(b, end)
	if i >= len(b) || b[i] != ':' {
		return nil, 0, false, false
	}
	return k, skipSpace(b, i+1), false, true
}

// singleMember returns the key and the raw value of data when it is a JSON
// object with exactly one member, whose key has no escapes.
//
// Compare the key with constants (string(key) == "ok" does not allocate).
func singleMember(data []byte) (key, value []byte, ok bool) {
	s, ok := newObjectScanner(data)
	if !ok {
		return nil, nil, false
	}
	key, i, done, ok := s.next(0)
	if !ok || done {
		return nil, nil, false
	}
	end, ok := scanValue(data, i, 0)
	if !ok {
		return nil, nil, false
	}
	if _, _, done, ok = s.next(end); !ok || !done {
		return nil, nil, false
	}
	return key, data[i:end], true
}

// stringMembers decodes data, a JSON object whose members are all strings,
// calling set for each. It declines other values (and null, which
// encoding/json would skip).
func stringMembers(data []byte, set func(key []byte, value string) bool) bool {
	s, ok := newObjectScanner(data)
	if !ok {
		return false
	}
	i := 0
	for {
		key, v, done, ok := s.next(i)
		if !ok {
			return false
		}
		if done {
			return true
		}
		end, plain, ok := scanString(data, v)
		if !ok || !set(key, unquote(data[v:end], plain)) {
			return false
		}
		i = end
	}
}

// isScalarKind reports the kinds the fast paths encode and decode.
func isScalarKind(k reflect.Kind) bool {
	switch k {
	case reflect.Bool, reflect.String,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

// decodeScalar decodes the JSON value lit (no surrounding whitespace) into v,
// a settable value of a scalar kind, as encoding/json would into a type
// without methods. It declines (false) values encoding/json would refuse.
// A null leaves v unchanged, as in encoding/json.
func decodeScalar(lit []byte, v reflect.Value) bool {
	if len(lit) == 0 {
		return false
	}
	switch c := lit[0]; {
	case c == 'n':
		return string(lit) == "null"
	case c == 't' || c == 'f':
		if v.Kind() != reflect.Bool {
			return false
		}
		switch string(lit) {
		case "true":
			v.SetBool(true)
		case "false":
			v.SetBool(false)
		default:
			return false
		}
		return true
	case c == '"':
		if v.Kind() != reflect.String {
			return false
		}
		end, plain, ok := scanString(lit, 0)
		if !ok || end != len(lit) {
			return false
		}
		v.SetString(unquote(lit, plain))
		return true
	}
	end, integer, ok := scanNumber(lit, 0)
	if !ok || end != len(lit) {
		return false
	}
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if !integer {
			return false
		}
		n, err := strconv.ParseInt(string(lit), 10, 64)
		if err != nil || v.OverflowInt(n) {
			return false
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if !integer || lit[0] == '-' {
			return false
		}
		n, err := strconv.ParseUint(string(lit), 10, 64)
		if err != nil || v.OverflowUint(n) {
			return false
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		n, err := strconv.ParseFloat(string(lit), v.Type().Bits())
		if err != nil || v.OverflowFloat(n) {
			return false
		}
		v.SetFloat(n)
	default:
		return false
	}
	return true
}

// fastDecode is the fast path of decode: it decodes data into v when v
// points to a scalar of a type without methods, or is a *json.RawMessage.
func fastDecode(data []byte, v any) bool {
	if raw, ok := v.(*json.RawMessage); ok {
		start, end, ok := wholeValue(data)
		if !ok || raw == nil {
			return false
		}
		*raw = append((*raw)[:0], data[start:end]...)
		return true
	}
	rv := reflect.ValueOf(v)
	// A pointer type without methods: neither it nor its element implements
	// json.Unmarshaler or encoding.TextUnmarshaler.
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Type().NumMethod() != 0 {
		return false
	}
	e := rv.Elem()
	if !isScalarKind(e.Kind()) {
		return false
	}
	start := skipSpace(data, 0)
	end := len(data)
	for end > start && isSpace(data[end-1]) {
		end--
	}
	return decodeScalar(data[start:end], e)
}

// appendString appends s as a JSON string, escaped as encoding/json does
// with HTML escaping off (as marshal does): control characters, quotes and
// backslashes are escaped, invalid UTF-8 becomes \ufffd, and U+2028 and
// U+2029 are escaped.
func appendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendFloat appends f as encoding/json writes a float of the given bit
// size: the shortest representation that reads back as the same value, in
// exponent form (with at least one exponent digit) below 1e-6 and from 1e21
// on, as ECMAScript does. It declines NaN and infinities, which
// encoding/json refuses.
func appendFloat(dst []byte, f float64, bits int) ([]byte, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return dst, false
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) ||
			bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	start := len(dst)
	dst = strconv.AppendFloat(dst, f, format, -1, bits)
	if format == 'e' {
		// strconv writes at least two exponent digits: e-07 becomes e-7.
		num := dst[start:]
		if n := len(num); n >= 4 && num[n-4] == 'e' && num[n-3] == '-' && num[n-2] == '0' {
			num[n-2] = num[n-1]
			dst = dst[:len(dst)-1]
		}
	}
	return dst, true
}

// appendScalar appends v, a value of a scalar kind whose type has no
// methods, as encoding/json would encode it.
func appendScalar(dst []byte, v reflect.Value) ([]byte, bool) {
	switch v.Kind() {
	case reflect.Bool:
		return strconv.AppendBool(dst, v.Bool()), true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.AppendInt(dst, v.Int(), 10), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return strconv.AppendUint(dst, v.Uint(), 10), true
	case reflect.Float32:
		return appendFloat(dst, v.Float(), 32)
	case reflect.Float64:
		return appendFloat(dst, v.Float(), 64)
	case reflect.String:
		return appendString(dst, v.String()), true
	}
	return dst, false
}

// appendValue appends x as marshal would encode it, when x is nil or a
// scalar of a type without methods (so not a json.Marshaler or an
// encoding.TextMarshaler). It declines anything else.
func appendValue(dst []byte, x any) ([]byte, bool) {
	switch x := x.(type) {
	case nil:
		return append(dst, "null"...), true
	case string:
		return appendString(dst, x), true
	case bool:
		return strconv.AppendBool(dst, x), true
	case int:
		return strconv.AppendInt(dst, int64(x), 10), true
	case int8:
		return strconv.AppendInt(dst, int64(x), 10), true
	case int16:
		return strconv.AppendInt(dst, int64(x), 10), true
	case int32:
		return strconv.AppendInt(dst, int64(x), 10), true
	case int64:
		return strconv.AppendInt(dst, x, 10), true
	case uint:
		return strconv.AppendUint(dst, uint64(x), 10), true
	case uint8:
		return strconv.AppendUint(dst, uint64(x), 10), true
	case uint16:
		return strconv.AppendUint(dst, uint64(x), 10), true
	case uint32:
		return strconv.AppendUint(dst, uint64(x), 10), true
	case uint64:
		return strconv.AppendUint(dst, x, 10), true
	case float32:
		return appendFloat(dst, float64(x), 32)
	case float64:
		return appendFloat(dst, x, 64)
	case json.RawMessage:
		// What encoding/json does with a RawMessage: validate and compact.
		if x == nil {
			return append(dst, "null"...), true
		}
		return appendCompact(dst, x)
	}
	v := reflect.ValueOf(x)
	if !isScalarKind(v.Kind()) || v.Type().NumMethod() != 0 {
		return dst, false
	}
	return appendScalar(dst, v)
}

// appendCompact appends the JSON value raw without its insignificant
// whitespace, as encoding/json does with a json.RawMessage. It declines
// anything but exactly one valid JSON value.
func appendCompact(dst []byte, raw []byte) ([]byte, bool) {
	start, end, ok := wholeValue(raw)
	if !ok {
		return dst, false
	}
	raw = raw[start:end]
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if isSpace(c) {
			continue
		}
		if c != '"' {
			dst = append(dst, c)
			continue
		}
		// Copy the string as is; wholeValue checked it.
		j, _, _ := scanString(raw, i)
		dst = append(dst, raw[i:j]...)
		i = j - 1
	}
	return dst, true
}

// scanScalar scans the string, number, true, false or null at b[i].
func scanScalar(b []byte, i int) (end int, ok bool) {
	if i >= len(b) || b[i] == '[' || b[i] == '{' {
		return 0, false
	}
	return scanValue(b, i, 0)
}

// newRequest starts the JSON request of operation op, `{"op":"<op>"`, with
// room for extra more bytes: append its members with appendStringMember and
// appendRawMember, then close it with '}'. The result is what encodeRequest
// gives for a struct with those members, in that order.
func newRequest(op string, extra int) []byte {
	req := make([]byte, 0, len(`{"op":""}`)+len(op)+extra)
	return appendString(append(req, `{"op":`...), op)
}

// appendStringMember appends `,"<key>":<value as a JSON string>`; key must
// need no escaping.
func appendStringMember(req []byte, key, value string) []byte {
	req = append(append(append(req, `,"`...), key...), `":`...)
	return appendString(req, value)
}

// appendRawMember appends `,"<key>":<raw>`; key must need no escaping and raw
// must be compact JSON.
func appendRawMember(req []byte, key string, raw []byte) []byte {
	req = append(append(append(req, `,"`...), key...), `":`...)
	return append(req, raw...)
}
