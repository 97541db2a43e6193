package wasmhost

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// HTTPPolicy is the outgoing HTTP policy of an activity or a webhook endpoint: an
// allow-list and a deny-list of destinations. A request is sent only if an allow
// entry matches it and no deny entry does: deny wins.
//
// An entry is [METHODS ]DESTINATION:
//   - METHODS, optional, is a list of upper-case method names separated by ',' and
//     followed by a space ("GET,POST api.example.com"): the entry matches only those
//     methods (compared ignoring case). Without it, every method.
//   - DESTINATION is [scheme://]host[:port]. scheme is http, https or *; without one
//     both http and https match.
//   - host is a name, "*" for any host, "*.example.com" for any subdomain of
//     example.com (not example.com itself), an IP address (IPv6 with or without
//     brackets; brackets are needed before a port) or a CIDR range ("10.0.0.0/8",
//     "[fd00::/8]:443"). Names match ignoring case and a trailing dot.
//   - port is a number or "*" for any port. Without one, an allowed_hosts entry
//     matches only the scheme's default port (80 for http, 443 for https) and a
//     denied_hosts entry every port.
//
// Name entries match the host as the URL names it, before any request. IP and CIDR
// entries match the address actually dialled, after name resolution: an IPv4 address
// written in any form inet_aton accepts ("2130706433", "0x7f.1", "127.1"), an
// IPv4-mapped IPv6 address ("[::ffff:127.0.0.1]") and a name resolving into a range
// are all checked as the IPv4 address they reach; so are 0.0.0.0 and ::, as the
// loopback address they reach. A name that resolves to several addresses is refused
// if any is denied; otherwise only its addresses an IP entry allows are dialled
// (all of them when a name entry allowed the host).
//
// Examples: "example.com", "*.example.com", "127.0.0.1:*", "localhost:8080",
// "https://api.github.com", "GET,HEAD *.example.com", "10.0.0.0/8", "*" (any host on
// the default ports), "*:*" (anything).
//
// Redirects are not followed: a 3xx reaches the guest as it is, and the guest's next
// request is checked like any other. Requests never go through a proxy (HTTP_PROXY
// and the like are ignored): the policy is about the address that is dialled.
type HTTPPolicy struct {
	// AllowedHosts lists the allowed entries; nothing is allowed without one.
	AllowedHosts []string
	// DeniedHosts lists the denied entries.
	DeniedHosts []string
	// MaxResponseBytes bounds a response body; a larger one fails the call
	// with kind transport. 0 means 64 MiB.
	MaxResponseBytes int64

	// lookup resolves a host name; nil means net.DefaultResolver. Tests set it.
	lookup func(ctx context.Context, host string) ([]netip.Addr, error)
	// dialContext connects to an address; nil means a net.Dialer. Tests set it.
	dialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

// dialTimeout bounds the connection to a name's addresses, as in http.DefaultTransport.
const dialTimeout = 30 * time.Second

// DefaultMaxResponseBytes is the response body limit when
// HTTPPolicy.MaxResponseBytes is 0.
const DefaultMaxResponseBytes = 64 << 20

// Validate reports the first invalid entry, naming its key (allowed_hosts or
// denied_hosts) and the entry.
func (p *HTTPPolicy) Validate() error {
	_, _, err := p.rules()
	return err
}

func (p *HTTPPolicy) rules() (allow, deny []rule, err error) {
	for _, s := range p.AllowedHosts {
		r, err := parseRule(s, false)
		if err != nil {
			return nil, nil, fmt.Errorf("allowed_hosts entry %q: %w", s, err)
		}
		allow = append(allow, r)
	}
	for _, s := range p.DeniedHosts {
		r, err := parseRule(s, true)
		if err != nil {
			return nil, nil, fmt.Errorf("denied_hosts entry %q: %w", s, err)
		}
		deny = append(deny, r)
	}
	return allow, deny, nil
}

// Outbound sends the outgoing HTTP requests of a component's instances under its
// HTTPPolicy (InstanceConfig.HTTP). One Outbound serves every instance of a
// component, so that connections are reused across its executions; it is safe for
// concurrent use.
type Outbound struct {
	allow, deny []rule
	maxBody     int64
	lookup      func(ctx context.Context, host string) ([]netip.Addr, error)
	// dialContext connects to one address; a net.Dialer's but in tests.
	dialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// clients by what a dial's checks depend on besides the pool's own key (scheme,
	// host as dialled, port): the method, and whether a name entry allowed the host.
	// A pooled connection is thus reused only by requests whose dial would have been
	// checked alike.
	clients map[clientKey]*http.Client
	// allowByMethod: some allowed_hosts entry names methods, so a refusal says which.
	allowByMethod bool
}

// NewOutbound checks p and returns the Outbound that enforces it.
func NewOutbound(p HTTPPolicy) (*Outbound, error) {
	allow, deny, err := p.rules()
	if err != nil {
		return nil, err
	}
	o := &Outbound{allow: allow, deny: deny, maxBody: p.MaxResponseBytes, lookup: p.lookup, clients: map[clientKey]*http.Client{},
		dialContext: p.dialContext}
	if o.dialContext == nil {
		o.dialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext // as http.DefaultTransport's
	}
	if o.maxBody <= 0 {
		o.maxBody = DefaultMaxResponseBytes
	}
	if o.lookup == nil {
		o.lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	keys := []string{""}
	for _, r := range slices.Concat(allow, deny) {
		keys = append(keys, r.methods...)
	}
	for _, r := range allow {
		o.allowByMethod = o.allowByMethod || r.methods != nil
	}
	for _, m := range keys {
		for _, byName := range []bool{false, true} {
			k := clientKey{m, byName}
			if o.clients[k] != nil {
				continue
			}
			t := http.DefaultTransport.(*http.Transport).Clone()
			t.DisableCompression = true // bodies reach the guest as the server sent them
			t.Proxy = nil               // the dialled address is the one checked
			t.DialContext = o.dial
			o.clients[k] = &http.Client{
				Transport: t,
				// Redirects are the guest's business (docs/abi.md): its own client follows
				// them, each hop a new request checked like the first.
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			}
		}
	}
	return o, nil
}

// clientKey selects a client: method is the upper-case method when an entry names it,
// else "" (the entries treat every other method alike); byName is target.byName.
type clientKey struct {
	method string
	byName bool
}

// CloseIdleConnections closes the connections kept for reuse.
func (o *Outbound) CloseIdleConnections() {
	for _, c := range o.clients {
		c.CloseIdleConnections()
	}
}

// rule is one parsed entry.
type rule struct {
	text    string       // as written, for messages
	methods []string     // upper case; nil = any
	scheme  string       // "" = http or https
	host    string       // name entry: "*" any, "*.x" subdomains of x, else exact; lower case
	prefix  netip.Prefix // IP entry (an address is a /32 or /128); IPv4 as IPv4
	port    string       // "" default port of the scheme, "*" any, else exact
}

func parseRule(s string, deny bool) (rule, error) {
	r := rule{text: s}
	rest := strings.TrimSpace(s)
	if methods, after, ok := strings.Cut(rest, " "); ok {
		for _, m := range strings.Split(methods, ",") {
			if m == "" || strings.IndexFunc(m, func(c rune) bool { return c < 'A' || c > 'Z' }) >= 0 {
				return r, fmt.Errorf("method %q: want upper-case names separated by ',' and a space before the host (e.g. \"GET,POST api.example.com\")", m)
			}
			if !slices.Contains(r.methods, m) {
				r.methods = append(r.methods, m)
			}
		}
		rest = strings.TrimSpace(after)
	}
	if scheme, after, ok := strings.Cut(rest, "://"); ok {
		switch scheme = strings.ToLower(scheme); scheme {
		case "http", "https":
			r.scheme = scheme
		case "*":
		default:
			return r, fmt.Errorf("unsupported scheme %q", scheme)
		}
		rest = after
	}
	if strings.ContainsAny(rest, "?#@ \t") {
		return r, errors.New("an entry is [METHODS ][scheme://]host[:port], without path, query or user")
	}
	host := rest
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return r, errors.New("unclosed '['")
		}
		host = rest[1:end]
		switch tail := rest[end+1:]; {
		case tail == "":
		case strings.HasPrefix(tail, ":"):
			if r.port = tail[1:]; r.port == "" {
				return r, errors.New("empty port")
			}
		default:
			return r, fmt.Errorf("unexpected %q after ']'", tail)
		}
		if _, err := netip.ParsePrefix(host); err != nil && strings.Contains(host, "/") {
			return r, fmt.Errorf("bad CIDR %q: %v", host, err)
		}
		if _, err := netip.ParseAddr(host); err != nil && !strings.Contains(host, "/") {
			return r, fmt.Errorf("%q in brackets is not an IPv6 address", host)
		}
	} else if _, err := netip.ParseAddr(rest); err == nil {
		// A bare IPv6 address has colons but no port.
	} else if a, _, ok := strings.Cut(rest, "/"); ok && strings.Count(a, ":") >= 2 {
		// A bare IPv6 range (a port would need brackets).
	} else if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		host, r.port = rest[:i], rest[i+1:]
		if r.port == "" {
			return r, errors.New("empty port")
		}
	}
	if r.port != "" && r.port != "*" {
		if n, err := strconv.Atoi(r.port); err != nil || n <= 0 || n > 65535 {
			return r, fmt.Errorf("bad port %q", r.port)
		}
	}
	if r.port == "" && deny {
		r.port = "*"
	}
	if addr, bits, ok := strings.Cut(host, "/"); ok {
		if _, err := netip.ParseAddr(addr); err != nil {
			return r, errors.New("an entry is [METHODS ][scheme://]host[:port], without path, query or user")
		}
		p, err := netip.ParsePrefix(host)
		if err != nil {
			return r, fmt.Errorf("bad CIDR %q: %v", host, err)
		}
		if p.Addr().Zone() != "" {
			return r, fmt.Errorf("bad CIDR %q: a zone has no place in an entry", host)
		}
		if m := p.Masked(); m != p {
			return r, fmt.Errorf("bad CIDR %q: bits are set after the first %s: write %q", host, bits, m.String())
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		r.prefix = p
		return r, nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		switch {
		case a.Zone() != "":
			return r, fmt.Errorf("address %q: a zone has no place in an entry", host)
		case a.IsUnspecified():
			return r, fmt.Errorf("%s is the unspecified address, which reaches this host: write the loopback address (127.0.0.1 or ::1), or a range such as 0.0.0.0/0", host)
		}
		a = a.Unmap()
		r.prefix = netip.PrefixFrom(a, a.BitLen())
		return r, nil
	}
	host = strings.ToLower(host)
	if strings.HasPrefix(host, "*.") && strings.Trim(host[2:], ".") == "" {
		return r, errors.New("'*.' needs a domain after it")
	}
	host = strings.TrimSuffix(host, ".")
	switch {
	case host == "":
		return r, errors.New("empty host")
	case host == "*":
	case strings.HasPrefix(host, "*."):
		if len(host) == 2 || strings.Contains(host[2:], "*") {
			return r, errors.New("a wildcard must be '*' or a leading '*.' label")
		}
	case strings.Contains(host, "*"):
		return r, errors.New("a wildcard must be '*' or a leading '*.' label")
	}
	if _, numeric, _ := parseLegacyIPv4(host); numeric {
		return r, fmt.Errorf("%q is read as an IPv4 address: write it as four decimal numbers (e.g. \"127.0.0.1\")", host)
	}
	r.host = host
	return r, nil
}

