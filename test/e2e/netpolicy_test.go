package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/test/harness"
)

// TestNetworkPolicy: the http activity's denied_hosts on the real server. A CIDR entry
// refuses a server that allowed_hosts allows, however the URL writes its address
// (decimal, hexadecimal, IPv4-mapped IPv6) and through a name resolving to it; the
// guest gets not_allowed naming the entry, and the denied server never sees a
// connection. The same addresses on another port still pass.
func TestNetworkPolicy(t *testing.T) {
	var deniedConns atomic.Int64
	denied := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "the denied server answered")
	}))
	denied.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			deniedConns.Add(1)
		}
	}
	denied.Start()
	defer denied.Close()
	open := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "hello")
	}))
	defer open.Close()
	dport := denied.Listener.Addr().(*net.TCPAddr).Port
	oport := open.Listener.Addr().(*net.TCPAddr).Port

	entry := fmt.Sprintf("127.0.0.0/8:%d", dport)
	s := harness.Start(t, harness.Options{ExtraTOML: map[string]string{"http": fmt.Sprintf(
		"allowed_hosts = [\"127.0.0.1:*\", \"localhost:*\"]\ndenied_hosts = [%q]\n", entry)}})

	hosts := []string{"127.0.0.1", "2130706433", "0x7f.1", "[::ffff:127.0.0.1]", "localhost"}
	ids := map[string]string{}
	for _, h := range hosts {
		for _, port := range []int{dport, oport} {
			u := fmt.Sprintf("http://%s:%d/", h, port)
			ids[u] = s.Submit("testing:http/http-get.get", fmt.Sprintf("[%q]", u))
		}
	}
	for _, h := range hosts {
		t.Run(h, func(t *testing.T) {
			u := fmt.Sprintf("http://%s:%d/", h, oport)
			harness.JSONEq(t, s.Result(ids[u], time.Minute), `{"ok":"hello"}`)

			u = fmt.Sprintf("http://%s:%d/", h, dport)
			res := s.Result(ids[u], time.Minute)
			var r struct {
				Err string `json:"err"`
			}
			want := fmt.Sprintf("denied by denied_hosts entry %q", entry)
			if err := json.Unmarshal([]byte(res), &r); err != nil || !strings.Contains(r.Err, "not_allowed") || !strings.Contains(r.Err, want) {
				t.Fatalf("%s: result %s, want an err with not_allowed and %q", u, res, want)
			}
		})
	}
	if n := deniedConns.Load(); n != 0 {
		t.Errorf("the denied server got %d connections", n)
	}
}
