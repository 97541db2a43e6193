package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
)

// logLine is one line of `execution logs --json` (contract).
type logLine struct {
	Seq     uint64 `json:"seq"`
	Time    string `json:"time"`
	Level   string `json:"level"`
	Attempt uint32 `json:"attempt"`
	RunID   string `json:"run_id"`
	Context string `json:"context,omitempty"`
	Message string `json:"message"`
}

// logsDoc is the --json document of `execution logs` without --follow (contract).
type logsDoc struct {
	ExecutionID string    `json:"execution_id"`
	Lines       []logLine `json:"lines"`
	Stored      uint64    `json:"stored"`
	Dropped     uint64    `json:"dropped"`
	Finished    bool      `json:"finished"`
}

// logsPoll is how often --follow asks for new lines.
const logsPoll = 250 * time.Millisecond

func logsCmd(o *clientOpts) *cobra.Command {
	var follow bool
	var from uint64
	cmd := &cobra.Command{
		Use:   "logs EXECUTION_ID",
		Short: "Print the lines an execution logged",
		Long: `Print the lines the execution's guest logged (wasi:logging, or the SDK's Log and
slog handler), oldest first: time, level, the attempt when it is not the first, the
context when there is one, and the message. A workflow's lines are stored once, not again
when it is replayed. Past logs.max_per_execution lines, later ones are only counted: the
count is reported on standard error.

--follow prints new lines as they are stored, until the execution has finished.
--json prints one JSON document {"execution_id", "lines": [{"seq", "time", "level",
"attempt", "run_id", "context", "message"}], "stored", "dropped", "finished"}; with
--follow, one JSON object per line instead.`,
		Args: executionIDArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			return printLogs(cmd.Context(), o, args[0], from, follow, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "print new lines until the execution has finished")
	cmd.Flags().Uint64Var(&from, "from", 0, "start at this line (its seq)")
	return cmd
}

func printLogs(ctx context.Context, o *clientOpts, id string, from uint64, follow bool, out, errOut io.Writer) error {
	doc := logsDoc{ExecutionID: id, Lines: []logLine{}}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for {
		resp, err := o.executions().GetLogs(ctx, connect.NewRequest(&pb.GetLogsRequest{ExecutionId: id, FromSeq: from}))
		if err != nil {
			return apiErr(err)
		}
		m := resp.Msg
		doc.ExecutionID, doc.Stored, doc.Dropped, doc.Finished = id, m.Stored, m.Dropped, m.Finished
		for _, l := range m.Lines {
			line := logLine{Seq: l.Seq, Time: l.Time, Level: l.Level, Attempt: l.Attempt, RunID: l.RunId, Context: l.Context, Message: l.Message}
			switch {
			case o.json && follow:
				buf.Reset()
				if err := enc.Encode(line); err != nil {
					return err
				}
				if _, err := out.Write(buf.Bytes()); err != nil {
					return err
				}
			case o.json:
				doc.Lines = append(doc.Lines, line)
			default:
				if _, err := fmt.Fprintln(out, logText(line)); err != nil {
					return err
				}
			}
		}
		from = m.NextSeq
		if len(m.Lines) > 0 {
			continue // there may be more at once
		}
		if !follow || m.Finished {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(logsPoll):
		}
	}
	if o.json && !follow {
		return writeJSON(out, doc)
	}
	if doc.Dropped > 0 {
		fmt.Fprintf(errOut, "%d more lines were logged but not stored: past logs.max_per_execution (%d lines kept)\n", doc.Dropped, doc.Stored)
	}
	return nil
}

// logText is a line as people read it: "2026-01-02T03:04:05.678Z info  fibo(10) = 55".
func logText(l logLine) string {
	s := fmt.Sprintf("%s %-5s ", l.Time, l.Level)
	if l.Attempt > 1 {
		s += fmt.Sprintf("(attempt %d) ", l.Attempt)
	}
	if l.Context != "" {
		s += l.Context + ": "
	}
	return s + l.Message
}
