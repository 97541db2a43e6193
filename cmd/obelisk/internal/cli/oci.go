package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"github.com/spf13/cobra"

	"github.com/obelisk-go/obelisk/cmd/obelisk/internal/config"
	"github.com/obelisk-go/obelisk/oci"
	"github.com/obelisk-go/obelisk/wasmstore"
)

// pullOCIComponents resolves the config's OCI locations against its lock (resolving,
// pulling into the component store and locking what the lock lacks, unless locked) and
// points their components at the store's files. It returns what writes the lock, to
// be called once the engine has started on them: a deployment that does not start
// locks nothing new.
func pullOCIComponents(ctx context.Context, log *slog.Logger, cfg *config.Server, configPath string, locked bool) (writeLock func() error, err error) {
	nothing := func() error { return nil }
	if configPath == "" {
		return nothing, nil
	}
	lockPath := oci.LockPath(configPath)
	lock, err := oci.ReadLock(lockPath)
	if err != nil {
		return nil, err
	}
	read := lock.Clone()
	if len(cfg.OCI) > 0 {
		store, err := wasmstore.Open(filepath.Join(cfg.Engine.DataDir, wasmstore.DirName))
		if err != nil {
			return nil, err
		}
		r := &oci.Resolver{Client: oci.NewClient(cfg.OCIPlainHTTP), Store: store, Logger: log, Locked: locked}
		resolved, err := r.Resolve(ctx, cfg.OCI, lock, nil)
		if err != nil {
			return nil, err
		}
		setOCIPaths(cfg, resolved)
	}
	lock.Retain(references(cfg.OCI))
	if locked || lock.Equal(read) {
		return nothing, nil
	}
	return func() error {
		if err := lock.Write(lockPath, filepath.Base(configPath)); err != nil {
			return err
		}
		log.Info("oci: wrote the lock file", "path", lockPath, "references", len(lock.Entries()))
		return nil
	}, nil
}

func references(locs []oci.Location) []string {
	var out []string
	for _, l := range locs {
		out = append(out, l.Reference)
	}
	return out
}

// setOCIPaths points each OCI component at its wasm in the component store.
func setOCIPaths(cfg *config.Server, resolved []oci.Resolved) {
	for _, r := range resolved {
		for i := range cfg.Engine.Components {
			if cfg.Engine.Components[i].Name == r.Component {
				cfg.Engine.Components[i].Path = r.Path
			}
		}
	}
}

func componentPushCmd() *cobra.Command {
	var plainHTTP bool
	cmd := &cobra.Command{
		Use:   "push FILE.wasm REGISTRY/REPOSITORY:TAG",
		Short: "Publish a component (its WIT embedded) to an OCI registry; prints the manifest digest",
		Long: `Publish a component file to an OCI registry as a WebAssembly OCI artifact: an OCI
image manifest whose config is application/vnd.wasm.config.v0+json and whose one
layer, application/wasm, is the file. The file must carry its WIT (obelisk component
embed-wit); a WIT-only file (embed-wit without IN.wasm) can be pushed, e.g. for an
activity stub. Prints the manifest digest (sha256:...), what obelisk.lock pins.

Loopback registries (localhost, 127.0.0.1, [::1]) are reached over plain HTTP, others
over HTTPS unless --plain-http. Credentials, if the registry asks, come from Docker's
config file ($DOCKER_CONFIG/config.json or ~/.docker/config.json).`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := oci.ParseReference(args[1])
			if err != nil {
				return usage(err)
			}
			wasm, err := os.ReadFile(args[0])
			if err != nil {
				return usage(err)
			}
			a, err := oci.NewClient(plainHTTPFor(ref, plainHTTP)).Push(cmd.Context(), ref, wasm)
			if err != nil {
				return &ExitError{Code: 1, Err: fmt.Errorf("%s: %w", args[0], err)}
			}
			fmt.Fprintln(cmd.OutOrStdout(), a.ManifestDigest)
			return nil
		},
	}
	cmd.Flags().BoolVar(&plainHTTP, "plain-http", false, "reach the registry over plain HTTP (loopback registries always are)")
	return cmd
}

// plainHTTPFor is the client's plain-HTTP list for --plain-http.
func plainHTTPFor(ref oci.Reference, plainHTTP bool) []string {
	if plainHTTP {
		return []string{ref.Registry()}
	}
	return nil
}

func componentUpdateCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "update [NAME]",
		Short: "Re-resolve the OCI locations of a config (all, or one component's) and rewrite its lock",
		Long: `Resolve the location.oci of every component of the config (or of the component
NAME only) again, whatever obelisk.lock says, pull what the component store lacks, and
rewrite the lock with the digests they name now: how a tag that moved is accepted.
Prints one line per component: its name, its reference, the manifest digest, and the
one it replaced if it changed. The lock is beside the config (obelisk.toml:
obelisk.lock); the store is <data_dir>/components.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := config.Load(configPath)
			if err != nil {
				return usage(err)
			}
			if len(cfg.OCI) == 0 {
				return usage(fmt.Errorf("%s has no component with a location.oci: nothing to update", configPath))
			}
			if len(args) == 1 && !slices.ContainsFunc(cfg.OCI, func(l oci.Location) bool { return l.Component == args[0] }) {
				var names []string
				for _, l := range cfg.OCI {
					names = append(names, l.Component)
				}
				return usage(fmt.Errorf("%s has no component %q with a location.oci (those it has: %v)", configPath, args[0], names))
			}
			lockPath := oci.LockPath(configPath)
			lock, err := oci.ReadLock(lockPath)
			if err != nil {
				return usage(err)
			}
			before := lock.Clone()
			store, err := wasmstore.Open(filepath.Join(cfg.Engine.DataDir, wasmstore.DirName))
			if err != nil {
				return &ExitError{Code: 1, Err: err}
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
			r := &oci.Resolver{Client: oci.NewClient(cfg.OCIPlainHTTP), Store: store, Logger: log}
			// Only the component named is resolved: another one's registry being down or
			// its tag having moved is not this update's business.
			locs := slices.DeleteFunc(slices.Clone(cfg.OCI), func(l oci.Location) bool { return len(args) == 1 && l.Component != args[0] })
			resolved, err := r.Resolve(cmd.Context(), locs, lock, func(oci.Location) bool { return true })
			if err != nil {
				return &ExitError{Code: 1, Err: err}
			}
			lock.Retain(references(cfg.OCI))
			if err := lock.Write(lockPath, filepath.Base(configPath)); err != nil {
				return &ExitError{Code: 1, Err: err}
			}
			w := cmd.OutOrStdout()
			for _, r := range resolved {
				line := fmt.Sprintf("%s %s %s", r.Component, r.Reference, r.ManifestDigest)
				if old, ok := before.Get(r.Reference); ok && old.ManifestDigest != r.ManifestDigest {
					line += " (was " + old.ManifestDigest + ")"
				}
				fmt.Fprintln(w, line)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&configPath, "config", "c", "obelisk.toml", "path of obelisk.toml")
	return cmd
}
