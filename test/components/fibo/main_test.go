package main

import (
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
		if got := string(new(obelisk.TestHost).Run("testing:fibo/fibo.fibo", n)); got != want {
			t.Errorf("fibo(%d) = %s, want %s", n, got, want)
		}
	}
}
