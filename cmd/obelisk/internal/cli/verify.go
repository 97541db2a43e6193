package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	"github.com/obelisk-go/obelisk/actors"
	"github.com/obelisk-go/obelisk/cmd/obelisk/internal/config"
	"github.com/obelisk-go/obelisk/events"
	"github.com/obelisk-go/obelisk/internal/clip"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
	"github.com/obelisk-go/obelisk/verify"
)

// verifyDoc is the --json document of `obelisk verify`, `server verify` and `client
// verify` (contract): the counts of verify.Report, and every failure.
type verifyDoc struct {
	// Store is the store's directory (offline) or the API's address (online).
	Store string `json:"store"`
	// Verified is the number of executions checked, Mismatches the failures found.
	Verified   int `json:"verified"`
	Mismatches int `json:"mismatches"`
	verify.Report
	Failures []verify.Failure `json:"failures"`
}

// failureLine is a failure's line of the text output: the execution and, briefly, what
// is wrong.
func failureLine(f verify.Failure) string {
	if f.Check == verify.CheckRefold && f.Field != "" {
		return fmt.Sprintf("%s: %s: stored %s, refolded %s", f.ExecutionID, f.Field, clip.String(f.Stored), clip.String(f.Refolded))
	}
	// The line begins with the execution: its error need not say it again.
	return f.ExecutionID + ": " + strings.TrimPrefix(f.Error, "execution "+f.ExecutionID+": ")
}

// summary is the text output's last lines.
func (d *verifyDoc) summary() string {
	replay := fmt.Sprintf("%d of %d workflow executions replayed", d.Replayed, d.Workflows)
	if n := d.Workflows - d.Replayed; d.ReplayAvailable && n > 0 {
		replay += fmt.Sprintf(" (%d finished on component versions no longer kept: not replayable)", n)
	}
	if !d.ReplayAvailable {
		replay = fmt.Sprintf("%d workflow executions not replayed (no replay here)", d.Workflows)
	}
	unchained := ""
	if n := d.EventsUnchained + d.ResponsesUnchained; n > 0 {
		unchained = fmt.Sprintf(", %d events and %d responses stored before hash chains (unchecked)", d.EventsUnchained, d.ResponsesUnchained)
	}
	return fmt.Sprintf("refolded %d executions; checked the links of %d events and %d responses%s; %s\nverified %d executions: %d mismatches\n",
		d.Executions, d.EventsLinked, d.ResponsesLinked, unchained, replay, d.Verified, d.Mismatches)
}

// write prints the document (--json) or its text, as the failures are already
// printed in text.
func (d *verifyDoc) write(w io.Writer, asJSON bool) error {
	d.Verified, d.Mismatches = d.Executions, d.Report.Failures
	if asJSON {
		return writeJSON(w, d)
	}
	_, err := io.WriteString(w, d.summary())
	return err
}

// exit is the exit status of a verification: 0 if everything checked, 1 if not.
func (d *verifyDoc) exit() error {
	if d.Mismatches > 0 {
		return &ExitError{Code: 1} // the output names every failure
	}
	return nil
}

const verifyLong = `Check a store, every execution in it, finished or not:
  - refold: the state the store keeps equals the fold of the execution's events and
    responses (the store's central invariant);
  - chain: every event and response carries the link of its hash chain (each link
    hashes the one before and the item's stored bytes), and the state the last links;
    the first broken link is named: the event's version, or the response's cursor.
    Items stored before the store had hash chains have no link: they are counted, not
    failed;
  - replay: every workflow execution replays against its pinned component, in a
    sandbox that writes nothing (the shadow replay of ` + "`client execution replay`" + `);
    a finished one whose component version is no longer kept (dropped once no
    unfinished execution needed it) is not replayable: counted, not failed.
A tree whose deletion by retention a crash interrupted is hidden, and skipped.

Prints one line per failure (the execution ID, then what is wrong), then the counts
and "verified N executions: M mismatches". --json prints one document {"store",
"verified", "mismatches", "executions", "events_linked", "responses_linked",
"events_unchained", "responses_unchained", "workflows", "workflows_replayed",
"replay_available", "failure_count", "failures": [{"execution_id", "check", "field",
"stored", "refolded", "log", "index", "error"}]} instead.
`

