package main

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
)

// host answers fibo(n) with n*10, sleeps with ok, and leaves the stub's
// answers to be written (unless answers has one for the question).
func host(answers map[string]string) *obelisk.TestHost {
	return &obelisk.TestHost{ExecutionID: "E_W", Call: func(ffqn string, params json.RawMessage) (json.RawMessage, error) {
		var p []json.RawMessage
		if err := json.Unmarshal(params, &p); err != nil || len(p) != 1 {
			return nil, fmt.Errorf("params %s", params)
		}
		switch ffqn {
		case fibo:
			return json.RawMessage(`{"ok":` + string(p[0]) + `0}`), nil
		case sleep:
			return json.RawMessage(`{"ok":null}`), nil
		case answer:
			var q string
			json.Unmarshal(p[0], &q)
			if a, ok := answers[q]; ok {
				return json.RawMessage(a), nil
			}
			return nil, nil // a stub: no result until it is written
		}
		return nil, fmt.Errorf("no function %s", ffqn)
	}}
}

func TestWorkflow(t *testing.T) {
	for _, c := range []struct {
		fn     string
		params []any
		want   string
	}{
		{"named-conflict", []any{"a/b"}, `{"ok":"conflict"}`},
		{"named-conflict", []any{"a b"}, `{"err":"obelisk: join_set_create: invalid_name: join set name \"a b\": want 1 to 64 ASCII letters, digits, '-' and '/'"}`},
		// The TestHost runs children at once: the response is found.
		{"try-then-next", []any{7}, `{"ok":"found:70"}`},
		// Time passes only when the workflow waits: the child comes first.
		{"delay-and-child", []any{10, 3}, `{"ok":"execution,delay"}`},
		{"delay-and-child", []any{0, 3}, `{"ok":"delay,execution"}`},
		{"await-stub", []any{"known"}, `{"ok":42}`},
		{"await-stub", []any{"refused"}, `{"err":"no"}`},
		{"stub-self", []any{5}, `{"ok":"ok,ok,conflict:5"}`},
		{"mismatch", nil, `{"ok":"function_mismatch"}`},
	} {
		h := host(map[string]string{"known": `{"ok":42}`, "refused": `{"err":"no"}`})
		if got := string(h.Run("testing:joinset-workflow/workflow."+c.fn, c.params...)); got != c.want {
			t.Errorf("%s%v = %s, want %s", c.fn, c.params, got, c.want)
		}
	}
}

func TestTryThenNextPending(t *testing.T) {
	h := host(nil)
	h.Ops = map[string]obelisk.OpHandler{
		"join_next_try": func(json.RawMessage) (any, error) {
			return nil, &obelisk.HostError{Kind: obelisk.KindPending, Message: "not yet"}
		},
	}
	if got := string(h.Run("testing:joinset-workflow/workflow.try-then-next", 7)); got != `{"ok":"pending:70"}` {
		t.Errorf("got %s", got)
	}
}

func TestCloseCancels(t *testing.T) {
	h := host(nil)
	// The sleep activity is still running when the join set is closed.
	call := h.Call
	h.Call = func(ffqn string, params json.RawMessage) (json.RawMessage, error) {
		if ffqn == sleep {
			return nil, nil
		}
		return call(ffqn, params)
	}
	if got := string(h.Run("testing:joinset-workflow/workflow.close-cancels", 100)); got != `{"ok":"cancelled"}` {
		t.Errorf("got %s", got)
	}
	// A sleep that finished first is no failure.
	if got := string(host(nil).Run("testing:joinset-workflow/workflow.close-cancels", 100)); got != `{"err":"E_W.g:1_1 was not cancelled: it returned ok"}` {
		t.Errorf("finished sleep: got %s", got)
	}
}
