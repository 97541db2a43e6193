package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/obelisk-go/obelisk/actors"
	"github.com/obelisk-go/obelisk/cmd/obelisk/internal/config"
	"github.com/obelisk-go/obelisk/crashsim"
	"github.com/obelisk-go/obelisk/internal/clip"
)

func testCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "test", Short: "Check your workflows with the engine, in-process"}
	cmd.AddCommand(crashSimCmd())
	return cmd
}

const crashSimLong = `Runs FFQN(PARAMS) in-process, with the components of the config file, on a scratch
store in memory (the config's data_dir is not touched; its compilation cache is used):
first twice without a crash, for the reference result and history (the two runs must
agree, or the outcome depends on something else than crashes); then once per store
commit (transaction) k = 1..N of the reference run, from scratch, crashing the engine
right after its k-th commit (every later commit is refused, so the engine stops as a
crash stops it, with nothing more written), restarting it on what the store had synced
(the dead engine's locks are released at once, as at a server's restart) and letting
the execution finish. Each run must reach the same result and the same history as the
crash-free run.

History, compared per execution of the tree (the execution and its descendants):
its function and parameters, its workflow history events in order (join sets created,
child requests with their IDs, functions and parameters, delay requests with their IDs
and requests, join_next waits, schedules by function, parameters and request, stubs,
persist events by kind), and its result. Not compared, since they legitimately differ
from run to run or after a crash: times, values drawn at random (persisted random values,
the IDs of scheduled executions), and the lock and attempt bookkeeping (locked, unlocked,
temporarily failed or timed out).

Durable delays (sleeps, delays in join sets) are shortened to --max-delay (default 10ms;
0 keeps them), so that the N+2 runs of a workflow that sleeps take seconds: only the time a
delay expires changes, the recorded request is the workflow's. Activities run for real,
as often as each run needs: a sleeping activity sleeps, an HTTP activity calls out.
Triggers of the config are not started.

One line per crash point: k, what commit k wrote (each execution it changed and its new
status), ok or how the run differed; then a summary. Exit status: 0 if every crash point
matched, 1 if any differed (the summary names the first) or the crash-free run failed,
2 on bad input (unknown function, parameters that do not type-check, a bad config).`

func crashSimCmd() *cobra.Command {
	var configPath string
	var asJSON, verbose bool
	var maxDelay, timeout time.Duration
	cmd := &cobra.Command{
		Use:   "crash-sim --config FILE FFQN PARAMS",
		Short: "Prove a workflow crash-safe: crash the engine at every commit and compare the outcome",
		Long:  crashSimLong,
		Example: `  obelisk test crash-sim --config obelisk.toml testing:fibo-workflow/workflow.fiboa '[10, 2]'
  obelisk test crash-sim --config obelisk.toml --json my:pkg/ifc.fn '["x"]'`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return &ExitError{Code: 2, Err: fmt.Errorf("want FFQN and PARAMS (a JSON array), got %d arguments", len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if configPath == "" {
				return &ExitError{Code: 2, Err: errors.New("--config is required: the components to run")}
			}
			if maxDelay < 0 || timeout <= 0 {
				return &ExitError{Code: 2, Err: fmt.Errorf("--max-delay must not be negative and --timeout must be positive, got %s and %s", maxDelay, timeout)}
			}
			if !json.Valid([]byte(args[1])) {
				return &ExitError{Code: 2, Err: fmt.Errorf("PARAMS %s is not JSON (want an array of the parameters)", clip.Quote(args[1]))}
			}
			level := slog.Level(slog.LevelError + 4) // the crashes log errors by design
			if verbose {
				level = slog.LevelDebug
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			cfg, err := config.Load(configPath)
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			if _, err := pullOCIComponents(cmd.Context(), log, cfg, configPath, false); err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			engine := crashSimEngine(cfg.Engine, log)
			out := cmd.OutOrStdout()
			progress := func(r *crashsim.Report, p *crashsim.Point) {
				if !asJSON {
					printCrashSimLine(out, r, p)
				}
			}
			rep, err := crashsim.Run(cmd.Context(), crashsim.Options{
				Engine: engine, FFQN: args[0], Params: json.RawMessage(args[1]),
				MaxDelay: maxDelay, Timeout: timeout, Progress: progress,
			})
			var bad *crashsim.BadInputError
			if errors.As(err, &bad) {
				return &ExitError{Code: 2, Err: err}
			}
			if err != nil {
				return &ExitError{Code: 1, Err: err}
			}
			if asJSON {
				if err := writeJSON(out, rep); err != nil {
					return err
				}
			} else {
				printCrashSimSummary(out, rep)
			}
			if !rep.OK {
				return &ExitError{Code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&configPath, "config", "c", "", "path of obelisk.toml: the components to run")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as one JSON document")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "log the engines at debug level")
	cmd.Flags().DurationVar(&maxDelay, "max-delay", 10*time.Millisecond, "shorten every durable delay of the workflows to at most this (0: as requested)")
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "how long each run may take to finish the execution's tree")
	return cmd
}

// crashSimEngine is the engine configuration of the simulation's runs: the config's,
// with its compilation cache, without triggers and schedules (they would submit
// executions of their own, at times of their own), retention, result caches (whose
// sweeps are commits) or metrics.
func crashSimEngine(cfg actors.Config, log *slog.Logger) actors.Config {
	if cfg.CacheDir == "" {
		cfg.CacheDir = filepath.Join(cfg.DataDir, "wasm-cache")
	}
	cfg.Components = slices.DeleteFunc(slices.Clone(cfg.Components), func(c actors.ComponentConfig) bool { return c.Type == actors.Trigger })
	cfg.Schedules = nil
	cfg.RetentionFinishedAfter = 0
	for i := range cfg.Components {
		cfg.Components[i].RetentionFinishedAfter, cfg.Components[i].CacheTTL = 0, 0
	}
	cfg.Metrics = nil
	cfg.Logger = log
	return cfg
}

func printCrashSimLine(w io.Writer, r *crashsim.Report, p *crashsim.Point) {
	if p == nil {
		fmt.Fprintf(w, "crash-free run: %d commits, %d executions, result %s\n", r.Commits, len(r.Executions), r.Result)
		return
	}
	verdict := "ok"
	if !p.OK {
		verdict = "DIFFERS: " + p.Difference
	}
	if !p.Crashed {
		fmt.Fprintf(w, "no crash at commit %d/%d (this run finished in %d commits): %s\n", p.K, r.Commits, p.K-1, verdict)
		return
	}
	fmt.Fprintf(w, "crash after commit %d/%d [%s]: %s\n", p.K, r.Commits, p.Commit, verdict)
}

func printCrashSimSummary(w io.Writer, r *crashsim.Report) {
	if r.OK {
		fmt.Fprintf(w, "ok: %d crash points, every one reached the crash-free result and history\n", len(r.Points))
		return
	}
	differed := 0
	for _, p := range r.Points {
		if !p.OK {
			differed++
		}
	}
	first := r.Points[r.FirstDifference-1]
	fmt.Fprintf(w, "FAILED: %d of %d crash points differed; the first: crash after commit %d [%s]: %s\n",
		differed, len(r.Points), first.K, first.Commit, first.Difference)
}
