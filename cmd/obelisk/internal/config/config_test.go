package config

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
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
	if s.Engine.MaxLogsPerExecution != 1000 {
		t.Fatalf("logs.max_per_execution defaults to %d, want 1000", s.Engine.MaxLogsPerExecution)
	}
	a, w := s.Engine.Components[0], s.Engine.Components[1]
	want := actors.ComponentConfig{Name: "fibo", Type: actors.ActivityWasm, Path: filepath.Join(filepath.Dir(p), "fibo.wasm"),
		MaxRetries: 5, RetryExpBackoff: 100 * time.Millisecond, LockExpiry: time.Second, MaxConcurrency: DefaultMaxConcurrency}
	if a.Name != want.Name || a.Type != want.Type || a.Path != want.Path || a.MaxRetries != want.MaxRetries ||
		a.RetryExpBackoff != want.RetryExpBackoff || a.LockExpiry != want.LockExpiry || a.MaxConcurrency != want.MaxConcurrency {
		t.Fatalf("activity: got %+v, want %+v", a, want)
	}
	if w.Type != actors.Workflow || w.Path != "/abs/wf.wasm" || w.BlockingStrategy != actors.Await || w.MaxRetries != DefaultMaxRetries {
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
retry_jitter = 0.25
retry_budget = { max_failure_share = 0.6, min_attempts = 5, action = "skip" }
exec.lock_expiry = "250ms"
exec.cache_ttl = "10m"
allowed_hosts = ["example.com", "127.0.0.1:*"]
[[workflow]]
name = "w"
location.path = "w.wasm"
blocking_strategy = "interrupt"
max_retries = 2
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
	if b := a.RetryBudget; b == nil || b.MaxFailureShare != 0.6 || b.Window != time.Minute || b.MinAttempts != 5 || b.Action != "skip" {
		t.Fatalf("retry_budget: %+v", b)
	}
	if a.CacheTTL != 10*time.Minute || s.Engine.Components[1].CacheTTL != 0 {
		t.Fatalf("exec.cache_ttl: %v and %v", a.CacheTTL, s.Engine.Components[1].CacheTTL)
	}
	if a.RetryJitter != 0.25 || s.Engine.Components[1].RetryJitter != 0 {
		t.Fatalf("retry_jitter: %v and %v", a.RetryJitter, s.Engine.Components[1].RetryJitter)
	}
	if a.MaxRetries != 0 || a.RetryExpBackoff != time.Second || a.LockExpiry != 250*time.Millisecond || len(a.AllowedHosts) != 2 {
		t.Fatalf("activity keys: %+v", a)
	}
	if w := s.Engine.Components[1]; w.BlockingStrategy != actors.Interrupt || w.MaxRetries != 2 {
		t.Fatalf("blocking strategy: %+v", s.Engine.Components[1])
	}
}

func TestLogsMaxPerExecution(t *testing.T) {
	for toml, want := range map[string]int{"[logs]\nmax_per_execution = 20\n": 20, "[logs]\nmax_per_execution = 0\n": -1} {
		s, err := Load(write(t, toml))
		if err != nil {
			t.Fatal(err)
		}
		if s.Engine.MaxLogsPerExecution != want {
			t.Errorf("%q: MaxLogsPerExecution = %d, want %d", toml, s.Engine.MaxLogsPerExecution, want)
		}
	}
}

// workflows.snapshot_every: the default, a value, and 0 for never (negative for the engine).
func TestSnapshotEvery(t *testing.T) {
	for toml, want := range map[string]int{"": actors.DefaultSnapshotEvery, "[workflows]\nsnapshot_every = 5\n": 5, "[workflows]\nsnapshot_every = 0\n": -1} {
		s, err := Load(write(t, toml))
		if err != nil {
			t.Fatal(err)
		}
		if s.Engine.SnapshotEvery != want {
			t.Errorf("%q: SnapshotEvery %d, want %d", toml, s.Engine.SnapshotEvery, want)
		}
	}
}

