// Package harness starts the real obelisk binary (`obelisk server run`) as a process with
// the example components, for end-to-end tests and benchmarks: it drives the server through
// the API and the CLI, and can SIGKILL and restart it on the same data.
package harness

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/obelisk-go/obelisk/actors"
	"github.com/obelisk-go/obelisk/auth"
	"github.com/obelisk-go/obelisk/internal/testcert"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
	"github.com/obelisk-go/obelisk/proto/obelisk/v1/obeliskv1connect"
	"github.com/obelisk-go/obelisk/verify"
)

// Paths shared by every test of the package: the binary, the built components, and a
// compilation cache so that only the first server compiles the modules.
var (
	obeliskBin    string
	componentsDir string
	wasmCacheDir  string

	// verifyMods are the modules of verifyStore's offline engines, replaced once they
	// hold more than maxVerifyModules.
	verifyMods = &shared[*actors.Modules]{
		open: func() (*actors.Modules, error) {
			return actors.NewModules(context.Background(), actors.Config{CacheDir: wasmCacheDir, Logger: verifyLogger()})
		},
		close: func(m *actors.Modules) { _ = m.Close(context.Background()) },
		size:  (*actors.Modules).Len,
		max:   maxVerifyModules,
	}
)

// maxVerifyModules bounds the modules verifyStore keeps compiled between verifications:
// a few tests' components (one test deploys up to eight or so), reloaded from the
// compilation cache after a replacement.
const maxVerifyModules = 16

// Main is TestMain for packages that use the harness: it finds (OBELISK_BIN,
// OBELISK_COMPONENTS, as `make test` sets them) or builds the binary and the components.
func Main(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "obelisk-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	wasmCacheDir = filepath.Join(tmp, "wasm-cache")
	obeliskBin, componentsDir = os.Getenv("OBELISK_BIN"), os.Getenv("OBELISK_COMPONENTS")
	if obeliskBin == "" || componentsDir == "" {
		// Run by plain `go test`: build what `make build` would.
		if err := buildAll(tmp); err != nil {
			fmt.Fprintln(os.Stderr, "build:", err)
			return 1
		}
	}
	code := m.Run()
	verifyMods.closeAll()
	return code
}

var componentNames = []string{"fibo", "fibo-workflow", "fibo-workflow-v2", "sleep", "sleep-workflow", "http", "http-workflow", "flaky", "tree", "fibo-webhook", "line-trigger"}

func buildAll(tmp string) error {
	root, err := filepath.Abs("../..")
	if err != nil {
		return err
	}
	obeliskBin = filepath.Join(tmp, "obelisk")
	componentsDir = filepath.Join(tmp, "components")
	if out, err := goCmd(root, nil, "build", "-o", obeliskBin, "./cmd/obelisk"); err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	for _, c := range componentNames {
		raw := filepath.Join(tmp, c+".raw.wasm")
		if out, err := goCmd(root, []string{"GOOS=wasip1", "GOARCH=wasm"}, "build", "-buildmode=c-shared", "-o", raw, "./test/components/"+c); err != nil {
			return fmt.Errorf("%s: %w\n%s", c, err, out)
		}
		cmd := exec.Command(obeliskBin, "component", "embed-wit", filepath.Join(root, "test/components", c, "wit"), raw, "-o", filepath.Join(componentsDir, c+".wasm"))
		os.MkdirAll(componentsDir, 0o755)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("embed %s: %w\n%s", c, err, out)
		}
	}
	return nil
}

func goCmd(dir string, env []string, args ...string) ([]byte, error) {
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	return cmd.CombinedOutput()
}

