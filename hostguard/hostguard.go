// Package hostguard protects the engine's HTTP listeners (the API and the web UI) from
// DNS rebinding. A web page the user opens can make its own host name resolve to
// 127.0.0.1 and then call a loopback listener as if it were its own origin; the browser
// still sends the page's host name in the Host header (":authority" in HTTP/2), so a
// loopback listener that accepts only loopback host names cannot be driven that way.
//
// The package owns the allowed_hosts setting of a listener: parsing it (Parse), deciding
// which Host headers a listener accepts (Guard), and the refusal sent to the others.
// Requests from pages of other origins are a separate matter, which the web UI's proxy
// settles with a same-origin check of its own.
package hostguard

import (
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
)

// Allowed is a parsed allowed_hosts setting. The zero value is the default: loopback
// host names only on a loopback listener, any host on another.
type Allowed struct {
	key   string   // the config key, named in refusals and errors
	any   bool     // ["*"]: no check
	names []string // normalised host names, accepted besides the loopback names
}

// Parse reads the allowed_hosts setting named key (e.g. "api.allowed_hosts"): host
// names without a port, or "*" alone to disable the check. An empty list is the
// default.
func Parse(key string, hosts []string) (Allowed, error) {
	a := Allowed{key: key}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		switch {
		case h == "*":
			if len(hosts) > 1 {
				return Allowed{}, fmt.Errorf("%s: \"*\" accepts any host and cannot be listed with other hosts %q", key, hosts)
			}
			a.any = true
		case h == "":
			return Allowed{}, fmt.Errorf("%s: an empty host name in %q", key, hosts)
		case strings.ContainsAny(h, "/@?#* \t"):
			return Allowed{}, fmt.Errorf("%s: %q is not a host name (give names such as \"obelisk.example.com\", or [\"*\"] for any host)", key, h)
		default:
			n := normalise(h)
			if net.ParseIP(n) == nil && strings.Contains(n, ":") {
				return Allowed{}, fmt.Errorf("%s: %q has a port: give the host name alone (every port of it is accepted)", key, h)
			}
			a.names = append(a.names, n)
		}
	}
	return a, nil
}

// Guard decides which requests a listener accepts.
type Guard struct {
	check  bool     // false: every host is accepted
	names  []string // accepted besides the loopback names
	key    string
	listen string // the listener's address, named in refusals
}

// New returns the guard of a listener at addr. Without an explicit allowed_hosts, only a
// loopback listener is checked: on another the operator chose to expose the server, and
// it answers to whatever names reach it.
func New(addr net.Addr, a Allowed) *Guard {
	g := &Guard{names: a.names, key: a.key, listen: addr.String()}
	if g.key == "" {
		g.key = "allowed_hosts"
	}
	switch {
	case a.any:
	case len(a.names) > 0:
		g.check = true
	default:
		g.check = isLoopbackListener(addr)
	}
	return g
}

// AllowHost reports whether the listener answers to host, a Host header value with or
// without a port.
func (g *Guard) AllowHost(host string) bool {
	if !g.check {
		return true
	}
	if host == "" {
		return true // HTTP/1.0 without a Host: not a browser, which always sends one
	}
	h := normalise(stripPort(host))
	return isLoopbackName(h) || slices.Contains(g.names, h)
}

// Host wraps next so that a request whose Host the listener does not answer to is
// refused with 421 Misdirected Request.
func (g *Guard) Host(next http.Handler) http.Handler {
	if !g.check {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !g.AllowHost(r.Host) {
			g.refuseHost(w, r.Host)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (g *Guard) refuseHost(w http.ResponseWriter, host string) {
	name := normalise(stripPort(host))
	msg := fmt.Sprintf("refused Host %q: this server (listening on %s) answers only to %s, a defence against DNS rebinding; "+
		"if %q is a name of this server, add it to %s in the config (or set %s = [\"*\"] to accept any host)\n",
		host, g.listen, g.accepted(), name, g.key, g.key)
	http.Error(w, msg, http.StatusMisdirectedRequest)
}

// accepted describes the accepted host names for a refusal.
func (g *Guard) accepted() string {
	s := "loopback names (localhost, 127.x.x.x, [::1])"
	if len(g.names) > 0 {
		s += " and " + strings.Join(g.names, ", ")
	}
	return s
}

// stripPort returns the host of "host", "host:port", "[v6]" or "[v6]:port".
func stripPort(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]")
}

// normalise makes host names compare equal as DNS does: case-insensitively and with or
// without the root's trailing dot; an IP address is written in its canonical form.
func normalise(host string) string {
	h := strings.TrimSuffix(strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")), ".")
	if ip := net.ParseIP(h); ip != nil {
		return ip.String()
	}
	return h
}

// isLoopbackName reports whether a normalised host name always means this machine:
// "localhost" or a loopback IP address (127.0.0.0/8, ::1).
func isLoopbackName(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// isLoopbackListener reports whether addr listens on a loopback address only.
func isLoopbackListener(addr net.Addr) bool {
	var ip net.IP
	switch a := addr.(type) {
	case *net.TCPAddr:
		ip = a.IP
	default:
		ip = net.ParseIP(stripPort(addr.String()))
	}
	return ip != nil && ip.IsLoopback()
}