func TestOutputCapture(t *testing.T) {
	s, err := Load(write(t, `
[[activity_wasm]]
name = "a"
location.path = "a.wasm"
stdout = "log"
[[workflow]]
name = "w"
location.path = "w.wasm"
stdout = "none"
stderr = "log"
[[webhook_endpoint]]
name = "h"
location.path = "h.wasm"
routes = [""]
stdout = "log"
stderr = "log"
[[activity_wasm]]
name = "d"
location.path = "d.wasm"
`))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][2]bool{}
	for _, c := range s.Engine.Components {
		got[c.Name] = [2]bool{c.CaptureStdout, c.CaptureStderr}
	}
	want := map[string][2]bool{"a": {true, false}, "w": {false, true}, "h": {true, true}, "d": {false, false}}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: capture stdout, stderr = %v, want %v", name, got[name], w)
		}
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
		{"missing path", "[[activity_wasm]]\nname = \"a\"\n", "location.path (a .wasm file) or location.oci (an OCI reference, REGISTRY/REPOSITORY:TAG) is required"},
		{"path and oci", "[[workflow]]\nname = \"w\"\nlocation.path = \"w\"\nlocation.oci = \"ghcr.io/w:v1\"\n", `[[workflow]] #1 (name "w"): give location.path or location.oci, not both`},
		{"bad oci", "[[activity_wasm]]\nname = \"a\"\nlocation.oci = \"fibo:v1\"\n", `[[activity_wasm]] #1 (name "a"): location.oci: OCI reference "fibo:v1": no registry`},
		{"oci without tag", "[[activity_wasm]]\nname = \"a\"\nlocation.oci = \"ghcr.io/fibo\"\n", `give a tag (:v1) or a digest`},
		{"stub with oci and WIT", "[[activity_stub]]\nname = \"s\"\nlocation.oci = \"ghcr.io/s:v1\"\nwit = \"package a:b;\"\n", `[[activity_stub]] #1 (name "s"): give either a location (location.path or location.oci) or wit, not both`},
		{"kv_config from oci", "[[kv_config]]\nbucket = \"b\"\nlocation.oci = \"ghcr.io/s:v1\"\n", `kv_config[0] (bucket "b"): location.oci is for components`},
		{"bad name", "[[activity_wasm]]\nname = \"a b\"\nlocation.path = \"a\"\n", "name may contain"},
		{"bad duration", "[[activity_wasm]]\nname = \"a\"\nlocation.path = \"a\"\nretry_exp_backoff = \"soon\"\n", "retry_exp_backoff"},
		{"bad strategy", "[[workflow]]\nname = \"w\"\nlocation.path = \"w\"\nblocking_strategy = \"spin\"\n", "blocking_strategy"},
		{"negative workflow retries", "[[workflow]]\nname = \"w\"\nlocation.path = \"w\"\nmax_retries = -1\n", `[[workflow]] #1 (name "w"): max_retries = -1: must not be negative`},
		{"negative resident", "[workflows]\nmax_resident = -2\n", "max_resident"},
		{"bad stdout", "[[activity_wasm]]\nname = \"a\"\nlocation.path = \"a\"\nstdout = \"file\"\n", `[[activity_wasm]] #1 (name "a"): stdout = "file": want "none" or "log"`},
		{"bad workflow stderr", "[[workflow]]\nname = \"w\"\nlocation.path = \"w\"\nstderr = \"LOG\"\n", `[[workflow]] #1 (name "w"): stderr = "LOG": want "none" or "log"`},
		{"bad webhook stderr", "[[webhook_endpoint]]\nname = \"h\"\nlocation.path = \"h\"\nroutes = [\"\"]\nstderr = \"x\"\n", `[[webhook_endpoint]] #1 (name "h"): stderr = "x": want "none" or "log"`},
		{"negative log bound", "[logs]\nmax_per_execution = -1\n", "logs.max_per_execution = -1: must not be negative"},
		{"zero request limit", "[api]\nmax_request_bytes = 0\n", "api.max_request_bytes must be a positive number of bytes, got 0"},
		{"negative params limit", "[api]\nmax_params_bytes = -1\n", "api.max_params_bytes = -1: must not be negative"},
		{"request limit with a unit", "[api]\nmax_request_bytes = \"4MiB\"\n", "max_request_bytes"},
		{"stub without WIT", "[[activity_stub]]\nname = \"s\"\n", `[[activity_stub]] #1 (name "s"): location.path (a .wasm carrying the WIT), location.oci (an OCI reference to one) or wit (inline WIT) is required`},
		{"stub with both", "[[activity_stub]]\nname = \"s\"\nlocation.path = \"s.wasm\"\nwit = \"package a:b;\"\n", `[[activity_stub]] #1 (name "s"): give either a location (location.path or location.oci) or wit, not both`},
		{"stub with blank WIT", "[[activity_stub]]\nname = \"s\"\nwit = \"\"\"\n  \n\"\"\"\n", `(name "s"): wit is empty`},
		{"stub without name", "[[activity_stub]]\nwit = \"package a:b;\"\n", "[[activity_stub]] #1 (name \"\"): name is required"},
		{"keepalive on a workflow", "[[workflow]]\nname = \"w\"\nlocation.path = \"w\"\nexec.keepalive = true\n", "invalid keys: keepalive"},
		{"keepalive not a boolean", "[[activity_wasm]]\nname = \"a\"\nlocation.path = \"a\"\nexec.keepalive = \"maybe\"\n", "keepalive"},
		{"stub bad name", "[[activity_stub]]\nname = \"a/b\"\nwit = \"package a:b;\"\n", "name may contain"},
		{"stub unknown key", "[[activity_stub]]\nname = \"s\"\nwit = \"package a:b;\"\nmemory_limit = \"1MiB\"\n", "memory_limit"},
		{"bad server label", "[server]\nlabels = [\"gpu\", \"eu west\"]\n", `server.labels[1] = "eu west": a label is a name: name may contain`},
		{"server label twice", "[server]\nlabels = [\"gpu\", \"gpu\"]\n", `server.labels: label "gpu" is given twice`},
		{"empty required label", "[[activity_wasm]]\nname = \"a\"\nlocation.path = \"a\"\nrequired_labels = [\"\"]\n", `[[activity_wasm]] #1 (name "a"): required_labels[0] = "": a label is a name: name is required`},
		{"stub bad required label", "[[activity_stub]]\nname = \"s\"\nwit = \"package a:b;\"\nrequired_labels = [\"a/b\"]\n", `[[activity_stub]] #1 (name "s"): required_labels[0] = "a/b"`},
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