// Options tweak the deployment of a test server.
type Options struct {
	// BlockingStrategy of the workflows: await (default) or interrupt.
	BlockingStrategy string
	// ExtraTOML adds keys to a component's section, by component name (activities and
	// workflows). exec.lock_expiry
	// for "sleep" and allowed_hosts for "http" replace the defaults ("1s",
	// ["127.0.0.1:*"]).
	ExtraTOML map[string]string
	// Workflows adds a [workflows] section body.
	Workflows string
	// ExtraWorkflows deploys more workflow components: name -> the folder of a Go
	// package (relative to the repository) with its WIT in <folder>/wit. They are built
	// on first use.
	ExtraWorkflows map[string]string
	// Deployment is appended to obelisk.toml as it is (more components, e.g. stubs).
	Deployment string
	// WebUI serves the web UI on a free address (Server.WebURL); without it the web UI
	// is off.
	WebUI bool
	// Prepare, if set, runs before the first start with the path of the (empty) event
	// store, e.g. to write histories for the server to recover.
	Prepare func(storeDir string)
	// CacheDir is the compilation cache; by default one shared by the test process's
	// servers, so that each compiles the modules once.
	CacheDir string
	// Locations replace the location.path of example components, by name: the TOML
	// line(s) to write instead, e.g. `location.oci = "127.0.0.1:5000/fibo:v1"`.
	Locations map[string]string
	// ServerArgs are more arguments of `obelisk server run`, e.g. --locked.
	ServerArgs []string
	// APIKeys adds keys to the [api] section, e.g. auth_tokens_file.
	APIKeys string
	// APIToken is the bearer token Server.Exec and Server.Comp send (and the readiness
	// check at start): with api.auth_tokens_file, a token of it.
	APIToken string
	// TLS serves the API, the web UI and the webhook server "external" over TLS with
	// these files (testcert.Write); the server's URLs are https:// and its clients
	// trust the CA.
	TLS *testcert.Files
}

// Server is a running `obelisk server run` process.
type Server struct {
	t      testing.TB
	dir    string
	config string
	addr   string
	URL    string
	WebURL string // the web UI, with Options.WebUI
	// WebhookURL is the http_server "external" of the webhook endpoints (fibo_webhook,
	// and those of Options.Deployment).
	WebhookURL  string
	webhookAddr string
	webAddr     string
	cmd         *exec.Cmd
	env         []string // added to the server process's environment
	logPath     string
	args        []string // Options.ServerArgs
	Exec        obeliskv1connect.ExecutionServiceClient
	Comp        obeliskv1connect.ComponentServiceClient
	// HTTP is the HTTP client of Exec and Comp: with Options.APIToken, trusting
	// Options.TLS's CA.
	HTTP *http.Client
}

// Start writes a deployment of every example component and starts the server.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	dir := t.TempDir()
	addrs := FreeAddrs(t, 3) // the API, the webhook server, the web UI
	s := &Server{t: t, dir: dir, addr: addrs[0]}
	scheme := "http://"
	var transport http.RoundTripper = http.DefaultTransport
	if o.TLS != nil {
		scheme = "https://"
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: o.TLS.Pool}
		transport = tr
	}
	if o.APIToken != "" {
		transport = auth.WithToken(transport, o.APIToken)
	}
	s.URL = scheme + s.addr
	s.webAddr = "off"
	if o.WebUI {
		s.webAddr = addrs[2]
		s.WebURL = scheme + s.webAddr
	}
	s.config = filepath.Join(dir, "obelisk.toml")
	s.webhookAddr = addrs[1]
	s.WebhookURL = scheme + s.webhookAddr
	s.writeConfig(o)
	s.HTTP = &http.Client{Transport: transport}
	s.Exec = obeliskv1connect.NewExecutionServiceClient(s.HTTP, s.URL)
	s.Comp = obeliskv1connect.NewComponentServiceClient(s.HTTP, s.URL)
	if o.Prepare != nil {
		o.Prepare(filepath.Join(s.dir, "data", "store"))
	}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// writeConfig writes the server's obelisk.toml for o.
