package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
)

func TestSleepActivity(t *testing.T) {
	host := &obelisk.TestHost{
		Call: func(ffqn string, params json.RawMessage) (json.RawMessage, error) {
			if ffqn != "testing:sleep/sleep.sleep" || string(params) != "[10]" {
				t.Errorf("call %s %s", ffqn, params)
			}
			return json.RawMessage(`{"ok":null}`), nil
		},
	}
	if got := string(host.Run("testing:sleep-workflow/workflow.sleep-activity", 10)); got != `{"ok":null}` {
		t.Errorf("sleep-activity(10) = %s", got)
	}
}

func TestSleepDurable(t *testing.T) {
	var requests []string
	host := &obelisk.TestHost{Ops: map[string]obelisk.OpHandler{
		"sleep": func(req json.RawMessage) (any, error) {
			requests = append(requests, string(req))
			return map[string]int64{"seconds": 1700000000, "nanoseconds": 0}, nil
		},
	}}
	if got := string(host.Run("testing:sleep-workflow/workflow.sleep-durable", 1500)); got != `{"ok":null}` {
		t.Errorf("sleep-durable(1500) = %s", got)
	}
	if want := `{"op":"sleep","schedule_at":{"in":{"milliseconds":1500}}}`; len(requests) != 1 || requests[0] != want {
		t.Errorf("requests %q, want %s", requests, want)
	}
	// A cancelled sleep is the workflow's err.
	host.Ops["sleep"] = func(json.RawMessage) (any, error) {
		return nil, &obelisk.HostError{Kind: obelisk.KindCancelled, Message: "delay cancelled"}
	}
	if got := string(host.Run("testing:sleep-workflow/workflow.sleep-durable", 1500)); got != `{"err":"obelisk: sleep: cancelled: delay cancelled"}` {
		t.Errorf("cancelled sleep-durable = %s", got)
	}
}

func TestSleepThenCall(t *testing.T) {
	var ops []string
	host := &obelisk.TestHost{
		Call: func(ffqn string, params json.RawMessage) (json.RawMessage, error) {
			ops = append(ops, "call "+ffqn+string(params))
			return json.RawMessage(`{"ok":55}`), nil
		},
		Ops: map[string]obelisk.OpHandler{
			"sleep": func(req json.RawMessage) (any, error) {
				ops = append(ops, "sleep")
				return map[string]int64{"seconds": 1, "nanoseconds": 0}, nil
			},
		},
	}
	host.Log = func(level obelisk.Level, msg string) { ops = append(ops, string(level)+" "+msg) }
	if got := string(host.Run("testing:sleep-workflow/workflow.sleep-then-call", 100, 10)); got != `{"ok":55}` {
		t.Errorf("sleep-then-call(100, 10) = %s", got)
	}
	if got, want := strings.Join(ops, ", "), "info sleeping 100 ms, sleep, info slept; calling fibo(10), call testing:fibo/fibo.fibo[10], warn fibo(10) returned 55"; got != want {
		t.Errorf("ops %s, want %s", got, want)
	}
}

func TestRace(t *testing.T) {
	for _, c := range []struct {
		name     string
		finished bool // whether the activity has finished by the first join_next
		want     string
	}{
		{"activity first", true, `{"ok":"activity"}`},
		{"timeout first", false, `{"ok":"timeout"}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			host := &obelisk.TestHost{
				Call: func(ffqn string, params json.RawMessage) (json.RawMessage, error) {
					if ffqn != "testing:sleep/sleep.sleep" || string(params) != "[100]" {
						t.Errorf("submit %s %s", ffqn, params)
					}
					if !c.finished {
						return nil, nil // still sleeping: the TestHost expires the delay
					}
					return json.RawMessage(`{"ok":null}`), nil
				},
			}
			if got := string(host.Run("testing:sleep-workflow/workflow.race", 100, 50)); got != c.want {
				t.Errorf("race = %s, want %s", got, c.want)
			}
		})
	}
}
