package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	"github.com/obelisk-go/obelisk/api"
	"github.com/obelisk-go/obelisk/cmd/obelisk/internal/config"
	"github.com/obelisk-go/obelisk/oci"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
	"github.com/obelisk-go/obelisk/wasmhost/wit"
	"github.com/obelisk-go/obelisk/wasmstore"
)

// localLookup finds what `obelisk component inspect|wit` show: a file, a component ID
// (the running server's, else the local component store's), an OCI reference (the
// registry's, else a locked and stored one), or a deployed component's name.
type localLookup struct {
	client     *clientOpts
	configPath string
	dataDir    string
	plainHTTP  bool
}

const localLong = `TARGET is one of:
  - a .wasm file (no server needed);
  - a component ID (<type>:<name>:sha256:<hex>, or sha256:<hex>): asked of the server
    at --api-url, else read from the component store of the data directory (--data-dir,
    or the data_dir of --config), which keeps every version executions were pinned to
    and every OCI pull;
  - an OCI reference (REGISTRY/REPOSITORY:TAG or @sha256:...): read from the registry
    (the wasm from the component store if it holds it); when the registry cannot be
    asked, the digest the lock of --config pins, if the store holds its wasm;
  - the name of a deployed component (asked of the server).
A file, a stored version or an OCI artifact has no type or name: its component ID is
its content digest (sha256:...), the end of the ID of any deployment of it.`

func (l *localLookup) flags(cmd *cobra.Command) {
	l.client.connectionFlags(cmd.Flags(), "API address, for component IDs and names (env OBELISK_API_URL)")
	cmd.Flags().BoolVar(&l.client.json, "json", false, "print one machine-readable JSON document")
	cmd.Flags().StringVarP(&l.configPath, "config", "c", "", "obelisk.toml: its data_dir, oci.plain_http and lock")
	cmd.Flags().StringVar(&l.dataDir, "data-dir", "", "the data directory whose component store is read (default: that of the config)")
	cmd.Flags().BoolVar(&l.plainHTTP, "plain-http", false, "reach the OCI registry over plain HTTP (loopback registries always are)")
}

