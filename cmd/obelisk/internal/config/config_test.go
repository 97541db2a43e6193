package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/actors"
)

func write(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "obelisk.toml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaults(t *testing.T) {
	p := write(t, `
[[activity_wasm]]
name = "fibo"
location.path = "fibo.wasm"

[[workflow]]
name = "wf"
location.path = "/abs/wf.wasm"
`)
	s, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if s.ListeningAddr != "127.0.0.1:5005" || s.Engine.DataDir != "obelisk-data" {
		t.Fatalf("defaults: %+v", s)
	}
	if s.MaxRequestBytes != 4<<20 || s.Engine.MaxParamsBytes != 1<<20 {
		t.Fatalf("API limits: max_request_bytes %d, max_params_bytes %d", s.MaxRequestBytes, s.Engine.MaxParamsBytes)
	}
	a, w := s.Engine.Components[0], s.Engine.Components[1]
	want := actors.ComponentConfig{Name: "fibo", Type: actors.ActivityWasm, Path: filepath.Join(filepath.Dir(p), "fibo.wasm"),
		MaxRetries: 5, RetryExpBackoff: 100 * time.Millisecond, LockExpiry: time.Second, MaxConcurrency: DefaultMaxConcurrency}
	if a.Name != want.Name || a.Type != want.Type || a.Path != want.Path || a.MaxRetries != want.MaxRetries ||
		a.RetryExpBackoff != want.RetryExpBackoff || a.LockExpiry != want.LockExpiry || a.MaxConcurrency != want.MaxConcurrency {
		t.Fatalf("activity: got %+v, want %+v", a, want)
	}
	if w.Type != actors.Workflow || w.Path != "/abs/wf.wasm" || w.BlockingStrategy != actors.Await {
		t.Fatalf("workflow: %+v", w)
	}
}

func TestKeysAndEnvironment(t *testing.T) {
	p := write(t, `
data_dir = "d"
[api]
listening_addr = "127.0.0.1:1"
max_request_bytes = 65536
[[activity_wasm]]
name = "a"
location.path = "a.wasm"
max_retries = 0
retry_exp_backoff = "1s"
exec.lock_expiry = "250ms"
allowed_hosts = ["example.com", "127.0.0.1:*"]
[[workflow]]
name = "w"
location.path = "w.wasm"
blocking_strategy = "interrupt"
`)
	t.Setenv("OBELISK_DATA_DIR", "/env/data")
	t.Setenv("OBELISK_API_LISTENING_ADDR", "127.0.0.1:2")
	t.Setenv("OBELISK_API_MAX_PARAMS_BYTES", "1000")
	s, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if s.MaxRequestBytes != 65536 || s.Engine.MaxParamsBytes != 1000 {
		t.Fatalf("API limits: max_request_bytes %d, max_params_bytes %d", s.MaxRequestBytes, s.Engine.MaxParamsBytes)
	}
	if s.Engine.DataDir != "/env/data" || s.ListeningAddr != "127.0.0.1:2" {
		t.Fatalf("environment overrides ignored: %q %q", s.Engine.DataDir, s.ListeningAddr)
	}
	a := s.Engine.Components[0]
	if a.MaxRetries != 0 || a.RetryExpBackoff != time.Second || a.LockExpiry != 250*time.Millisecond || len(a.AllowedHosts) != 2 {
		t.Fatalf("activity keys: %+v", a)
	}
	if s.Engine.Components[1].BlockingStrategy != actors.Interrupt {
		t.Fatalf("blocking strategy: %+v", s.Engine.Components[1])
	}
}

func TestNoFile(t *testing.T) {
	s, err := Load("")
	if err != nil || len(s.Engine.Components) != 0 || s.ListeningAddr != DefaultListeningAddr {
		t.Fatalf("embedded defaults: %+v %v", s, err)
	}
}

func TestErrors(t *testing.T) {
	cases := []struct{ name, toml, want string }{
		{"malformed", "data_dir = ", "read config"},
		{"unknown key", "[[activity_wasm]]\nname = \"a\"\nlocation.path = \"a\"\nmax_retriez = 1\n", "max_retriez"},
		{"missing name", "[[activity_wasm]]\nlocation.path = \"a\"\n", "name is required"},
		{"missing path", "[[activity_wasm]]\nname = \"a\"\n", "location.path is required"},
		{"bad name", "[[activity_wasm]]\nname = \"a b\"\nlocation.path = \"a\"\n", "name may contain"},
		{"bad duration", "[[activity_wasm]]\nname = \"a\"\nlocation.path = \"a\"\nretry_exp_backoff = \"soon\"\n", "retry_exp_backoff"},
		{"bad strategy", "[[workflow]]\nname = \"w\"\nlocation.path = \"w\"\nblocking_strategy = \"spin\"\n", "blocking_strategy"},
		{"negative resident", "[workflows]\nmax_resident = -2\n", "max_resident"},
		{"zero request limit", "[api]\nmax_request_bytes = 0\n", "api.max_request_bytes must be a positive number of bytes, got 0"},
		{"negative params limit", "[api]\nmax_params_bytes = -1\n", "api.max_params_bytes must be a positive number of bytes, got -1"},
		{"request limit with a unit", "[api]\nmax_request_bytes = \"4MiB\"\n", "max_request_bytes"},
		{"stub without WIT", "[[activity_stub]]\nname = \"s\"\n", `[[activity_stub]] #1 (name "s"): location.path (a .wasm carrying the WIT) or wit (inline WIT) is required`},
		{"stub with both", "[[activity_stub]]\nname = \"s\"\nlocation.path = \"s.wasm\"\nwit = \"package a:b;\"\n", `[[activity_stub]] #1 (name "s"): give either location.path or wit, not both`},
		{"stub with blank WIT", "[[activity_stub]]\nname = \"s\"\nwit = \"\"\"\n  \n\"\"\"\n", `(name "s"): wit is empty`},
		{"stub without name", "[[activity_stub]]\nwit = \"package a:b;\"\n", "[[activity_stub]] #1 (name \"\"): name is required"},
		{"stub bad name", "[[activity_stub]]\nname = \"a/b\"\nwit = \"package a:b;\"\n", "name may contain"},
		{"stub unknown key", "[[activity_stub]]\nname = \"s\"\nwit = \"package a:b;\"\nmax_retries = 1\n", "max_retries"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(write(t, c.toml))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to mention %q", err, c.want)
			}
		})
	}
	if _, err := Load("/does/not/exist.toml"); err == nil {
		t.Fatal("a missing file loaded")
	}
}

func TestActivityStub(t *testing.T) {
	p := write(t, `
[[activity_stub]]
name = "approval"
wit = """
package testing:approval;

interface approval {
    approve: func(id: string) -> result<bool, string>;
}

world any {
    export approval;
}
"""

[[activity_stub]]
name = "from-file"
location.path = "stub.wasm"
`)
	s, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Engine.Components) != 2 {
		t.Fatalf("components: %+v", s.Engine.Components)
	}
	inline, file := s.Engine.Components[0], s.Engine.Components[1]
	if inline.Name != "approval" || inline.Type != actors.ActivityStub || inline.Path != "" ||
		!strings.Contains(inline.WIT, "approve: func(id: string) -> result<bool, string>;") {
		t.Fatalf("inline stub: %+v", inline)
	}
	if file.Name != "from-file" || file.Type != actors.ActivityStub || file.WIT != "" ||
		file.Path != filepath.Join(filepath.Dir(p), "stub.wasm") {
		t.Fatalf("stub from a file: %+v", file)
	}
}
