package config

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
)

// valueError is a decode hook's objection to a value. The hook does not know the key the
// value is at: keyErrors adds it from mapstructure's DecodeError.
type valueError struct {
	value any
	msg   string
}

func (e *valueError) Error() string { return fmt.Sprintf("%s: %s", tomlValue(e.value), e.msg) }

// tomlValue renders a value as it would be written in obelisk.toml.
func tomlValue(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	return fmt.Sprint(v)
}

var durationType = reflect.TypeOf(time.Duration(0))

// durationHook decodes a time.Duration from a string with a unit ("250ms", "5s"). A bare
// number is refused: mapstructure would take it as nanoseconds, and `lock_expiry = 5`
// meant as seconds would make every run time out at once.
func durationHook(_ reflect.Type, to reflect.Type, data any) (any, error) {
	if to != durationType {
		return data, nil
	}
	switch d := data.(type) {
	case string:
		s := strings.TrimSpace(d)
		if _, err := strconv.ParseFloat(s, 64); err == nil {
			return nil, &valueError{d, fmt.Sprintf("a duration needs a unit, e.g. %q", s+"s")}
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return nil, &valueError{d, `not a duration: write a number with a unit ("ms", "s", "m", "h"), e.g. "250ms"`}
		}
		return v, nil
	case time.Duration:
		return d, nil
	}
	if isNumber(data) {
		return nil, &valueError{data, fmt.Sprintf("a duration needs a unit, e.g. \"%vs\"", data)}
	}
	return data, nil
}

// countHook refuses, for an integer key, a negative number, one with a fraction or one
// too large for the key's type. Every integer key of obelisk.toml is a count or a size,
// and mapstructure would turn -1 into 4294967295 for an unsigned one, drop a fraction or
// wrap a number around.
func countHook(_ reflect.Type, to reflect.Type, data any) (any, error) {
	if to == durationType {
		return data, nil
	}
	switch to.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
	default:
		return data, nil
	}
	var f float64
	switch d := data.(type) {
	case string: // from the environment
		var err error
		if f, err = strconv.ParseFloat(strings.TrimSpace(d), 64); err != nil {
			return data, nil // mapstructure reports it
		}
	default:
		if !isNumber(data) {
			return data, nil
		}
		f = reflect.ValueOf(data).Convert(reflect.TypeOf(f)).Float()
	}
	bits := to.Bits()
	if to.Kind() >= reflect.Int && to.Kind() <= reflect.Int64 {
		bits-- // the sign
	}
	highest := uint64(1)<<bits - 1
	switch {
	case f < 0:
		return nil, &valueError{data, "must not be negative"}
	case f != math.Trunc(f):
		return nil, &valueError{data, "must be a whole number"}
	case f > float64(highest):
		return nil, &valueError{data, fmt.Sprintf("must be at most %d", highest)}
	}
	return data, nil
}

func isNumber(v any) bool {
	switch reflect.ValueOf(v).Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

// decodeHooks are the hooks every key of obelisk.toml is decoded through.
func decodeHooks() viper.DecoderConfigOption {
	return viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(
		durationHook, countHook, mapstructure.StringToSliceHookFunc(","),
	))
}

// keyErrors rewrites the objections of the decode hooks in err as
// "[[section]] #n (name "x"): key = value: why", in the order of File's fields, with
// mapstructure's other errors (unknown keys, wrong types) as they are; ok is false when
// err has no objection of the hooks (it is then reported as it is).
func keyErrors(v *viper.Viper, err error) (msg string, ok bool) {
	var lines []string
	for _, e := range joined(err) {
		var de *mapstructure.DecodeError
		var ve *valueError
		if errors.As(e, &de) && errors.As(e, &ve) {
			lines = append(lines, keyName(v, de.Name())+" = "+ve.Error())
			ok = true
		} else {
			lines = append(lines, e.Error())
		}
	}
	return strings.Join(lines, "; "), ok
}

// joined lists the errors mapstructure joined in err (one per key at fault), looking
// through the wrappers around the join.
func joined(err error) []error {
	switch u := err.(type) {
	case interface{ Unwrap() []error }:
		var out []error
		for _, e := range u.Unwrap() {
			out = append(out, joined(e)...)
		}
		return out
	case *mapstructure.DecodeError:
		return []error{err}
	case interface{ Unwrap() error }:
		if inner := joined(u.Unwrap()); len(inner) > 1 || len(inner) == 1 && inner[0] != u.Unwrap() {
			return inner
		}
	}
	return []error{err}
}

// keyName turns mapstructure's "activity_wasm[0].exec.lock_expiry" into
// `[[activity_wasm]] #1 (name "a"): exec.lock_expiry`, as the other errors name a section.
func keyName(v *viper.Viper, name string) string {
	open := strings.IndexByte(name, '[')
	end := strings.Index(name, "].")
	if open < 0 || end < open || strings.Contains(name[:open], ".") {
		return name
	}
	section, key := name[:open], name[end+2:]
	i, err := strconv.Atoi(name[open+1 : end])
	if err != nil {
		return name
	}
	return fmt.Sprintf("[[%s]] #%d (name %q): %s", section, i+1, sectionName(v, section, i), key)
}

// sectionName is the name key of the i-th [[section]], "" if it has none.
func sectionName(v *viper.Viper, section string, i int) string {
	var tables []map[string]any
	switch t := v.Get(section).(type) {
	case []map[string]any:
		tables = t
	case []any:
		for _, e := range t {
			m, _ := e.(map[string]any)
			tables = append(tables, m)
		}
	}
	if i >= len(tables) {
		return ""
	}
	s, _ := tables[i]["name"].(string)
	return s
}