const verifyOfflineLong = verifyLong + `
The store is that of --data-dir, or of the data_dir of --config (as ` + "`server run --config`" + `
finds it), opened read-only: nothing is written to it; its server must be stopped (use
` + "`obelisk client verify`" + ` on a running server). Each workflow execution replays against the
exact component version it is pinned to: the file the server stored in
<data_dir>/components, as it recorded it in <data_dir>/component-versions.json, whether
or not --config is given (a config gives its [wasm] settings and its cache_dir, the
compilation cache, which is all this command may write). A version whose file is missing
fails the replay of each execution pinned to it, naming the file to copy back.

Exit status: 0 if everything checks, 1 if anything fails or if the store is in use (a
running server locks it: stop the server first), 2 if the store or the record of
component versions cannot be opened or read (a missing or damaged directory: nothing
could be checked).`

// verifyCmd is `obelisk verify` (top level) and `obelisk server verify`: the offline
// check of a stopped server's store.
func verifyCmd(use string) *cobra.Command {
	var configPath, dataDir string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   use,
		Short: "Check a stopped server's store: refolds, hash chains, replays",
		Long:  verifyOfflineLong,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(configPath)
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			if dataDir == "" {
				dataDir = cfg.Engine.DataDir
			}
			dir := actors.StoreDir(dataDir)
			ecfg := cfg.Engine // its wasm settings; the components are those the data directory recorded
			ecfg.DataDir = dataDir
			ecfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			eng, err := actors.OpenOffline(cmd.Context(), ecfg)
			if errors.Is(err, events.ErrLocked) {
				return &ExitError{Code: 1, Err: fmt.Errorf("the event store %s is in use, by a running server or another process: stop the server, then verify its store (or use `obelisk client verify`): %w", dir, err)}
			}
			if err != nil {
				return &ExitError{Code: 2, Err: fmt.Errorf("verify: %w", err)}
			}
			defer eng.Close(context.WithoutCancel(cmd.Context()))
			out := cmd.OutOrStdout()
			doc := verifyDoc{Store: dir, Failures: []verify.Failure{}}
			doc.Report, err = eng.Verify(cmd.Context(), func(f verify.Failure) error {
				if asJSON {
					doc.Failures = append(doc.Failures, f)
					return nil
				}
				_, err := io.WriteString(out, failureLine(f)+"\n")
				return err
			})
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			if err := doc.write(out, asJSON); err != nil {
				return err
			}
			return doc.exit()
		},
	}
	cmd.Flags().StringVarP(&configPath, "config", "c", "", "path of the server's obelisk.toml, for its data_dir and [wasm] settings (default: embedded defaults)")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "the server's data_dir (default: that of the config)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one machine-readable JSON document")
	return cmd
}

// clientVerifyCmd is `obelisk client verify`: the same check, by the running server on
// its live store.
func clientVerifyCmd(o *clientOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "verify",
		Short: "Have the running server check its store: refolds, hash chains, replays",
		Long: verifyLong + `
The server checks its store while it goes on running, each execution as of one moment
(consistent snapshots, a new one every 1000 executions); at most 1000 failures are listed (all are counted).

Exit status: 0 if everything checks, 1 if anything fails, 2 if the API cannot be
reached or the store cannot be read.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := o.executions().Verify(cmd.Context(), connect.NewRequest(&pb.VerifyRequest{}))
			if err != nil {
				return apiErr(err)
			}
			m := resp.Msg
			doc := verifyDoc{Store: o.apiURL, Failures: make([]verify.Failure, 0, len(m.Failures)), Report: verify.Report{
				Executions: int(m.Executions), EventsLinked: int(m.EventsLinked), ResponsesLinked: int(m.ResponsesLinked),
				EventsUnchained: int(m.EventsUnchained), ResponsesUnchained: int(m.ResponsesUnchained),
				Workflows: int(m.Workflows), Replayed: int(m.WorkflowsReplayed), ReplayAvailable: m.ReplayAvailable,
				Failures: int(m.FailureCount),
			}}
			out := cmd.OutOrStdout()
			for _, f := range m.Failures {
				vf := verify.Failure{ExecutionID: f.ExecutionId, Check: f.Check, Field: f.Field, Stored: f.Stored,
					Refolded: f.Refolded, Log: f.Log, Index: f.Index, Error: f.Error}
				doc.Failures = append(doc.Failures, vf)
				if !o.json {
					if _, err := io.WriteString(out, failureLine(vf)+"\n"); err != nil {
						return err
					}
				}
			}
			if err := doc.write(out, o.json); err != nil {
				return err
			}
			return doc.exit()
		},
	}
}
