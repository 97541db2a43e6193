package cli

import (
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
	"github.com/obelisk-go/obelisk/proto/obelisk/v1/obeliskv1connect"
)

func (o *clientOpts) schedules() obeliskv1connect.ScheduleServiceClient {
	return obeliskv1connect.NewScheduleServiceClient(o.client(), o.apiURL)
}

func scheduleCmd(o *clientOpts) *cobra.Command {
	cmd := &cobra.Command{Use: "schedule", Short: "Create, list, delete, pause and resume periodic schedules"}
	cmd.AddCommand(scheduleCreateCmd(o), scheduleListCmd(o), scheduleDeleteCmd(o),
		schedulePauseCmd(o, "pause", "Stop a schedule's firings until resume", true),
		schedulePauseCmd(o, "resume", "Resume a paused schedule (firings missed meanwhile obey its catch_up)", false))
	return cmd
}

// scheduleJSON is a schedule in the CLI's --json output.
type scheduleJSON struct {
	Name            string `json:"name"`
	Cron            string `json:"cron"`
	TimeZone        string `json:"time_zone"`
	FFQN            string `json:"ffqn"`
	Params          string `json:"params"`
	CatchUp         string `json:"catch_up"`
	Component       string `json:"component,omitempty"`
	Source          string `json:"source"`
	Paused          bool   `json:"paused"`
	NextFiring      string `json:"next_firing,omitempty"`
	LastFiring      string `json:"last_firing,omitempty"`
	LastExecutionID string `json:"last_execution_id,omitempty"`
	CreatedAt       string `json:"created_at"`
}

func toScheduleJSON(s *pb.ScheduleInfo) scheduleJSON {
	return scheduleJSON{Name: s.Name, Cron: s.Cron, TimeZone: s.TimeZone, FFQN: s.Ffqn, Params: s.ParamsJson, CatchUp: s.CatchUp,
		Component: s.Component, Source: s.Source, Paused: s.Paused, NextFiring: s.NextFiring, LastFiring: s.LastFiring,
		LastExecutionID: s.LastExecutionId, CreatedAt: s.CreatedAt}
}

// printSchedules prints schedules as a table, or as {"schedules": [...]} with --json.
func printSchedules(w io.Writer, o *clientOpts, list []*pb.ScheduleInfo) error {
	if o.json {
		doc := struct {
			Schedules []scheduleJSON `json:"schedules"`
		}{Schedules: []scheduleJSON{}}
		for _, s := range list {
			doc.Schedules = append(doc.Schedules, toScheduleJSON(s))
		}
		return writeJSON(w, doc)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tCRON\tTIME_ZONE\tFFQN\tNEXT_FIRING\tLAST_FIRING\tLAST_EXECUTION\tPAUSED\tSOURCE")
	for _, s := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%t\t%s\n", s.Name, s.Cron, s.TimeZone, s.Ffqn, dash(s.NextFiring),
			dash(s.LastFiring), dash(s.LastExecutionId), s.Paused, s.Source)
	}
	return tw.Flush()
}

func scheduleCreateCmd(o *clientOpts) *cobra.Command {
	var req pb.CreateScheduleRequest
	cmd := &cobra.Command{
		Use:   "create --name NAME --cron CRON --ffqn FFQN [--params JSON] [--time-zone ZONE] [--catch-up skip|once] [--component NAME]",
		Short: "Create a schedule: FFQN is submitted at the times of CRON",
		Long: `Create a periodic schedule, with the fields of a [[schedule]] table of obelisk.toml.

CRON has five fields (minute hour day-of-month month day-of-week), or six with seconds
first ("*/2 * * * * *"), read in --time-zone (an IANA name, default UTC). Every firing
is an execution of FFQN with --params (a JSON array, default []), whose ID is derived
from the schedule and the firing's time. --catch-up says what happens to the firings
missed while the server was down or the schedule paused: skip (none fire) or once (the
latest fires; the default). The schedule is stored: it survives restarts until deleted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, f := range []string{"name", "cron", "ffqn"} {
				if !cmd.Flags().Changed(f) {
					return usage(fmt.Errorf("--%s is required", f))
				}
			}
			resp, err := o.schedules().CreateSchedule(cmd.Context(), connect.NewRequest(&req))
			if err != nil {
				return apiErr(err)
			}
			return printSchedules(cmd.OutOrStdout(), o, []*pb.ScheduleInfo{resp.Msg.Schedule})
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Name, "name", "", "the schedule's name (unique)")
	f.StringVar(&req.Cron, "cron", "", `cron expression: five fields, or six with seconds first ("*/2 * * * * *")`)
	f.StringVar(&req.TimeZone, "time-zone", "", "IANA time zone the cron is read in (default UTC)")
	f.StringVar(&req.Ffqn, "ffqn", "", "the function to submit")
	f.StringVar(&req.ParamsJson, "params", "", "its parameters, a JSON array (default [])")
	f.StringVar(&req.CatchUp, "catch-up", "", "skip or once (default once): firings missed while down or paused")
	f.StringVar(&req.Component, "component", "", "the component to submit to, when several export FFQN")
	return cmd
}

func scheduleListCmd(o *clientOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List schedules: name, cron, function, next and last firing, its execution, paused, source (config or api)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := o.schedules().ListSchedules(cmd.Context(), connect.NewRequest(&pb.ListSchedulesRequest{}))
			if err != nil {
				return apiErr(err)
			}
			return printSchedules(cmd.OutOrStdout(), o, resp.Msg.Schedules)
		},
	}
}

func scheduleDeleteCmd(o *clientOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a schedule created over the API (a config schedule is removed from obelisk.toml)",
		Args:  scheduleNameArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := o.schedules().DeleteSchedule(cmd.Context(), connect.NewRequest(&pb.DeleteScheduleRequest{Name: args[0]})); err != nil {
				return apiErr(err)
			}
			if o.json {
				return writeJSON(cmd.OutOrStdout(), map[string]string{"name": args[0], "outcome": "deleted"})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s deleted\n", args[0])
			return nil
		},
	}
}

func schedulePauseCmd(o *clientOpts, verb, short string, pause bool) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " NAME",
		Short: short,
		Args:  scheduleNameArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			var info *pb.ScheduleInfo
			if pause {
				resp, err := o.schedules().PauseSchedule(cmd.Context(), connect.NewRequest(&pb.PauseScheduleRequest{Name: args[0]}))
				if err != nil {
					return apiErr(err)
				}
				info = resp.Msg.Schedule
			} else {
				resp, err := o.schedules().ResumeSchedule(cmd.Context(), connect.NewRequest(&pb.ResumeScheduleRequest{Name: args[0]}))
				if err != nil {
					return apiErr(err)
				}
				info = resp.Msg.Schedule
			}
			return printSchedules(cmd.OutOrStdout(), o, []*pb.ScheduleInfo{info})
		},
	}
}

func scheduleNameArg(cmd *cobra.Command, args []string) error {
	if len(args) != 1 || args[0] == "" {
		return usage(errors.New("want one argument: the schedule's name"))
	}
	return nil
}
