package config

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/actors"
	"github.com/obelisk-go/obelisk/webhook"
)

func TestWebhookConfig(t *testing.T) {
	p := write(t, `
[[webhook_endpoint]]
name = "hook"
location.path = "hook.wasm"
routes = ["GET /fibo/:n/:iterations", "/status/*"]
allowed_hosts = ["example.com"]
denied_hosts = ["10.0.0.0/8"]

[[http_server]]
name = "second"
listening_addr = "127.0.0.1:9191"
read_timeout = "5s"

[[webhook_endpoint]]
name = "other"
location.path = "other.wasm"
http_server = "second"
routes = [""]
max_inflight_requests = 3
request_timeout = "2s"
`)
	s, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	w := s.Webhooks
	if len(w.Servers) != 2 || w.Servers[0] != (webhook.ServerConfig{Name: "second", ListeningAddr: "127.0.0.1:9191", ReadTimeout: 5 * time.Second}) ||
		w.Servers[1] != (webhook.ServerConfig{Name: "external", ListeningAddr: "127.0.0.1:9090", ReadTimeout: 30 * time.Second}) {
		t.Fatalf("servers: %+v", w.Servers)
	}
	if len(w.Endpoints) != 2 {
		t.Fatalf("endpoints: %+v", w.Endpoints)
	}
	a, b := w.Endpoints[0], w.Endpoints[1]
	if a.Name != "hook" || a.Server != "external" || len(a.Routes) != 2 || a.MaxInflightRequests != 100 || a.RequestTimeout != 30*time.Second {
		t.Fatalf("hook: %+v", a)
	}
	if b.Server != "second" || b.MaxInflightRequests != 3 || b.RequestTimeout != 2*time.Second {
		t.Fatalf("other: %+v", b)
	}
	c := s.Engine.Components[0]
	if c.Type != actors.WebhookEndpoint || c.Name != "hook" || !strings.HasSuffix(c.Path, "/hook.wasm") || c.AllowedHosts[0] != "example.com" || fmt.Sprint(c.DeniedHosts) != "[10.0.0.0/8]" || c.LockExpiry != 30*time.Second {
		t.Fatalf("component: %+v", c)
	}

	// No webhook endpoint: no server.
	s, err = Load(write(t, ``))
	if err != nil || len(s.Webhooks.Servers) != 0 {
		t.Fatalf("no endpoints: %+v, %v", s.Webhooks, err)
	}
}

func TestWebhookConfigErrors(t *testing.T) {
	endpoint := "[[webhook_endpoint]]\nname = \"hook\"\nlocation.path = \"h.wasm\"\n"
	cases := map[string]string{
		endpoint:                                                                                 `[[webhook_endpoint]] #1 (name "hook"): routes is required`,
		endpoint + `routes = ["fibo"]`:                                                           `[[webhook_endpoint]] #1 (name "hook"): routes: route "fibo": a path starts with '/'`,
		endpoint + `routes = ["/a/:x", "/a/:y"]`:                                                 `route "/a/:y" conflicts with route "/a/:x"`,
		endpoint + "routes = [\"/\"]\nhttp_server = \"nope\"":                                    `http_server "nope" is not defined`,
		endpoint + "routes = [\"/\"]\nmax_inflight_requests = 0":                                 "max_inflight_requests = 0: must be at least 1 (leave it out for the default, 100)",
		endpoint + "routes = [\"/\"]\nrequest_timeout = \"-1s\"":                                 `request_timeout = "-1s": must be at least 100ms`,
		endpoint + "routes = [\"/\"]\nallowed_hosts = [\"a/b\"]":                                 `allowed_hosts entry "a/b"`,
		endpoint + "routes = [\"/\"]\ndenied_hosts = [\"10.0.0.0/8\", \"fd00::/129\"]":           `[[webhook_endpoint]] #1 (name "hook"): denied_hosts entry "fd00::/129": bad CIDR "fd00::/129"`,
		endpoint + "routes = [\"/\"]\nbogus = 1":                                                 "bogus",
		"[[webhook_endpoint]]\nname = \"hook\"\nroutes = [\"/\"]":                                "location.path or location.oci (a module) or function (an FFQN every request submits) is required",
		endpoint + "routes = [\"/\"]\nlocation.oci = \"ghcr.io/hook:v1\"":                        `[[webhook_endpoint]] #1 (name "hook"): give location.path or location.oci, not both`,
		"[[http_server]]\nname = \"s\"":                                                          `[[http_server]] #1 (name "s"): listening_addr is required`,
		"[[http_server]]\nname = \"s\"\nlistening_addr = \"127.0.0.1:1\"\nread_timeout = \"0s\"": `[[http_server]] #1 (name "s"): read_timeout = "0s": must be at least 100ms`,
		"[[http_server]]\nname = \"s\"\nlistening_addr = \"127.0.0.1:1\"\n[[http_server]]\nname = \"s\"\nlistening_addr = \"127.0.0.1:2\"": "the name is used twice",
		"[[http_server]]\nname = \"s\"\nlistening_addr = \"127.0.0.1:1\"\n[[http_server]]\nname = \"t\"\nlistening_addr = \"127.0.0.1:1\"": `also the address of http_server "s"`,
		endpoint + "routes = [\"/\"]\n[[webhook_endpoint]]\nname = \"h2\"\nlocation.path = \"h.wasm\"\nroutes = [\"/\"]":                   `[[webhook_endpoint]] #2 (name "h2"): routes on http_server "external": route "/" conflicts`,
	}
	for text, want := range cases {
		_, err := Load(write(t, text))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("config\n%s\nerror %v, want one containing %q", text, err, want)
		}
	}
}

