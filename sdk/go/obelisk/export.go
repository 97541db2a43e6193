package obelisk

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
)

// exported is an exported function: its Go implementation and how to call it.
type exported struct {
	ffqn    string
	fn      reflect.Value
	fnType  reflect.Type
	nparams int  // after the Context
	hasOk   bool // fn returns (T, error), not just error
}

// param returns the type of the i-th WIT parameter, after the Context.
func (e *exported) param(i int) reflect.Type {
	return e.fnType.In(1 + i)
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
	e := &exported{ffqn: ffqn, fn: v, fnType: t, nparams: t.NumIn() - 1}
	switch {
	case t.NumOut() == 1 && t.Out(0) == errorType:
	case t.NumOut() == 2 && t.Out(1) == errorType:
		e.hasOk = true
	default:
		return nil, fmt.Errorf("%v: want results (T, error) or (error)", t)
	}
	return e, nil
}

// runInput is the input of obelisk_v1_run, with its fast decoder.
type runInput abi.RunInput

// warmup does, for every exported function, what a run of it does besides calling it:
// it decodes zero parameters, calls a stand-in of the function's type reflectively and
// encodes a zero result. The caches that builds on first use (reflect's call layouts,
// encoding/json's encoders) then exist before the host snapshots the module, instead of
// being built again in every instance restored from the snapshot. It calls no host
// operation and no exported function, and is deterministic (exports in name order).
func warmup() {
	names := make([]string, 0, len(exports))
	for name := range exports {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		e := exports[name]
		zeros := make([]any, e.nparams)
		for i := range zeros {
			zeros[i] = reflect.Zero(e.param(i)).Interface()
		}
		params, err := marshal(zeros)
		if err != nil {
			continue
		}
		args, err := e.decodeParams(params)
		if err != nil {
			continue
		}
		args[0] = reflect.ValueOf(Context{&runState{ffqn: name}})
		standIn := reflect.MakeFunc(e.fnType, func([]reflect.Value) []reflect.Value {
			out := make([]reflect.Value, e.fnType.NumOut())
			for i := range out {
				out[i] = reflect.Zero(e.fnType.Out(i))
			}
			return out
		})
		_, _ = e.encodeResult(standIn.Call(args), nil)
	}
}

// run runs the exported function the JSON input names, performing host
// operations with host and logging with log (nil: the log op through host), and
// returns its JSON output, appended to dst. It
// panics, so that the module traps, when the input is bad or the function
// panics.
func run(input []byte, host hostFunc, log logFunc, dst []byte) []byte {
	var in runInput
	if !in.parse(input) {
		in = runInput{}
		if err := json.Unmarshal(input, &in); err != nil {
			panic("obelisk: malformed run input: " + err.Error())
		}
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
		log:         log,
	}}
	args[0] = reflect.ValueOf(ctx)
	out, err := e.encodeResult(e.fn.Call(args), dst)
	if err != nil {
		panic(fmt.Sprintf("obelisk: %s: %v", in.FFQN, err))
	}
	return out
}

// parse is the fast path of decoding the run input: it handles an object
// with no other members than those of runInput, ffqn and execution_id
// strings and an integer attempt, and declines anything else.
func (in *runInput) parse(input []byte) bool {
	s, ok := newObjectScanner(input)
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
		switch string(key) {
		case "ffqn":
			end, plain, ok := scanString(input, v)
			if !ok {
				return false
			}
			// Use the registered string rather than a copy of the input.
			if e := exports[string(input[v+1:end-1])]; plain && e != nil {
				in.FFQN = e.ffqn
			} else {
				in.FFQN = unquote(input[v:end], plain)
			}
			i = end
		case "execution_id":
			end, plain, ok := scanString(input, v)
			if !ok {
				return false
			}
			in.ExecutionID = unquote(input[v:end], plain)
			i = end
		case "params":
			end, ok := scanValue(input, v, 0)
			if !ok {
				return false
			}
			in.Params = input[v:end]
			i = end
		case "attempt":
			end, integer, ok := scanNumber(input, v)
			if !ok || !integer {
				return false
			}
			n, err := strconv.ParseInt(string(input[v:end]), 10, strconv.IntSize)
			if err != nil {
				return false
			}
			in.Attempt = int(n)
			i = end
		default:
			return false
		}
	}
}