func (l *localLookup) lookup(cmd *cobra.Command, target string) (*componentView, error) {
	if fi, err := os.Stat(target); err == nil && !fi.IsDir() {
		wasm, err := os.ReadFile(target)
		if err != nil {
			return nil, usage(err)
		}
		return describeWasm(wasm, target, "", "", "", "file")
	}
	if strings.HasPrefix(target, "sha256:") || strings.Contains(target, ":sha256:") {
		return l.byID(cmd, target)
	}
	ref, refErr := oci.ParseReference(target)
	if refErr == nil {
		return l.byReference(cmd, ref)
	}
	if strings.HasSuffix(target, ".wasm") || strings.ContainsAny(target, `/\`) {
		return nil, usage(fmt.Errorf("%s: no such file, and not an OCI reference: %v", target, refErr))
	}
	return serverLookup(l.client)(cmd, target)
}

// describeWasm describes a component file (what names it in errors); its ID is its
// content digest unless id is given.
func describeWasm(wasm []byte, what, id, name, typ, source string) (*componentView, error) {
	files, err := wit.ExtractFromWasm(wasm)
	if err != nil {
		return nil, &ExitError{Code: 1, Err: fmt.Errorf("%s: %w", what, err)}
	}
	if id == "" {
		id = wasmstore.Digest(wasm)
	}
	c, err := api.WasmDetail(id, name, typ, files)
	if err != nil {
		return nil, &ExitError{Code: 1, Err: fmt.Errorf("%s: %w", what, err)}
	}
	return &componentView{GetComponentResponse: c, Source: source}, nil
}

// config loads the config the flags name (the embedded defaults without --config).
func (l *localLookup) config() (*config.Server, error) {
	cfg, err := config.Load(l.configPath)
	if err != nil {
		return nil, usage(err)
	}
	if l.dataDir != "" {
		cfg.Engine.DataDir = l.dataDir
	}
	return cfg, nil
}

// store opens the component store of the data directory if there is one: inspecting
// creates no data directory.
func (l *localLookup) store(cfg *config.Server) *wasmstore.Store {
	dir := filepath.Join(cfg.Engine.DataDir, wasmstore.DirName)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil
	}
	s, err := wasmstore.Open(dir)
	if err != nil {
		return nil
	}
	return s
}

// byID asks the server for a deployed component's ID; when no server answers, or it
// does not deploy that ID (any more), the component store has every version the
// engine stored.
func (l *localLookup) byID(cmd *cobra.Command, id string) (*componentView, error) {
	var serverErr error
	if !strings.HasPrefix(id, "sha256:") { // the server knows full IDs only
		resp, err := l.client.components().GetComponent(cmd.Context(), connect.NewRequest(&pb.GetComponentRequest{Component: id}))
		if err == nil {
			return &componentView{GetComponentResponse: resp.Msg, Source: "server"}, nil
		}
		if code := connect.CodeOf(err); code != connect.CodeUnavailable && code != connect.CodeNotFound && code != connect.CodeUnknown {
			return nil, apiErr(err)
		}
		serverErr = err
	}
	digest := "sha256:" + id[strings.LastIndex(id, "sha256:")+len("sha256:"):]
	if _, err := wasmstore.ParseDigest(digest); err != nil {
		return nil, usage(fmt.Errorf("component ID %q: %w", id, err))
	}
	cfg, err := l.config()
	if err != nil {
		return nil, err
	}
	notFound := func(why string) error {
		if serverErr != nil {
			why = fmt.Sprintf("the server at %s: %v; %s", l.client.apiURL, connectMessage(serverErr), why)
		}
		return usage(fmt.Errorf("component %s not found: %s", id, why))
	}
	store := l.store(cfg)
	if store == nil {
		return nil, notFound(fmt.Sprintf("no component store in %s", cfg.Engine.DataDir))
	}
	wasm, err := store.Get(digest)
	if errors.Is(err, wasmstore.ErrNotFound) {
		return nil, notFound(fmt.Sprintf("not in the component store %s", store.Dir()))
	}
	if err != nil {
		return nil, &ExitError{Code: 1, Err: err}
	}
	var typ, name string
	if parts := strings.SplitN(id, ":", 3); len(parts) == 3 && !strings.HasPrefix(id, "sha256:") {
		typ, name = parts[0], parts[1]
	}
	return describeWasm(wasm, id, id, name, typ, "store")
}

func connectMessage(err error) string {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce.Message()
	}
	return err.Error()
}

// byReference reads an OCI artifact: from the registry (the wasm from the store if it
// holds it), else, when the registry cannot be asked, the locked digest's stored wasm.
func (l *localLookup) byReference(cmd *cobra.Command, ref oci.Reference) (*componentView, error) {
	cfg, err := l.config()
	if err != nil {
		return nil, err
	}
	store := l.store(cfg)
	client := oci.NewClient(append(cfg.OCIPlainHTTP, plainHTTPFor(ref, l.plainHTTP)...))
	digest, err := client.Resolve(cmd.Context(), ref)
	if err == nil {
		var wasm []byte
		var a oci.Artifact
		if wasm, a, err = client.Fetch(cmd.Context(), ref, digest, store); err == nil {
			c, err := describeWasm(wasm, ref.String(), "", "", "", "oci")
			if err != nil {
				return nil, err
			}
			c.Reference, c.Digest = ref.String(), a.ManifestDigest
			return c, nil
		}
	}
	if l.configPath == "" || store == nil {
		return nil, &ExitError{Code: 1, Err: fmt.Errorf("%w (with --config, a reference its lock pins is read from the component store)", err)}
	}
	lock, lerr := oci.ReadLock(oci.LockPath(l.configPath))
	if lerr != nil {
		return nil, &ExitError{Code: 1, Err: fmt.Errorf("%w; and %w", err, lerr)}
	}
	entry, ok := lock.Get(ref.String())
	if !ok || !store.Has(entry.WasmDigest) {
		return nil, &ExitError{Code: 1, Err: fmt.Errorf("%w; and %s pins no stored version of %s", err, oci.LockPath(l.configPath), ref)}
	}
	wasm, gerr := store.Get(entry.WasmDigest)
	if gerr != nil {
		return nil, &ExitError{Code: 1, Err: gerr}
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "warning: %v: showing %s as %s locks it (manifest %s), from the component store\n", err, ref, oci.LockPath(l.configPath), entry.ManifestDigest)
	c, err := describeWasm(wasm, ref.String(), "", "", "", "store")
	if err != nil {
		return nil, err
	}
	c.Reference, c.Digest = ref.String(), entry.ManifestDigest
	return c, nil
}
