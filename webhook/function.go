package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/obelisk-go/obelisk/actors"
	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	"github.com/obelisk-go/obelisk/wasmhost/wit"
)

// Function endpoints: a [[webhook_endpoint]] with `function = "FFQN"` has no module of
// its own. Each request submits one top-level execution of the function, with
// parameters taken from the request, and waits for its result, as a WASM endpoint's
// blocking call would; the execution is an ordinary one (list, get, cancel), and it
// goes on if the wait ends first.
//
// Parameters are found by their WIT name (`leaf-millis`, also spelled `leaf_millis`),
// in the route's parameters first, then the query's, then the members of a JSON
// object body: the first that has a parameter gives it. A route or query value is
// text: it is the parameter's value as a string for string, char and enum parameters
// (and options of them), and read as JSON for every other type (`10`, `true`,
// `{"a":1}`, `[1,2]`), or as a string if it is not JSON (a variant case without
// payload). A body member is the value's JSON. A parameter found nowhere is none if it
// is an option, missing otherwise. The parameters are then type-checked as every
// submission is (actors.Engine.Submit), so a value of the wrong type is refused the
// same way, naming the parameter.
//
// Answers, beside those of every endpoint (404, 405, 413, 429, see the package doc):
//
//	200 the JSON of the ok value       the execution finished with ok (null if none)
//	422 {"err": value}                 it finished with an err of the function
//	500 {"execution_failure": ...}     it failed: trap, timeout, cancellation, ...
//	202 {"execution_id", "status"}     request_timeout passed first: the execution goes on
//	400 bad request: <reason>          a parameter is missing, unknown or ill-typed, the
//	                                   query or the body malformed; nothing was created
//	503 ...                            the server is stopping, or the submission failed
//
// Every answer after the submission carries the execution's ID in ExecutionIDHeader.

// ExecutionIDHeader is the response header naming the execution that a function
// endpoint's request submitted.
const ExecutionIDHeader = "X-Obelisk-Execution-Id"

// bindFunction resolves the function of a function endpoint on the deployed
// components: it must be exported by one, be submittable (not an activity stub's), and
// every route parameter must name one of its parameters.
func (ep *endpoint) bindFunction(e Engine) error {
	ffqn := ep.cfg.Function
	f, ok := e.Function(ffqn)
	if !ok {
		return fmt.Errorf("webhook_endpoint %q: function %q is not exported by any deployed component", ep.cfg.Name, ffqn)
	}
	if f.Component.Config.Type == actors.ActivityStub {
		return fmt.Errorf("webhook_endpoint %q: function %q is a function of activity stub %q, which cannot be submitted", ep.cfg.Name, ffqn, f.Component.Config.Name)
	}
	for _, r := range ep.cfg.Routes {
		for _, name := range r.names {
			if paramIndex(f.Fn, name) < 0 {
				return fmt.Errorf("webhook_endpoint %q: route %q: %s has no parameter %q (its parameters: %s)", ep.cfg.Name, r.Text, ffqn, name, paramNames(f.Fn))
			}
		}
	}
	ep.fn = f.Fn
	return nil
}

// paramIndex returns the index of fn's parameter named name (its WIT name or the
// snake_case form of it), -1 if there is none.
func paramIndex(fn *wit.Function, name string) int {
	return slices.IndexFunc(fn.Params, func(p wit.Param) bool { return p.Name == name || wit.SnakeCase(p.Name) == name })
}

func paramNames(fn *wit.Function) string {
	if len(fn.Params) == 0 {
		return "none"
	}
	names := make([]string, len(fn.Params))
	for i, p := range fn.Params {
		names[i] = p.Name
	}
	return strings.Join(names, ", ")
}

// requestParams maps a request to the JSON array of fn's parameters (see the comment
// at the top of the file): route holds the route's parameters, rawQuery the request's
// query, body its body. It does not type-check the values; the submission does. An
// error says which parameter, query parameter or body member is wrong.
func requestParams(fn *wit.Function, route []Param, rawQuery string, body []byte) (json.RawMessage, error) {
	values := make([]json.RawMessage, len(fn.Params))
	source := make([]string, len(fn.Params)) // where each value came from, for errors
	// set gives parameter i the value v from src, unless an earlier source gave it.
	set := func(i int, key, src string, v json.RawMessage) error {
		switch {
		case source[i] == src:
			return fmt.Errorf("parameter %q is given twice in the %s (as %q and another spelling)", fn.Params[i].Name, src, key)
		case source[i] == "":
			values[i], source[i] = v, src
		}
		return nil
	}
	for _, p := range route {
		i := paramIndex(fn, p.Name) // checked at start (bindFunction)
		if i < 0 {
			return nil, fmt.Errorf("route parameter %q: %s has no such parameter (its parameters: %s)", p.Name, fn.FFQN(), paramNames(fn))
		}
		if err := set(i, p.Name, "route", textValue(fn.Params[i].Type, p.Value)); err != nil {
			return nil, err
		}
	}
	query, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, fmt.Errorf("query: %v", err)
	}
	for _, key := range slices.Sorted(maps.Keys(query)) {
		i := paramIndex(fn, key)
		if i < 0 {
			return nil, fmt.Errorf("query parameter %q: %s has no such parameter (its parameters: %s)", key, fn.FFQN(), paramNames(fn))
		}
		if len(query[key]) > 1 {
			return nil, fmt.Errorf("query parameter %q is given %d times", key, len(query[key]))
		}
		if err := set(i, key, "query", textValue(fn.Params[i].Type, query[key][0])); err != nil {
			return nil, err
		}
	}
	if len(bytes.TrimSpace(body)) > 0 {
		members, err := objectMembers(body)
		if err != nil {
			return nil, fmt.Errorf("body: %v", err)
		}
		for _, m := range members {
			i := paramIndex(fn, m.key)
			if i < 0 {
				return nil, fmt.Errorf("body member %q: %s has no such parameter (its parameters: %s)", m.key, fn.FFQN(), paramNames(fn))
			}
			if err := set(i, m.key, "body", m.value); err != nil {
				return nil, err
			}
		}
	}
	var out bytes.Buffer
	out.WriteByte('[')
	for i, p := range fn.Params {
		if i > 0 {
			out.WriteByte(',')
		}
		switch {
		case values[i] != nil:
			out.Write(values[i])
		case p.Type.Underlying().Kind == wit.KindOption:
			out.WriteString("null")
		default:
			return nil, fmt.Errorf("missing parameter %q (%s) of %s: give it as a route parameter, a query parameter or a member of a JSON object body", p.Name, p.Type, fn.FFQN())
		}
	}
	out.WriteByte(']')
	return out.Bytes(), nil
}