func (r *rule) isIP() bool { return r.prefix.IsValid() }

// appliesTo reports whether r's methods, scheme and port match t.
func (r *rule) appliesTo(t *target) bool {
	if r.methods != nil && !slices.Contains(r.methods, t.method) {
		return false
	}
	if r.scheme != "" && r.scheme != t.scheme {
		return false
	}
	switch r.port {
	case "*":
		return true
	case "":
		return t.port == defaultPort(t.scheme)
	default:
		return t.port == r.port
	}
}

// matchesName reports whether the name entry r matches t's host (an IP address
// only through "*").
func (r *rule) matchesName(t *target) bool {
	switch {
	case r.host == "*":
		return true
	case t.ip.IsValid():
		return false
	case strings.HasPrefix(r.host, "*."):
		return strings.HasSuffix(t.host, r.host[1:])
	default:
		return t.host == r.host
	}
}

func defaultPort(scheme string) string {
	if scheme == "https" {
		return "443"
	}
	return "80"
}

// target is one request as the policy sees it.
type target struct {
	method string     // upper case
	scheme string     // lower case
	raw    string     // the URL's host, for messages
	host   string     // lower case, no trailing dot; an IP address in its usual form
	ip     netip.Addr // host's address if it is one: unmapped, loopback for unspecified
	port   string
	byName bool // an allowed_hosts name entry matched: IP entries need not allow it
}

