package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/oci"
	"github.com/obelisk-go/obelisk/test/harness"
	"github.com/obelisk-go/obelisk/wasmstore"
)

// obelisk runs the binary (no server involved unless args say so) and returns stdout,
// stderr and the exit code.
func obelisk(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(harness.Binary(), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return out.String(), errb.String(), 0
	case errors.As(err, &exit):
		return out.String(), errb.String(), exit.ExitCode()
	}
	t.Fatalf("run obelisk %v: %v", args, err)
	return "", "", 0
}

// push publishes a file and returns the manifest digest push printed.
func push(t *testing.T, file, ref string) string {
	t.Helper()
	out, errOut, code := obelisk(t, "component", "push", file, ref)
	digest := strings.TrimSpace(out)
	if _, err := wasmstore.ParseDigest(digest); code != 0 || err != nil {
		t.Fatalf("push %s %s: exit %d, %q %q", file, ref, code, out, errOut)
	}
	return digest
}

func fileDigest(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return wasmstore.Digest(b)
}

func readLock(t *testing.T, s *harness.Server) *oci.Lock {
	t.Helper()
	path := filepath.Join(filepath.Dir(s.ConfigPath()), "obelisk.lock")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("no obelisk.lock beside the config: %v", err)
	}
	l, err := oci.ReadLock(path)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// componentID returns the ID of a deployed component, from the CLI.
