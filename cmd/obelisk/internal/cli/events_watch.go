package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
)

// eventStreamCmd is `client events`: the event log of the whole engine.
func eventStreamCmd(o *clientOpts) *cobra.Command {
	cmd := &cobra.Command{Use: "events", Short: "Follow the events of every execution"}
	cmd.AddCommand(eventsWatchCmd(o))
	return cmd
}

// watchLine is the --json line of `events watch` (contract).
type watchLine struct {
	Position    uint64          `json:"position"`
	ExecutionID string          `json:"execution_id"`
	Version     uint32          `json:"version"`
	CreatedAt   string          `json:"created_at"`
	Kind        string          `json:"kind"`
	Details     json.RawMessage `json:"details"`
}

func eventsWatchCmd(o *clientOpts) *cobra.Command {
	req := &pb.WatchEventsRequest{}
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Print every event as it is appended, until interrupted",
		Long: `Print the events appended to any execution, in commit order, one line each
(--json: one JSON object per line), until interrupted.

Every event has a global position: 1, 2, 3, ... without gaps, stable across server
restarts. --from POS starts after position POS (the last one seen), so a watch resumed
with the last printed position misses and repeats nothing. If the connection drops, the
command reconnects and resumes by itself.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return watchEvents(cmd.Context(), o, req, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().Uint64Var(&req.FromPosition, "from", 0, "start after this position (0: from the first event)")
	cmd.Flags().StringVar(&req.ExecutionIdPrefix, "execution-prefix", "", "only executions whose ID starts with this")
	cmd.Flags().StringVar(&req.FfqnPrefix, "ffqn-prefix", "", "only executions of functions whose FFQN starts with this")
	cmd.Flags().StringSliceVar(&req.Kinds, "kind", nil, `only these event kinds, e.g. finished,history.join_next ("history": all history.*); repeatable`)
	return cmd
}

// watchRetry is the pause before reconnecting.
var watchRetry = time.Second

// watchEvents streams until ctx ends, reconnecting from the last position after a
// transport failure. Errors of the request itself (or no server at the first attempt)
// end it with exit status 2.
func watchEvents(ctx context.Context, o *clientOpts, req *pb.WatchEventsRequest, out, errOut io.Writer) error {
	var line bytes.Buffer
	enc := json.NewEncoder(&line)
	enc.SetEscapeHTML(false)
	connected := false // the server answered once: from then on, failures are transient
	for {
		stream, err := o.executions().WatchEvents(ctx, connect.NewRequest(req))
		if err == nil {
			for stream.Receive() {
				m := stream.Msg()
				ev := m.GetEvent()
				line.Reset()
				if o.json {
					details := json.RawMessage(ev.GetDetailsJson())
					if len(details) == 0 {
						details = json.RawMessage("{}")
					}
					_ = enc.Encode(watchLine{m.Position, m.ExecutionId, ev.GetVersion(), ev.GetCreatedAt(), ev.GetKind(), details})
				} else {
					fmt.Fprintf(&line, "%d %s v%d %s %-26s %s\n", m.Position, m.ExecutionId, ev.GetVersion(), ev.GetCreatedAt(), ev.GetKind(), ev.GetDetailsJson())
				}
				if _, err := out.Write(line.Bytes()); err != nil {
					return err
				}
				req.FromPosition = m.Position
			}
			connected = connected || len(stream.ResponseHeader()) > 0
			err = stream.Err()
			stream.Close()
		}
		if ctx.Err() != nil {
			return nil // interrupted
		}
		if err == nil {
			err = errors.New("the server ended the stream")
		}
		switch connect.CodeOf(err) {
		case connect.CodeInvalidArgument, connect.CodeOutOfRange, connect.CodeUnimplemented,
			connect.CodeNotFound, connect.CodePermissionDenied, connect.CodeUnauthenticated:
			return apiErr(err)
		}
		if !connected {
			return apiErr(err) // most likely the wrong address: say so
		}
		fmt.Fprintf(errOut, "watch interrupted after position %d (%v); reconnecting\n", req.FromPosition, err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(watchRetry):
		}
	}
}
