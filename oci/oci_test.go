package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"

	"github.com/obelisk-go/obelisk/test/harness"
	"github.com/obelisk-go/obelisk/wasmhost/wit"
	"github.com/obelisk-go/obelisk/wasmstore"
)

// witOnly returns a module carrying only WIT exporting one function; n varies its
// content (and so its digest).
func witOnly(t *testing.T, n string) []byte {
	t.Helper()
	wasm, err := wit.EmbedInWasm([]byte("\x00asm\x01\x00\x00\x00"), []wit.File{{Path: "stub.wit", Text: `package testing:stub;
interface stub { approve` + n + `: func(id: string) -> result<bool, string>; }
world any { export stub; }
`}})
	if err != nil {
		t.Fatal(err)
	}
	return wasm
}

func TestParseReference(t *testing.T) {
	for _, tc := range []struct{ in, registry, repo, tag, digest, err string }{
		{in: "127.0.0.1:5000/fibo:v1", registry: "127.0.0.1:5000", repo: "fibo", tag: "v1"},
		{in: "ghcr.io/org/team/fibo:1.2.3", registry: "ghcr.io", repo: "org/team/fibo", tag: "1.2.3"},
		{in: "localhost/fibo@sha256:" + strings.Repeat("ab", 32), registry: "localhost", repo: "fibo", digest: "sha256:" + strings.Repeat("ab", 32)},
		{in: "ghcr.io/fibo:v1@sha256:" + strings.Repeat("0f", 32), registry: "ghcr.io", repo: "fibo", tag: "v1", digest: "sha256:" + strings.Repeat("0f", 32)},
		{in: "fibo:v1", err: "no registry"},
		{in: "org/fibo:v1", err: `"org" is not a registry`},
		{in: "ghcr.io/fibo", err: "give a tag"},
		{in: "ghcr.io/Fibo:v1", err: "invalid reference"},
		{in: "ghcr.io/fibo@sha512:" + strings.Repeat("ab", 64), err: "want sha256:"},
		{in: " ghcr.io/fibo:v1", err: "want REGISTRY/REPOSITORY:TAG"},
		{in: "", err: "want REGISTRY/REPOSITORY:TAG"},
	} {
		r, err := ParseReference(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseReference(%q) = %v, want an error with %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || r.String() != tc.in || r.Registry() != tc.registry || r.Repository() != tc.repo || r.Tag() != tc.tag || r.Digest() != tc.digest {
			t.Errorf("ParseReference(%q) = %+v, %v", tc.in, r, err)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost:5000": true, "127.0.0.1:5000": true, "127.1.2.3": true, "[::1]:5000": true, "LOCALHOST": true,
		"ghcr.io": false, "10.0.0.1:5000": false, "localhost.example.com": false,
	} {
		if got := isLoopback(host); got != want {
			t.Errorf("isLoopback(%q) = %v", host, got)
		}
	}
}

func TestLockRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := LockPath(filepath.Join(dir, "obelisk.toml"))
	if path != filepath.Join(dir, "obelisk.lock") {
		t.Fatalf("LockPath = %s", path)
	}
	l, err := ReadLock(path)
	if err != nil || len(l.Entries()) != 0 {
		t.Fatalf("a missing lock: %v %v", l, err)
	}
	d := func(c string) string { return "sha256:" + strings.Repeat(c, 64) }
	l.Set(LockEntry{Reference: "ghcr.io/z:v1", ManifestDigest: d("1"), WasmDigest: d("2")})
	l.Set(LockEntry{Reference: "ghcr.io/a:v1", ManifestDigest: d("3"), WasmDigest: d("4")})
	l.Set(LockEntry{Reference: "ghcr.io/z:v1", ManifestDigest: d("5"), WasmDigest: d("6")})
	if err := l.Write(path, "obelisk.toml"); err != nil {
		t.Fatal(err)
	}
	text, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(text), "# The OCI components of obelisk.toml") ||
		strings.Index(string(text), "ghcr.io/a:v1") > strings.Index(string(text), "ghcr.io/z:v1") {
		t.Fatalf("lock file:\n%s", text)
	}
	back, err := ReadLock(path)
	if err != nil || !back.Equal(l) {
		t.Fatalf("read back: %v %v, want %v", back, err, l)
	}
	if e, ok := back.Get("ghcr.io/z:v1"); !ok || e.ManifestDigest != d("5") {
		t.Fatalf("Get = %v %v", e, ok)
	}
	back.Retain([]string{"ghcr.io/a:v1"})
	if got := back.Entries(); len(got) != 1 || got[0].Reference != "ghcr.io/a:v1" {
		t.Fatalf("Retain: %v", got)
	}
	for _, bad := range []struct{ text, err string }{
		{"version = 2\n", "version 2"},
		{"version = 1\n[[oci]]\nreference = \"ghcr.io/a:v1\"\nmanifest_digest = \"sha256:12\"\nwasm_digest = \"" + d("1") + "\"\n", "manifest_digest"},
		{"version = 1\nextra = 1\n", "extra"},
		{"version = 1\n[[oci]]\nreference = \"a/b:v1\"\nmanifest_digest = \"" + d("1") + "\"\nwasm_digest = \"" + d("1") + "\"\n", `"a" is not a registry`},
	} {
		if err := os.WriteFile(path, []byte(bad.text), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadLock(path); err == nil || !strings.Contains(err.Error(), bad.err) || !strings.Contains(err.Error(), path) {
			t.Errorf("ReadLock(%q) = %v, want an error naming the file and %q", bad.text, err, bad.err)
		}
	}
}

// TestPushPull pushes to a real registry and pulls back, checking the artifact's layout
// (the media types other tools expect) and that pulling again downloads nothing.
func TestPushPull(t *testing.T) {
	reg := harness.StartRegistry(t)
	ctx := context.Background()
	c := NewClient(nil)
	ref, err := ParseReference(reg.Addr + "/stub:v1")
	if err != nil {
		t.Fatal(err)
	}
	wasm := witOnly(t, "")
	pushed, err := c.Push(ctx, ref, wasm)
	if err != nil {
		t.Fatal(err)
	}
	if pushed.WasmDigest != wasmstore.Digest(wasm) {
		t.Fatalf("pushed %+v, wasm digest %s", pushed, wasmstore.Digest(wasm))
	}
	// The manifest as any client sees it.
	req, _ := http.NewRequest("GET", "http://"+reg.Addr+"/v2/stub/manifests/v1", nil)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var m struct {
		MediaType string
		Config    struct{ MediaType, Digest string }
		Layers    []struct{ MediaType, Digest string }
	}
	if err := json.Unmarshal(body, &m); err != nil || m.MediaType != "application/vnd.oci.image.manifest.v1+json" ||
		m.Config.MediaType != "application/vnd.wasm.config.v0+json" || len(m.Layers) != 1 ||
		m.Layers[0].MediaType != "application/wasm" || m.Layers[0].Digest != pushed.WasmDigest || wasmstore.Digest(body) != pushed.ManifestDigest {
		t.Fatalf("manifest: %v\n%s", err, body)
	}
	resp, err = http.Get("http://" + reg.Addr + "/v2/stub/blobs/" + m.Config.Digest)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var config struct {
		Created, Architecture, OS string
		LayerDigests              []string `json:"layerDigests"`
	}
	if err := json.Unmarshal(cfg, &config); err != nil || config.Architecture != "wasm" || config.OS != "wasip1" || config.Created == "" ||
		len(config.LayerDigests) != 1 || config.LayerDigests[0] != pushed.WasmDigest {
		t.Fatalf("config: %v %s", err, cfg)
	}

	digest, err := c.Resolve(ctx, ref)
	if err != nil || digest != pushed.ManifestDigest {
		t.Fatalf("Resolve = %s, %v; pushed %s", digest, err, pushed.ManifestDigest)
	}
	store, err := wasmstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Pull(ctx, ref, digest, store)
	if err != nil || got != pushed {
		t.Fatalf("Pull = %+v, %v", got, err)
	}
	if b, err := store.Get(pushed.WasmDigest); err != nil || !bytes.Equal(b, wasm) {
		t.Fatalf("stored: %v", err)
	}
	// By digest, from the store: the registry is not asked for the layer again.
	reg.Stop()
	if b, a, err := c.Fetch(ctx, ref, digest, store); err == nil || b != nil {
		t.Fatalf("Fetch with the registry down = %v %v", a, err)
	}
	reg.Start()
	if b, _, err := c.Fetch(ctx, ref, digest, nil); err != nil || !bytes.Equal(b, wasm) {
		t.Fatalf("Fetch without a store: %v", err)
	}
	// A stored file corrupted on disk is pulled again, not trusted.
	p, _ := store.Path(pushed.WasmDigest)
	if err := os.WriteFile(p, append([]byte("x"), wasm[1:]...), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Pull(ctx, ref, digest, store); err != nil || got != pushed {
		t.Fatalf("Pull over a corrupted file = %+v, %v", got, err)
	}
	if b, err := store.Get(pushed.WasmDigest); err != nil || !bytes.Equal(b, wasm) {
		t.Fatalf("after pulling over a corrupted file: %v", err)
	}

	// A file without WIT is refused, clearly.
	if _, err := c.Push(ctx, ref, []byte("\x00asm\x01\x00\x00\x00")); err == nil || !strings.Contains(err.Error(), "carries no WIT") {
		t.Fatalf("push without WIT: %v", err)
	}
	// A digest reference is not a push target.
	dref, _ := ParseReference(reg.Addr + "/stub@" + pushed.ManifestDigest)
	if _, err := c.Push(ctx, dref, wasm); err == nil || !strings.Contains(err.Error(), "give a tag") {
		t.Fatalf("push to a digest: %v", err)
	}
	// An artifact of another kind: refused, saying what it has.
	other := content.NewDescriptorFromBytes("application/octet-stream", []byte("not wasm"))
	if err := pushBlob(ctx, c.repository(ref), other, []byte("not wasm")); err != nil {
		t.Fatal(err)
	}
	cfgDesc := content.NewDescriptorFromBytes(ConfigMediaType, []byte("{}"))
	if err := pushBlob(ctx, c.repository(ref), cfgDesc, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	manifest, _ := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: cfgDesc, Layers: []ocispec.Descriptor{other}})
	mdesc := content.NewDescriptorFromBytes(ocispec.MediaTypeImageManifest, manifest)
	if err := c.repository(ref).PushReference(ctx, mdesc, bytes.NewReader(manifest), "other"); err != nil {
		t.Fatal(err)
	}
	oref, _ := ParseReference(reg.Addr + "/stub:other")
	if d, err := c.Resolve(ctx, oref); err != nil || d != mdesc.Digest.String() {
		t.Fatalf("resolve the other artifact: %s %v", d, err)
	} else if _, err := c.Pull(ctx, oref, d, store); err == nil || !strings.Contains(err.Error(), "a component has one layer of media type application/wasm, this manifest has 1: [application/octet-stream]") {
		t.Fatalf("pull of another kind of artifact: %v", err)
	}
	// A digest the repository does not have.
	if _, err := c.Pull(ctx, ref, "sha256:"+strings.Repeat("0", 64), store); err == nil {
		t.Fatal("pull of an unknown manifest succeeded")
	}
}

func logger() (*slog.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	return slog.New(slog.NewTextHandler(&buf, nil)), &buf
}

// TestResolver: a first resolution locks, a later one checks the registry against the
// lock (a moved tag is refused, naming both digests), uses the lock with a warning when
// the registry is down, and re-resolves on update; --locked refuses what the lock lacks.
func TestResolver(t *testing.T) {
	reg := harness.StartRegistry(t)
	ctx := context.Background()
	c := NewClient(nil)
	refText := reg.Addr + "/stub:v1"
	ref, _ := ParseReference(refText)
	v1, err := c.Push(ctx, ref, witOnly(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	store, _ := wasmstore.Open(t.TempDir())
	log, logs := logger()
	r := &Resolver{Client: c, Store: store, Logger: log}
	locs := []Location{{Component: "a", Reference: refText}, {Component: "b", Reference: refText}}
	lock := &Lock{}
	res, err := r.Resolve(ctx, locs, lock, nil)
	if err != nil || len(res) != 2 || res[0].Artifact != v1 || res[1].Artifact != v1 {
		t.Fatalf("Resolve = %+v, %v", res, err)
	}
	if p, _ := store.Path(v1.WasmDigest); res[0].Path != p {
		t.Fatalf("path %s, want %s", res[0].Path, p)
	}
	if e, ok := lock.Get(refText); !ok || e.ManifestDigest != v1.ManifestDigest || e.WasmDigest != v1.WasmDigest {
		t.Fatalf("lock: %+v", lock.Entries())
	}

	// --locked: a reference the lock lacks is refused before anything is asked.
	other := Location{Component: "c", Reference: reg.Addr + "/other:v1"}
	_, err = (&Resolver{Client: c, Store: store, Logger: log, Locked: true}).Resolve(ctx, []Location{locs[0], other}, lock.Clone(), nil)
	var notLocked *NotLockedError
	if !errors.As(err, &notLocked) || notLocked.Component != "c" || !strings.Contains(err.Error(), "not in obelisk.lock") {
		t.Fatalf("--locked: %v", err)
	}

	// The registry down: the lock and the store suffice, with a warning.
	reg.Stop()
	if res, err := r.Resolve(ctx, locs[:1], lock, nil); err != nil || res[0].Artifact != v1 {
		t.Fatalf("registry down: %+v %v", res, err)
	}
	if !strings.Contains(logs.String(), "using the locked digest") {
		t.Fatalf("no warning: %s", logs)
	}
	// ... but not without the wasm.
	empty, _ := wasmstore.Open(t.TempDir())
	if _, err := (&Resolver{Client: c, Store: empty, Logger: log}).Resolve(ctx, locs[:1], lock, nil); err == nil || !strings.Contains(err.Error(), "not in the component store") {
		t.Fatalf("registry down, nothing stored: %v", err)
	}
	reg.Start()

	// The tag moved: refused, naming the component and both digests; the lock is kept.
	v2, err := c.Push(ctx, ref, witOnly(t, "2"))
	if err != nil {
		t.Fatal(err)
	}
	before := lock.Clone()
	_, err = r.Resolve(ctx, locs, lock, nil)
	var mismatch *MismatchError
	if !errors.As(err, &mismatch) || mismatch.Component != "a" || mismatch.Locked != v1.ManifestDigest || mismatch.Served != v2.ManifestDigest ||
		!strings.Contains(err.Error(), v1.ManifestDigest) || !strings.Contains(err.Error(), v2.ManifestDigest) {
		t.Fatalf("moved tag: %v", err)
	}
	if !lock.Equal(before) {
		t.Fatalf("the lock changed: %v", lock.Entries())
	}
	// An update of one component accepts the new digest (for its reference).
	res, err = r.Resolve(ctx, locs, lock, func(l Location) bool { return l.Component == "b" })
	if err != nil || res[0].Artifact != v2 || res[1].Artifact != v2 {
		t.Fatalf("update: %+v %v", res, err)
	}
	if e, _ := lock.Get(refText); e.ManifestDigest != v2.ManifestDigest {
		t.Fatalf("lock after update: %+v", e)
	}
	// The locked content, no longer cached, is pulled again by digest.
	fresh, _ := wasmstore.Open(t.TempDir())
	if res, err := (&Resolver{Client: c, Store: fresh, Logger: log}).Resolve(ctx, locs[:1], lock, nil); err != nil || res[0].Artifact != v2 || !fresh.Has(v2.WasmDigest) {
		t.Fatalf("pull the locked digest: %+v %v", res, err)
	}
	// A digest reference: locked as it is, never asked again once stored.
	dtext := reg.Addr + "/stub@" + v1.ManifestDigest
	dlocs := []Location{{Component: "d", Reference: dtext}}
	if res, err := r.Resolve(ctx, dlocs, lock, nil); err != nil || res[0].Artifact != v1 {
		t.Fatalf("digest reference: %+v %v", res, err)
	}
	reg.Stop()
	if res, err := (&Resolver{Client: c, Store: store, Logger: log, Locked: true}).Resolve(ctx, dlocs, lock, nil); err != nil || res[0].Artifact != v1 {
		t.Fatalf("digest reference, registry down: %+v %v", res, err)
	}
}