// Values a key's type would take but that are not what was meant: each is refused with a
// message naming the section, the key and the value as written.
func TestValueErrors(t *testing.T) {
	activity := "[[activity_wasm]]\nname = \"a\"\nlocation.path = \"a.wasm\"\n"
	workflow := "[[workflow]]\nname = \"w\"\nlocation.path = \"w.wasm\"\n"
	endpoint := "[[webhook_endpoint]]\nname = \"h\"\nlocation.path = \"h.wasm\"\nroutes = [\"/\"]\n"
	a := `[[activity_wasm]] #1 (name "a"): `
	cases := []struct{ name, toml, want string }{
		// Durations: a bare number would be nanoseconds.
		{"bare lock_expiry", activity + "exec.lock_expiry = 5\n", a + `exec.lock_expiry = 5: a duration needs a unit, e.g. "5s"`},
		{"bare float backoff", activity + "retry_exp_backoff = 0.5\n", a + `retry_exp_backoff = 0.5: a duration needs a unit, e.g. "0.5s"`},
		{"bare number in a string", activity + "retry_exp_backoff = \"5\"\n", a + `retry_exp_backoff = "5": a duration needs a unit, e.g. "5s"`},
		{"not a duration", activity + "retry_exp_backoff = \"soon\"\n", a + `retry_exp_backoff = "soon": not a duration: write a number with a unit ("ms", "s", "m", "h"), e.g. "250ms"`},
		{"budget without a share", activity + "retry_budget.window = \"1m\"\n", a + `retry_budget: max_failure_share is required (e.g. 0.5: retries are held while more than half of the recent attempts failed)`},
		{"budget share over 1", activity + "retry_budget.max_failure_share = 2.0\n", a + `retry_budget.max_failure_share = 2: must be a fraction above 0, at most 1`},
		{"budget action", activity + "retry_budget.max_failure_share = 0.5\nretry_budget.action = \"drop\"\n", a + `retry_budget.action = "drop": want "wait" or "skip"`},
		{"budget window", activity + "retry_budget.max_failure_share = 0.5\nretry_budget.window = \"10ms\"\n", a + `retry_budget.window = "10ms": must be at least 1s`},
		{"cache_ttl zero", activity + "exec.cache_ttl = \"0s\"\n", a + `exec.cache_ttl = "0s": must be positive (leave it out for no cache)`},
		{"jitter over 1", activity + "retry_jitter = 1.5\n", a + `retry_jitter = 1.5: must be a fraction from 0 to 1 (0.2 scales each retry's delay by 0.8 to 1.2)`},
		{"negative jitter", workflow + "retry_jitter = -0.1\n", `[[workflow]] #1 (name "w"): retry_jitter = -0.1: must be a fraction from 0 to 1 (0.2 scales each retry's delay by 0.8 to 1.2)`},
		{"bare workflow lock_expiry", workflow + "exec.lock_expiry = 30\n", `[[workflow]] #1 (name "w"): exec.lock_expiry = 30: a duration needs a unit, e.g. "30s"`},
		{"bare request_timeout", endpoint + "request_timeout = 30\n", `[[webhook_endpoint]] #1 (name "h"): request_timeout = 30: a duration needs a unit, e.g. "30s"`},
		// Lower bounds of durations.
		{"lock_expiry too short", activity + "exec.lock_expiry = \"10ms\"\n", a + `exec.lock_expiry = "10ms": must be at least 100ms`},
		{"zero lock_expiry", workflow + "exec.lock_expiry = \"0s\"\n", `[[workflow]] #1 (name "w"): exec.lock_expiry = "0s": must be at least 100ms`},
		{"backoff too short", activity + "retry_exp_backoff = \"100us\"\n", a + `retry_exp_backoff = "100µs": must be at least 1ms`},
		{"negative backoff", workflow + "retry_exp_backoff = \"-1s\"\n", `[[workflow]] #1 (name "w"): retry_exp_backoff = "-1s": must be at least 1ms`},
		{"request_timeout too short", endpoint + "request_timeout = \"1ms\"\n", `[[webhook_endpoint]] #1 (name "h"): request_timeout = "1ms": must be at least 100ms`},
		{"max_duration too short", activity + "exec.keepalive = true\nexec.max_duration = \"1ms\"\n", a + `exec.max_duration = "1ms": must be at least 100ms`},
		{"bare max_duration", activity + "exec.max_duration = 10\n", a + `exec.max_duration = 10: a duration needs a unit, e.g. "10s"`},
		// Keys that could never act.
		{"max_duration without keepalive", activity + "exec.lock_expiry = \"2s\"\nexec.max_duration = \"5s\"\n",
			a + `exec.max_duration = "5s" is not shorter than exec.lock_expiry = "2s": without exec.keepalive = true the lock expiry ends an attempt first`},
		// Counts.
		{"negative max_retries", activity + "max_retries = -1\n", a + "max_retries = -1: must not be negative"},
		{"fractional max_retries", activity + "max_retries = 2.5\n", a + "max_retries = 2.5: must be a whole number"},
		{"huge max_retries", activity + "max_retries = 5000000000\n", a + "max_retries = 5000000000: must be at most 4294967295"},
		{"negative max_concurrency", activity + "exec.max_concurrency = -5\n", a + "exec.max_concurrency = -5: must not be negative"},
		{"zero max_concurrency", activity + "exec.max_concurrency = 0\n", a + "exec.max_concurrency = 0: must be at least 1 (leave it out for the default, 100)"},
		{"zero workflow max_concurrency", workflow + "exec.max_concurrency = 0\n", `[[workflow]] #1 (name "w"): exec.max_concurrency = 0: must be at least 1 (leave it out for the default, 64)`},
		{"negative max_inflight_requests", endpoint + "max_inflight_requests = -1\n", `[[webhook_endpoint]] #1 (name "h"): max_inflight_requests = -1: must not be negative`},
		{"negative max_resident", "[workflows]\nmax_resident = -2\n", "workflows.max_resident = -2: must not be negative"},
		{"negative snapshot_every", "[workflows]\nsnapshot_every = -1\n", "workflows.snapshot_every = -1: must not be negative"},
		{"fractional snapshot_every", "[workflows]\nsnapshot_every = 1.5\n", "workflows.snapshot_every = 1.5: must be a whole number"},
		// Every objection is reported, not only the first.
		{"several", workflow + "exec.lock_expiry = 5\n" + activity + "max_retries = -1\n",
			a + `max_retries = -1: must not be negative; [[workflow]] #1 (name "w"): exec.lock_expiry = 5: a duration needs a unit, e.g. "5s"`},
		{"with an unknown key", activity + "max_retries = -1\nbogus = 3\n", a + "max_retries = -1: must not be negative; 'activity_wasm[0]' has invalid keys: bogus"},
		// allowed_hosts and denied_hosts, parsed by the parser the engine uses.
		{"unclosed bracket", activity + "allowed_hosts = [\"http://[::1\", \"\"]\n", a + `allowed_hosts entry "http://[::1": unclosed '['`},
		{"empty host", activity + "allowed_hosts = [\"example.com\", \"\"]\n", a + `allowed_hosts entry "": empty host`},
		{"bad CIDR", activity + "denied_hosts = [\"169.254.169.254\", \"10.0.0.0/33\"]\n", a + `denied_hosts entry "10.0.0.0/33": bad CIDR "10.0.0.0/33": netip.ParsePrefix("10.0.0.0/33"): prefix length out of range`},
		{"CIDR with host bits", activity + "denied_hosts = [\"10.1.0.0/8\"]\n", a + `denied_hosts entry "10.1.0.0/8": bad CIDR "10.1.0.0/8": bits are set after the first 8: write "10.0.0.0/8"`},
		{"bad method", activity + "allowed_hosts = [\"get example.com\"]\n", a + `allowed_hosts entry "get example.com": method "get": want upper-case names separated by ',' and a space before the host (e.g. "GET,POST api.example.com")`},
		{"webhook bad method", endpoint + "denied_hosts = [\"POST;PUT 10.0.0.0/8\"]\n", `[[webhook_endpoint]] #1 (name "h"): denied_hosts entry "POST;PUT 10.0.0.0/8": method "POST;PUT": want upper-case names separated by ',' and a space before the host (e.g. "GET,POST api.example.com")`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := write(t, c.toml)
			_, err := Load(p)
			if want := "config " + p + ": " + c.want; err == nil || err.Error() != want {
				t.Fatalf("err = %v\nwant    %s", err, want)
			}
		})
	}
}