func (s *Server) writeConfig(o Options) {
	s.t.Helper()
	deployment := s.deployment(o) + "\n" + o.Deployment + "\n" + s.webhookDeployment(o)
	for name, loc := range o.Locations {
		re := regexp.MustCompile(`(?m)^name = "` + regexp.QuoteMeta(name) + `"\nlocation\.path = .*$`)
		if !re.MatchString(deployment) {
			s.t.Fatalf("Options.Locations: no component %q with a location.path", name)
		}
		deployment = re.ReplaceAllLiteralString(deployment, fmt.Sprintf("name = %q\n%s", name, loc))
	}
	s.args = o.ServerArgs
	for name, dir := range o.ExtraWorkflows {
		wasm, err := buildExtra(dir)
		if err != nil {
			s.t.Fatalf("build %s: %v", dir, err)
		}
		deployment += fmt.Sprintf("\n[[workflow]]\nname = %q\nlocation.path = %q\nblocking_strategy = %q\n", name, wasm, cmp.Or(o.BlockingStrategy, "await"))
	}
	if err := os.WriteFile(s.config, []byte(deployment), 0o644); err != nil {
		s.t.Fatal(err)
	}
}

// Reconfigure rewrites the server's obelisk.toml for o (its addresses and data stay),
// which its next Start reads: a restart with another configuration. o.WebUI and
// o.Prepare are ignored.
func (s *Server) Reconfigure(o Options) {
	s.t.Helper()
	s.writeConfig(o)
}

func (s *Server) deployment(o Options) string {
	wasm := func(name string) string { return filepath.Join(componentsDir, name+".wasm") }
	strategy := o.BlockingStrategy
	if strategy == "" {
		strategy = "await"
	}
	extra := func(name string) string { return o.ExtraTOML[name] }
	sleepExtra := extra("sleep")
	if !strings.Contains(sleepExtra, "lock_expiry") {
		sleepExtra = "exec.lock_expiry = \"1s\"\n" + sleepExtra
	}
	httpExtra := extra("http")
	if !strings.Contains(httpExtra, "allowed_hosts") {
		httpExtra = "allowed_hosts = [\"127.0.0.1:*\"]\n" + httpExtra
	}
	apiKeys, webUIKeys := o.APIKeys, ""
	if o.TLS != nil {
		pair := fmt.Sprintf("\ntls_cert_file = %q\ntls_key_file = %q\n", o.TLS.ServerCert, o.TLS.ServerKey)
		apiKeys += pair
		webUIKeys += pair
	}
	return fmt.Sprintf(`
data_dir = %q
cache_dir = %q
[api]
listening_addr = %q
%s
[webui]
listening_addr = %q
%s
[workflows]
%s

[[activity_wasm]]
name = "fibo"
location.path = %q
%s
[[activity_wasm]]
name = "sleep"
location.path = %q
max_retries = 1
retry_exp_backoff = "10ms"
%s
[[activity_wasm]]
name = "http"
location.path = %q
max_retries = 1
retry_exp_backoff = "10ms"
%s
[[activity_wasm]]
name = "flaky"
location.path = %q
max_retries = 5
retry_exp_backoff = "10ms"
%s
[[workflow]]
name = "fibo_workflow"
location.path = %q
blocking_strategy = %q
%s
[[workflow]]
name = "sleep_workflow"
location.path = %q
blocking_strategy = %q
%s
[[workflow]]
name = "http_workflow"
location.path = %q
blocking_strategy = %q
%s
[[workflow]]
name = "tree"
location.path = %q
blocking_strategy = %q
%s
`, filepath.Join(s.dir, "data"), cmp.Or(o.CacheDir, wasmCacheDir), s.addr, apiKeys, s.webAddr, webUIKeys, o.Workflows,
		wasm("fibo"), extra("fibo"), wasm("sleep"), sleepExtra, wasm("http"), httpExtra, wasm("flaky"), extra("flaky"),
		wasm("fibo-workflow"), strategy, extra("fibo_workflow"), wasm("sleep-workflow"), strategy, extra("sleep_workflow"),
		wasm("http-workflow"), strategy, extra("http_workflow"), wasm("tree"), strategy, extra("tree"))
}