func componentID(t *testing.T, s *harness.Server, name string) string {
	t.Helper()
	out, errOut, code := s.CLI("--json", "component", "inspect", name)
	var doc struct {
		ComponentID string `json:"component_id"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &doc) != nil {
		t.Fatalf("component inspect %s: exit %d %q %q", name, code, out, errOut)
	}
	return doc.ComponentID
}

// TestOCI drives OCI locations end to end on a real registry: push, a server pulling
// and serving fibo from it, obelisk.lock, a cached start with the registry stopped,
// --locked, an activity stub deployed from a pushed WIT-only file, a moved tag refused
// and accepted with `component update`, and inspect without a server.
func TestOCI(t *testing.T) {
	t.Parallel()
	reg := harness.StartRegistry(t)
	fibo := filepath.Join(harness.ComponentsDir(), "fibo.wasm")
	fiboRef := reg.Addr + "/fibo:v1"
	d1 := push(t, fibo, fiboRef)
	opts := harness.Options{Locations: map[string]string{"fibo": "location.oci = \"" + fiboRef + "\""}}

	// Pulled at start, served, locked.
	s := harness.Start(t, opts)
	harness.JSONEq(t, s.Result(s.Submit("testing:fibo/fibo.fibo", "[10]"), time.Minute), `{"ok":55}`)
	if id := componentID(t, s, "fibo"); id != "activity_wasm:fibo:"+fileDigest(t, fibo) {
		t.Fatalf("fibo's ID %s: not the digest of the file pushed", id)
	}
	entry, ok := readLock(t, s).Get(fiboRef)
	if !ok || entry.ManifestDigest != d1 || entry.WasmDigest != fileDigest(t, fibo) {
		t.Fatalf("obelisk.lock: %+v %v, want manifest %s", entry, ok, d1)
	}
	stored, _ := wasmstore.Open(filepath.Join(s.DataDir(), wasmstore.DirName))
	if !stored.Has(entry.WasmDigest) {
		t.Fatalf("the pulled wasm is not in the component store %s", stored.Dir())
	}

	// A cached start with the registry stopped: the lock and the store suffice.
	s.Stop()
	reg.Stop()
	s.Start()
	harness.JSONEq(t, s.Result(s.Submit("testing:fibo/fibo.fibo", "[11]"), time.Minute), `{"ok":89}`)
	if log := s.Log(); !strings.Contains(log, "using the locked digest") {
		t.Fatalf("no warning that the registry could not be asked:\n%s", log)
	}
	s.Stop()
	reg.Start()

	// A WIT-only file, pushed and inspected, deploys an activity stub by location.oci.
	stubWasm := filepath.Join(t.TempDir(), "stub.wasm")
	if out, errOut, code := obelisk(t, "component", "embed-wit", "testdata/stub", "-o", stubWasm); code != 0 {
		t.Fatalf("embed-wit WIT-only: exit %d %q %q", code, out, errOut)
	}
	stubRef := reg.Addr + "/stub:v1"
	stubDigest := push(t, stubWasm, stubRef)
	out, errOut, code := obelisk(t, "component", "inspect", "--json", stubRef)
	var doc struct {
		ComponentID string `json:"component_id"`
		Source      string `json:"source"`
		Digest      string `json:"digest"`
		Exports     []struct {
			FFQN string `json:"ffqn"`
		} `json:"exports"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &doc) != nil || doc.Source != "oci" || doc.Digest != stubDigest ||
		doc.ComponentID != fileDigest(t, stubWasm) || len(doc.Exports) != 1 || doc.Exports[0].FFQN != "testing:stub/stub.answer" {
		t.Fatalf("inspect the WIT-only artifact: exit %d %q %q", code, out, errOut)
	}
	opts.Deployment = "[[activity_stub]]\nname = \"stub\"\nlocation.oci = \"" + stubRef + "\"\n"
	s.Reconfigure(opts)

	// --locked refuses what the lock does not pin, naming it, and writes nothing.
	code, stderr := runConfigExpectingFailure(t, s.ConfigPath(), "--locked")
	if code == 0 || !strings.Contains(stderr, `component "stub"`) || !strings.Contains(stderr, stubRef+" is not in obelisk.lock") {
		t.Fatalf("--locked with an unlocked reference: exit %d\n%s", code, stderr)
	}
	if _, ok := readLock(t, s).Get(stubRef); ok {
		t.Fatal("--locked wrote the lock")
	}
	s.Start() // locks the stub
	if _, ok := readLock(t, s).Get(stubRef); !ok {
		t.Fatal("the stub's reference was not locked")
	}
	if id := componentID(t, s, "stub"); id != "activity_stub:stub:"+fileDigest(t, stubWasm) {
		t.Fatalf("the stub's ID %s: not the digest of the WIT-only file pushed", id)
	}
	s.Stop()
	opts.ServerArgs = []string{"--locked"}
	s.Reconfigure(opts)
	s.Start() // everything is locked now
	s.Stop()

	// Different content under the same tag: refused, naming the component and both
	// digests; the lock is left alone.
	witDir := t.TempDir()
	fiboWIT, err := os.ReadFile("../components/fibo/wit/fibo.wit")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(witDir, "fibo.wit"), append(fiboWIT, "// second build\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	fibo2 := filepath.Join(t.TempDir(), "fibo2.wasm")
	if out, errOut, code := obelisk(t, "component", "embed-wit", witDir, fibo, "-o", fibo2); code != 0 {
		t.Fatalf("embed-wit: exit %d %q %q", code, out, errOut)
	}
	d2 := push(t, fibo2, fiboRef)
	code, stderr = runConfigExpectingFailure(t, s.ConfigPath())
	if code == 0 || !strings.Contains(stderr, `component "fibo"`) || !strings.Contains(stderr, d1) || !strings.Contains(stderr, d2) {
		t.Fatalf("moved tag: exit %d, want a message naming fibo, %s and %s:\n%s", code, d1, d2, stderr)
	}
	if e, _ := readLock(t, s).Get(fiboRef); e.ManifestDigest != d1 {
		t.Fatalf("the refused start changed the lock: %+v", e)
	}

	// `component update fibo` accepts the new digest; the server then runs it.
	out, errOut, code = obelisk(t, "component", "update", "--config", s.ConfigPath(), "fibo")
	if code != 0 || strings.TrimSpace(out) != "fibo "+fiboRef+" "+d2+" (was "+d1+")" {
		t.Fatalf("component update fibo: exit %d %q %q", code, out, errOut)
	}
	if e, _ := readLock(t, s).Get(fiboRef); e.ManifestDigest != d2 || e.WasmDigest != fileDigest(t, fibo2) {
		t.Fatalf("lock after update: %+v", e)
	}
	if _, ok := readLock(t, s).Get(stubRef); !ok {
		t.Fatal("update of fibo dropped the stub's entry")
	}
	s.Start()
	harness.JSONEq(t, s.Result(s.Submit("testing:fibo/fibo.fibo", "[12]"), time.Minute), `{"ok":144}`)
	if id := componentID(t, s, "fibo"); id != "activity_wasm:fibo:"+fileDigest(t, fibo2) {
		t.Fatalf("fibo's ID after the update: %s", id)
	}
	s.Stop()

	// Inspect with no server: a path, an OCI reference.
	noServer := "http://" + harness.FreeAddr(t)
	out, errOut, code = obelisk(t, "component", "inspect", "--api-url", noServer, fibo)
	if code != 0 || !strings.Contains(out, "component "+fileDigest(t, fibo)+"\n") || !strings.Contains(out, "testing:fibo/fibo.fibo: func(n: u8) -> result<u64>") {
		t.Fatalf("inspect PATH without a server: exit %d %q %q", code, out, errOut)
	}
	out, errOut, code = obelisk(t, "component", "inspect", "--json", "--api-url", noServer, fiboRef)
	if code != 0 || json.Unmarshal([]byte(out), &doc) != nil || doc.Source != "oci" || doc.Digest != d2 || doc.ComponentID != fileDigest(t, fibo2) {
		t.Fatalf("inspect REF without a server: exit %d %q %q", code, out, errOut)
	}
	// ... and, the registry gone, the version the lock pins, from the server's store.
	reg.Stop()
	out, errOut, code = obelisk(t, "component", "inspect", "--json", "--config", s.ConfigPath(), fiboRef)
	if code != 0 || json.Unmarshal([]byte(out), &doc) != nil || doc.Source != "store" || doc.Digest != d2 || !strings.Contains(errOut, "warning:") {
		t.Fatalf("inspect a locked REF, registry down: exit %d %q %q", code, out, errOut)
	}
}