// Counts and durations from the environment go through the same checks as the file's.
func TestValueErrorsFromEnvironment(t *testing.T) {
	t.Setenv("OBELISK_WORKFLOWS_MAX_RESIDENT", "-3")
	_, err := Load("")
	if want := "config (defaults): workflows.max_resident = \"-3\": must not be negative"; err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %s", err, want)
	}
}

func TestValidValues(t *testing.T) {
	p := write(t, `
[[activity_wasm]]
name = "a"
location.path = "a.wasm"
max_retries = 4294967295
retry_exp_backoff = "1ms"
exec.lock_expiry = "100ms"
exec.max_concurrency = 1
allowed_hosts = ["http://[::1]:8080", "*.example.com", "https://*:*", "GET,HEAD 10.0.0.0/8:*"]
denied_hosts = ["10.9.0.0/16", "169.254.169.254", "fd00::/8", "POST *.example.com"]
[[activity_wasm]]
name = "kept"
location.path = "a.wasm"
exec.keepalive = true
exec.max_duration = "1h"
[[activity_wasm]]
name = "bounded"
location.path = "a.wasm"
exec.lock_expiry = "10s"
exec.max_duration = "100ms"
`)
	s, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	a := s.Engine.Components[0]
	if a.MaxRetries != 4294967295 || a.RetryExpBackoff != time.Millisecond || a.LockExpiry != 100*time.Millisecond || a.MaxConcurrency != 1 ||
		len(a.AllowedHosts) != 4 || fmt.Sprint(a.DeniedHosts) != "[10.9.0.0/16 169.254.169.254 fd00::/8 POST *.example.com]" {
		t.Fatalf("activity: %+v", a)
	}
	if a.KeepAlive || a.MaxDuration != 0 {
		t.Fatalf("keepalive and max_duration are off by default: %+v", a)
	}
	if k := s.Engine.Components[1]; !k.KeepAlive || k.MaxDuration != time.Hour || k.LockExpiry != DefaultLockExpiry {
		t.Fatalf("kept-alive activity: %+v", k)
	}
	if b := s.Engine.Components[2]; b.KeepAlive || b.MaxDuration != 100*time.Millisecond {
		t.Fatalf("activity bounded without keepalive: %+v", b)
	}
}