// FreeAddr returns a free loopback address.
func FreeAddr(t testing.TB) string {
	return FreeAddrs(t, 1)[0]
}

// FreeAddrs returns n distinct free loopback addresses, none handed out before by this
// test process: the kernel may hand out a port it has just handed out again, and a
// test may not be using it yet (the server it is for has not started).
func FreeAddrs(t testing.TB, n int) []string {
	addrs := make([]string, 0, n)
	for tries := 0; len(addrs) < n; tries++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		if _, dup := handedOut.LoadOrStore(ln.Addr().String(), true); dup && tries < 100 {
			continue
		}
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs
}

// handedOut are the addresses FreeAddrs has returned (address -> true).
var handedOut sync.Map

// Start starts the server process and waits until its API answers.
func (s *Server) Start() {
	s.t.Helper()
	s.launch()
	s.waitReady()
}

// launch starts the server process without waiting for it to serve.
func (s *Server) launch() {
	s.t.Helper()
	s.logPath = filepath.Join(s.dir, fmt.Sprintf("server-%d.log", time.Now().UnixNano()))
	logf, err := os.Create(s.logPath)
	if err != nil {
		s.t.Fatal(err)
	}
	args := append([]string{"server", "run", "--config", s.config}, s.args...)
	if addr := os.Getenv("OBELISK_PPROF_ADDR"); addr != "" {
		// For profiling a benchmark: go tool pprof http://ADDR/debug/pprof/profile.
		args = append(args, "--pprof-addr", addr)
	}
	s.cmd = exec.Command(obeliskBin, args...)
	s.cmd.Env = append(os.Environ(), s.env...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	go func() { s.cmd.Wait(); logf.Close() }()
}

// waitReady waits until the launched server answers its API.
func (s *Server) waitReady() {
	s.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		_, err := s.Comp.ListComponents(context.Background(), connect.NewRequest(&pb.ListComponentsRequest{}))
		if err == nil {
			return
		}
		if s.cmd.ProcessState != nil || time.Now().After(deadline) {
			log, _ := os.ReadFile(s.logPath)
			s.t.Fatalf("server did not start: %v\n%s", err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (s *Server) Kill() {
	s.t.Helper()
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	for s.cmd.ProcessState == nil {
		time.Sleep(10 * time.Millisecond)
	}
}

// Stop stops the server with SIGTERM (it is also registered with t.Cleanup).
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil || s.cmd.ProcessState != nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	deadline := time.Now().Add(10 * time.Second)
	for s.cmd.ProcessState == nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s.cmd.ProcessState == nil {
		_ = s.cmd.Process.Kill()
		for s.cmd.ProcessState == nil {
			time.Sleep(10 * time.Millisecond)
		}
	}
	s.verifyStore()
	if s.t.Failed() {
		log, _ := os.ReadFile(s.logPath)
		s.t.Logf("server log (tail):\n%s", tail(string(log), 4000))
	}
	if d := os.Getenv("OBELISK_TEST_LOG_DIR"); d != "" {
		// Kept for reading after the test (its temp dir is removed), whatever its outcome.
		log, _ := os.ReadFile(s.logPath)
		_ = os.WriteFile(filepath.Join(d, filepath.Base(s.logPath)), log, 0o644)
	}
}

// StopWithin stops the server with SIGTERM and waits at most timeout for it to exit,
// returning its exit code and how long it took; -1 when it had not exited by then (it
// is then killed).
func (s *Server) StopWithin(timeout time.Duration) (code int, took time.Duration) {
	s.t.Helper()
	if s.cmd == nil || s.cmd.Process == nil || s.cmd.ProcessState != nil {
		s.t.Fatal("StopWithin: the server is not running")
	}
	start := time.Now()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	for s.cmd.ProcessState == nil && time.Since(start) < timeout {
		time.Sleep(10 * time.Millisecond)
	}
	took = time.Since(start)
	if s.cmd.ProcessState == nil {
		s.Stop() // kills it
		return -1, took
	}
	return s.cmd.ProcessState.ExitCode(), took
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// Submit creates an execution through the API and returns its ID.
func (s *Server) Submit(ffqn, params string) string {
	s.t.Helper()
	resp, err := s.Exec.Submit(context.Background(), connect.NewRequest(&pb.SubmitRequest{Ffqn: ffqn, ParamsJson: params}))
	if err != nil {
		s.t.Fatalf("submit %s %s: %v", ffqn, params, err)
	}
	return resp.Msg.ExecutionId
}

// Result waits for an execution to finish and returns its result JSON; the test fails
// (Fatal) if it does not finish within timeout.
func (s *Server) Result(id string, timeout time.Duration) string {
	s.t.Helper()
	r, err := s.WaitResult(id, timeout)
	if err != nil {
		s.t.Fatal(err)
	}
	return r
}

// WaitResult is Result for goroutines other than the test's: it returns an error where
// Result fails the test.
func (s *Server) WaitResult(id string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		stream, err := s.Exec.GetStatus(ctx, connect.NewRequest(&pb.GetStatusRequest{ExecutionId: id, Follow: true}))
		if err == nil {
			var last *pb.ExecutionSummary
			for stream.Receive() {
				last = stream.Msg().Summary
			}
			err = stream.Err()
			stream.Close()
			if last != nil && last.Status == "finished" {
				return last.ResultJson, nil
			}
		}
		if ctx.Err() != nil {
			return "", fmt.Errorf("execution %s did not finish in %v: %v", id, timeout, err)
		}
		time.Sleep(100 * time.Millisecond) // the server may be restarting
	}
}

// Events returns the event kinds and details of an execution.
func (s *Server) Events(id string) []*pb.EventView {
	s.t.Helper()
	resp, err := s.Exec.ListEvents(context.Background(), connect.NewRequest(&pb.ListEventsRequest{ExecutionId: id}))
	if err != nil {
		s.t.Fatalf("events of %s: %v", id, err)
	}
	return resp.Msg.Events
}

// CountKind counts the events of one kind.
func CountKind(evs []*pb.EventView, kind string) int {
	n := 0
	for _, e := range evs {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

// CLI runs the obelisk CLI against the server and returns stdout, stderr and the exit code.
func (s *Server) CLI(args ...string) (stdout, stderr string, code int) {
	s.t.Helper()
	return s.CLIEnv(nil, args...)
}

// CLIEnv is CLI with more environment variables (e.g. OBELISK_API_TOKEN=...).
func (s *Server) CLIEnv(env []string, args ...string) (stdout, stderr string, code int) {
	s.t.Helper()
	cmd := exec.Command(obeliskBin, append([]string{"client"}, args...)...)
	cmd.Env = append(append(os.Environ(), "OBELISK_API_URL="+s.URL), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		s.t.Fatalf("run CLI: %v", err)
	}
	return out.String(), errb.String(), code
}

// JSONEq compares two JSON documents semantically.
func JSONEq(t testing.TB, got, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("invalid JSON %q: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("invalid JSON %q: %v", want, err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if !bytes.Equal(gb, wb) {
		t.Fatalf("got %s, want %s", got, want)
	}
}

// State returns the current summary of an execution.
func (s *Server) State(id string) (*pb.ExecutionSummary, error) {
	stream, err := s.Exec.GetStatus(context.Background(), connect.NewRequest(&pb.GetStatusRequest{ExecutionId: id}))
	if err != nil {
		return nil, err
	}
	defer stream.Close()
	var last *pb.ExecutionSummary
	for stream.Receive() {
		last = stream.Msg().Summary
	}
	if last == nil {
		return nil, fmt.Errorf("no status for %s: %v", id, stream.Err())
	}
	return last, nil
}

// Log returns what the server process has logged so far.
func (s *Server) Log() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		s.t.Fatal(err)
	}
	return string(b)
}

// Memory is the peak of a server's memory during a sampled interval, in bytes.
type Memory struct {
	// RSS is the resident set size (Rss of smaps_rollup): a page shared by several
	// mappings counts once per mapping.
	RSS int64
	// PSS is the proportional set size: a page shared by several mappings counts once.
	// WASM instances map the same snapshot image many times over.
	PSS int64
}

// SampleMemory samples the server's RSS and PSS (/proc/PID/smaps_rollup) every 100 ms
// until stop is called, which returns the largest samples. Unlike VmHWM (PeakRSS), the
// peak covers only the interval sampled, not the server's start.
func (s *Server) SampleMemory() (stop func() Memory) {
	path := fmt.Sprintf("/proc/%d/smaps_rollup", s.cmd.Process.Pid)
	var peak Memory
	sample := func() {
		b, err := os.ReadFile(path)
		if err != nil {
			return
		}
		if rss, err := procField(b, "Rss:"); err == nil {
			peak.RSS = max(peak.RSS, rss)
		}
		if pss, err := procField(b, "Pss:"); err == nil {
			peak.PSS = max(peak.PSS, pss)
		}
	}
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			sample()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() Memory {
		close(done)
		<-finished
		return peak
	}
}

// CPUTime returns the CPU time (user + system) the server process has used so far, from
// /proc/PID/stat in clock ticks of 10 ms (USER_HZ is 100 on Linux). A figure of CPU per
// unit of work varies much less than wall time on a shared machine.
func (s *Server) CPUTime() (time.Duration, error) {
	path := fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid)
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: the fields follow its last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("%s: no command name", path)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("%s: %d fields", path, len(f))
	}
	var utime, stime int64
	if _, err := fmt.Sscan(f[11], &utime); err != nil {
		return 0, fmt.Errorf("%s: utime: %w", path, err)
	}
	if _, err := fmt.Sscan(f[12], &stime); err != nil {
		return 0, fmt.Errorf("%s: stime: %w", path, err)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// PeakRSS returns the server process's peak resident set size in bytes (VmHWM).
func (s *Server) PeakRSS() (int64, error) {
	return procBytes(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid), "VmHWM:")
}

// procBytes reads the "key N kB" line of a /proc file, in bytes.
func procBytes(path, key string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	n, err := procField(b, key)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return n, nil
}

// procField reads the "key N kB" line of the contents of a /proc file, in bytes.
func procField(b []byte, key string) (int64, error) {
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, key); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(rest), "%d", &kb)
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("no %s", key)
}

