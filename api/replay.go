package api

import (
	"context"
	"errors"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/obelisk-go/obelisk/actors"
	"github.com/obelisk-go/obelisk/auth"
	apiv1 "github.com/obelisk-go/obelisk/proto/obelisk/v1"
)

// Replay shadow-replays an execution (actors.Engine.Replay).
func (h *executions) Replay(ctx context.Context, req *connect.Request[apiv1.ReplayRequest]) (*connect.Response[apiv1.ReplayResponse], error) {
	id, err := canonicalID(req.Msg.ExecutionId)
	if err != nil {
		return nil, err
	}
	component := strings.TrimSpace(req.Msg.Component)
	if component != "" && len(req.Msg.Wasm) > 0 {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("give a component's name or ID, or a component file (wasm), not both"))
	}
	source := req.Msg.Source
	if source == "" {
		source = "the component file sent"
	}
	rep, err := h.e.Replay(ctx, id, actors.ReplayTarget{Component: component, Wasm: req.Msg.Wasm, Source: source})
	if err != nil {
		return nil, apiError(err)
	}
	return connect.NewResponse(ReplayResponse(rep)), nil
}

// ReplayResponse renders a replay report for the API.
func ReplayResponse(rep *actors.ReplayReport) *apiv1.ReplayResponse {
	out := &apiv1.ReplayResponse{
		ExecutionId: rep.ExecutionID, ComponentId: rep.ComponentID, PinnedComponentId: rep.Pinned,
		Ok: rep.OK, Finished: rep.Finished, HistoryEvents: uint32(rep.HistoryEvents), Replayed: uint32(rep.Replayed),
		ResultJson: string(rep.Result), RecordedResultJson: string(rep.RecordedResult),
		LogsDropped: uint32(rep.LogsDropped), TookMicros: uint64(rep.Took.Microseconds()),
	}
	if d := rep.Divergence; d != nil {
		out.Divergence = &apiv1.ReplayDivergence{Index: uint32(d.Index), Recorded: replayStep(d.Recorded), Produced: replayStep(d.Produced), Detail: d.Detail}
	}
	for i := range rep.Next {
		out.Next = append(out.Next, replayStep(&rep.Next[i]))
	}
	for _, l := range rep.Logs {
		out.Logs = append(out.Logs, &apiv1.ReplayLogLine{Time: l.Time.UTC().Format(time.RFC3339Nano), Level: l.Level, Message: l.Message})
	}
	return out
}

func replayStep(s *actors.ReplayStep) *apiv1.ReplayStep {
	if s == nil {
		return nil
	}
	return &apiv1.ReplayStep{Kind: s.Kind, Function: s.Function, ParamsJson: string(s.Params), JoinSet: s.JoinSet, ExecutionId: s.ExecutionID, Detail: s.Detail}
}

// Upgrade moves a set of workflow executions onto another component
// (actors.Engine.Upgrade).
func (h *executions) Upgrade(ctx context.Context, req *connect.Request[apiv1.UpgradeRequest]) (*connect.Response[apiv1.UpgradeResponse], error) {
	m := req.Msg
	if strings.TrimSpace(m.Component) == "" {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("component (the target) is required"))
	}
	// With tokens, the move records who made it by the token's name, not by what the
	// client says of itself.
	by := strings.TrimSpace(m.By)
	if tok, ok := auth.Caller(ctx); ok {
		by = "token " + tok.Name
	} else if by == "" {
		by = "api"
	}
	res, err := h.e.Upgrade(ctx,
		actors.UpgradeSelection{IDs: m.ExecutionIds, FFQN: strings.TrimSpace(m.Ffqn), FromComponent: strings.TrimSpace(m.FromComponent), Statuses: m.Statuses},
		actors.UpgradeOptions{Component: strings.TrimSpace(m.Component), DryRun: m.DryRun, Approve: m.ApproveNondeterminism, By: by})
	if err != nil {
		return nil, apiError(err)
	}
	out := &apiv1.UpgradeResponse{ComponentId: res.To}
	for _, it := range res.Items {
		item := &apiv1.UpgradeItem{ExecutionId: it.ExecutionID, FromComponentId: it.From, Outcome: string(it.Outcome), ForkId: it.ForkID, Error: it.Error}
		if it.Report != nil {
			item.Replay = ReplayResponse(it.Report)
		}
		out.Items = append(out.Items, item)
	}
	return connect.NewResponse(out), nil
}
