package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	"github.com/obelisk-go/obelisk/oci"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
)

const replayLong = `Replay a workflow execution's recorded history in a sandbox, against the component it
is pinned to or, with --component, another one: nothing is written, no activity runs,
no HTTP leaves, every response comes from the execution's log.

--component is a deployed component's name or ID (a retired version's too), a .wasm
file, or an OCI reference (REGISTRY/REPOSITORY:TAG or @sha256:...): a file or an
artifact is sent to the server and compiled for this replay only; it must export the
execution's function with the same type. A file is read here, an artifact pulled here
(--plain-http for a registry over plain HTTP); both must fit in the server's
api.max_request_bytes.

The report says "ok" when the code reproduced every recorded step (a finished
execution: also its recorded result), with, for an unfinished one, what it would do
next (the steps past its history: children it would submit, join sets it would wait
on). Otherwise it shows the first divergence: the history event's index, the recorded
step and the step the code produced, and the guest's log lines up to it.

Exit status: 0 ok, 1 a divergence, 2 an unknown execution, a bad argument (an
activity's execution, a component without the function) or no API.

--json prints one document:
  execution_id, component_id (replayed against), pinned_component_id
  ok            bool: the history (and a finished execution's result) reproduced
  finished      bool: the execution has finished
  history_events, replayed   recorded history events, and how many were reproduced
  divergence    {index, recorded, produced, detail}; index counts history events from
                0 (the history's length: past its end); recorded or produced absent
                past the history's end or when the workflow returned
  next          [step]: what it would do past its history (ok, unfinished)
  result        what the code returned, if it returned; recorded_result: the stored one
  logs          [{time, level, message}]: the guest's lines up to where it stopped
                (the last 1000; logs_dropped counts those before)
  took_ms       the replay's duration on the server
A step is {kind, function, params, join_set, execution_id, detail}; kind is
join_set_create, submit, delay, join_next, join_next_try, persist, schedule, stub, wait
(for the next response of join_set), cancel (execution_id) or return.`

// replayStepDoc is a step in the --json document of replay (see replayLong).
type replayStepDoc struct {
	Kind        string          `json:"kind"`
	Function    string          `json:"function,omitempty"`
	Params      json.RawMessage `json:"params,omitempty"`
	JoinSet     string          `json:"join_set,omitempty"`
	ExecutionID string          `json:"execution_id,omitempty"`
	Detail      string          `json:"detail"`
}

type replayDivergenceDoc struct {
	Index    uint32         `json:"index"`
	Recorded *replayStepDoc `json:"recorded,omitempty"`
	Produced *replayStepDoc `json:"produced,omitempty"`
	Detail   string         `json:"detail"`
}

type replayLogDoc struct {
	Time    string `json:"time"`
	Level   string `json:"level"`
	Message string `json:"message"`
}

// replayDoc is the --json document of replay (contract, see replayLong).
type replayDoc struct {
	ExecutionID       string               `json:"execution_id"`
	ComponentID       string               `json:"component_id"`
	PinnedComponentID string               `json:"pinned_component_id"`
	OK                bool                 `json:"ok"`
	Finished          bool                 `json:"finished"`
	HistoryEvents     uint32               `json:"history_events"`
	Replayed          uint32               `json:"replayed"`
	Divergence        *replayDivergenceDoc `json:"divergence,omitempty"`
	Next              []replayStepDoc      `json:"next,omitempty"`
	Result            json.RawMessage      `json:"result,omitempty"`
	RecordedResult    json.RawMessage      `json:"recorded_result,omitempty"`
	Logs              []replayLogDoc       `json:"logs,omitempty"`
	LogsDropped       uint32               `json:"logs_dropped,omitempty"`
	TookMs            float64              `json:"took_ms"`
}

func stepDoc(s *pb.ReplayStep) *replayStepDoc {
	if s == nil {
		return nil
	}
	d := &replayStepDoc{Kind: s.Kind, Function: s.Function, JoinSet: s.JoinSet, ExecutionID: s.ExecutionId, Detail: s.Detail}
	if s.ParamsJson != "" {
		d.Params = json.RawMessage(s.ParamsJson)
	}
	return d
}

func rawOrNil(s string) json.RawMessage {
	if s == "" {
		return nil
	}
	return json.RawMessage(s)
}

func newReplayDoc(r *pb.ReplayResponse) replayDoc {
	doc := replayDoc{ExecutionID: r.ExecutionId, ComponentID: r.ComponentId, PinnedComponentID: r.PinnedComponentId, OK: r.Ok,
		Finished: r.Finished, HistoryEvents: r.HistoryEvents, Replayed: r.Replayed, Result: rawOrNil(r.ResultJson),
		RecordedResult: rawOrNil(r.RecordedResultJson), LogsDropped: r.LogsDropped, TookMs: float64(r.TookMicros) / 1000}
	if d := r.Divergence; d != nil {
		doc.Divergence = &replayDivergenceDoc{Index: d.Index, Recorded: stepDoc(d.Recorded), Produced: stepDoc(d.Produced), Detail: d.Detail}
	}
	for _, s := range r.Next {
		doc.Next = append(doc.Next, *stepDoc(s))
	}
	for _, l := range r.Logs {
		doc.Logs = append(doc.Logs, replayLogDoc{Time: l.Time, Level: l.Level, Message: l.Message})
	}
	return doc
}