// Unreachable returns a Server value whose API address has nothing listening, to test
// client errors.
func Unreachable(t testing.TB) *Server {
	return &Server{t: t, URL: "http://" + FreeAddr(t)}
}

// BuildComponent builds a test-only component (the folder of a Go package, relative to
// the repository, with its WIT in <folder>/wit) and returns the path of its .wasm.
func BuildComponent(t testing.TB, dir string) string {
	t.Helper()
	wasm, err := buildExtra(dir)
	if err != nil {
		t.Fatalf("build %s: %v", dir, err)
	}
	return wasm
}

// Binary is the path of the obelisk binary the tests run.
func Binary() string { return obeliskBin }

// ComponentsDir is the folder of the built example components (<name>.wasm).
func ComponentsDir() string { return componentsDir }

// WasmCacheDir is the compilation cache the test process's servers share.
func WasmCacheDir() string { return wasmCacheDir }

// verifyStore checks the stopped server's store as `obelisk verify` does (an offline
// engine, actors.OpenOffline): every execution's stored state equals the refold of its
// events and responses, every hash chain of its events and responses holds, and every
// workflow execution replays against the component version it is pinned to.
func (s *Server) verifyStore() {
	ctx := context.Background()
	modules, release, err := verifyMods.acquire()
	if err != nil {
		s.t.Errorf("verify the store: start a wasm runtime: %v", err)
		return
	}
	defer release() // after the engine's Close, deferred below
	started := time.Now()
	e, err := actors.OpenOffline(ctx, actors.Config{DataDir: filepath.Join(s.dir, "data"), CacheDir: wasmCacheDir, Modules: modules, Logger: verifyLogger()})
	if err != nil {
		s.t.Errorf("open the store to verify it: %v", err)
		return
	}
	defer e.Close(ctx)
	rep, err := e.Verify(ctx, func(f verify.Failure) error {
		s.t.Errorf("store invariant (%s): %s", f.Check, f.Error)
		return nil
	})
	if err != nil {
		s.t.Errorf("verify the store: %v", err)
	}
	s.t.Logf("verified the store: %d executions, %d workflows replayed, in %s", rep.Executions, rep.Replayed, time.Since(started).Round(time.Millisecond))
}

