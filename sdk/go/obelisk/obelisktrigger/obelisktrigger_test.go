package obelisktrigger

import (
	"errors"
	"testing"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
)

// TestMain registers one function, run as RunFFQN with the run number as its attempt.
func TestMainRuns(t *testing.T) {
	var runs []int
	fail := true
	Main(func(ctx obelisk.Context) error {
		runs = append(runs, Run(ctx))
		if fail {
			return errors.New("stream ended")
		}
		return nil
	})
	if out := string((&obelisk.TestHost{Attempt: 1}).Run(RunFFQN)); out != `{"err":"stream ended"}` {
		t.Fatalf("first run: %s", out)
	}
	fail = false
	if out := string((&obelisk.TestHost{Attempt: 2}).Run(RunFFQN)); out != `{"ok":null}` {
		t.Fatalf("second run: %s", out)
	}
	if len(runs) != 2 || runs[0] != 1 || runs[1] != 2 {
		t.Fatalf("runs %v", runs)
	}
}
