package main

import (
	"testing"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
)

func TestFailUntil(t *testing.T) {
	for attempt, want := range map[int]string{
		1: `{"err":"attempt 1"}`,
		2: `{"err":"attempt 2"}`,
		3: `{"ok":3}`,
		4: `{"ok":4}`,
	} {
		host := &obelisk.TestHost{Attempt: attempt}
		if got := string(host.Run("testing:flaky/flaky.fail-until", 3)); got != want {
			t.Errorf("attempt %d: got %s, want %s", attempt, got, want)
		}
	}
}

func TestFailPermanently(t *testing.T) {
	want := `{"err":{"permanent_failure":"this function always fails"}}`
	if got := string(new(obelisk.TestHost).Run("testing:flaky/flaky.fail-permanently")); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
