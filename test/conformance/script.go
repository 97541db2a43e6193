// Package conformance runs join set scripts, sequences of SDK calls written as
// text, in a workflow, and reports what each call observed. The same scripts
// run in the SDK's TestHost (conformance_test.go) and in the real engine
// (test/e2e, through the workflow in ./workflow), and both must observe what
// testdata/ records: the TestHost's simulation of join sets cannot drift from
// the engine unnoticed.
//
// A script has one call a line:
//
//	create [NAME]            join_set_create: a generated or a named join set
//	submit JS FN PARAMS      submit FN (an alias below, or an FFQN) with the JSON array PARAMS
//	delay JS DURATION        submit_delay, due DURATION (a Go duration) from now
//	next JS [FN]             join_next (expecting FN, if given)
//	try JS                   join_next_try
//	get CHILD                get the result of a child, named by its ID without the workflow's ("g:1_1")
//	close JS                 join_set_close
//	sleep DURATION           sleep
//	stub CHILD ok|err JSON   stub
//	call FN PARAMS           call
//	raw OP REQUEST           any operation, with the JSON object REQUEST (without the op)
//
// Join sets are named by their IDs (g:1, n:jobs); the SDK only has handles of
// join sets the workflow created, so the others are reached with raw.
// Each line is answered by `<line> -> <outcome>`. Outcomes name IDs with the
// workflow's own ID replaced by "*", print children's results as
// `ok V`, `err V` or `failure KIND`, and host errors by their kind only: the
// messages, the reasons of failures and the times are the host's business.
//
// Scripts must make the engine deterministic: two children that finish on
// their own (fibo, fail) must not race in one join set before a join_next
// takes them; activity stubs (answer) arrive only when stubbed, and "sleep"
// stands for a child still running, which only a close may end.
package conformance

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
)

// ScriptFFQN is the function of ./workflow that runs a script.
const ScriptFFQN = "testing:conformance/script.run"

// Aliases of the functions scripts call, as deployed by the e2e harness.
var aliases = map[string]string{
	"fibo":   "testing:fibo/fibo.fibo",
	"fail":   "testing:flaky/flaky.fail-permanently",
	"answer": "testing:stub/stub.answer",
	"sleep":  "testing:sleep/sleep.sleep",
}

// FFQN returns the function an alias stands for; anything else is returned
// as it is.
func FFQN(alias string) string {
	if f, ok := aliases[alias]; ok {
		return f
	}
	return alias
}

// Run runs script in the workflow of ctx and returns what every line
// observed, one line each. A line it cannot parse is an error.
func Run(ctx obelisk.Context, script string) (string, error) {
	self := strings.TrimPrefix(ctx.ExecutionID(), "E_")
	s := &state{ctx: ctx, sets: map[string]obelisk.JoinSet{}}
	var out strings.Builder
	for line := range strings.SplitSeq(script, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		outcome, err := s.step(line)
		if err != nil {
			return "", fmt.Errorf("%q: %w", line, err)
		}
		if self != "" {
			outcome = strings.ReplaceAll(outcome, self, "*")
		}
		fmt.Fprintf(&out, "%s -> %s\n", line, outcome)
	}
	return out.String(), nil
}

// state is what a script has made so far.
type state struct {
	ctx  obelisk.Context
	sets map[string]obelisk.JoinSet // by ID
}

