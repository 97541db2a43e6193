package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/obelisk-go/obelisk/actors"
	"github.com/obelisk-go/obelisk/api"
	"github.com/obelisk-go/obelisk/cmd/obelisk/internal/config"
	"github.com/obelisk-go/obelisk/events"
	"github.com/obelisk-go/obelisk/metrics"
	"github.com/obelisk-go/obelisk/tracing"
	"github.com/obelisk-go/obelisk/webhook"
)

func serverCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "server", Short: "Run the engine, or check a stopped server's store"}
	var configPath string
	var verbose bool
	var pprofAddr string
	var locked bool
	run := &cobra.Command{
		Use:   "run",
		Short: "Run the engine and its API with the components of a config file",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			level := slog.LevelInfo
			if verbose {
				level = slog.LevelDebug
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			cfg, err := config.Load(configPath)
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			cfg.Engine.Logger = log
			ctx := cmd.Context()
			writeLock, err := pullOCIComponents(ctx, log, cfg, configPath, locked)
			if err != nil {
				return &ExitError{Code: 1, Err: err}
			}
			ln, err := net.Listen("tcp", cfg.ListeningAddr)
			if err != nil {
				return &ExitError{Code: 2, Err: fmt.Errorf("api.listening_addr: %w", err)}
			}
			if err := startWebUI(ctx, log, cmd.OutOrStdout(), cfg, ln.Addr()); err != nil {
				ln.Close()
				return err
			}
			if pprofAddr != "" {
				go servePprof(log, pprofAddr)
			}
			log.Info("starting engine", "data_dir", cfg.Engine.DataDir, "components", len(cfg.Engine.Components))
			cfg.Engine.Metrics = metrics.New() // served at /metrics on the API port
			if cfg.Tracing != nil {
				if cfg.Engine.Tracer, err = tracing.New(ctx, *cfg.Tracing); err != nil {
					ln.Close()
					return &ExitError{Code: 2, Err: err}
				}
				log.Info("tracing", "endpoint", cfg.Tracing.Endpoint, "sample_ratio", cfg.Tracing.SampleRatio)
				// Deferred before e.Close, so run after it: the spans of the executions
				// that finish while the engine stops are exported too.
				defer func() {
					sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
					defer cancel()
					if err := cfg.Engine.Tracer.Shutdown(sctx); err != nil {
						log.Warn("tracing: spans not exported", "err", err)
					}
				}()
			}
			var node *clusterNode
			if cfg.Cluster != nil {
				var leave func()
				node, leave, err = joinCluster(ctx, log, cfg)
				if err != nil {
					ln.Close()
					return &ExitError{Code: 1, Err: err}
				}
				defer leave() // after e.Close: the store's last commits go through it
			}
			e, err := actors.New(ctx, cfg.Engine)
			if err != nil {
				ln.Close()
				return &ExitError{Code: 1, Err: err}
			}
			defer e.Close(ctx)
			// Only now: compiling modules on a cold compilation cache holds far more live
			// heap than serving does, for a few seconds; a limit below it would have the
			// collector run without pause through it.
			setGoMemoryLimit(log, cfg.GoMemoryLimit)
			// Also only now: starting runs code (compiling, recovery) that serving does not.
			if n, err := releaseExecutablePages(); err != nil {
				log.Warn("executable's pages stay mapped", "err", err)
			} else if n <= 0 {
				log.Info("executable's pages stay resident: the kernel pages a file out only for its owner (or a process that may write it)")
			} else {
				log.Debug("executable's pages released", "bytes", n)
			}
			webhooks, err := webhook.Listen(cfg.Webhooks)
			if err != nil {
				ln.Close()
				return &ExitError{Code: 2, Err: err}
			}
			defer webhooks.Close() // before e.Close: stops and waits for the requests in flight
			if err := webhooks.Serve(e, log); err != nil {
				ln.Close()
				return &ExitError{Code: 2, Err: err} // the config names what the engine lacks
			}
			// Only a deployment that starts locks what it resolved.
			if err := writeLock(); err != nil {
				ln.Close()
				return &ExitError{Code: 1, Err: err}
			}
			for _, sc := range cfg.Webhooks.Servers {
				if addr, ok := webhooks.Addrs()[sc.Name]; ok {
					fmt.Fprintf(cmd.OutOrStdout(), "Serving webhooks (http_server %s) on %s://%s\n", sc.Name, scheme(sc.TLS), addr)
				}
			}
			warnIfOpen(log, "API", "api.listening_addr", ln.Addr(), cfg, cfg.APITLS != nil)
			log.Info("serving API", "addr", ln.Addr().String(), "tls", cfg.APITLS != nil, "auth_tokens", cfg.APITokens.Len())
			fmt.Fprintf(cmd.OutOrStdout(), "Serving API on %s://%s\n", scheme(cfg.APITLS), ln.Addr())
			// A failed engine (its store, or a supervised service that kept crashing)
			// stops the server: the API answers unavailable until it has shut down, then
			// the process exits non-zero saying why.
			serveCtx, stop := context.WithCancel(ctx)
			defer stop()
			go func() {
				select {
				case <-e.Failed():
					stop()
				case <-serveCtx.Done():
				}
			}()
			apiOpts := api.Options{
				MaxRequestBytes: cfg.MaxRequestBytes, AllowedHosts: cfg.APIAllowedHosts,
				Tokens: cfg.APITokens, MetricsAuth: cfg.MetricsAuth, TLS: cfg.APITLS,
			}
			if node != nil {
				heart, err := node.heartbeat(ctx, scheme(cfg.APITLS)+"://"+advertised(ln.Addr()))
				if err != nil {
					ln.Close()
					return &ExitError{Code: 1, Err: err}
				}
				// Before e.Close: the others see this node leave at once. Bounded: when the
				// whole cluster stops, the last nodes have no quorum left to delete with.
				defer func() {
					sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
					defer cancel()
					heart.Stop(sctx)
				}()
				apiOpts.Cluster = heart
			}
			serveErr := api.Serve(serveCtx, ln, e, apiOpts)
			if err := e.Err(); errors.Is(err, events.ErrFailed) {
				return &ExitError{Code: 1, Err: fmt.Errorf("stopped: %w; restart on a healthy disk (or after freeing space) to recover every acknowledged execution", err)}
			} else if err != nil {
				return &ExitError{Code: 1, Err: fmt.Errorf("stopped: %w; a restart recovers every acknowledged execution (please report the crash logged above)", err)}
			}
			if serveErr != nil {
				return &ExitError{Code: 1, Err: serveErr}
			}
			log.Info("shutting down")
			return nil
		},
	}
	run.Flags().StringVarP(&configPath, "config", "c", "", "path of obelisk.toml (default: no components, embedded defaults)")
	run.Flags().BoolVarP(&verbose, "verbose", "v", false, "log at debug level")
	run.Flags().StringVar(&pprofAddr, "pprof-addr", "", "serve Go's profiling endpoints (/debug/pprof/) on this address")
	run.Flags().BoolVar(&locked, "locked", false, "refuse a location.oci that obelisk.lock does not pin (and never write the lock)")
	cmd.AddCommand(run, verifyCmd("verify"))
	return cmd
}