// verifyLogger is the logger of verifyStore's engines: their warnings only.
func verifyLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// buildExtra builds a component from a package folder of the repository, once per test
// process.
func buildExtra(dir string) (string, error) {
	extraMu.Lock()
	defer extraMu.Unlock()
	if p, ok := extraBuilt[dir]; ok {
		return p, nil
	}
	root, err := filepath.Abs(filepath.Join(repoRoot()))
	if err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp("", "obelisk-extra-")
	if err != nil {
		return "", err
	}
	raw := filepath.Join(tmp, "raw.wasm")
	if out, err := goCmd(root, []string{"GOOS=wasip1", "GOARCH=wasm"}, "build", "-buildmode=c-shared", "-o", raw, "./"+dir); err != nil {
		return "", fmt.Errorf("%w\n%s", err, out)
	}
	wasm := filepath.Join(tmp, filepath.Base(dir)+".wasm")
	if out, err := exec.Command(obeliskBin, "component", "embed-wit", filepath.Join(root, dir, "wit"), raw, "-o", wasm).CombinedOutput(); err != nil {
		return "", fmt.Errorf("embed: %w\n%s", err, out)
	}
	extraBuilt[dir] = wasm
	return wasm, nil
}

var (
	extraMu    sync.Mutex
	extraBuilt = map[string]string{}
)