// textValue is the JSON value of text given for a parameter of type t in a route or a
// query: a string for string-like types, else the text itself when it is JSON, else a
// string (which the type check refuses, naming the parameter, unless it is a variant's
// case).
func textValue(t *wit.Type, text string) json.RawMessage {
	u := t.Underlying()
	if u.Kind == wit.KindOption {
		u = u.Elem.Underlying() // a value given is some(value)
	}
	switch u.Kind {
	case wit.KindString, wit.KindChar, wit.KindEnum:
	default:
		if json.Valid([]byte(text)) {
			return json.RawMessage(strings.TrimSpace(text))
		}
	}
	b, _ := json.Marshal(text)
	return b
}

type member struct {
	key   string
	value json.RawMessage
}

// objectMembers returns the members of a JSON object in their order, refusing
// anything else, a key given twice and trailing data.
func objectMembers(body []byte) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("want a JSON object of parameters: %v", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("want a JSON object of parameters, got %s", firstLine(string(bytes.TrimSpace(body))))
	}
	var members []member
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key := tok.(string) // an object's keys are strings, or Token fails
		if seen[key] {
			return nil, fmt.Errorf("member %q is given twice", key)
		}
		seen[key] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("member %q: %v", key, err)
		}
		members = append(members, member{key, v})
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return members, nil
}

// serveFunction answers a request of a function endpoint: it submits an execution of
// the function and waits for its result within ctx (the request's timeout).
func (h *handler) serveFunction(ctx context.Context, w http.ResponseWriter, r *http.Request, ep *endpoint, route []Param, body []byte) {
	params, err := requestParams(ep.fn, route, r.URL.RawQuery, body)
	if err != nil {
		plain(w, http.StatusBadRequest, "bad request: "+firstLine(err.Error()))
		return
	}
	id, _, err := h.e.Submit(ctx, "", ep.cfg.Function, params)
	if err != nil {
		var invalid *actors.InvalidArgumentError
		var full *actors.ResourceExhaustedError
		switch {
		case errors.As(err, &invalid):
			plain(w, http.StatusBadRequest, "bad request: "+firstLine(invalid.Error()))
		case errors.As(err, &full):
			retryLater(w, full)
		case h.s.ctx.Err() != nil:
			plain(w, http.StatusServiceUnavailable, "the server is stopping")
		case r.Context().Err() != nil:
			// The client is gone before anything was created.
		default:
			h.log.Error("webhook: submit", "endpoint", ep.cfg.Name, "function", ep.cfg.Function, "err", err)
			plain(w, http.StatusServiceUnavailable, "webhook unavailable: "+firstLine(err.Error()))
		}
		return
	}
	w.Header().Set(ExecutionIDHeader, id)
	st, err := h.e.WaitFinished(ctx, id)
	if err != nil {
		switch {
		case h.s.ctx.Err() != nil:
			plain(w, http.StatusServiceUnavailable, "the server is stopping; execution "+id+" goes on")
		case r.Context().Err() != nil:
			// The client is gone; the execution goes on.
		case errors.Is(err, context.DeadlineExceeded):
			status := "pending_at"
			if st != nil {
				status = events.StatusName(st.Status)
			}
			writeJSON(w, http.StatusAccepted, map[string]string{"execution_id": id, "status": status})
		default:
			h.log.Error("webhook: wait for the execution", "endpoint", ep.cfg.Name, "execution", id, "err", err)
			plain(w, http.StatusServiceUnavailable, "webhook unavailable: "+firstLine(err.Error()))
		}
		return
	}
	writeResult(w, st)
}

// writeResult answers with a finished execution's result: the ok value (200), or the
// whole result for an err (422) or an execution failure (500).
func writeResult(w http.ResponseWriter, st *pb.ExecutionState) {
	res, err := events.ParseResult(st.Result)
	switch {
	case err != nil:
		plain(w, http.StatusInternalServerError, "webhook failed: "+firstLine(err.Error()))
	case res.Kind == pb.ResultKind_RESULT_KIND_OK:
		writeJSON(w, http.StatusOK, res.Value)
	case res.Kind == pb.ResultKind_RESULT_KIND_ERR:
		writeJSON(w, http.StatusUnprocessableEntity, json.RawMessage(st.Result))
	default:
		writeJSON(w, http.StatusInternalServerError, json.RawMessage(st.Result))
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		plain(w, http.StatusInternalServerError, "encoding the response: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
