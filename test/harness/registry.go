package harness

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// RegistryBinary is the OCI registry the tests run: the distribution registry as
// Debian packages it (`apt-get install docker-registry`; .ci/run installs it).
const RegistryBinary = "docker-registry"

// Registry is an OCI registry serving on a loopback address over plain HTTP, with its
// storage in a temporary folder, for tests of pulls and pushes.
type Registry struct {
	t      testing.TB
	dir    string
	config string
	// Addr is host:port, the registry part of references (Addr + "/fibo:v1").
	Addr    string
	cmd     *exec.Cmd
	done    chan struct{}
	logPath string
}

// StartRegistry starts a registry; it skips the test, saying why, where the
// docker-registry binary is missing. The registry is stopped at the end of the test.
func StartRegistry(t testing.TB) *Registry {
	t.Helper()
	if _, err := exec.LookPath(RegistryBinary); err != nil {
		t.Skipf("no %s binary (Debian: apt-get install -y docker-registry): %v", RegistryBinary, err)
	}
	dir := t.TempDir()
	r := &Registry{t: t, dir: dir, config: filepath.Join(dir, "config.yml"), Addr: FreeAddr(t), logPath: filepath.Join(dir, "registry.log")}
	config := fmt.Sprintf(`version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, filepath.Join(dir, "storage"), r.Addr)
	if err := os.WriteFile(r.config, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// Start starts the registry (again, on the same storage and address) and waits until
// it answers.
func (r *Registry) Start() {
	r.t.Helper()
	logf, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		r.t.Fatal(err)
	}
	r.cmd = exec.Command(RegistryBinary, "serve", r.config)
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	if err := r.cmd.Start(); err != nil {
		logf.Close()
		r.t.Fatalf("start %s: %v", RegistryBinary, err)
	}
	r.done = make(chan struct{})
	go func() { r.cmd.Wait(); logf.Close(); close(r.done) }()
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get("http://" + r.Addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-r.done:
			log, _ := os.ReadFile(r.logPath)
			r.t.Fatalf("%s exited: %v\n%s", RegistryBinary, r.cmd.ProcessState, log)
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(r.logPath)
			r.t.Fatalf("%s did not answer on %s: %v\n%s", RegistryBinary, r.Addr, err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops the registry (SIGTERM, then SIGKILL after 10 s) and waits for it to exit.
func (r *Registry) Stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	select {
	case <-r.done:
		return
	default:
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
}
