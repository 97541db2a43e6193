package main

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
)

// host runs the tree in process: a submitted child workflow is run by the
// same TestHost, and a leaf's sleep is answered at once.
func host(t *testing.T, sleeps *int) *obelisk.TestHost {
	h := &obelisk.TestHost{}
	h.Call = func(ffqn string, params json.RawMessage) (json.RawMessage, error) {
		switch ffqn {
		case "testing:sleep/sleep.sleep":
			if string(params) != "[5]" {
				t.Errorf("sleep %s", params)
			}
			*sleeps++
			return json.RawMessage(`{"ok":null}`), nil
		case spawnFFQN:
			var p []any
			if err := json.Unmarshal(params, &p); err != nil {
				return nil, err
			}
			return h.Run(ffqn, p...), nil
		}
		return nil, fmt.Errorf("no function %s", ffqn)
	}
	return h
}

func TestSpawn(t *testing.T) {
	for _, c := range []struct {
		depth, fanout uint8
		want          string
		sleeps        int
	}{
		{0, 3, `{"ok":1}`, 1},
		{1, 3, `{"ok":3}`, 3},
		{3, 2, `{"ok":8}`, 8},
		{2, 0, `{"ok":0}`, 0},
	} {
		var sleeps int
		if got := string(host(t, &sleeps).Run(spawnFFQN, c.depth, c.fanout, 5)); got != c.want || sleeps != c.sleeps {
			t.Errorf("spawn(%d, %d, 5) = %s after %d sleeps, want %s after %d", c.depth, c.fanout, got, sleeps, c.want, c.sleeps)
		}
	}
}

func TestSpawnLeafFails(t *testing.T) {
	h := &obelisk.TestHost{Call: func(ffqn string, params json.RawMessage) (json.RawMessage, error) {
		return json.RawMessage(`{"execution_failure":{"kind":"timed_out","reason":"lock expired"}}`), nil
	}}
	want := `{"err":"testing:tree/tree.spawn (E_TEST.g:1_1) failed: timed_out: lock expired"}`
	if got := string(h.Run(spawnFFQN, 1, 2, 5)); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