// targetKey carries a request's checked *target to the dial of its connection.
type targetKey struct{}

// deniedError is a request the policy refuses.
type deniedError struct {
	t *target
	// addr is the address refused, when the refusal came from an IP entry or after
	// resolution.
	addr netip.Addr
	// rule is the denied_hosts entry that matched; "" when no allowed_hosts entry did.
	rule      string
	forMethod bool
}

func (d *deniedError) Error() string {
	s := "host " + net.JoinHostPort(d.t.raw, d.t.port)
	if d.addr.IsValid() && d.addr.String() != d.t.raw {
		s += " (address " + d.addr.String() + ")"
	}
	if d.rule != "" {
		return fmt.Sprintf("%s is denied by denied_hosts entry %q", s, d.rule)
	}
	s += " is not in allowed_hosts"
	if d.forMethod {
		s += " for method " + d.t.method
	}
	return s
}

// check decides what can be decided before dialling: the name entries, and whether
// any IP entry could allow the request. It returns a *deniedError for a refused
// request, another error for a URL host that is no valid host. A nil Outbound
// refuses everything.
func (o *Outbound) check(method string, u *url.URL) (*target, error) {
	t := &target{method: strings.ToUpper(method), scheme: strings.ToLower(u.Scheme), raw: u.Hostname(), port: u.Port()}
	if t.port == "" {
		t.port = defaultPort(t.scheme)
	}
	var err error
	if t.host, t.ip, err = canonicalHost(u.Hostname()); err != nil {
		return nil, err
	}
	if o == nil {
		return nil, &deniedError{t: t}
	}
	for i := range o.deny {
		if r := &o.deny[i]; !r.isIP() && r.appliesTo(t) && r.matchesName(t) {
			return nil, &deniedError{t: t, rule: r.text}
		}
	}
	byIP := false
	for i := range o.allow {
		r := &o.allow[i]
		if !r.appliesTo(t) {
			continue
		}
		if !r.isIP() && r.matchesName(t) {
			t.byName = true
			break
		}
		byIP = byIP || r.isIP()
	}
	if !t.byName && !byIP {
		return nil, &deniedError{t: t, forMethod: o.allowByMethod}
	}
	return t, nil
}

