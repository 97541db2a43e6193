package config

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/obelisk-go/obelisk/actors"
	"github.com/obelisk-go/obelisk/events"
	"github.com/obelisk-go/obelisk/wasmhost"
	"github.com/obelisk-go/obelisk/webhook"
)

// HTTPServer is one [[http_server]]: an address webhook endpoints are served on.
type HTTPServer struct {
	Name          string         `mapstructure:"name"`
	ListeningAddr string         `mapstructure:"listening_addr"`
	ReadTimeout   *time.Duration `mapstructure:"read_timeout"`
	TLSFiles      TLSFiles       `mapstructure:",squash"`
}

// WebhookEndpoint is one [[webhook_endpoint]]: a module of its own (Location), or a
// function every request submits (Function).
type WebhookEndpoint struct {
	Name                string         `mapstructure:"name"`
	Location            Location       `mapstructure:"location"`
	Function            string         `mapstructure:"function"`
	HTTPServer          string         `mapstructure:"http_server"`
	Routes              []string       `mapstructure:"routes"`
	AllowedHosts        []string       `mapstructure:"allowed_hosts"`
	DeniedHosts         []string       `mapstructure:"denied_hosts"`
	MaxInflightRequests *int           `mapstructure:"max_inflight_requests"`
	RequestTimeout      *time.Duration `mapstructure:"request_timeout"`
	Output              `mapstructure:",squash"`
	Requires            any `mapstructure:"requires"` // as a workflow's (parseRequires)
}

