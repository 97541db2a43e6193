package main

import (
	"fmt"
	"testing"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
)

func TestFibo(t *testing.T) {
	for n, want := range map[int]string{
		0:  `{"ok":0}`,
		1:  `{"ok":1}`,
		10: `{"ok":55}`,
		93: `{"ok":12200160415121876738}`,
	} {
		var logs []string
		host := &obelisk.TestHost{Log: func(level obelisk.Level, msg string) { logs = append(logs, string(level)+" "+msg) }}
		if got := string(host.Run("testing:fibo/fibo.fibo", n)); got != want {
			t.Errorf("fibo(%d) = %s, want %s", n, got, want)
		}
		r := want[len(`{"ok":`) : len(want)-1]
		if wantLog := fmt.Sprintf("info fibo(%d) = %s", n, r); len(logs) != 1 || logs[0] != wantLog {
			t.Errorf("fibo(%d) logged %q, want [%q]", n, logs, wantLog)
		}
	}
}