// setGoMemoryLimit sets the Go runtime's soft memory limit (server.go_memory_limit; 0:
// none), unless the environment set one with GOMEMLIMIT: the runtime has read that
// already, and an operator who set it meant it.
//
// Under a limit it also lets the heap grow to three times what is live (GOGC 200, unless
// GOGC is set) instead of twice: the limit, not the percentage, then bounds the heap, and
// the room under it is used to collect half as often. In the 2,000 × fiboa(1,3)
// benchmark the heap's peak is the same as with GOGC 100 (the limit stops it first) and
// the server runs as many GC cycles as it did with no limit and twice the live heap.
func setGoMemoryLimit(log *slog.Logger, limit int64) {
	if env := os.Getenv("GOMEMLIMIT"); env != "" {
		log.Info("Go memory limit from GOMEMLIMIT; server.go_memory_limit ignored", "GOMEMLIMIT", env)
		return
	}
	if limit <= 0 {
		return
	}
	debug.SetMemoryLimit(limit)
	gcPercent := "GOGC"
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercentUnderLimit)
		gcPercent = strconv.Itoa(gcPercentUnderLimit)
	}
	log.Info("Go memory limit", "bytes", limit, "gc_percent", gcPercent)
}

// gcPercentUnderLimit is the GC percentage (GOGC) under a memory limit.
const gcPercentUnderLimit = 200

func servePprof(log *slog.Logger, addr string) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	log.Info("serving pprof", "addr", addr)
	if err := http.ListenAndServe(addr, mux); err != nil {
		log.Error("pprof", "err", err)
	}
}

// advertised is the API's address as other machines reach it: a listener on every
// interface (0.0.0.0, ::) is named by the host's name instead.
func advertised(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if name, err := os.Hostname(); err == nil && name != "" {
			return net.JoinHostPort(name, port)
		}
	}
	return addr.String()
}