// An endpoint mapped to a function has no component in the engine, and none of the keys
// of a module; its name is not another component's.
func TestWebhookFunctionConfig(t *testing.T) {
	s, err := Load(write(t, `
[[webhook_endpoint]]
name = "fibo_fn"
function = "testing:fibo/fibo.fibo"
routes = ["GET /fn/fibo/:n"]
request_timeout = "5s"
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Webhooks.Endpoints) != 1 || len(s.Engine.Components) != 0 {
		t.Fatalf("endpoints %+v, components %+v", s.Webhooks.Endpoints, s.Engine.Components)
	}
	if ep := s.Webhooks.Endpoints[0]; ep.Function != "testing:fibo/fibo.fibo" || ep.Server != "external" || ep.RequestTimeout != 5*time.Second || len(ep.Routes) != 1 {
		t.Fatalf("endpoint: %+v", ep)
	}

	fn := "[[webhook_endpoint]]\nname = \"fn\"\nroutes = [\"/\"]\nfunction = \"testing:fibo/fibo.fibo\"\n"
	cases := map[string]string{
		fn + `location.path = "h.wasm"`:                                       `[[webhook_endpoint]] #1 (name "fn"): function = "testing:fibo/fibo.fibo" and location: give one, either a module of its own or a function every request submits`,
		fn + `allowed_hosts = ["a.com"]`:                                      `allowed_hosts configures an endpoint's own module (location.path); an endpoint mapped to function "testing:fibo/fibo.fibo" has none`,
		fn + `denied_hosts = []`:                                              `denied_hosts configures`,
		fn + `stdout = "log"`:                                                 `stdout configures`,
		fn + `requires = ["fibo"]`:                                            `requires configures`,
		fn + `stderr = "none"`:                                                `stderr configures`,
		strings.Replace(fn, "fibo.fibo", "fibo", 1):                           `[[webhook_endpoint]] #1 (name "fn"): function: function name "testing:fibo/fibo": want namespace:package/interface.function`,
		"[[activity_wasm]]\nname = \"fn\"\nlocation.path = \"a.wasm\"\n" + fn: `[[webhook_endpoint]] #1 (name "fn"): the name is also that of another component or webhook endpoint`,
		fn + strings.Replace(fn, `["/"]`, `["/b"]`, 1):                        `[[webhook_endpoint]] #2 (name "fn"): the name is also that of another component or webhook endpoint`,
	}
	for text, want := range cases {
		_, err := Load(write(t, text))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("config\n%s\nerror %v, want one containing %q", text, err, want)
		}
	}
}
