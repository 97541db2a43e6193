package config

import (
	"strings"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/actors"
)

func TestTriggerConfig(t *testing.T) {
	s, err := Load(write(t, `
[[trigger]]
name = "lines"
location.path = "lines.wasm"
allowed_hosts = ["127.0.0.1:*"]
stderr = "log"
backoff.first = "100ms"
backoff.max = "2s"

[[trigger]]
name = "plain"
location.path = "plain.wasm"
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Engine.Components) != 2 {
		t.Fatalf("components: %+v", s.Engine.Components)
	}
	a, b := s.Engine.Components[0], s.Engine.Components[1]
	if a.Type != actors.Trigger || a.Name != "lines" || !strings.HasSuffix(a.Path, "/lines.wasm") || a.AllowedHosts[0] != "127.0.0.1:*" ||
		!a.CaptureStderr || a.CaptureStdout || a.RestartBackoff != 100*time.Millisecond || a.RestartBackoffMax != 2*time.Second {
		t.Fatalf("lines: %+v", a)
	}
	if b.RestartBackoff != time.Second || b.RestartBackoffMax != 5*time.Minute {
		t.Fatalf("plain: the defaults are 1s and 5m, got %+v", b)
	}
}

func TestTriggerConfigErrors(t *testing.T) {
	for _, c := range []struct{ toml, want string }{
		{`[[trigger]]
name = "t"`, `[[trigger]] #1 (name "t"): location.path (a .wasm file) or location.oci`},
		{`[[trigger]]
location.path = "t.wasm"`, `name is required`},
		{`[[trigger]]
name = "t"
location.path = "t.wasm"
backoff.first = "1ms"`, `backoff.first = "1ms": must be at least 10ms`},
		{`[[trigger]]
name = "t"
location.path = "t.wasm"
backoff.first = 5`, `backoff.first`},
		{`[[trigger]]
name = "t"
location.path = "t.wasm"
backoff.first = "10s"
backoff.max = "1s"`, `backoff.max = "1s" is less than backoff.first = "10s"`},
		{`[[trigger]]
name = "t"
location.path = "t.wasm"
allowed_hosts = ["http://"]`, `allowed_hosts`},
		{`[[trigger]]
name = "t"
location.path = "t.wasm"
stdout = "yes"`, `stdout = "yes"`},
		{`[[webhook_endpoint]]
name = "t"
routes = ["/"]
function = "testing:fibo/fibo.fibo"
[[trigger]]
name = "t"
location.path = "t.wasm"`, `[[trigger]] #1 (name "t"): the name is also that of a webhook endpoint`},
	} {
		_, err := Load(write(t, c.toml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s:\n got %v\nwant an error containing %q", c.toml, err, c.want)
		}
	}
}
