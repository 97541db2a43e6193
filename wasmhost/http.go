package wasmhost

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
)

// HTTPPolicy is the outgoing HTTP policy of an activity: an allow-list of
// hosts. Anything not matched is denied.
//
// A pattern is [scheme://]host[:port]:
//   - scheme is http, https or *; without one both http and https match.
//   - host is a name or IP address (IPv6 in brackets), "*" for any host, or
//     "*.example.com" for any subdomain of example.com (not example.com
//     itself). Matching ignores case and a trailing dot.
//   - port is a number or "*" for any port; without one only the scheme's
//     default port matches (80 for http, 443 for https).
//
// Examples: "example.com", "*.example.com", "127.0.0.1:*", "localhost:8080",
// "https://api.github.com", "*" (any host on the default ports), "*:*"
// (anything).
//
// Redirects are followed only to allowed URLs.
type HTTPPolicy struct {
	// AllowedHosts lists the patterns.
	AllowedHosts []string
	// Client sends the requests; nil means a client with http.DefaultTransport.
	// It is not modified (a copy enforces the policy on redirects).
	Client *http.Client
	// MaxResponseBytes bounds a response body; a larger one fails the call
	// with kind transport. 0 means 64 MiB.
	MaxResponseBytes int64
}

// DefaultMaxResponseBytes is the response body limit when
// HTTPPolicy.MaxResponseBytes is 0.
const DefaultMaxResponseBytes = 64 << 20

// Validate reports the first invalid pattern.
func (p *HTTPPolicy) Validate() error {
	_, err := p.compile()
	return err
}

type hostPattern struct {
	scheme string // "" = http or https
	host   string // "*" any, "*.x" subdomains of x, else exact; lower case
	port   string // "" default port of the scheme, "*" any, else exact
}

type compiledPolicy struct {
	patterns []hostPattern
	client   *http.Client
	maxBody  int64
}

func (p *HTTPPolicy) compile() (*compiledPolicy, error) {
	cp := &compiledPolicy{maxBody: p.MaxResponseBytes}
	if cp.maxBody <= 0 {
		cp.maxBody = DefaultMaxResponseBytes
	}
	for _, s := range p.AllowedHosts {
		hp, err := parseHostPattern(s)
		if err != nil {
			return nil, fmt.Errorf("allowed host %q: %w", s, err)
		}
		cp.patterns = append(cp.patterns, hp)
	}
	client := &http.Client{}
	if p.Client != nil {
		c := *p.Client
		client = &c
	}
	// Redirects are the guest's business (docs/abi.md): its own client follows them,
	// each hop a new request checked against the allow-list.
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if client.Transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.DisableCompression = true // bodies reach the guest as the server sent them
		client.Transport = t
	}
	cp.client = client
	return cp, nil
}

func parseHostPattern(s string) (hostPattern, error) {
	var hp hostPattern
	rest := strings.TrimSpace(s)
	if scheme, after, ok := strings.Cut(rest, "://"); ok {
		switch scheme = strings.ToLower(scheme); scheme {
		case "http", "https":
			hp.scheme = scheme
		case "*":
		default:
			return hp, fmt.Errorf("unsupported scheme %q", scheme)
		}
		rest = after
	}
	if strings.ContainsAny(rest, "/?#@") {
		return hp, errors.New("a pattern is [scheme://]host[:port], without path, query or user")
	}
	host := rest
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return hp, errors.New("unclosed '['")
		}
		host = rest[1:end]
		switch tail := rest[end+1:]; {
		case tail == "":
		case strings.HasPrefix(tail, ":"):
			hp.port = tail[1:]
			if hp.port == "" {
				return hp, errors.New("empty port")
			}
		default:
			return hp, fmt.Errorf("unexpected %q after ']'", tail)
		}
	} else if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		host, hp.port = rest[:i], rest[i+1:]
		if hp.port == "" {
			return hp, errors.New("empty port")
		}
	}
	if hp.port != "" && hp.port != "*" {
		if n, err := strconv.Atoi(hp.port); err != nil || n <= 0 || n > 65535 {
			return hp, fmt.Errorf("bad port %q", hp.port)
		}
	}
	host = strings.ToLower(host)
	if strings.HasPrefix(host, "*.") && strings.Trim(host[2:], ".") == "" {
		return hp, errors.New("'*.' needs a domain after it")
	}
	host = strings.TrimSuffix(host, ".")
	switch {
	case host == "":
		return hp, errors.New("empty host")
	case host == "*":
	case strings.HasPrefix(host, "*."):
		if len(host) == 2 || strings.Contains(host[2:], "*") {
			return hp, errors.New("a wildcard must be '*' or a leading '*.' label")
		}
	case strings.Contains(host, "*"):
		return hp, errors.New("a wildcard must be '*' or a leading '*.' label")
	}
	hp.host = host
	return hp, nil
}

