package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/obelisk-go/obelisk/test/harness"
	"github.com/obelisk-go/obelisk/wasmhost/wit"
	"github.com/obelisk-go/obelisk/wasmstore"
)

// witOnlyFile makes a WIT-only module of inspectWIT with embed-wit (no IN.wasm).
func witOnlyFile(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "wit", "approval.wit"), inspectWIT)
	out := filepath.Join(dir, "approval.wasm")
	if o, err := runCLI(t, "component", "embed-wit", filepath.Join(dir, "wit"), "-o", out); err != nil {
		t.Fatalf("embed-wit: %v\n%s", err, o)
	}
	return out
}

type inspectDoc struct {
	ComponentID string `json:"component_id"`
	Name        string `json:"name"`
	Type        string `json:"type"`
	Source      string `json:"source"`
	Reference   string `json:"reference"`
	Digest      string `json:"digest"`
	Exports     []struct {
		FFQN string `json:"ffqn"`
	} `json:"exports"`
	Imports []any `json:"imports"`
}

// TestEmbedWITOnly: embed-wit without IN.wasm makes a valid module with nothing but the
// WIT; without -o it is a usage error.
func TestEmbedWITOnly(t *testing.T) {
	wasm, err := os.ReadFile(witOnlyFile(t))
	if err != nil {
		t.Fatal(err)
	}
	files, err := wit.ExtractFromWasm(wasm)
	if err != nil || len(files) != 1 || files[0].Text != inspectWIT {
		t.Fatalf("embedded WIT: %v %v", files, err)
	}
	if string(wasm[:8]) != emptyModule || wasm[8] != 0 { // the header, then only the custom section
		t.Fatalf("module: % x", wasm[:12])
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.wit"), inspectWIT)
	if _, err := runCLI(t, "component", "embed-wit", dir); exitCode(err) != 2 || !strings.Contains(err.Error(), "-o OUT.wasm") {
		t.Fatalf("without -o: %v", err)
	}
}

// TestInspectFile: `component inspect|wit FILE` need no server.
func TestInspectFile(t *testing.T) {
	path := witOnlyFile(t)
	wasm, _ := os.ReadFile(path)
	digest := wasmstore.Digest(wasm)
	noServer := "http://" + harness.FreeAddr(t)
	out, err := runCLI(t, "component", "inspect", "--api-url", noServer, path)
	if err != nil || !strings.HasPrefix(out, "component "+digest+"\nexports:\n  testing:approval/approval.approve: func(req: request, urgent: bool) -> result<bool, string>\n") {
		t.Fatalf("inspect: %v\n%s", err, out)
	}
	out, err = runCLI(t, "component", "inspect", "--json", path)
	var doc inspectDoc
	if err != nil || json.Unmarshal([]byte(out), &doc) != nil || doc.ComponentID != digest || doc.Source != "file" ||
		len(doc.Exports) != 1 || doc.Exports[0].FFQN != "testing:approval/approval.approve" || doc.Imports == nil {
		t.Fatalf("inspect --json: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "component", "wit", path); err != nil || out != inspectWIT {
		t.Fatalf("wit: %v\n%s", err, out)
	}
	// Not a component, and not there.
	junk := filepath.Join(t.TempDir(), "junk.wasm")
	writeFile(t, junk, "\x00asm\x01\x00\x00\x00")
	if _, err := runCLI(t, "component", "inspect", junk); exitCode(err) != 1 || !strings.Contains(err.Error(), "no obelisk-wit custom section") {
		t.Fatalf("inspect a module without WIT: %v", err)
	}
	if _, err := runCLI(t, "component", "inspect", "missing.wasm"); exitCode(err) != 2 || !strings.Contains(err.Error(), "missing.wasm: no such file") {
		t.Fatalf("inspect a missing file: %v", err)
	}
}

// TestInspectStoredID: a component ID no server answers for is read from the component
// store of the data directory.
func TestInspectStoredID(t *testing.T) {
	wasm, _ := os.ReadFile(witOnlyFile(t))
	data := t.TempDir()
	store, err := wasmstore.Open(filepath.Join(data, wasmstore.DirName))
	if err != nil {
		t.Fatal(err)
	}
	digest, err := store.Put(wasm)
	if err != nil {
		t.Fatal(err)
	}
	noServer := "http://" + harness.FreeAddr(t)
	id := "activity_stub:approval:" + digest
	out, err := runCLI(t, "component", "inspect", "--json", "--api-url", noServer, "--data-dir", data, id)
	var doc inspectDoc
	if err != nil || json.Unmarshal([]byte(out), &doc) != nil || doc.ComponentID != id || doc.Source != "store" || doc.Type != "activity_stub" || doc.Name != "approval" {
		t.Fatalf("inspect ID: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "component", "wit", "--api-url", noServer, "--data-dir", data, digest); err != nil || out != inspectWIT {
		t.Fatalf("wit DIGEST: %v\n%s", err, out)
	}
	other := "sha256:" + strings.Repeat("0", 64)
	if _, err := runCLI(t, "component", "inspect", "--api-url", noServer, "--data-dir", data, "workflow:w:"+other); exitCode(err) != 2 ||
		!strings.Contains(err.Error(), "not in the component store") || !strings.Contains(err.Error(), noServer) {
		t.Fatalf("inspect an unknown ID: %v", err)
	}
	// The running server answers first, for IDs it deploys; others are still read
	// from the store.
	url := realAPI(t)
	out, err = runCLI(t, "client", "--api-url", url, "--json", "component", "inspect", "approval")
	var deployed inspectDoc
	if err != nil || json.Unmarshal([]byte(out), &deployed) != nil {
		t.Fatalf("client component inspect: %v\n%s", err, out)
	}
	out, err = runCLI(t, "component", "inspect", "--json", "--api-url", url, "--data-dir", data, deployed.ComponentID)
	if err != nil || json.Unmarshal([]byte(out), &doc) != nil || doc.Source != "server" || doc.ComponentID != deployed.ComponentID {
		t.Fatalf("inspect a deployed ID: %v\n%s", err, out)
	}
	out, err = runCLI(t, "component", "inspect", "--json", "--api-url", url, "--data-dir", data, id)
	if err != nil || json.Unmarshal([]byte(out), &doc) != nil || doc.Source != "store" || doc.ComponentID != id {
		t.Fatalf("inspect a stored ID the server does not deploy: %v\n%s", err, out)
	}
	out, err = runCLI(t, "component", "inspect", "--json", "--api-url", url, "approval")
	if err != nil || json.Unmarshal([]byte(out), &doc) != nil || doc.Source != "server" || doc.Name != "approval" {
		t.Fatalf("inspect a deployed name: %v\n%s", err, out)
	}
}

// TestPushInspectOCI: push a WIT-only file to a real registry, inspect it by reference
// with no server; a file without WIT is refused.
func TestPushInspectOCI(t *testing.T) {
	reg := harness.StartRegistry(t)
	path := witOnlyFile(t)
	ref := reg.Addr + "/approval:v1"
	out, err := runCLI(t, "component", "push", path, ref)
	digest := strings.TrimSpace(out)
	if _, derr := wasmstore.ParseDigest(digest); err != nil || derr != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	out, err = runCLI(t, "component", "inspect", "--json", ref)
	var doc inspectDoc
	wasm, _ := os.ReadFile(path)
	if err != nil || json.Unmarshal([]byte(out), &doc) != nil || doc.Source != "oci" || doc.Reference != ref || doc.Digest != digest ||
		doc.ComponentID != wasmstore.Digest(wasm) || len(doc.Exports) != 1 {
		t.Fatalf("inspect REF: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "component", "wit", reg.Addr+"/approval@"+digest); err != nil || out != inspectWIT {
		t.Fatalf("wit REF@DIGEST: %v\n%s", err, out)
	}
	junk := filepath.Join(t.TempDir(), "junk.wasm")
	writeFile(t, junk, "\x00asm\x01\x00\x00\x00")
	if _, err := runCLI(t, "component", "push", junk, ref); exitCode(err) != 1 || !strings.Contains(err.Error(), "carries no WIT") {
		t.Fatalf("push without WIT: %v", err)
	}
	if _, err := runCLI(t, "component", "push", path, "approval:v1"); exitCode(err) != 2 || !strings.Contains(err.Error(), "no registry") {
		t.Fatalf("push to a bad reference: %v", err)
	}
	// The registry gone, nothing locked: a clear error.
	reg.Stop()
	if _, err := runCLI(t, "component", "inspect", ref); exitCode(err) != 1 || !strings.Contains(err.Error(), "resolve "+ref) {
		t.Fatalf("inspect with the registry down: %v", err)
	}
}

// TestComponentUpdateErrors: update names what is wrong and writes no lock.
func TestComponentUpdateErrors(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "obelisk.toml")
	data := "data_dir = \"" + filepath.Join(dir, "data") + "\"\n"
	writeFile(t, cfg, data+"[[activity_wasm]]\nname = \"local\"\nlocation.path = \"local.wasm\"\n")
	if _, err := runCLI(t, "component", "update", "--config", cfg); exitCode(err) != 2 || !strings.Contains(err.Error(), "has no component with a location.oci") {
		t.Fatalf("update without OCI locations: %v", err)
	}
	writeFile(t, cfg, data+"[[activity_wasm]]\nname = \"fibo\"\nlocation.oci = \"127.0.0.1:1/fibo:v1\"\n")
	if _, err := runCLI(t, "component", "update", "--config", cfg, "local"); exitCode(err) != 2 || !strings.Contains(err.Error(), `no component "local" with a location.oci (those it has: [fibo])`) {
		t.Fatalf("update of a component without OCI: %v", err)
	}
	if _, err := runCLI(t, "component", "update", "--config", cfg); exitCode(err) != 1 || !strings.Contains(err.Error(), `component "fibo": resolve 127.0.0.1:1/fibo:v1`) {
		t.Fatalf("update with no registry: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "obelisk.lock")); err == nil {
		t.Fatal("a failed update wrote the lock")
	}
}