func replayCmd(o *clientOpts) *cobra.Command {
	var component string
	var plainHTTP bool
	cmd := &cobra.Command{
		Use:   "replay EXECUTION_ID",
		Short: "Replay a workflow execution's history in a sandbox, against its component or another (exit 1 on a divergence)",
		Long:  replayLong,
		Args:  executionIDArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &pb.ReplayRequest{ExecutionId: args[0]}
			if err := replayTarget(cmd, component, plainHTTP, req); err != nil {
				return err
			}
			resp, err := o.executions().Replay(cmd.Context(), connect.NewRequest(req))
			if err != nil {
				return apiErr(err)
			}
			if o.json {
				err = writeJSON(cmd.OutOrStdout(), newReplayDoc(resp.Msg))
			} else {
				err = printReplay(cmd.OutOrStdout(), resp.Msg)
			}
			if err != nil {
				return err
			}
			if !resp.Msg.Ok {
				return &ExitError{Code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&component, "component", "", "replay against this component: a deployed (or retired) component's name or ID, a .wasm file or an OCI reference (default: the pinned one)")
	cmd.Flags().BoolVar(&plainHTTP, "plain-http", false, "pull an OCI reference over plain HTTP (loopback registries always are)")
	return cmd
}

// replayTarget sets what req replays against from --component: a file's content, an
// OCI artifact's, or a component's name or ID for the server to find.
func replayTarget(cmd *cobra.Command, component string, plainHTTP bool, req *pb.ReplayRequest) error {
	component = strings.TrimSpace(component)
	if component == "" {
		return nil
	}
	if fi, err := os.Stat(component); err == nil && !fi.IsDir() {
		wasm, err := os.ReadFile(component)
		if err != nil {
			return usage(err)
		}
		req.Wasm, req.Source = wasm, component
		return nil
	}
	if strings.Contains(component, "sha256:") && !strings.Contains(component, "/") {
		req.Component = component // a component ID
		return nil
	}
	ref, refErr := oci.ParseReference(component)
	if refErr != nil {
		if strings.HasSuffix(component, ".wasm") || strings.ContainsAny(component, `/\`) {
			return usage(fmt.Errorf("--component %s: no such file, and not an OCI reference: %v", component, refErr))
		}
		req.Component = component // a deployed component's name
		return nil
	}
	client := oci.NewClient(plainHTTPFor(ref, plainHTTP))
	digest, err := client.Resolve(cmd.Context(), ref)
	if err != nil {
		return usage(fmt.Errorf("--component %s: %w", component, err))
	}
	wasm, _, err := client.Fetch(cmd.Context(), ref, digest, nil)
	if err != nil {
		return usage(fmt.Errorf("--component %s: %w", component, err))
	}
	req.Wasm, req.Source = wasm, ref.String()
	return nil
}

// printReplay prints a replay report for people.
func printReplay(w io.Writer, r *pb.ReplayResponse) error {
	var b strings.Builder
	against := r.ComponentId
	if r.ComponentId == r.PinnedComponentId {
		against += " (pinned)"
	}
	if r.Ok {
		fmt.Fprintf(&b, "%s: ok: replayed %d of %d history events against %s\n", r.ExecutionId, r.Replayed, r.HistoryEvents, against)
	} else {
		fmt.Fprintf(&b, "%s: DIVERGES at history event %d (of %d) against %s\n", r.ExecutionId, r.Divergence.GetIndex(), r.HistoryEvents, against)
		d := r.Divergence
		step := func(s *pb.ReplayStep, none string) string {
			if s == nil {
				return none
			}
			return s.Detail
		}
		fmt.Fprintf(&b, "  recorded: %s\n  produced: %s\n  %s\n", step(d.Recorded, "(end of the history)"), step(d.Produced, "(returned)"), d.Detail)
	}
	if r.Finished {
		fmt.Fprintf(&b, "recorded result: %s\n", r.RecordedResultJson)
	}
	if r.ResultJson != "" {
		fmt.Fprintf(&b, "result now: %s\n", r.ResultJson)
	}
	if len(r.Next) > 0 {
		b.WriteString("next:\n")
		for _, s := range r.Next {
			fmt.Fprintf(&b, "  %s\n", s.Detail)
		}
	}
	if len(r.Logs) > 0 {
		if r.LogsDropped > 0 {
			fmt.Fprintf(&b, "guest log (the last %d lines; %d before):\n", len(r.Logs), r.LogsDropped)
		} else {
			b.WriteString("guest log:\n")
		}
		for _, l := range r.Logs {
			fmt.Fprintf(&b, "  %s %-5s %s\n", l.Time, l.Level, l.Message)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
