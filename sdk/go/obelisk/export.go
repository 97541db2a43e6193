package obelisk

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// exported is an exported function: its Go implementation and how to call it.
type exported struct {
	ffqn   string
	fn     reflect.Value
	params []reflect.Type // after the Context
	hasOk  bool           // fn returns (T, error), not just error
}

// exports is the registration table, filled by Export from init functions.
var exports = map[string]*exported{}

var (
	contextType = reflect.TypeFor[Context]()
	errorType   = reflect.TypeFor[error]()
)

// Export registers fn as the implementation of the exported function ffqn,
// "namespace:package/interface[@version].function" with WIT (kebab-case)
// names, e.g. "testing:fibo/fibo.fibo". Call it from an init function: a
// reactor module does not run main.
//
// fn must be a func whose first parameter is a [Context] and whose other
// parameters are the WIT parameters, in order. It returns (T, error) for a
// WIT result with an ok value, or just error for a result without one. When
// the host runs ffqn, the JSON parameters are decoded into fn's parameters
// with encoding/json and fn's return values are encoded as the result:
//
//   - a nil error gives {"ok": T}, or {"ok": null} when fn returns only error;
//   - an error that is or wraps an [*ErrResult] (see [Err]) gives
//     {"err": value} with its value;
//   - any other error gives {"err": "<err.Error()>"}.
//
// Parameters that do not decode into fn's parameter types, and a panic in
// fn, trap: the attempt fails.
//
// Export panics if fn does not have that shape or ffqn is already exported.
func Export(ffqn string, fn any) {
	if err := checkFFQN(ffqn); err != nil {
		panic(fmt.Sprintf("obelisk.Export(%q): %v", ffqn, err))
	}
	if _, dup := exports[ffqn]; dup {
		panic(fmt.Sprintf("obelisk.Export(%q): exported twice", ffqn))
	}
	e, err := newExported(ffqn, fn)
	if err != nil {
		panic(fmt.Sprintf("obelisk.Export(%q): %v", ffqn, err))
	}
	exports[ffqn] = e
}

// checkFFQN checks the shape namespace:package/interface.function.
func checkFFQN(ffqn string) error {
	ifc, fn, ok := cutLast(ffqn, ".")
	if !ok || fn == "" {
		return errors.New("want namespace:package/interface.function")
	}
	ns, rest, ok := strings.Cut(ifc, ":")
	if !ok || ns == "" {
		return errors.New("want namespace:package/interface.function")
	}
	pkg, name, ok := strings.Cut(rest, "/")
	if !ok || pkg == "" || name == "" {
		return errors.New("want namespace:package/interface.function")
	}
	return nil
}

// cutLast is strings.Cut at the last occurrence of sep.
func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}

func newExported(ffqn string, fn any) (*exported, error) {
	v := reflect.ValueOf(fn)
	if v.Kind() != reflect.Func || v.IsNil() {
		return nil, fmt.Errorf("want a func, got %T", fn)
	}
	t := v.Type()
	if t.IsVariadic() {
		return nil, fmt.Errorf("%v: variadic functions cannot be exported", t)
	}
	if t.NumIn() == 0 || t.In(0) != contextType {
		return nil, fmt.Errorf("%v: the first parameter must be an obelisk.Context", t)
	}
	e := &exported{ffqn: ffqn, fn: v}
	for i := 1; i < t.NumIn(); i++ {
		e.params = append(e.params, t.In(i))
	}
	switch {
	case t.NumOut() == 1 && t.Out(0) == errorType:
	case t.NumOut() == 2 && t.Out(1) == errorType:
		e.hasOk = true
	default:
		return nil, fmt.Errorf("%v: want results (T, error) or (error)", t)
	}
	return e, nil
}

// runInput is the input of obelisk_v1_run.
type runInput struct {
	FFQN        string          `json:"ffqn"`
	Params      json.RawMessage `json:"params"`
	ExecutionID string          `json:"execution_id"`
	Attempt     int             `json:"attempt"`
}

// run runs the exported function the JSON input names, performing host
// operations with host, and returns its JSON output. It panics, so that the
// module traps, when the input is bad or the function panics.
func run(input []byte, host hostFunc) []byte {
	var in runInput
	if err := json.Unmarshal(input, &in); err != nil {
		panic(fmt.Sprintf("obelisk: malformed run input: %v", err))
	}
	e := exports[in.FFQN]
	if e == nil {
		names := make([]string, 0, len(exports))
		for name := range exports {
			names = append(names, name)
		}
		slices.Sort(names)
		panic(fmt.Sprintf("obelisk: function %q is not exported by this component (it exports %s)",
			in.FFQN, strings.Join(names, ", ")))
	}
	args, err := e.decodeParams(in.Params)
	if err != nil {
		panic(fmt.Sprintf("obelisk: %s: %v", in.FFQN, err))
	}
	ctx := Context{&runState{
		ffqn:        in.FFQN,
		executionID: in.ExecutionID,
		attempt:     in.Attempt,
		host:        host,
	}}
	args[0] = reflect.ValueOf(ctx)
	out, err := e.encodeResult(e.fn.Call(args))
	if err != nil {
		panic(fmt.Sprintf("obelisk: %s: %v", in.FFQN, err))
	}
	return out
}

// decodeParams decodes the JSON array of parameters into arguments for fn,
// leaving args[0] for the Context.
func (e *exported) decodeParams(params json.RawMessage) ([]reflect.Value, error) {
	var raws []json.RawMessage
	if len(params) > 0 {
		if err := json.Unmarshal(params, &raws); err != nil {
			return nil, fmt.Errorf("params are not a JSON array: %v", err)
		}
	}
	if len(raws) != len(e.params) {
		return nil, fmt.Errorf("got %d params, want %d", len(raws), len(e.params))
	}
	args := make([]reflect.Value, 1+len(e.params))
	for i, t := range e.params {
		p := reflect.New(t)
		if err := decode(raws[i], p.Interface()); err != nil {
			return nil, fmt.Errorf("param %d (%s) does not decode into %v: %v", i, raws[i], t, err)
		}
		args[1+i] = p.Elem()
	}
	return args, nil
}

// encodeResult encodes the return values of fn as a WIT result.
func (e *exported) encodeResult(out []reflect.Value) ([]byte, error) {
	if errV := out[len(out)-1]; !errV.IsNil() {
		return encodeErr(errV.Interface().(error))
	}
	var ok any
	if e.hasOk {
		ok = out[0].Interface()
	}
	b, err := marshal(struct {
		Ok any `json:"ok"`
	}{ok})
	if err != nil {
		return nil, fmt.Errorf("encoding the ok value %T: %v", ok, err)
	}
	return b, nil
}

// encodeErr encodes err as {"err": value}: the value of an *ErrResult in its
// chain, or else its message.
func encodeErr(err error) ([]byte, error) {
	var value any
	if er, ok := errors.AsType[*ErrResult](err); !ok {
		value = err.Error()
	} else if len(er.Value) > 0 {
		value = er.Value
	}
	b, merr := marshal(struct {
		Err any `json:"err"`
	}{value})
	if merr != nil {
		return nil, fmt.Errorf("encoding the err value: %v", merr)
	}
	return b, nil
}