// The example deployment, which documents the keys, passes the checks it documents.
func TestExampleConfigLoads(t *testing.T) {
	s, err := Load(filepath.Join("..", "..", "..", "..", "examples", "obelisk.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Engine.Components) != 9 {
		t.Fatalf("components: %d, want the 9 examples", len(s.Engine.Components))
	}
}

func TestMemoryKeys(t *testing.T) {
	p := write(t, `
[wasm]
memory_budget = "3GiB"
[[activity_wasm]]
name = "a"
location.path = "a.wasm"
memory_limit = "128MiB"
[[workflow]]
name = "w"
location.path = "w.wasm"
memory_limit = "64 MiB"
[[activity_wasm]]
name = "d"
location.path = "d.wasm"
`)
	s, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Engine.MemoryBudget; got != 3<<30 {
		t.Errorf("memory_budget = %d", got)
	}
	want := map[string]uint64{"a": 128 << 20, "w": 64 << 20, "d": 0} // 0: the engine's default
	for _, c := range s.Engine.Components {
		if c.MemoryLimit != want[c.Name] {
			t.Errorf("%s: memory_limit = %d, want %d", c.Name, c.MemoryLimit, want[c.Name])
		}
	}
	t.Setenv("OBELISK_WASM_MEMORY_BUDGET", "300MiB")
	if s, err = Load(p); err != nil || s.Engine.MemoryBudget != 300<<20 {
		t.Errorf("OBELISK_WASM_MEMORY_BUDGET: %v, %v", s, err)
	}
}

func TestMemoryKeyErrors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"[wasm]\nmemory_budget = \"2048\"\n", `wasm.memory_budget: "2048": give a unit`},
		{"[wasm]\nmemory_budget = \"-1GiB\"\n", `wasm.memory_budget: "-1GiB": want a positive whole number`},
		{"[[activity_wasm]]\nname = \"a\"\nlocation.path = \"a.wasm\"\nmemory_limit = \"100KiB\"\n", `[[activity_wasm]] #1 (name "a"): memory_limit "100KiB" is not a multiple of 64KiB`},
		{"[[workflow]]\nname = \"w\"\nlocation.path = \"w.wasm\"\nmemory_limit = \"8GiB\"\n", `[[workflow]] #1 (name "w"): memory_limit "8GiB" is over 4GiB`},
		{"[[workflow]]\nname = \"w\"\nlocation.path = \"w.wasm\"\nmemory_limit = \"1.5GiB\"\n", `memory_limit "1.5GiB": want a positive whole number`},
	} {
		_, err := Load(write(t, tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.text, err, tc.want)
		}
	}
}

