package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/obeliskhttp"
)

func TestGet(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, "hello")
	}))
	defer srv.Close()
	host := &obelisk.TestHost{Ops: map[string]obelisk.OpHandler{
		"http": obeliskhttp.TestHandler(http.DefaultTransport),
	}}

	if got := string(host.Run("testing:http/http-get.get", srv.URL)); got != `{"ok":"hello"}` {
		t.Errorf("200: %s", got)
	}
	if got := string(host.Run("testing:http/http-get.get", srv.URL+"/missing")); got != `{"err":"status 404 Not Found"}` {
		t.Errorf("404: %s", got)
	}
	// As for an activity with no allowed hosts.
	denied := &obelisk.TestHost{Ops: map[string]obelisk.OpHandler{"http": obeliskhttp.TestHandler(nil)}}
	got := string(denied.Run("testing:http/http-get.get", srv.URL))
	if !strings.HasPrefix(got, `{"err":"`) || !strings.Contains(got, "not_allowed") {
		t.Errorf("not allowed: %s", got)
	}
}
