package cli

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/obelisk-go/obelisk/actors"
	"github.com/obelisk-go/obelisk/cmd/obelisk/internal/config"
	"github.com/obelisk-go/obelisk/events"
	"github.com/obelisk-go/obelisk/internal/clip"
	"github.com/obelisk-go/obelisk/snapshot"
)

// verifyDoc is the --json document of `server verify` (contract).
type verifyDoc struct {
	Store      string          `json:"store"`
	Verified   int             `json:"verified"`
	Mismatches int             `json:"mismatches"`
	Failures   []verifyFailure `json:"failures"`
}

// verifyFailure is an execution whose stored state is not the refold of its logs: the
// first field that differs and its two values, or (Field empty) why the logs do not
// fold.
type verifyFailure struct {
	ExecutionID string `json:"execution_id"`
	Field       string `json:"field,omitempty"`
	Stored      string `json:"stored,omitempty"`
	Refolded    string `json:"refolded,omitempty"`
	Error       string `json:"error"`
}

func newVerifyFailure(id string, failure error) verifyFailure {
	f := verifyFailure{ExecutionID: id, Error: failure.Error()}
	var me *snapshot.MismatchError
	if errors.As(failure, &me) {
		f.Field, f.Stored, f.Refolded = me.Field, me.Stored, me.Refolded
	}
	return f
}

// line is the failure's line of the text output: the execution and, briefly, what
// differs.
func (f verifyFailure) line() string {
	if f.Field == "" {
		return fmt.Sprintf("%s: %s", f.ExecutionID, f.Error)
	}
	return fmt.Sprintf("%s: %s: stored %s, refolded %s", f.ExecutionID, f.Field, clip.String(f.Stored), clip.String(f.Refolded))
}

func serverVerifyCmd() *cobra.Command {
	var configPath, dataDir string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check that every execution's stored state is the refold of its events (stopped server)",
		Long: `Open the event store of a stopped server read-only and check, for every execution,
finished or not, that the state the store keeps equals the fold of the execution's
events and responses, the store's central invariant (a tree whose deletion by
retention a crash interrupted is hidden, and skipped). The store is that of
--data-dir, or of the data_dir of --config (as ` + "`server run --config`" + ` finds it). Nothing
is written to it.

Prints one line per execution that fails the check (its ID, the first field that
differs with its stored and refolded values, or why its logs do not fold), then
"verified N executions: M mismatches". --json prints one document {"store",
"verified", "mismatches", "failures": [{"execution_id", "field", "stored", "refolded",
"error"}]} instead.

Exit status: 0 if every execution passes, 1 if any fails or if the store is in use (a
running server locks it: stop the server first), 2 if the store cannot be opened or
read.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(configPath)
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			if dataDir == "" {
				dataDir = cfg.Engine.DataDir
			}
			dir := actors.StoreDir(dataDir)
			store, err := events.Open(dir, events.Options{
				ReadOnly: true, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
				CacheSize: cfg.Engine.StoreCacheSize, MemTableSize: cfg.Engine.StoreMemTableSize,
			})
			if errors.Is(err, events.ErrLocked) {
				return &ExitError{Code: 1, Err: fmt.Errorf("the event store %s is in use, by a running server or another process: stop the server, then verify its store: %w", dir, err)}
			}
			if err != nil {
				return &ExitError{Code: 2, Err: fmt.Errorf("verify: %w", err)}
			}
			defer store.Close()
			return verifyStore(cmd, store, dir, asJSON)
		},
	}
	cmd.Flags().StringVarP(&configPath, "config", "c", "", "path of the server's obelisk.toml, for its data_dir (default: embedded defaults)")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "the server's data_dir (default: that of the config)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one machine-readable JSON document")
	return cmd
}

// verifyStore checks every execution of an open store and reports as `server verify`.
func verifyStore(cmd *cobra.Command, store events.Store, dir string, asJSON bool) error {
	out := cmd.OutOrStdout()
	doc := verifyDoc{Store: dir, Failures: []verifyFailure{}}
	n, err := snapshot.VerifyEach(cmd.Context(), store, func(id string, failure error) error {
		f := newVerifyFailure(id, failure)
		doc.Mismatches++
		if asJSON {
			doc.Failures = append(doc.Failures, f)
			return nil
		}
		_, err := io.WriteString(out, f.line()+"\n")
		return err
	})
	if err != nil {
		return &ExitError{Code: 2, Err: err}
	}
	doc.Verified = n
	if asJSON {
		if err := writeJSON(out, doc); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(out, "verified %d executions: %d mismatches\n", n, doc.Mismatches)
	}
	if doc.Mismatches > 0 {
		return &ExitError{Code: 1}
	}
	return nil
}
