// Package oci pulls and pushes components from OCI registries.
//
// A component is published as the WebAssembly OCI artifact the ecosystem uses (wkg,
// Spin, wasmCloud): an OCI image manifest whose config has the media type
// application/vnd.wasm.config.v0+json and whose one layer, application/wasm, is the
// .wasm file itself, WIT embedded. A pull puts that file into the component store
// (wasmstore), named by its own digest, so that the engine loads it as any local file.
//
// obelisk.lock pins each location.oci of a config to the manifest digest it first
// resolved to (Lock); Resolver resolves a config's locations against it at server start
// and for `obelisk component update`.
package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
	"oras.land/oras-go/v2/registry/remote/retry"

	"github.com/obelisk-go/obelisk/wasmhost/wit"
	"github.com/obelisk-go/obelisk/wasmstore"
)

// Media types of a component as an OCI artifact (docs: README, "OCI registries and
// obelisk.lock").
const (
	// ConfigMediaType is the manifest's config: a JSON document {"created",
	// "architecture": "wasm", "os": "wasip1", "layerDigests"}.
	ConfigMediaType = "application/vnd.wasm.config.v0+json"
	// LayerMediaType is the manifest's one layer: the .wasm file.
	LayerMediaType = "application/wasm"
)

// MaxWasmSize bounds a pulled component: a manifest announcing a larger layer is refused
// before anything is downloaded.
const MaxWasmSize = 1 << 30

// ResolveTimeout bounds asking a registry which manifest a tag names: a registry that
// does not answer by then counts as unreachable.
const ResolveTimeout = 15 * time.Second

// PullTimeout bounds a pull (the manifest and the layer): a registry that stalls fails
// the start rather than holding it forever.
const PullTimeout = 10 * time.Minute

// maxManifestSize bounds a manifest (a component's is a few hundred bytes).
const maxManifestSize = 4 << 20

// Artifact is a component in a registry: the manifest a reference resolved to and the
// digest of its wasm layer, which is the component's content digest (its name in the
// store, the end of its component ID).
type Artifact struct {
	ManifestDigest string `json:"manifest_digest"`
	WasmDigest     string `json:"wasm_digest"`
}

// wasmConfig is the config blob of the artifact layout.
type wasmConfig struct {
	Created      string   `json:"created"`
	Architecture string   `json:"architecture"`
	OS           string   `json:"os"`
	LayerDigests []string `json:"layerDigests"`
}

// Client talks to OCI registries. Credentials, when a registry asks for them, are those
// Docker's config file holds ($DOCKER_CONFIG/config.json or ~/.docker/config.json, as
// `docker login` or `oras login` write it); without them access is anonymous.
type Client struct {
	plainHTTP []string
	http      *auth.Client
}

// NewClient returns a client that reaches the registries of plainHTTP (host or
// host:port, as references write them) over plain HTTP instead of HTTPS. Loopback
// registries (localhost, 127.0.0.0/8, ::1) always are.
func NewClient(plainHTTP []string) *Client {
	c := &Client{plainHTTP: slices.Clone(plainHTTP)}
	c.http = &auth.Client{
		Client:     retry.DefaultClient,
		Cache:      auth.NewCache(),
		Header:     http.Header{"User-Agent": {"obelisk"}},
		Credential: dockerCredential,
	}
	return c
}

// dockerCredential reads Docker's config file when a registry asks for credentials,
// which an anonymous registry never does.
func dockerCredential(ctx context.Context, hostport string) (auth.Credential, error) {
	store, err := credentials.NewStoreFromDocker(credentials.StoreOptions{})
	if err != nil {
		return auth.EmptyCredential, fmt.Errorf("read registry credentials from Docker's config file: %w", err)
	}
	return credentials.Credential(store)(ctx, hostport)
}

func (c *Client) repository(ref Reference) *remote.Repository {
	return &remote.Repository{
		Client:    c.http,
		Reference: ref.parsed,
		PlainHTTP: isLoopback(ref.Registry()) || slices.Contains(c.plainHTTP, ref.Registry()),
	}
}

