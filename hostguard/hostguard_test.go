package hostguard

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func tcp(t *testing.T, addr string) net.Addr {
	t.Helper()
	a, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func mustParse(t *testing.T, hosts ...string) Allowed {
	t.Helper()
	a, err := Parse("api.allowed_hosts", hosts)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAllowHost(t *testing.T) {
	const (
		loopback = "127.0.0.1:5005"
		v6       = "[::1]:5005"
		other    = "127.1.2.3:8080" // all of 127/8 is loopback
		any4     = "0.0.0.0:5005"
		any6     = "[::]:5005"
		lan      = "192.0.2.10:5005"
	)
	for _, c := range []struct {
		host   string
		listen string
		hosts  []string
		want   bool
	}{
		// A loopback listener with the default answers to loopback names only.
		{"127.0.0.1:5005", loopback, nil, true},
		{"127.0.0.1", loopback, nil, true},
		{"localhost:5005", loopback, nil, true},
		{"localhost", loopback, nil, true},
		{"LocalHost.:5005", loopback, nil, true},
		{"[::1]:5005", loopback, nil, true},
		{"[::1]", loopback, nil, true},
		{"127.9.8.7:1", loopback, nil, true},
		{"[::ffff:127.0.0.1]:5005", loopback, nil, true},
		{"127.0.0.1:5005", v6, nil, true},
		{"localhost:8080", other, nil, true},
		{"", loopback, nil, true}, // HTTP/1.0 without Host: no browser sends that
		{"evil.example:5005", loopback, nil, false},
		{"evil.example", loopback, nil, false},
		{"localhost.evil.example", loopback, nil, false},
		{"127.0.0.1.evil.example:5005", loopback, nil, false},
		{"sub.localhost:5005", loopback, nil, false},
		{"192.0.2.10:5005", loopback, nil, false},
		{"evil.example:5005", v6, nil, false},
		{"evil.example:8080", other, nil, false},
		{"evil.example:8080", loopback, []string{}, false}, // an empty list is the default
		// Configured names are accepted besides the loopback names, on any port.
		{"obelisk.example:5005", loopback, []string{"obelisk.example"}, true},
		{"OBELISK.example.", loopback, []string{"Obelisk.Example"}, true},
		{"localhost:5005", loopback, []string{"obelisk.example"}, true},
		{"evil.example:5005", loopback, []string{"obelisk.example"}, false},
		{"[fd00::1]:5005", loopback, []string{"[FD00::1]"}, true},
		{"[fd00::1]:5005", loopback, []string{"fd00::1"}, true},
		// "*" disables the check.
		{"evil.example:5005", loopback, []string{"*"}, true},
		// A listener on a non-loopback address is not checked by default: the operator
		// exposed it, and it answers to whatever names reach it...
		{"evil.example:5005", any4, nil, true},
		{"evil.example:5005", any6, nil, true},
		{"obelisk.lan:5005", lan, nil, true},
		// ... unless the operator lists its names.
		{"evil.example:5005", any4, []string{"obelisk.lan"}, false},
		{"obelisk.lan:5005", any4, []string{"obelisk.lan"}, true},
		{"127.0.0.1:5005", any4, []string{"obelisk.lan"}, true},
	} {
		g := New(tcp(t, c.listen), mustParse(t, c.hosts...))
		if got := g.AllowHost(c.host); got != c.want {
			t.Errorf("Host %q, listener %s, allowed_hosts %q: allowed = %v, want %v", c.host, c.listen, c.hosts, got, c.want)
		}
	}
}

func TestParse(t *testing.T) {
	for _, c := range []struct {
		hosts []string
		err   string // "" = valid
	}{
		{nil, ""},
		{[]string{"obelisk.example", "10.0.0.1", "::1", "[fd00::1]"}, ""},
		{[]string{"*"}, ""},
		{[]string{"*", "obelisk.example"}, `"*" accepts any host`},
		{[]string{"obelisk.example:8080"}, "has a port"},
		{[]string{"[fd00::1]:8080"}, "has a port"},
		{[]string{" "}, "empty host name"},
		{[]string{"*.example.com"}, "not a host name"},
		{[]string{"http://obelisk.example"}, "not a host name"},
	} {
		_, err := Parse("webui.allowed_hosts", c.hosts)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("Parse(%q): %v", c.hosts, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err) || !strings.HasPrefix(err.Error(), "webui.allowed_hosts: ")):
			t.Errorf("Parse(%q): error %v, want one naming webui.allowed_hosts and %q", c.hosts, err, c.err)
		}
	}
}

// TestHandlers drives the wrappers through HTTP as a rebinding page would.
func TestHandlers(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	a, err := Parse("webui.allowed_hosts", nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := New(ln.Addr(), a)
	mux := http.NewServeMux()
	mux.Handle("/host/", http.StripPrefix("/host", g.Host(ok)))
	srv := httptest.NewUnstartedServer(mux)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	defer srv.Close()

	do := func(method, path, host, origin string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		if host != "" {
			req.Host = host
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := do("POST", "/host/x", "evil.example:8080", "http://evil.example:8080"); code != http.StatusMisdirectedRequest ||
		!strings.Contains(body, `"evil.example:8080"`) || !strings.Contains(body, "webui.allowed_hosts") {
		t.Errorf("rebinding POST: %d %q, want 421 naming the host and webui.allowed_hosts", code, body)
	}
	for _, host := range []string{"", "localhost", "127.0.0.1"} {
		if code, body := do("GET", "/host/x", host, ""); code != http.StatusOK || body != "ok" {
			t.Errorf("GET with Host %q: %d %q", host, code, body)
		}
	}
	if code, _ := do("POST", "/host/x", "", "http://evil.example"); code != http.StatusOK {
		t.Errorf("a cross-origin POST with a loopback Host: %d, want 200 (Origin is not the guard's to check)", code)
	}
}