// repoRoot finds the repository from the working directory of a test (a package folder).
func repoRoot() string {
	dir, _ := os.Getwd()
	for d := dir; d != filepath.Dir(d); d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
	}
	return dir
}

// webhookDeployment serves the fibo_webhook endpoint (ExtraTOML["fibo_webhook"] adds keys
// to it) on the http_server "external", at a free address (Server.WebhookURL).
func (s *Server) webhookDeployment(o Options) string {
	tlsKeys := ""
	if o.TLS != nil {
		tlsKeys = fmt.Sprintf("tls_cert_file = %q\ntls_key_file = %q\n", o.TLS.ServerCert, o.TLS.ServerKey)
	}
	return fmt.Sprintf(`
[[http_server]]
name = "external"
listening_addr = %q
%s

[[webhook_endpoint]]
name = "fibo_webhook"
location.path = %q
routes = ["GET /fibo/:n/:iterations"]
%s
`, s.webhookAddr, tlsKeys, filepath.Join(componentsDir, "fibo-webhook.wasm"), o.ExtraTOML["fibo_webhook"])
}

// ConfigPath is the server's obelisk.toml (its obelisk.lock is beside it).
func (s *Server) ConfigPath() string { return s.config }

// DataDir is the server's data_dir (the event store is in DataDir()/store).
func (s *Server) DataDir() string { return filepath.Join(s.dir, "data") }

// AppendConfig appends TOML to the server's obelisk.toml (new sections), for the next
// Start.
func (s *Server) AppendConfig(toml string) {
	s.t.Helper()
	f, err := os.OpenFile(s.config, os.O_APPEND|os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteString("\n" + toml + "\n")
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		s.t.Fatalf("append to %s: %v", s.config, err)
	}
}
