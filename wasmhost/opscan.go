package wasmhost

import (
	"encoding/json"
	"errors"
	"fmt"
)

// opOf returns the "op" member of a top-level JSON object without decoding
// the rest: a host call's request is decoded fully by whoever handles the op,
// and this keeps the round trip of small calls cheap. It checks the structure
// it walks over (strings, nesting) but not every scalar; a handler decoding
// the request rejects what is left.
func opOf(req []byte) (string, error) {
	op, found, err := stringMember(req, "op")
	switch {
	case err != nil:
		return "", err
	case !found:
		return "", errors.New(`request has no "op"`)
	}
	return op, nil
}

// stringMember returns the string member key of the top-level JSON object
// req, walking over the members before it (see opOf).
func stringMember(req []byte, key string) (value string, found bool, err error) {
	i := skipSpace(req, 0)
	if i >= len(req) || req[i] != '{' {
		return "", false, errors.New(`request is not a JSON object`)
	}
	i++
	for {
		i = skipSpace(req, i)
		if i < len(req) && req[i] == '}' {
			return "", false, nil
		}
		k, next, err := scanString(req, i)
		if err != nil {
			return "", false, fmt.Errorf("request: %w", err)
		}
		i = skipSpace(req, next)
		if i >= len(req) || req[i] != ':' {
			return "", false, errors.New("request: expected ':' after a key")
		}
		i = skipSpace(req, i+1)
		if k == key {
			if i >= len(req) || req[i] != '"' {
				return "", false, fmt.Errorf("request: %q must be a string", key)
			}
			v, _, err := scanString(req, i)
			if err != nil {
				return "", false, fmt.Errorf("request: %s: %w", key, err)
			}
			return v, true, nil
		}
		if i, err = skipValue(req, i); err != nil {
			return "", false, fmt.Errorf("request: %w", err)
		}
		i = skipSpace(req, i)
		if i >= len(req) {
			return "", false, errors.New("request: unexpected end")
		}
		switch req[i] {
		case ',':
			i++
		case '}':
			return "", false, nil
		default:
			return "", false, fmt.Errorf("request: unexpected %q at offset %d", req[i], i)
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanString decodes the JSON string starting at b[i] (a '"') and returns it
// and the offset after its closing quote.
func scanString(b []byte, i int) (string, int, error) {
	if i >= len(b) || b[i] != '"' {
		return "", i, fmt.Errorf("expected a string at offset %d", i)
	}
	escaped := false // needs decoding: escapes or non-ASCII
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '\\':
			escaped = true
			j++ // skip the escaped byte; \uXXXX digits are plain bytes
		case c == '"':
			if !escaped {
				return string(b[i+1 : j]), j + 1, nil
			}
			var s string
			if err := json.Unmarshal(b[i:j+1], &s); err != nil {
				return "", i, fmt.Errorf("bad string at offset %d: %w", i, err)
			}
			return s, j + 1, nil
		case c < 0x20:
			return "", i, fmt.Errorf("control character in string at offset %d", j)
		case c >= 0x80:
			escaped = true // let encoding/json deal with UTF-8 (invalid bytes become U+FFFD)
		}
	}
	return "", i, errors.New("unterminated string")
}

// skipValue returns the offset after the JSON value starting at b[i].
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return i, errors.New("unexpected end")
	}
	switch b[i] {
	case '"':
		_, next, err := scanString(b, i)
		return next, err
	case '{', '[':
		var stack [32]byte // open brackets; deeper nesting spills to the heap
		open := stack[:0]
		for j := i; j < len(b); j++ {
			switch c := b[j]; c {
			case '"':
				_, next, err := scanString(b, j)
				if err != nil {
					return j, err
				}
				j = next - 1
			case '{', '[':
				open = append(open, c)
			case '}', ']':
				if want := open[len(open)-1] + 2; c != want { // '{'+2 == '}', '['+2 == ']'
					return j, fmt.Errorf("mismatched %q at offset %d", c, j)
				}
				open = open[:len(open)-1]
				if len(open) == 0 {
					return j + 1, nil
				}
			}
		}
		return len(b), errors.New("unterminated object or array")
	default: // number, true, false, null
		j := i
		for j < len(b) && isScalarByte(b[j]) {
			j++
		}
		if j == i {
			return i, fmt.Errorf("unexpected %q at offset %d", b[i], i)
		}
		return j, nil
	}
}

// isScalarByte reports whether c may appear in a JSON number or literal.
func isScalarByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c == '-' || c == '+' || c == '.' || c == 'E'
}