func defaultPort(scheme string) string {
	if scheme == "https" {
		return "443"
	}
	return "80"
}

func (hp hostPattern) matches(scheme, host, port string) bool {
	if hp.scheme != "" && hp.scheme != scheme {
		return false
	}
	switch hp.port {
	case "*":
	case "":
		if port != defaultPort(scheme) {
			return false
		}
	default:
		if port != hp.port {
			return false
		}
	}
	switch {
	case hp.host == "*":
		return true
	case strings.HasPrefix(hp.host, "*."):
		return strings.HasSuffix(host, hp.host[1:])
	default:
		return host == hp.host
	}
}

// deniedError is a request to a host outside the allow-list.
type deniedError struct{ hostPort string }

func (d *deniedError) Error() string {
	return fmt.Sprintf("host %s is not in allowed_hosts", d.hostPort)
}

// check returns a *deniedError unless the URL is allowed.
func (cp *compiledPolicy) check(u *url.URL) error {
	scheme := strings.ToLower(u.Scheme)
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	port := u.Port()
	if port == "" {
		port = defaultPort(scheme)
	}
	if cp != nil {
		for _, hp := range cp.patterns {
			if hp.matches(scheme, host, port) {
				return nil
			}
		}
	}
	return &deniedError{hostPort: net.JoinHostPort(host, port)}
}

// opHTTP performs an activity's http op.
func (i *Instance) opHTTP(ctx context.Context, raw []byte) ([]byte, error) {
	var hr abi.HTTPRequest
	if err := json.Unmarshal(raw, &hr); err != nil {
		return nil, &HostError{Kind: abi.KindBadRequest, Message: "http: " + err.Error()}
	}
	if hr.Method == "" {
		hr.Method = http.MethodGet
	}
	u, err := url.Parse(hr.URL)
	if err != nil {
		return nil, &HostError{Kind: abi.KindBadRequest, Message: "http: " + err.Error()}
	}
	if s := strings.ToLower(u.Scheme); (s != "http" && s != "https") || u.Host == "" {
		return nil, &HostError{Kind: abi.KindBadRequest, Message: fmt.Sprintf("http: url %q must be absolute http or https", hr.URL)}
	}
	if err := i.http.check(u); err != nil {
		return nil, &HostError{Kind: abi.KindNotAllowed, Message: "http: " + err.Error()}
	}
	var body io.Reader
	if hr.Body != "" {
		b, err := base64.StdEncoding.DecodeString(hr.Body)
		if err != nil {
			return nil, &HostError{Kind: abi.KindBadRequest, Message: "http: body is not base64: " + err.Error()}
		}
		body = bytes.NewReader(b)
	}
	reqCtx := ctx
	if hr.TimeoutMS > 0 {
		var cancel context.CancelFunc
		reqCtx, cancel = context.WithTimeout(ctx, time.Duration(hr.TimeoutMS)*time.Millisecond)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(reqCtx, hr.Method, u.String(), body)
	if err != nil {
		return nil, &HostError{Kind: abi.KindBadRequest, Message: "http: " + err.Error()}
	}
	for name, values := range hr.Headers {
		if http.CanonicalHeaderKey(name) == "Host" && len(values) > 0 {
			req.Host = values[0] // net/http ignores a Host entry in Header
			continue
		}
		for _, v := range values {
			req.Header.Add(name, v)
		}
	}
	resp, err := i.http.client.Do(req)
	if err != nil {
		return nil, i.httpFailure(ctx, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, i.http.maxBody+1))
	if err != nil {
		return nil, i.httpFailure(ctx, err)
	}
	if int64(len(b)) > i.http.maxBody {
		return nil, &HostError{Kind: abi.KindTransport, Message: fmt.Sprintf("http: response body larger than %d bytes", i.http.maxBody)}
	}
	out, err := json.Marshal(abi.HTTPResponse{Status: resp.StatusCode, Headers: resp.Header, Body: base64.StdEncoding.EncodeToString(b)})
	if err != nil {
		return nil, fmt.Errorf("wasmhost: encoding http response: %w", err)
	}
	return out, nil
}

// httpFailure maps a failed request: when the run's ctx ended (lock expiry,
// cancellation) the instance is aborted with the ctx error, a redirect to a
// denied host is not_allowed, anything else is transport.
func (i *Instance) httpFailure(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var denied *deniedError
	if errors.As(err, &denied) {
		return &HostError{Kind: abi.KindNotAllowed, Message: "http: redirect: " + denied.Error()}
	}
	return &HostError{Kind: abi.KindTransport, Message: "http: " + err.Error()}
}