func TestStoreKeys(t *testing.T) {
	s, err := Load(write(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	if s.Engine.StoreCacheSize != 0 || s.Engine.StoreMemTableSize != 0 { // 0: the store's defaults
		t.Errorf("defaults: cache_size %d, memtable_size %d", s.Engine.StoreCacheSize, s.Engine.StoreMemTableSize)
	}
	p := write(t, "[store]\ncache_size = \"48MiB\"\nmemtable_size = \"8MiB\"\n")
	if s, err = Load(p); err != nil {
		t.Fatal(err)
	}
	if s.Engine.StoreCacheSize != 48<<20 || s.Engine.StoreMemTableSize != 8<<20 {
		t.Errorf("cache_size %d, memtable_size %d", s.Engine.StoreCacheSize, s.Engine.StoreMemTableSize)
	}
	t.Setenv("OBELISK_STORE_CACHE_SIZE", "1GiB")
	if s, err = Load(p); err != nil || s.Engine.StoreCacheSize != 1<<30 {
		t.Errorf("OBELISK_STORE_CACHE_SIZE: %v, %v", s, err)
	}
}

func TestStoreKeyErrors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"[store]\ncache_size = \"64\"\n", `store.cache_size: "64": give a unit`},
		{"[store]\ncache_size = 64\n", `store.cache_size`},
		{"[store]\ncache_size = \"512KiB\"\n", `store.cache_size = "512KiB": must be at least 1MiB`},
		{"[store]\nmemtable_size = \"0MiB\"\n", `store.memtable_size: "0MiB": want a positive whole number`},
		{"[store]\nmemtable_size = \"4GiB\"\n", `store.memtable_size = "4GiB": must be less than 4GiB`},
		{"[store]\nmemtable = \"8MiB\"\n", `memtable`},
	} {
		_, err := Load(write(t, tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.text, err, tc.want)
		}
	}
}