// Resolve returns the manifest digest ref names: its digest, or what the registry says
// its tag points to now.
func (c *Client) Resolve(ctx context.Context, ref Reference) (string, error) {
	if ref.digest != "" {
		return ref.digest, nil
	}
	ctx, cancel := context.WithTimeout(ctx, ResolveTimeout)
	defer cancel()
	desc, err := c.repository(ref).Resolve(ctx, ref.tag)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", ref, err)
	}
	d := desc.Digest.String()
	if _, err := wasmstore.ParseDigest(d); err != nil {
		return "", fmt.Errorf("resolve %s: the registry answered manifest %s: %w", ref, d, err)
	}
	return d, nil
}

// Pull makes sure store holds the wasm of the manifest manifestDigest of ref's
// repository, downloading it unless the store already does, and returns the artifact.
func (c *Client) Pull(ctx context.Context, ref Reference, manifestDigest string, store *wasmstore.Store) (Artifact, error) {
	wasm, a, err := c.Fetch(ctx, ref, manifestDigest, store)
	if err != nil {
		return Artifact{}, err
	}
	if _, err := store.Put(wasm); err != nil { // writes nothing if Fetch read it from store
		return Artifact{}, fmt.Errorf("pull %s: %w", ref, err)
	}
	return a, nil
}

// Fetch returns the wasm of the manifest manifestDigest of ref's repository: from store
// if it holds it intact (store may be nil), else downloaded (and not stored).
func (c *Client) Fetch(ctx context.Context, ref Reference, manifestDigest string, store *wasmstore.Store) ([]byte, Artifact, error) {
	ctx, cancel := context.WithTimeout(ctx, PullTimeout)
	defer cancel()
	repo := c.repository(ref)
	a, layer, err := c.manifest(ctx, repo, ref, manifestDigest)
	if err != nil {
		return nil, Artifact{}, err
	}
	if store != nil {
		// A file that is missing or corrupt (Get checks its digest) is downloaded again.
		if wasm, err := store.Get(a.WasmDigest); err == nil {
			return wasm, a, nil
		}
	}
	wasm, err := c.blob(ctx, repo, ref, layer)
	return wasm, a, err
}

