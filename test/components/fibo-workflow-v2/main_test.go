package main

import (
	"encoding/json"
	"testing"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
)

// v2's fiboa calls fibo(1) first, then fibo(n) `iterations` times.
func TestFiboaCallsOneMore(t *testing.T) {
	var calls []string
	host := &obelisk.TestHost{
		Call: func(ffqn string, params json.RawMessage) (json.RawMessage, error) {
			calls = append(calls, string(params))
			if string(params) == "[1]" {
				return json.RawMessage(`{"ok":1}`), nil
			}
			return json.RawMessage(`{"ok":55}`), nil
		},
	}
	if got := string(host.Run("testing:fibo-workflow/workflow.fiboa", 10, 3)); got != `{"ok":166}` {
		t.Errorf("fiboa(10, 3) = %s", got)
	}
	if len(calls) != 4 || calls[0] != "[1]" || calls[1] != "[10]" {
		t.Errorf("calls %q, want [1] then [10] three times", calls)
	}
}