func TestRetentionKeys(t *testing.T) {
	s, err := Load(write(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	if s.Engine.RetentionFinishedAfter != 0 {
		t.Errorf("default retention.finished_after = %v, want 0 (off)", s.Engine.RetentionFinishedAfter)
	}
	s, err = Load(write(t, `
[retention]
finished_after = "3s"
[[workflow]]
name = "w"
location.path = "w.wasm"
retention.finished_after = "720h"
[[activity_wasm]]
name = "a"
location.path = "a.wasm"
`))
	if err != nil {
		t.Fatal(err)
	}
	if s.Engine.RetentionFinishedAfter != 3*time.Second {
		t.Errorf("retention.finished_after = %v, want 3s", s.Engine.RetentionFinishedAfter)
	}
	want := map[string]time.Duration{"w": 720 * time.Hour, "a": 0} // 0: the [retention] one
	for _, c := range s.Engine.Components {
		if c.RetentionFinishedAfter != want[c.Name] {
			t.Errorf("%s: retention.finished_after = %v, want %v", c.Name, c.RetentionFinishedAfter, want[c.Name])
		}
	}
	for _, tc := range []struct{ text, want string }{
		{"[retention]\nfinished_after = 3\n", `retention.finished_after = 3: a duration needs a unit, e.g. "3s"`},
		{"[retention]\nfinished_after = \"0s\"\n", `retention.finished_after = "0s": must be positive`},
		{"[retention]\nfinishd_after = \"3s\"\n", `invalid keys: finishd_after`},
		{"[[workflow]]\nname = \"w\"\nlocation.path = \"w.wasm\"\nretention.finished_after = \"-1h\"\n", `[[workflow]] #1 (name "w"): retention.finished_after = "-1h0m0s": must be positive`},
	} {
		_, err := Load(write(t, tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.text, err, tc.want)
		}
	}
}

func TestKVConfigKeys(t *testing.T) {
	path := write(t, `
[[kv_config]]
bucket = "settings"
location.path = "settings.toml"
`)
	s, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(filepath.Dir(path), "settings.toml")
	if len(s.Engine.KVConfig) != 1 || s.Engine.KVConfig[0].Bucket != "settings" || s.Engine.KVConfig[0].Path != want {
		t.Errorf("kv_config = %+v, want bucket settings at %s", s.Engine.KVConfig, want)
	}
	for _, tc := range []struct{ text, want string }{
		{"[[kv_config]]\nlocation.path = \"s.toml\"\n", `kv_config[0]: bucket is required`},
		{"[[kv_config]]\nbucket = \"s\"\n", `kv_config[0] (bucket "s"): location.path (a TOML file) is required`},
		{"[[kv_config]]\nbucket = \"s\"\npath = \"s.toml\"\n", `invalid keys: path`},
	} {
		_, err := Load(write(t, tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.text, err, tc.want)
		}
	}
}

func TestGoMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		text string
		want int64
	}{
		{"", DefaultGoMemoryLimit},
		{"[server]\ngo_memory_limit = \"512MiB\"\n", 512 << 20},
		{"[server]\ngo_memory_limit = \"off\"\n", 0},
	} {
		s, err := Load(write(t, tc.text))
		if err != nil {
			t.Fatalf("%q: %v", tc.text, err)
		}
		if s.GoMemoryLimit != tc.want {
			t.Errorf("%q: GoMemoryLimit %d, want %d", tc.text, s.GoMemoryLimit, tc.want)
		}
	}
	t.Setenv("OBELISK_SERVER_GO_MEMORY_LIMIT", "1GiB")
	if s, err := Load(write(t, "")); err != nil || s.GoMemoryLimit != 1<<30 {
		t.Errorf("OBELISK_SERVER_GO_MEMORY_LIMIT: %v, %v", s, err)
	}
}