// manifest fetches and checks the manifest manifestDigest: its bytes must have that
// digest, and it must have the artifact layout's one wasm layer.
func (c *Client) manifest(ctx context.Context, repo *remote.Repository, ref Reference, manifestDigest string) (Artifact, ocispec.Descriptor, error) {
	fail := func(format string, args ...any) (Artifact, ocispec.Descriptor, error) {
		return Artifact{}, ocispec.Descriptor{}, fmt.Errorf("pull %s: manifest %s: %s", ref, manifestDigest, fmt.Sprintf(format, args...))
	}
	if _, err := wasmstore.ParseDigest(manifestDigest); err != nil {
		return fail("%v", err)
	}
	desc, rc, err := repo.FetchReference(ctx, manifestDigest)
	if err != nil {
		return fail("%v", err)
	}
	defer rc.Close()
	if desc.Size > maxManifestSize {
		return fail("%d bytes, more than a component's manifest can be", desc.Size)
	}
	body, err := content.ReadAll(rc, desc)
	if err != nil {
		return fail("%v", err)
	}
	// What a lock pins: checked here, whatever the registry's headers said.
	if got := wasmstore.Digest(body); got != manifestDigest {
		return fail("the registry sent content whose digest is %s", got)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(body, &m); err != nil {
		return fail("not a JSON manifest: %v", err)
	}
	if m.Config.MediaType == "" {
		return fail("not an image manifest (media type %q; an image index?): push components with `obelisk component push`", m.MediaType)
	}
	var layers []ocispec.Descriptor
	for _, l := range m.Layers {
		if l.MediaType == LayerMediaType {
			layers = append(layers, l)
		}
	}
	if len(layers) != 1 || len(m.Layers) != 1 {
		var types []string
		for _, l := range m.Layers {
			types = append(types, l.MediaType)
		}
		return fail("a component has one layer of media type %s, this manifest has %d: %v (config %s)", LayerMediaType, len(m.Layers), types, m.Config.MediaType)
	}
	layer := layers[0]
	if _, err := wasmstore.ParseDigest(layer.Digest.String()); err != nil {
		return fail("layer: %v", err)
	}
	if layer.Size > MaxWasmSize || layer.Size < 0 {
		return fail("layer of %d bytes, over the %d bytes a component may have", layer.Size, MaxWasmSize)
	}
	return Artifact{ManifestDigest: manifestDigest, WasmDigest: layer.Digest.String()}, layer, nil
}

// blob downloads a layer, checked against its digest and size.
func (c *Client) blob(ctx context.Context, repo *remote.Repository, ref Reference, layer ocispec.Descriptor) ([]byte, error) {
	rc, err := repo.Fetch(ctx, layer)
	if err != nil {
		return nil, fmt.Errorf("pull %s: layer %s: %w", ref, layer.Digest, err)
	}
	defer rc.Close()
	wasm, err := content.ReadAll(rc, layer)
	if err != nil {
		return nil, fmt.Errorf("pull %s: layer %s: %w", ref, layer.Digest, err)
	}
	return wasm, nil
}

// Push publishes wasm, a component with its WIT embedded, under ref's tag and returns
// the artifact. A file carrying no WIT is refused: nothing could deploy it.
func (c *Client) Push(ctx context.Context, ref Reference, wasm []byte) (Artifact, error) {
	if ref.tag == "" || ref.digest != "" {
		return Artifact{}, fmt.Errorf("push to %s: give a tag and no digest (REGISTRY/REPOSITORY:TAG): the digest is what a push makes", ref)
	}
	files, err := wit.ExtractFromWasm(wasm)
	if errors.Is(err, wit.ErrNoSection) {
		return Artifact{}, fmt.Errorf("push to %s: the file carries no WIT (no %s custom section), so nothing could deploy it: embed its WIT folder with `obelisk component embed-wit WIT_DIR FILE.wasm`", ref, wit.SectionName)
	}
	if err != nil {
		return Artifact{}, fmt.Errorf("push to %s: %w", ref, err)
	}
	if _, err := wit.Parse(files); err != nil {
		return Artifact{}, fmt.Errorf("push to %s: its embedded WIT: %w", ref, err)
	}
	repo := c.repository(ref)
	layer := content.NewDescriptorFromBytes(LayerMediaType, wasm)
	cfgJSON, err := json.Marshal(wasmConfig{
		Created: time.Now().UTC().Format(time.RFC3339), Architecture: "wasm", OS: "wasip1",
		LayerDigests: []string{layer.Digest.String()},
	})
	if err != nil {
		return Artifact{}, fmt.Errorf("push to %s: %w", ref, err)
	}
	cfg := content.NewDescriptorFromBytes(ConfigMediaType, cfgJSON)
	for _, b := range []struct {
		desc ocispec.Descriptor
		data []byte
	}{{layer, wasm}, {cfg, cfgJSON}} {
		if err := pushBlob(ctx, repo, b.desc, b.data); err != nil {
			return Artifact{}, fmt.Errorf("push to %s: %w", ref, err)
		}
	}
	manifest, err := json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    cfg,
		Layers:    []ocispec.Descriptor{layer},
	})
	if err != nil {
		return Artifact{}, fmt.Errorf("push to %s: %w", ref, err)
	}
	mdesc := content.NewDescriptorFromBytes(ocispec.MediaTypeImageManifest, manifest)
	if err := repo.PushReference(ctx, mdesc, bytes.NewReader(manifest), ref.tag); err != nil {
		return Artifact{}, fmt.Errorf("push to %s: manifest: %w", ref, err)
	}
	return Artifact{ManifestDigest: mdesc.Digest.String(), WasmDigest: layer.Digest.String()}, nil
}

func pushBlob(ctx context.Context, repo *remote.Repository, desc ocispec.Descriptor, data []byte) error {
	ok, err := repo.Exists(ctx, desc)
	if err != nil {
		return fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	if ok {
		return nil
	}
	if err := repo.Push(ctx, desc, bytes.NewReader(data)); err != nil && !errors.Is(err, errdef.ErrAlreadyExists) {
		return fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	return nil
}
