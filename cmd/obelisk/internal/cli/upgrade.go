package cli

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
)

const upgradeLong = `Move a set of workflow executions onto the deployed component NEW, safely: each one is
first shadow-replayed against NEW (as by replay); those that replay cleanly are moved
onto it (a recorded moved event says who moved it, "cli", from which component to
which), and their next run loads NEW. Those that diverge are listed with their
reports and left alone, unless --approve-nondeterminism names them: they are then
forked at the step that diverged onto NEW, and the original is cancelled (it keeps its
history; the fork records its origin).

An execution that finished as nondeterminism_detected is repaired the same way: its
whole history, which NEW must replay cleanly, is forked onto NEW, which continues it
(the original keeps the result it was given; a child execution is refused, since its
parent has been given that result).

Select the executions by ID (EXECUTION_ID...), by function (--ffqn) or by the
component they are pinned to (--from-component, a name or an ID, a retired version's
too); --status keeps those in the statuses listed (pending_at, locked,
blocked_by_join_set, nondeterminism_detected). Without --status, the unfinished ones
and those that finished as nondeterminism_detected are selected.

--dry-run replays and reports, and moves and forks nothing.

Exit status: 0 if every selected execution was moved or forked (or would be), 1 if some
diverged and were left alone (or could not be moved), 2 for a bad argument or no API.

--json prints one document:
  component_id  the target
  dry_run       bool
  executions    [{execution_id, from_component_id, outcome, fork_id, error, replay}]
                outcome: moved | forked | diverged | would_move | would_fork | failed;
                replay: the replay's document (see replay --help)
  counts        {outcome: number}`

// upgradeItemDoc is an execution in the --json document of upgrade.
type upgradeItemDoc struct {
	ExecutionID     string     `json:"execution_id"`
	FromComponentID string     `json:"from_component_id"`
	Outcome         string     `json:"outcome"`
	ForkID          string     `json:"fork_id,omitempty"`
	Error           string     `json:"error,omitempty"`
	Replay          *replayDoc `json:"replay,omitempty"`
}

// upgradeDoc is the --json document of upgrade (contract, see upgradeLong).
type upgradeDoc struct {
	ComponentID string           `json:"component_id"`
	DryRun      bool             `json:"dry_run"`
	Executions  []upgradeItemDoc `json:"executions"`
	Counts      map[string]int   `json:"counts"`
}

func upgradeCmd(o *clientOpts) *cobra.Command {
	var component, ffqn, from string
	var statuses, approve []string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "upgrade --component NEW (EXECUTION_ID... | --ffqn FFQN | --from-component OLD)",
		Short: "Move workflow executions onto another component where they replay cleanly; fork the approved ones that do not",
		Long:  upgradeLong,
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(component) == "" {
				return usage(fmt.Errorf("--component NEW is required"))
			}
			given := 0
			for _, set := range []bool{len(args) > 0, ffqn != "", from != ""} {
				if set {
					given++
				}
			}
			if given != 1 {
				return usage(fmt.Errorf("select the executions with EXECUTION_ID..., --ffqn or --from-component: one of them"))
			}
			resp, err := o.executions().Upgrade(cmd.Context(), connect.NewRequest(&pb.UpgradeRequest{
				Component: component, ExecutionIds: args, Ffqn: ffqn, FromComponent: from, Statuses: statuses,
				DryRun: dryRun, ApproveNondeterminism: approve, By: "cli"}))
			if err != nil {
				return apiErr(err)
			}
			doc := upgradeDoc{ComponentID: resp.Msg.ComponentId, DryRun: dryRun, Executions: []upgradeItemDoc{}, Counts: map[string]int{}}
			left := false
			for _, it := range resp.Msg.Items {
				d := upgradeItemDoc{ExecutionID: it.ExecutionId, FromComponentID: it.FromComponentId, Outcome: it.Outcome, ForkID: it.ForkId, Error: it.Error}
				if it.Replay != nil {
					r := newReplayDoc(it.Replay)
					d.Replay = &r
				}
				doc.Executions = append(doc.Executions, d)
				doc.Counts[it.Outcome]++
				if it.Outcome == "diverged" || it.Outcome == "failed" {
					left = true
				}
			}
			if o.json {
				err = writeJSON(cmd.OutOrStdout(), doc)
			} else {
				err = printUpgrade(cmd.OutOrStdout(), doc)
			}
			if err != nil {
				return err
			}
			if left {
				return &ExitError{Code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&component, "component", "", "the deployed component (name or ID) to move the executions onto (required)")
	cmd.Flags().StringVar(&ffqn, "ffqn", "", "select the workflow executions of this function")
	cmd.Flags().StringVar(&from, "from-component", "", "select the workflow executions pinned to this component (name or ID)")
	cmd.Flags().StringSliceVar(&statuses, "status", nil, "keep only executions in these statuses (pending_at, locked, blocked_by_join_set, nondeterminism_detected)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "replay and report; move and fork nothing")
	cmd.Flags().StringSliceVar(&approve, "approve-nondeterminism", nil, "fork these executions (IDs, comma-separated) at their divergence instead of leaving them")
	return cmd
}

// printUpgrade prints an upgrade's outcome for people.
func printUpgrade(w io.Writer, doc upgradeDoc) error {
	var b strings.Builder
	fmt.Fprintf(&b, "upgrade to %s", doc.ComponentID)
	if doc.DryRun {
		b.WriteString(" (dry run)")
	}
	b.WriteString(":\n")
	for _, it := range doc.Executions {
		fmt.Fprintf(&b, "  %s  %-10s", it.ExecutionID, it.Outcome)
		switch {
		case it.Error != "":
			fmt.Fprintf(&b, "  %s", it.Error)
		case it.ForkID != "":
			fmt.Fprintf(&b, "  fork %s", it.ForkID)
		}
		if r := it.Replay; r != nil && r.Divergence != nil {
			fmt.Fprintf(&b, "\n      %s", r.Divergence.Detail)
		}
		b.WriteString("\n")
	}
	var counts []string
	for k, n := range doc.Counts {
		counts = append(counts, fmt.Sprintf("%d %s", n, k))
	}
	sort.Strings(counts)
	if len(counts) == 0 {
		counts = []string{"no execution selected"}
	}
	fmt.Fprintf(&b, "%s\n", strings.Join(counts, ", "))
	_, err := io.WriteString(w, b.String())
	return err
}