func TestGoMemoryLimitErrors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"[server]\ngo_memory_limit = \"256\"\n", `server.go_memory_limit: "256": give a unit`},
		{"[server]\ngo_memory_limit = 256\n", `server.go_memory_limit`},
		{"[server]\ngo_memory_limit = \"16MiB\"\n", `server.go_memory_limit = "16MiB": must be at least 32MiB`},
		{"[server]\ngo_memory_limit = \"none\"\n", `or "off"`},
		{"[server]\nmemory_limit = \"128MiB\"\n", `memory_limit`},
	} {
		_, err := Load(write(t, tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.text, err, tc.want)
		}
	}
}

// TestLabels: server.labels are the engine's; required_labels go to activities and stubs,
// and a stub gets a retry policy (for the executions external workers do).
func TestLabels(t *testing.T) {
	s, err := Load(write(t, `
[server]
labels = ["gpu", "eu"]

[[activity_wasm]]
name = "render"
location.path = "render.wasm"
required_labels = ["gpu"]

[[activity_stub]]
name = "approval"
wit = "package a:b; interface i { f: func() -> result; } world w { export i; }"
required_labels = ["human"]
max_retries = 2
retry_exp_backoff = "1s"

[[activity_stub]]
name = "plain"
wit = "package a:c; interface i { f: func() -> result; } world w { export i; }"
`))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.Engine.Labels, []string{"gpu", "eu"}) {
		t.Errorf("server labels: %q", s.Engine.Labels)
	}
	byName := map[string]actors.ComponentConfig{}
	for _, c := range s.Engine.Components {
		byName[c.Name] = c
	}
	if r := byName["render"]; !slices.Equal(r.RequiredLabels, []string{"gpu"}) {
		t.Errorf("activity: %+v", r)
	}
	if a := byName["approval"]; !slices.Equal(a.RequiredLabels, []string{"human"}) || a.MaxRetries != 2 || a.RetryExpBackoff != time.Second {
		t.Errorf("stub: %+v", a)
	}
	if p := byName["plain"]; p.RequiredLabels != nil || p.MaxRetries != DefaultMaxRetries || p.RetryExpBackoff != DefaultRetryExpBackoff {
		t.Errorf("stub with the defaults: %+v", p)
	}
}

func TestTracingKeys(t *testing.T) {
	s, err := Load(write(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	if s.Tracing != nil {
		t.Errorf("tracing is on by default: %+v", s.Tracing)
	}
	s, err = Load(write(t, "[tracing]\nenabled = true\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Tracing == nil || s.Tracing.Endpoint != DefaultTracingEndpoint || s.Tracing.ServiceName != DefaultTracingServiceName || s.Tracing.SampleRatio != 1 {
		t.Errorf("enabled with defaults: %+v", s.Tracing)
	}
	p := write(t, "[tracing]\nenabled = true\nendpoint = \"https://otel.example:4318/v1/traces\"\nservice_name = \"wf\"\nsample_ratio = 0.25\n")
	if s, err = Load(p); err != nil {
		t.Fatal(err)
	}
	if s.Tracing.Endpoint != "https://otel.example:4318/v1/traces" || s.Tracing.ServiceName != "wf" || s.Tracing.SampleRatio != 0.25 {
		t.Errorf("keys: %+v", s.Tracing)
	}
	t.Setenv("OBELISK_TRACING_ENABLED", "false")
	if s, err = Load(p); err != nil || s.Tracing != nil {
		t.Errorf("OBELISK_TRACING_ENABLED=false: %+v, %v", s.Tracing, err)
	}
}

func TestTracingKeyErrors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"[tracing]\nenabled = true\nendpoint = \"localhost:4318\"\n", `tracing.endpoint "localhost:4318" must be an http or https URL`},
		{"[tracing]\nenabled = true\nsample_ratio = 1.5\n", `tracing.sample_ratio must be between 0 and 1, got 1.5`},
		{"[tracing]\nenabled = true\nservice_name = \" \"\n", `tracing.service_name must not be empty`},
		{"[tracing]\nenable = true\n", `enable`},
	} {
		_, err := Load(write(t, tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.text, err, tc.want)
		}
	}
}