// client returns the client for t.
func (o *Outbound) client(t *target) *http.Client {
	if c := o.clients[clientKey{t.method, t.byName}]; c != nil {
		return c
	}
	return o.clients[clientKey{"", t.byName}]
}

// dial is the transports' DialContext: it dials the addresses of addr that the IP
// entries let t reach (permitted). What it checks is what it dials: the addresses,
// not the name.
func (o *Outbound) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	t, _ := ctx.Value(targetKey{}).(*target)
	if t == nil {
		return nil, fmt.Errorf("wasmhost: dial %s outside a checked request", addr)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	addrs, err := o.permitted(ctx, t, host)
	if err != nil {
		return nil, err
	}
	return o.dialAddrs(ctx, network, port, addrs)
}

// fallbackDelay is how long the addresses of the resolver's first family have alone
// before those of the other family are tried too (net.Dialer's default).
const fallbackDelay = 300 * time.Millisecond

// dialAddrs connects to one of addrs as net.Dialer does to a name's addresses: those
// of the first one's family in turn, racing those of the other family once
// fallbackDelay has passed or the first family has failed ("Happy Eyeballs"), so that
// a family that does not route costs a moment, not the dial timeout.
func (o *Outbound) dialAddrs(ctx context.Context, network, port string, addrs []netip.Addr) (net.Conn, error) {
	var primaries, fallbacks []netip.Addr
	for _, a := range addrs {
		if a.Is4() == addrs[0].Is4() {
			primaries = append(primaries, a)
		} else {
			fallbacks = append(fallbacks, a)
		}
	}
	if len(fallbacks) == 0 {
		return o.dialSerial(ctx, network, port, primaries)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the loser
	type result struct {
		c   net.Conn
		err error
	}
	results := make(chan result, 2)
	race := func(addrs []netip.Addr) {
		c, err := o.dialSerial(ctx, network, port, addrs)
		results <- result{c, err}
	}
	go race(primaries)
	timer := time.NewTimer(fallbackDelay)
	defer timer.Stop()
	started, failed := 1, 0
	var first error
	for {
		select {
		case <-timer.C:
		case r := <-results:
			if r.err == nil {
				if started-failed == 2 { // the other may still connect: close it then
					go func() {
						if r := <-results; r.c != nil {
							r.c.Close()
						}
					}()
				}
				return r.c, nil
			}
			if first == nil {
				first = r.err
			}
			if failed++; failed == 2 {
				return nil, first
			}
		}
		if started == 1 {
			started = 2
			go race(fallbacks)
		}
	}
}

// dialSerial tries addrs in turn, each with a share of the dial timeout as net.Dialer
// gives them.
func (o *Outbound) dialSerial(ctx context.Context, network, port string, addrs []netip.Addr) (net.Conn, error) {
	var first error
	start := time.Now()
	for i, a := range addrs {
		share := max((dialTimeout-time.Since(start))/time.Duration(len(addrs)-i), 2*time.Second)
		actx, cancel := context.WithTimeout(ctx, share)
		c, err := o.dialContext(actx, network, net.JoinHostPort(a.String(), port))
		cancel() // a connection made outlives its dial's context
		if err == nil {
			return c, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, first
}

// permitted resolves host (t's, as the transport dials it) and checks every address
// against the IP entries: it returns the addresses that t may reach, or a
// *deniedError when an address is denied or none is allowed. What it checks is what
// dial dials: the addresses, not the name.
func (o *Outbound) permitted(ctx context.Context, t *target, host string) ([]netip.Addr, error) {
	_, ip, err := canonicalHost(host)
	if err != nil {
		return nil, err
	}
	addrs := []netip.Addr{ip}
	if !ip.IsValid() {
		if addrs, err = o.lookup(ctx, host); err != nil {
			return nil, err
		}
	}
	var pass []netip.Addr
	var refused error
	for _, a := range addrs {
		a = reached(a)
		m := a.WithZone("")
		for i := range o.deny {
			if r := &o.deny[i]; r.isIP() && r.appliesTo(t) && r.prefix.Contains(m) {
				return nil, &deniedError{t: t, addr: m, rule: r.text}
			}
		}
		if t.byName || o.allowsAddr(t, m) {
			pass = append(pass, a)
		} else if refused == nil {
			refused = &deniedError{t: t, addr: m, forMethod: o.allowByMethod}
		}
	}
	if len(pass) == 0 {
		if refused == nil {
			refused = fmt.Errorf("lookup %s: no addresses", host)
		}
		return nil, refused
	}
	return pass, nil
}

func (o *Outbound) allowsAddr(t *target, a netip.Addr) bool {
	for i := range o.allow {
		if r := &o.allow[i]; r.isIP() && r.appliesTo(t) && r.prefix.Contains(a) {
			return true
		}
	}
	return false
}

// reached is the address a connection to a reaches: an IPv4-mapped IPv6 address is
// its IPv4 address, and the unspecified address is the loopback one (Linux and BSDs
// connect there).
func reached(a netip.Addr) netip.Addr {
	a = a.Unmap()
	switch {
	case a.IsUnspecified() && a.Is4():
		return netip.AddrFrom4([4]byte{127, 0, 0, 1})
	case a.IsUnspecified():
		return netip.IPv6Loopback()
	}
	return a
}

// canonicalHost returns a URL host as the policy compares it: lower case without a
// trailing dot, and, when it is an IP address in any form (see parseLegacyIPv4), the
// address it reaches and its usual text.
func canonicalHost(h string) (string, netip.Addr, error) {
	h = strings.TrimSuffix(h, ".")
	a, err := netip.ParseAddr(h)
	if err != nil {
		h = strings.ToLower(h)
		var numeric bool
		if a, numeric, err = parseLegacyIPv4(h); !numeric {
			return h, netip.Addr{}, nil
		} else if err != nil {
			return "", netip.Addr{}, fmt.Errorf("host %q: %w", h, err)
		}
	}
	a = reached(a)
	return a.WithZone("").String(), a, nil
}

// parseLegacyIPv4 reads the IPv4 forms that inet_aton, and so the system resolver and
// browsers, accept besides dotted decimal: 1 to 4 parts, each decimal, octal (a
// leading 0) or hexadecimal (0x), the last filling the remaining bytes ("127.1",
// "2130706433", "0x7f.0.0.1", "0177.0.0.1"). numeric is false when h is not made of
// numbers only (a host name); err is set when it is but reaches no address.
func parseLegacyIPv4(h string) (a netip.Addr, numeric bool, err error) {
	parts := strings.Split(h, ".")
	for _, p := range parts {
		digits := strings.TrimPrefix(strings.TrimPrefix(p, "0x"), "0X")
		hex := len(digits) < len(p)
		if p == "" || strings.IndexFunc(digits, func(c rune) bool {
			return (c < '0' || c > '9') && (!hex || (c < 'a' || c > 'f') && (c < 'A' || c > 'F'))
		}) >= 0 {
			return a, false, nil
		}
	}
	if len(parts) > 4 {
		return a, true, errors.New("not an IPv4 address: more than 4 parts")
	}
	var n uint64
	for i, p := range parts {
		var v uint64
		switch {
		case len(p) >= 2 && (p[1] == 'x' || p[1] == 'X'):
			if len(p) > 2 { // "0x" alone is 0, as inet_aton reads it
				v, err = strconv.ParseUint(p[2:], 16, 32)
			}
		case len(p) > 1 && p[0] == '0':
			v, err = strconv.ParseUint(p[1:], 8, 32)
		default:
			v, err = strconv.ParseUint(p, 10, 32)
		}
		bits := uint(8)
		if i == len(parts)-1 {
			bits = uint(8 * (5 - len(parts)))
		}
		if err != nil || v >= 1<<bits {
			return a, true, fmt.Errorf("not an IPv4 address (part %q)", p)
		}
		n = n<<bits | v
	}
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), true, nil
}
