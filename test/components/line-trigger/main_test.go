package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/obeliskhttp"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/obeliskkv"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/obelisktrigger"
)

// TestLines: every line of the stream is one call of fibo; the trap comes once, after
// trap_after lines; a run ends with an error when the stream ends.
func TestLines(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "a 1\nb 2\nnot a line\nc 3\n")
	}))
	defer srv.Close()
	var calls []string
	host := &obelisk.TestHost{
		Call: func(ffqn string, params json.RawMessage) (json.RawMessage, error) {
			calls = append(calls, ffqn+string(params))
			return json.RawMessage(`{"ok":1}`), nil
		},
		Ops: obeliskhttp.TestHandlers(http.DefaultTransport),
	}
	kv := obeliskkv.TestHandler()
	host.Ops[abi.OpKV] = kv
	for key, value := range map[string]string{"url": srv.URL, "trap_after": "2"} {
		if _, err := kv(json.RawMessage(fmt.Sprintf(`{"op":"kv","fn":"set","params":["line-trigger",%q,%q]}`, key, value))); err != nil {
			t.Fatal(err)
		}
	}
	trapped := func() (msg string) {
		defer func() { msg = fmt.Sprint(recover()) }()
		host.Run(obelisktrigger.RunFFQN)
		return ""
	}()
	if !strings.Contains(trapped, "the injected trap after line 2") {
		t.Fatalf("first run: %q, want the injected trap", trapped)
	}
	if out := string(host.Run(obelisktrigger.RunFFQN)); out != `{"err":"the stream ended"}` {
		t.Fatalf("second run: %s", out)
	}
	want := "testing:fibo/fibo.fibo[1] testing:fibo/fibo.fibo[2] testing:fibo/fibo.fibo[1] testing:fibo/fibo.fibo[2] testing:fibo/fibo.fibo[3]"
	if got := strings.Join(calls, " "); got != want {
		t.Fatalf("calls %s, want %s", got, want)
	}
}