// step performs one line and describes its outcome.
func (s *state) step(line string) (string, error) {
	ctx := s.ctx
	cmd, rest, _ := strings.Cut(line, " ")
	args := strings.Fields(rest)
	need := func(n int) error {
		if len(args) < n {
			return fmt.Errorf("%s needs %d arguments", cmd, n)
		}
		return nil
	}
	child := func(suffix string) string { return ctx.ExecutionID() + "." + suffix }
	switch cmd {
	case "submit", "delay", "next", "try", "close":
		if err := need(1); err != nil {
			return "", err
		}
		if _, ok := s.sets[args[0]]; !ok {
			return "", fmt.Errorf("the script did not create join set %q (reach it with raw)", args[0])
		}
	}
	switch cmd {
	case "create":
		var js obelisk.JoinSet
		var err error
		if len(args) == 0 {
			js, err = obelisk.NewJoinSet(ctx)
		} else {
			js, err = obelisk.NewJoinSetNamed(ctx, args[0])
		}
		if err == nil {
			s.sets[js.ID()] = js
		}
		return either(js.ID(), err), nil
	case "submit":
		if err := need(2); err != nil {
			return "", err
		}
		params, err := paramsOf(strings.Join(args[2:], " "))
		if err != nil {
			return "", err
		}
		id, err := obelisk.Submit(ctx, s.joinSet(args[0]), FFQN(args[1]), params...)
		return either(id, err), nil
	case "delay":
		if err := need(2); err != nil {
			return "", err
		}
		d, err := time.ParseDuration(args[1])
		if err != nil {
			return "", err
		}
		id, err := obelisk.SubmitDelay(ctx, s.joinSet(args[0]), obelisk.In(d))
		return either(id, err), nil
	case "next":
		if err := need(1); err != nil {
			return "", err
		}
		if len(args) > 1 {
			id, v, err := obelisk.AwaitNext[json.RawMessage](ctx, s.joinSet(args[0]), FFQN(args[1]))
			if err != nil {
				return strings.TrimSpace(id + " " + describe(err)), nil
			}
			return id + " ok " + string(v), nil
		}
		r, err := obelisk.JoinNext(ctx, s.joinSet(args[0]))
		if err != nil {
			return describe(err), nil
		}
		return response(r), nil
	case "try":
		if err := need(1); err != nil {
			return "", err
		}
		r, ok, err := obelisk.JoinNextTry(ctx, s.joinSet(args[0]))
		switch {
		case err != nil:
			return describe(err), nil
		case !ok:
			return "pending", nil
		}
		return response(r), nil
	case "get":
		if err := need(1); err != nil {
			return "", err
		}
		v, err := obelisk.Get[json.RawMessage](ctx, child(args[0]))
		if err != nil {
			return describe(err), nil
		}
		return "ok " + string(v), nil
	case "close":
		if err := need(1); err != nil {
			return "", err
		}
		return either("ok", s.joinSet(args[0]).Close(ctx)), nil
	case "sleep":
		if err := need(1); err != nil {
			return "", err
		}
		d, err := time.ParseDuration(args[0])
		if err != nil {
			return "", err
		}
		_, err = obelisk.Sleep(ctx, obelisk.In(d))
		return either("ok", err), nil
	case "stub":
		if err := need(3); err != nil {
			return "", err
		}
		var v any
		if err := json.Unmarshal([]byte(strings.Join(args[2:], " ")), &v); err != nil {
			return "", err
		}
		switch args[1] {
		case "ok":
			return either("ok", obelisk.StubOk(ctx, child(args[0]), v)), nil
		case "err":
			return either("ok", obelisk.StubErr(ctx, child(args[0]), v)), nil
		}
		return "", fmt.Errorf("stub: want ok or err, got %q", args[1])
	case "call":
		if err := need(1); err != nil {
			return "", err
		}
		params, err := paramsOf(strings.Join(args[1:], " "))
		if err != nil {
			return "", err
		}
		v, err := obelisk.Call[json.RawMessage](ctx, FFQN(args[0]), params...)
		if err != nil {
			return describe(err), nil
		}
		return "ok " + string(v), nil
	case "raw":
		if err := need(1); err != nil {
			return "", err
		}
		var req map[string]any
		if len(args) > 1 {
			if err := json.Unmarshal([]byte(strings.Join(args[1:], " ")), &req); err != nil {
				return "", fmt.Errorf("raw request: %w", err)
			}
		}
		var v json.RawMessage
		if err := ctx.HostCall(args[0], req, &v); err != nil {
			return describe(err), nil
		}
		return "ok " + string(v), nil
	}
	return "", fmt.Errorf("unknown call %q", cmd)
}

// paramsOf decodes a JSON array of parameters; "" is none.
func paramsOf(s string) ([]any, error) {
	if s == "" {
		return nil, nil
	}
	var params []json.RawMessage
	if err := json.Unmarshal([]byte(s), &params); err != nil {
		return nil, fmt.Errorf("params %s: %w", s, err)
	}
	out := make([]any, len(params))
	for i, p := range params {
		out[i] = p
	}
	return out, nil
}

// either describes the outcome of a call that returns v or err.
func either(v string, err error) string {
	if err != nil {
		return describe(err)
	}
	return v
}

// describe describes an error by what a workflow can rely on: a host error's
// kind, a child's err value, an execution failure's kind.
func describe(err error) string {
	if herr, ok := errors.AsType[*obelisk.HostError](err); ok {
		return "error " + herr.Kind
	}
	if e, ok := errors.AsType[*obelisk.ErrResult](err); ok {
		return "err " + string(e.Value)
	}
	if f, ok := errors.AsType[*obelisk.ExecutionFailure](err); ok {
		return "failure " + f.Kind
	}
	return "unexpected " + err.Error()
}

// response describes a response taken by next or try.
func response(r obelisk.Response) string {
	if r.Kind == obelisk.ResponseDelay {
		if r.Cancelled {
			return "delay " + r.ID + " cancelled"
		}
		return "delay " + r.ID + " expired"
	}
	if err := r.Decode(nil); err != nil {
		return "execution " + r.ID + " " + describe(err)
	}
	var v json.RawMessage
	if err := r.Decode(&v); err != nil {
		return "execution " + r.ID + " " + describe(err)
	}
	return "execution " + r.ID + " ok " + string(v)
}

// joinSet returns the handle of a join set the script created (step checked
// that it did).
func (s *state) joinSet(id string) obelisk.JoinSet { return s.sets[id] }
