package wasmhost

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
)

func mustOutbound(t testing.TB, p HTTPPolicy) *Outbound {
	t.Helper()
	o, err := NewOutbound(p)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// fakeDNS resolves the names of the tests (no outside DNS is reachable here); any
// other name but nowhere.test is a public address.
var fakeDNS = map[string][]string{
	"localhost":  {"127.0.0.1", "::1"},
	"local.test": {"127.0.0.1"},
	// bücher.test, as net/http dials it.
	"xn--bcher-kva.test": {"127.0.0.1"},
	"internal.test":      {"10.1.2.3"},
	"mixed.test":         {"127.0.0.1", "10.0.0.1"},
	"mapped.test":        {"::ffff:10.9.9.9"},
	"zero.test":          {"0.0.0.0"},
	"dual.test":          {"2001:db8::1", "127.0.0.1"},
	"public.test":        {"93.184.216.34"},
}

func fakeLookup(_ context.Context, host string) ([]netip.Addr, error) {
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	names, ok := fakeDNS[name]
	if !ok {
		names = fakeDNS["public.test"]
	}
	if name == "nowhere.test" {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	var addrs []netip.Addr
	for _, n := range names {
		addrs = append(addrs, netip.MustParseAddr(n))
	}
	return addrs, nil
}

// decide runs what the policy decides for a request without sending it: the check
// before the request and the check of the addresses its dial would connect to.
func decide(o *Outbound, method, rawURL string) ([]netip.Addr, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	t, err := o.check(method, u)
	if err != nil {
		return nil, err
	}
	return o.permitted(context.Background(), t, u.Hostname())
}

// TestPolicyDecisions: each kind of entry, allowing and denying, with the host as a
// name, as an IP address in the forms that reach it, and as a name that resolves.
func TestPolicyDecisions(t *testing.T) {
	type req struct {
		method, url string
		want        string // "" allowed, else part of the error
	}
	tests := []struct {
		name        string
		allow, deny []string
		reqs        []req
	}{
		// Name entries, as before denied_hosts.
		{"exact name", []string{"example.com"}, nil, []req{
			{"GET", "http://example.com/", ""}, {"GET", "https://example.com/x", ""}, {"GET", "http://EXAMPLE.com:80/", ""},
			{"GET", "https://example.com.:443/", ""},
			{"GET", "http://example.com:8080/", "host example.com:8080 is not in allowed_hosts"},
			{"GET", "https://example.com:80/", "not in allowed_hosts"}, {"GET", "http://a.example.com/", "not in allowed_hosts"},
			{"GET", "http://badexample.com/", "not in allowed_hosts"}}},
		{"subdomains", []string{"*.example.com"}, nil, []req{
			{"GET", "https://a.example.com/", ""}, {"GET", "http://a.b.example.com/", ""},
			{"GET", "https://example.com/", "not in allowed_hosts"}, {"GET", "https://badexample.com/", "not in allowed_hosts"},
			{"GET", "https://a.example.com:444/", "not in allowed_hosts"}}},
		{"scheme", []string{"https://api.github.com"}, nil, []req{
			{"GET", "https://api.github.com/repos", ""},
			{"GET", "http://api.github.com/", "not in allowed_hosts"}, {"GET", "https://api.github.com:8443/", "not in allowed_hosts"}}},
		{"any host, default ports", []string{"*"}, nil, []req{
			{"GET", "http://a/", ""}, {"GET", "https://b.c/", ""}, {"GET", "http://1.2.3.4/", ""},
			{"GET", "http://a:8080/", "not in allowed_hosts"}}},
		{"anything over http", []string{"http://*:*"}, nil, []req{
			{"GET", "http://anything:1/", ""}, {"GET", "https://anything/", "not in allowed_hosts"}}},

		// IP entries match the address dialled, however the URL writes it.
		{"IPv4 address", []string{"127.0.0.1:*"}, nil, []req{
			{"GET", "http://127.0.0.1:1234/", ""}, {"GET", "https://127.0.0.1/", ""},
			{"GET", "http://2130706433:1234/", ""}, {"GET", "http://0x7f.1:1234/", ""}, {"GET", "http://[::ffff:127.0.0.1]:1234/", ""},
			{"GET", "http://local.test:1234/", ""},
			{"GET", "http://localhost:1234/", ""}, // only 127.0.0.1 of its addresses is dialled
			{"GET", "http://127.0.0.2:1234/", "host 127.0.0.2:1234 is not in allowed_hosts"},
			{"GET", "http://internal.test:1234/", "host internal.test:1234 (address 10.1.2.3) is not in allowed_hosts"},
			{"GET", "http://nowhere.test:1234/", "no such host"}}},
		{"IPv6 address", []string{"[::1]:*", "::2"}, nil, []req{
			{"GET", "http://[::1]:8080/", ""}, {"GET", "http://[0:0::1]:8080/", ""}, {"GET", "http://[::2]/", ""},
			{"GET", "http://[::2]:8080/", "not in allowed_hosts"}, {"GET", "http://127.0.0.1:8080/", "not in allowed_hosts"}}},
		{"CIDR allowed", []string{"10.0.0.0/8", "127.0.0.0/8:*"}, nil, []req{
			{"GET", "http://internal.test/", ""}, {"GET", "http://mapped.test/", ""}, {"GET", "http://127.6.7.8:99/", ""},
			{"GET", "http://mixed.test/", ""},
			{"GET", "http://internal.test:8080/", "not in allowed_hosts"},
			{"GET", "http://public.test/", "host public.test:80 (address 93.184.216.34) is not in allowed_hosts"}}},

		// Deny wins over allow; a denied_hosts entry without a port denies every port.
		{"denied CIDR", []string{"*:*"}, []string{"127.0.0.0/8"}, []req{
			{"GET", "http://public.test:8080/", ""},
			{"GET", "http://127.0.0.1:8080/", `host 127.0.0.1:8080 is denied by denied_hosts entry "127.0.0.0/8"`},
			{"GET", "https://127.0.0.1/", `denied by denied_hosts entry "127.0.0.0/8"`},
			{"GET", "http://2130706433:8080/", `host 2130706433:8080 (address 127.0.0.1) is denied by denied_hosts entry "127.0.0.0/8"`},
			{"GET", "http://0x7f.1/", `(address 127.0.0.1) is denied`}, {"GET", "http://0x7F000001/", `(address 127.0.0.1) is denied`},
			{"GET", "http://0177.0.0.1/", `(address 127.0.0.1) is denied`}, {"GET", "http://127.1/", `(address 127.0.0.1) is denied`},
			{"GET", "http://127.0.0.1./", `is denied`},
			{"GET", "http://[::ffff:127.0.0.1]/", `(address 127.0.0.1) is denied`}, {"GET", "http://[::ffff:7f00:1]/", `(address 127.0.0.1) is denied`},
			{"GET", "http://0.0.0.0/", `(address 127.0.0.1) is denied`}, {"GET", "http://0/", `(address 127.0.0.1) is denied`},
			{"GET", "http://zero.test/", `host zero.test:80 (address 127.0.0.1) is denied`},
			{"GET", "http://local.test:8080/", `host local.test:8080 (address 127.0.0.1) is denied by denied_hosts entry "127.0.0.0/8"`},
			{"GET", "http://LOCALHOST./", `(address 127.0.0.1) is denied`},
			// One denied address refuses the name, whatever its others.
			{"GET", "http://mixed.test/", `host mixed.test:80 (address 127.0.0.1) is denied`}}},
		{"name allowed, address denied", []string{"localhost:*", "*.test"}, []string{"10.0.0.0/8", "169.254.169.254"}, []req{
			{"GET", "http://local.test/", ""},
			{"GET", "http://internal.test/", `(address 10.1.2.3) is denied by denied_hosts entry "10.0.0.0/8"`},
			{"GET", "http://mapped.test/", `(address 10.9.9.9) is denied`},
			{"GET", "http://mixed.test/", `(address 10.0.0.1) is denied`},
			{"GET", "http://169.254.169.254/latest/meta-data", `is not in allowed_hosts`},
			{"GET", "http://localhost:5/", ""}}},
		{"anything but the metadata address", []string{"*:*"}, []string{"169.254.169.254", "fd00::/8"}, []req{
			{"GET", "http://169.254.169.254/latest/meta-data", `host 169.254.169.254:80 is denied by denied_hosts entry "169.254.169.254"`},
			{"GET", "http://169.254.169.254:8080/", `is denied`}, {"GET", "http://2852039166/", `(address 169.254.169.254) is denied`},
			{"GET", "http://[fd12::1]:81/", `denied by denied_hosts entry "fd00::/8"`},
			{"GET", "http://169.254.169.253/", ""}}},
		{"denied name", []string{"*:*"}, []string{"localhost", "*.internal"}, []req{
			{"GET", "http://localhost:8080/", `host localhost:8080 is denied by denied_hosts entry "localhost"`},
			{"GET", "http://a.b.internal/", `denied by denied_hosts entry "*.internal"`},
			{"GET", "http://127.0.0.1:8080/", ""}}},
		{"denied port and scheme", []string{"*:*"}, []string{"127.0.0.1:8080", "https://*:*"}, []req{
			{"GET", "http://127.0.0.1:8080/", `denied by denied_hosts entry "127.0.0.1:8080"`},
			{"GET", "https://example.com/", `denied by denied_hosts entry "https://*:*"`},
			{"GET", "http://127.0.0.1:8081/", ""}}},

		// Methods.
		{"denied methods", []string{"*:*"}, []string{"POST,DELETE 127.0.0.0/8", "PUT *.example.com"}, []req{
			{"GET", "http://127.0.0.1:8080/", ""}, {"HEAD", "http://local.test/", ""},
			{"POST", "http://127.0.0.1:8080/", `denied by denied_hosts entry "POST,DELETE 127.0.0.0/8"`},
			{"post", "http://local.test/", `denied by denied_hosts entry "POST,DELETE 127.0.0.0/8"`},
			{"PUT", "http://a.example.com/", `denied by denied_hosts entry "PUT *.example.com"`},
			{"POST", "http://a.example.com/", ""}}},
		{"allowed methods", []string{"GET,HEAD example.com", "POST 127.0.0.1:*"}, nil, []req{
			{"GET", "http://example.com/", ""}, {"head", "http://example.com/", ""}, {"POST", "http://127.0.0.1:9/", ""},
			{"POST", "http://example.com/", "host example.com:80 (address 93.184.216.34) is not in allowed_hosts for method POST"},
			{"GET", "http://127.0.0.1:9/", "host 127.0.0.1:9 is not in allowed_hosts for method GET"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := mustOutbound(t, HTTPPolicy{AllowedHosts: tt.allow, DeniedHosts: tt.deny, lookup: fakeLookup})
			for _, r := range tt.reqs {
				addrs, err := decide(o, r.method, r.url)
				switch {
				case r.want == "" && err != nil:
					t.Errorf("%s %s denied: %v", r.method, r.url, err)
				case r.want == "" && len(addrs) == 0:
					t.Errorf("%s %s: allowed but no address to dial", r.method, r.url)
				case r.want != "" && (err == nil || !strings.Contains(err.Error(), r.want)):
					t.Errorf("%s %s: err %v, want one containing %q", r.method, r.url, err, r.want)
				}
			}
		})
	}
	t.Run("only the allowed addresses are dialled", func(t *testing.T) {
		o := mustOutbound(t, HTTPPolicy{AllowedHosts: []string{"127.0.0.0/8"}, lookup: fakeLookup})
		addrs, err := decide(o, "GET", "http://mixed.test/")
		if err != nil || fmt.Sprint(addrs) != "[127.0.0.1]" {
			t.Errorf("mixed.test: %v %v, want [127.0.0.1]", addrs, err)
		}
		addrs, err = decide(o, "GET", "http://[::ffff:127.0.0.9]/")
		if err != nil || fmt.Sprint(addrs) != "[127.0.0.9]" {
			t.Errorf("an IPv4-mapped address: %v %v, want the IPv4 address dialled", addrs, err)
		}
	})
	t.Run("nil Outbound denies everything", func(t *testing.T) {
		var o *Outbound
		if _, err := decide(o, "GET", "http://a/"); err == nil || err.Error() != "host a:80 is not in allowed_hosts" {
			t.Errorf("nil policy: %v", err)
		}
	})
}

func TestPolicyEntryErrors(t *testing.T) {
	bad := map[string]string{
		"":                   "empty host",
		"ftp://x":            `unsupported scheme "ftp"`,
		"a/b":                "without path",
		"x:":                 "empty port",
		"x:0":                `bad port "0"`,
		"x:99999":            `bad port "99999"`,
		"x:y":                `bad port "y"`,
		"a.*.com":            "wildcard",
		"*.":                 "'*.' needs a domain",
		"[::1":               "unclosed '['",
		"[::1]x":             `unexpected "x" after ']'`,
		"[example.com]":      "not an IPv6 address",
		"user@host":          "without path",
		"10.0.0.0/33":        `bad CIDR "10.0.0.0/33"`,
		"10.0.0.0/x":         `bad CIDR "10.0.0.0/x"`,
		"10.1.2.3/8":         `bits are set after the first 8: write "10.0.0.0/8"`,
		"[fd00::/200]:443":   `bad CIDR "fd00::/200"`,
		"fe80::1%eth0":       "zone",
		"0.0.0.0":            "unspecified address",
		"2130706433":         "read as an IPv4 address",
		"0x7f.1:80":          "read as an IPv4 address",
		"get example.com":    `method "get": want upper-case names`,
		"GET,,POST x":        `method ""`,
		"GET example.com x":  "without path",
		"G-T example.com":    `method "G-T"`,
		"GET https://a b":    "without path",
		"GET 10.0.0.0/8/16":  "bad CIDR",
		"https://10.0.0.0/8": "", // valid: the scheme before a range
	}
	for entry, want := range bad {
		for _, key := range []string{"allowed_hosts", "denied_hosts"} {
			p := HTTPPolicy{}
			if key == "allowed_hosts" {
				p.AllowedHosts = []string{"example.com", entry}
			} else {
				p.DeniedHosts = []string{entry}
			}
			err := p.Validate()
			if want == "" {
				if err != nil {
					t.Errorf("%s %q: %v", key, entry, err)
				}
				continue
			}
			if prefix := fmt.Sprintf("%s entry %q: ", key, entry); err == nil || !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), want) {
				t.Errorf("%s %q: error %v, want %q...%q", key, entry, err, prefix, want)
			}
			if _, err2 := NewOutbound(p); fmt.Sprint(err2) != fmt.Sprint(err) {
				t.Errorf("NewOutbound: %v, Validate: %v", err2, err)
			}
		}
	}
}

func TestParseLegacyIPv4(t *testing.T) {
	tests := []struct {
		in      string
		want    string // "" not numeric, "err" numeric but no address
		numeric bool
	}{
		{"127.1", "127.0.0.1", true}, {"2130706433", "127.0.0.1", true}, {"0x7f000001", "127.0.0.1", true},
		{"0x7f.1", "127.0.0.1", true}, {"0177.0.0.01", "127.0.0.1", true}, {"0X7F.0.1", "127.0.0.1", true},
		{"10.1.65535", "10.1.255.255", true}, {"0", "0.0.0.0", true}, {"0x", "0.0.0.0", true},
		{"1.2.3.4.5", "err", true}, {"256.1.1.1", "err", true}, {"1.2.3.256", "err", true}, {"1.2.65536", "err", true},
		{"08.1.1.1", "err", true}, {"4294967296", "err", true}, {"0x1g", "", false},
		{"example.com", "", false}, {"1.2.3.x", "", false}, {"1..2", "", false}, {"08.example", "", false}, {"", "", false},
	}
	for _, tt := range tests {
		a, numeric, err := parseLegacyIPv4(tt.in)
		got := ""
		switch {
		case err != nil:
			got = "err"
		case a.IsValid():
			got = a.String()
		}
		if got != tt.want || numeric != tt.numeric {
			t.Errorf("parseLegacyIPv4(%q) = %s %v (%v), want %s %v", tt.in, got, numeric, err, tt.want, tt.numeric)
		}
	}
}

// TestPolicyOverHTTP sends the requests through the http op to a local server: an
// allowed one arrives, a denied one is the guest's not_allowed error naming the entry,
// and no connection was made for it.
func TestPolicyOverHTTP(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s ok", r.Method)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	at := func(host string) string { return fmt.Sprintf("http://%s:%d/", host, port) }

	tests := []struct {
		name        string
		allow, deny []string
		method, url string
		want        string // "" the server's answer, else part of the not_allowed error
	}{
		{"allowed", []string{"127.0.0.1:*"}, nil, "GET", at("127.0.0.1"), ""},
		{"allowed through the resolver", []string{"127.0.0.1:*"}, nil, "GET", at("local.test"), ""},
		{"allowed by CIDR", []string{"127.0.0.0/8:*"}, nil, "POST", at("2130706433"), ""},
		{"not allowed", []string{"127.0.0.1:1"}, nil, "GET", at("127.0.0.1"), "is not in allowed_hosts"},
		{"denied CIDR", []string{"127.0.0.1:*"}, []string{"127.0.0.0/8"}, "GET", at("127.0.0.1"), `denied by denied_hosts entry "127.0.0.0/8"`},
		{"denied decimal", []string{"*:*"}, []string{"127.0.0.0/8"}, "GET", at("2130706433"), `(address 127.0.0.1) is denied`},
		{"denied mapped", []string{"*:*"}, []string{"127.0.0.1"}, "GET", at("[::ffff:127.0.0.1]"), `(address 127.0.0.1) is denied`},
		{"denied resolved", []string{"*.test:*"}, []string{"127.0.0.0/8"}, "GET", at("local.test"), `host local.test:` + fmt.Sprint(port) + ` (address 127.0.0.1) is denied`},
		{"denied method", []string{"*:*"}, []string{"POST 127.0.0.1"}, "POST", at("127.0.0.1"), `denied by denied_hosts entry "POST 127.0.0.1"`},
		{"other method", []string{"*:*"}, []string{"POST 127.0.0.1"}, "PUT", at("127.0.0.1"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := mustOutbound(t, HTTPPolicy{AllowedHosts: tt.allow, DeniedHosts: tt.deny, lookup: fakeLookup})
			defer o.CloseIdleConnections()
			before := conns.Load()
			inst := &Instance{http: o}
			out, err := inst.opHTTP(context.Background(), []byte(fmt.Sprintf(`{"method":%q,"url":%q}`, tt.method, tt.url)))
			if tt.want == "" {
				var resp abi.HTTPResponse
				if err != nil || json.Unmarshal(out, &resp) != nil || resp.Status != 200 || resp.Body != base64.StdEncoding.EncodeToString([]byte(tt.method+" ok")) {
					t.Fatalf("got %s %v, want the server's answer", out, err)
				}
				return
			}
			he, ok := err.(*HostError)
			if !ok || he.Kind != abi.KindNotAllowed || !strings.Contains(he.Message, tt.want) {
				t.Fatalf("got %s %v, want not_allowed containing %q", out, err, tt.want)
			}
			if n := conns.Load() - before; n != 0 {
				t.Errorf("%d connections made to the server for a denied request", n)
			}
		})
	}
	t.Run("bad IPv4 host", func(t *testing.T) {
		o := mustOutbound(t, HTTPPolicy{AllowedHosts: []string{"*:*"}})
		_, err := (&Instance{http: o}).opHTTP(context.Background(), []byte(`{"url":"http://1.2.3.256/"}`))
		if he, ok := err.(*HostError); !ok || he.Kind != abi.KindBadRequest || !strings.Contains(he.Message, "not an IPv4 address") {
			t.Errorf("got %v, want bad_request", err)
		}
	})
	t.Run("a connection is reused within a method only", func(t *testing.T) {
		// The entries treat GET and POST differently: a connection dialled for GET (to a
		// name allowed for GET) must not carry a POST, which only an IP entry allows.
		o := mustOutbound(t, HTTPPolicy{AllowedHosts: []string{"GET local.test:*", "POST 10.0.0.0/8:*"}, lookup: fakeLookup})
		defer o.CloseIdleConnections()
		inst := &Instance{http: o}
		if _, err := inst.opHTTP(context.Background(), []byte(fmt.Sprintf(`{"method":"GET","url":%q}`, at("local.test")))); err != nil {
			t.Fatal(err)
		}
		_, err := inst.opHTTP(context.Background(), []byte(fmt.Sprintf(`{"method":"POST","url":%q}`, at("local.test"))))
		if he, ok := err.(*HostError); !ok || he.Kind != abi.KindNotAllowed || !strings.Contains(he.Message, "(address 127.0.0.1) is not in allowed_hosts for method POST") {
			t.Errorf("POST after GET: %v, want not_allowed", err)
		}
	})
	t.Run("a connection is reused only by requests the name entries treat alike", func(t *testing.T) {
		// net/http pools the connection of http://bücher.test under its ASCII name, the
		// key of http://xn--bcher-kva.test too; the name entry allows the first only.
		o := mustOutbound(t, HTTPPolicy{AllowedHosts: []string{"bücher.test:*", "10.0.0.0/8:*"}, lookup: fakeLookup})
		defer o.CloseIdleConnections()
		inst := &Instance{http: o}
		if _, err := inst.opHTTP(context.Background(), []byte(fmt.Sprintf(`{"url":%q}`, at("bücher.test")))); err != nil {
			t.Fatal(err)
		}
		_, err := inst.opHTTP(context.Background(), []byte(fmt.Sprintf(`{"url":%q}`, at("xn--bcher-kva.test"))))
		if he, ok := err.(*HostError); !ok || he.Kind != abi.KindNotAllowed || !strings.Contains(he.Message, "(address 127.0.0.1) is not in allowed_hosts") {
			t.Errorf("the ASCII name after the Unicode one: %v, want not_allowed", err)
		}
	})
	t.Run("a family that does not route does not hold the dial", func(t *testing.T) {
		// dual.test's first address never answers (until the test ends): the dial
		// tries its IPv4 address too, as net.Dialer would, and that one connects.
		release := make(chan struct{})
		var triedV6 atomic.Bool
		dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
			if strings.HasPrefix(addr, "[2001:db8::1]") {
				triedV6.Store(true)
				<-release
				return nil, errors.New("no route")
			}
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}
		o := mustOutbound(t, HTTPPolicy{AllowedHosts: []string{"*.test:*"}, lookup: fakeLookup, dialContext: dial})
		defer o.CloseIdleConnections()
		defer close(release)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := (&Instance{http: o}).opHTTP(ctx, []byte(fmt.Sprintf(`{"url":%q}`, at("dual.test"))))
		if err != nil || !triedV6.Load() {
			t.Fatalf("got %s %v (IPv6 tried: %v), want the answer over IPv4 after trying IPv6", out, err, triedV6.Load())
		}
	})
}
