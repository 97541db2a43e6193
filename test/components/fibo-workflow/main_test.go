package main

import (
	"encoding/json"
	"testing"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
)

func TestFibow(t *testing.T) {
	if got := string(new(obelisk.TestHost).Run("testing:fibo-workflow/workflow.fibow", 10, 3)); got != `{"ok":55}` {
		t.Errorf("fibow(10, 3) = %s", got)
	}
}

func TestFiboa(t *testing.T) {
	var calls int
	host := &obelisk.TestHost{
		// Answer the activity calls in place of the fibo component.
		Call: func(ffqn string, params json.RawMessage) (json.RawMessage, error) {
			calls++
			if ffqn != "testing:fibo/fibo.fibo" || string(params) != "[10]" {
				t.Errorf("call %s %s", ffqn, params)
			}
			return json.RawMessage(`{"ok":55}`), nil
		},
	}
	if got := string(host.Run("testing:fibo-workflow/workflow.fiboa", 10, 3)); got != `{"ok":165}` || calls != 3 {
		t.Errorf("fiboa(10, 3) = %s after %d calls", got, calls)
	}
}

func TestFiboaConcurrent(t *testing.T) {
	var calls int
	host := &obelisk.TestHost{
		ExecutionID: "E_W",
		// Runs the children submitted into the join set.
		Call: func(ffqn string, params json.RawMessage) (json.RawMessage, error) {
			calls++
			if ffqn != "testing:fibo/fibo.fibo" || string(params) != "[10]" {
				t.Errorf("submit %s %s", ffqn, params)
			}
			return json.RawMessage(`{"ok":55}`), nil
		},
	}
	if got := string(host.Run("testing:fibo-workflow/workflow.fiboa-concurrent", 10, 3)); got != `{"ok":165}` || calls != 3 {
		t.Errorf("fiboa-concurrent(10, 3) = %s after %d submits", got, calls)
	}
	if got := string(host.Run("testing:fibo-workflow/workflow.fiboa-concurrent", 10, 0)); got != `{"ok":0}` {
		t.Errorf("fiboa-concurrent(10, 0) = %s", got)
	}
	// A child's err passes through.
	host.Call = func(string, json.RawMessage) (json.RawMessage, error) { return json.RawMessage(`{"err":"boom"}`), nil }
	if got := string(host.Run("testing:fibo-workflow/workflow.fiboa-concurrent", 10, 2)); got != `{"err":"boom"}` {
		t.Errorf("fiboa-concurrent with a failing child = %s", got)
	}
}