// resolveWebhooks adds the webhook endpoints to the engine's components and fills
// s.Webhooks. When an endpoint is served by "external" and no [[http_server]] of that
// name is configured, it listens on webhook.DefaultListeningAddr.
func resolveWebhooks(f *File, s *Server, rel func(string) string, path string) error {
	fail := func(section string, i int, name, msg string, args ...any) error {
		return fmt.Errorf("config %s: [[%s]] #%d (name %q): %s", displayPath(path), section, i+1, name, fmt.Sprintf(msg, args...))
	}
	servers := map[string]bool{}
	addrs := map[string]string{}
	for i, h := range f.HTTPServers {
		if err := checkName(h.Name); err != nil {
			return fail("http_server", i, h.Name, "%v", err)
		}
		if _, dup := servers[h.Name]; dup {
			return fail("http_server", i, h.Name, "the name is used twice")
		}
		addr := strings.TrimSpace(h.ListeningAddr)
		if addr == "" {
			return fail("http_server", i, h.Name, "listening_addr is required (e.g. \"127.0.0.1:9090\")")
		}
		if other, dup := addrs[addr]; dup {
			return fail("http_server", i, h.Name, "listening_addr %s is also the address of http_server %q", addr, other)
		}
		sc := webhook.ServerConfig{Name: h.Name, ListeningAddr: addr, ReadTimeout: webhook.DefaultReadTimeout}
		if h.ReadTimeout != nil {
			if err := atLeast("read_timeout", *h.ReadTimeout, MinRequestTimeout); err != nil {
				return fail("http_server", i, h.Name, "%v", err)
			}
			sc.ReadTimeout = *h.ReadTimeout
		}
		tlsConfig, err := h.TLSFiles.load("http_server", rel)
		if err != nil {
			return fail("http_server", i, h.Name, "%v", err)
		}
		sc.TLS = tlsConfig
		servers[h.Name], addrs[addr] = true, h.Name
		s.Webhooks.Servers = append(s.Webhooks.Servers, sc)
	}
	routers := map[string]*webhook.Router[string]{}
	// Names of the components so far and of function endpoints, which are no
	// components: one name space for both, as errors and logs name them alike.
	names := map[string]bool{}
	for _, c := range s.Engine.Components {
		names[c.Name] = true
	}
	for i, w := range f.WebhookEndpoints {
		if err := checkName(w.Name); err != nil {
			return fail("webhook_endpoint", i, w.Name, "%v", err)
		}
		if err := checkFunctionEndpoint(w); err != nil {
			return fail("webhook_endpoint", i, w.Name, "%v", err)
		}
		if w.Function != "" && names[w.Name] {
			return fail("webhook_endpoint", i, w.Name, "the name is also that of another component or webhook endpoint")
		}
		names[w.Name] = true
		server := w.HTTPServer
		if server == "" {
			server = webhook.DefaultServerName
		}
		if _, ok := servers[server]; !ok {
			if server != webhook.DefaultServerName {
				return fail("webhook_endpoint", i, w.Name, "http_server %q is not defined: add an [[http_server]] with this name", server)
			}
			if other, dup := addrs[webhook.DefaultListeningAddr]; dup {
				return fail("webhook_endpoint", i, w.Name, "the default http_server %q would listen on %s, the address of http_server %q: define [[http_server]] name = %q",
					server, webhook.DefaultListeningAddr, other, server)
			}
			servers[server], addrs[webhook.DefaultListeningAddr] = true, server
			s.Webhooks.Servers = append(s.Webhooks.Servers, webhook.ServerConfig{Name: server, ListeningAddr: webhook.DefaultListeningAddr, ReadTimeout: webhook.DefaultReadTimeout})
		}
		if len(w.Routes) == 0 {
			return fail("webhook_endpoint", i, w.Name, "routes is required, e.g. [\"GET /fibo/:n/:iterations\"] ([\"\"] matches every path)")
		}
		ec := webhook.EndpointConfig{Name: w.Name, Server: server, MaxInflightRequests: webhook.DefaultMaxInflightRequests, RequestTimeout: webhook.DefaultRequestTimeout, Function: w.Function}
		if routers[server] == nil {
			routers[server] = &webhook.Router[string]{}
		}
		for _, text := range w.Routes {
			r, err := webhook.ParseRoute(text)
			if err != nil {
				return fail("webhook_endpoint", i, w.Name, "routes: %v", err)
			}
			if err := routers[server].Add(r, w.Name); err != nil {
				return fail("webhook_endpoint", i, w.Name, "routes on http_server %q: %v", server, err)
			}
			ec.Routes = append(ec.Routes, r)
		}
		if w.MaxInflightRequests != nil {
			if *w.MaxInflightRequests == 0 { // not negative: countHook
				return fail("webhook_endpoint", i, w.Name, "max_inflight_requests = 0: must be at least 1 (leave it out for the default, %d)", webhook.DefaultMaxInflightRequests)
			}
			ec.MaxInflightRequests = *w.MaxInflightRequests
		}
		if w.RequestTimeout != nil {
			if err := atLeast("request_timeout", *w.RequestTimeout, MinRequestTimeout); err != nil {
				return fail("webhook_endpoint", i, w.Name, "%v", err)
			}
			ec.RequestTimeout = *w.RequestTimeout
		}
		if w.Function != "" {
			// The function runs in its own component; the endpoint has none.
			s.Webhooks.Endpoints = append(s.Webhooks.Endpoints, ec)
			continue
		}
		if err := s.location(w.Name, w.Location); err != nil {
			return fail("webhook_endpoint", i, w.Name, "%v", err)
		}
		if err := (&wasmhost.HTTPPolicy{AllowedHosts: w.AllowedHosts, DeniedHosts: w.DeniedHosts}).Validate(); err != nil {
			return fail("webhook_endpoint", i, w.Name, "%v", err) // names the key and the entry
		}
		c := actors.ComponentConfig{
			Name: w.Name, Type: actors.WebhookEndpoint, Path: rel(w.Location.Path), AllowedHosts: w.AllowedHosts,
			DeniedHosts: w.DeniedHosts, LockExpiry: ec.RequestTimeout, MaxConcurrency: ec.MaxInflightRequests,
		}
		if err := w.Output.apply(&c); err != nil {
			return fail("webhook_endpoint", i, w.Name, "%v", err)
		}
		var err error
		if c.Requires, err = parseRequires(w.Requires); err != nil {
			return fail("webhook_endpoint", i, w.Name, "%v", err)
		}
		s.Webhooks.Endpoints = append(s.Webhooks.Endpoints, ec)
		s.Engine.Components = append(s.Engine.Components, c)
	}
	return nil
}

// checkFunctionEndpoint checks that an endpoint has either a module (location.path) or a
// function, and, mapped to a function, none of the keys that configure a module. Whether
// a deployed component exports the function is checked once the engine has loaded them
// (webhook.Servers.Serve).
func checkFunctionEndpoint(w WebhookEndpoint) error {
	if w.Function == "" {
		if w.Location == (Location{}) {
			return errors.New("location.path or location.oci (a module) or function (an FFQN every request submits) is required")
		}
		return nil
	}
	if w.Location != (Location{}) {
		return fmt.Errorf("function = %q and location: give one, either a module of its own or a function every request submits", w.Function)
	}
	if _, _, err := events.SplitFFQN(w.Function); err != nil {
		return fmt.Errorf("function: %w", err)
	}
	for _, k := range []struct {
		key string
		set bool
	}{{"allowed_hosts", w.AllowedHosts != nil}, {"denied_hosts", w.DeniedHosts != nil}, {"stdout", w.Stdout != ""}, {"stderr", w.Stderr != ""}, {"requires", w.Requires != nil}} {
		if k.set {
			return fmt.Errorf("%s configures an endpoint's own module (location.path); an endpoint mapped to function %q has none", k.key, w.Function)
		}
	}
	return nil
}