// decodeParams decodes the JSON array of parameters into arguments for fn,
// leaving args[0] for the Context.
func (e *exported) decodeParams(params json.RawMessage) ([]reflect.Value, error) {
	if args, ok := e.decodeScalarParams(params); ok {
		return args, nil
	}
	return e.decodeParamsJSON(params)
}

// decodeParamsJSON is the general path of decodeParams: encoding/json splits
// the array, and decode decodes each parameter.
func (e *exported) decodeParamsJSON(params json.RawMessage) ([]reflect.Value, error) {
	var raws []json.RawMessage
	if len(params) > 0 {
		if err := json.Unmarshal(params, &raws); err != nil {
			return nil, fmt.Errorf("params are not a JSON array: %v", err)
		}
	}
	if len(raws) != e.nparams {
		return nil, fmt.Errorf("got %d params, want %d", len(raws), e.nparams)
	}
	args := make([]reflect.Value, 1+e.nparams)
	for i := range e.nparams {
		t := e.param(i)
		p := reflect.New(t)
		if err := decode(raws[i], p.Interface()); err != nil {
			return nil, fmt.Errorf("param %d (%s) does not decode into %v: %v", i, raws[i], t, err)
		}
		args[1+i] = p.Elem()
	}
	return args, nil
}

// decodeScalarParams is the fast path of decodeParams, for functions whose
// parameters are all scalars (bool, integers, floats, strings) of types
// without methods. It declines anything it does not decode exactly as
// encoding/json would, errors included.
func (e *exported) decodeScalarParams(params []byte) ([]reflect.Value, bool) {
	args := make([]reflect.Value, 1+e.nparams)
	if len(params) == 0 {
		return args, e.nparams == 0
	}
	i := skipSpace(params, 0)
	if i >= len(params) || params[i] != '[' {
		return nil, false
	}
	n := 0
	if i = skipSpace(params, i+1); i < len(params) && params[i] == ']' {
		i++
	} else {
		for {
			if n == e.nparams {
				return nil, false
			}
			t := e.param(n)
			if !isScalarKind(t.Kind()) {
				return nil, false
			}
			p := reflect.New(t)
			if p.Type().NumMethod() != 0 {
				return nil, false
			}
			end, ok := scanScalar(params, i)
			if !ok || !decodeScalar(params[i:end], p.Elem()) {
				return nil, false
			}
			n++
			args[n] = p.Elem()
			if i = skipSpace(params, end); i >= len(params) {
				return nil, false
			}
			if params[i] == ']' {
				i++
				break
			}
			if params[i] != ',' {
				return nil, false
			}
			i = skipSpace(params, i+1)
		}
	}
	if n != e.nparams || skipSpace(params, i) != len(params) {
		return nil, false
	}
	return args, true
}

// encodeResult encodes the return values of fn as a WIT result, appended to
// dst.
func (e *exported) encodeResult(out []reflect.Value, dst []byte) ([]byte, error) {
	if errV := out[len(out)-1]; !errV.IsNil() {
		return encodeErr(errV.Interface().(error), dst)
	}
	var ok any
	if e.hasOk {
		ok = out[0].Interface()
	}
	if b, fast := appendValue(append(dst, `{"ok":`...), ok); fast {
		return append(b, '}'), nil
	}
	b, err := marshal(struct {
		Ok any `json:"ok"`
	}{ok})
	if err != nil {
		return nil, fmt.Errorf("encoding the ok value %T: %v", ok, err)
	}
	return append(dst, b...), nil
}

// encodeErr encodes err as {"err": value}, appended to dst: the value of an
// *ErrResult in its chain, or else its message.
func encodeErr(err error, dst []byte) ([]byte, error) {
	var value any
	if er, ok := errors.AsType[*ErrResult](err); !ok {
		value = err.Error()
	} else if len(er.Value) > 0 {
		value = er.Value
	}
	if b, fast := appendValue(append(dst, `{"err":`...), value); fast {
		return append(b, '}'), nil
	}
	b, merr := marshal(struct {
		Err any `json:"err"`
	}{value})
	if merr != nil {
		return nil, fmt.Errorf("encoding the err value: %v", merr)
	}
	return append(dst, b...), nil
}
