package main

import (
	"encoding/json"
	"testing"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
)

func TestGet(t *testing.T) {
	for child, want := range map[string]string{
		`{"ok":"hello"}`:       `{"ok":"hello"}`,
		`{"err":"status 404"}`: `{"err":"status 404"}`,
		`{"execution_failure":{"kind":"timed_out","reason":"lock expired"}}`: `{"err":"testing:http/http-get.get failed: timed_out: lock expired"}`,
	} {
		host := &obelisk.TestHost{
			Call: func(ffqn string, params json.RawMessage) (json.RawMessage, error) {
				return json.RawMessage(child), nil
			},
		}
		if got := string(host.Run("testing:http-workflow/workflow.get", "http://x/")); got != want {
			t.Errorf("child %s: got %s, want %s", child, got, want)
		}
	}
}
