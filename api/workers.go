package api

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/obelisk-go/obelisk/actors"
	apiv1 "github.com/obelisk-go/obelisk/proto/obelisk/v1"
)

// workers serves WorkerService: the calls of external workers (actors/external.go).
type workers struct{ e *actors.Engine }

func (h *workers) Lock(ctx context.Context, req *connect.Request[apiv1.WorkerLockRequest]) (*connect.Response[apiv1.WorkerLockResponse], error) {
	m := req.Msg
	tasks, err := h.e.LockForWorker(ctx, actors.WorkerLockRequest{
		Worker: m.Worker, FFQNs: m.Ffqns, Queue: m.Queue, Labels: m.Labels, Max: int(min(m.MaxExecutions, actors.MaxWorkerBatch+1)),
		LockDuration: millis(m.LockDurationMillis), Wait: millis(m.WaitMillis),
	})
	if err != nil {
		return nil, apiError(err)
	}
	resp := &apiv1.WorkerLockResponse{}
	for _, t := range tasks {
		resp.Tasks = append(resp.Tasks, &apiv1.WorkerTask{ExecutionId: t.ExecutionID, RunId: t.RunID, Ffqn: t.FFQN,
			ParamsJson: string(t.Params), Attempt: t.Attempt, LockExpiresAt: rfc3339(t.LockExpiresAt.UnixNano()),
			LockDurationMillis: uint64(t.LockDuration / time.Millisecond), Traceparent: t.TraceParent, Tracestate: t.TraceState})
	}
	return connect.NewResponse(resp), nil
}

func (h *workers) Renew(ctx context.Context, req *connect.Request[apiv1.WorkerRenewRequest]) (*connect.Response[apiv1.WorkerRenewResponse], error) {
	id, err := canonicalID(req.Msg.ExecutionId)
	if err != nil {
		return nil, err
	}
	expires, d, err := h.e.RenewForWorker(ctx, id, req.Msg.RunId, millis(req.Msg.LockDurationMillis))
	if err != nil {
		return nil, apiError(err)
	}
	return connect.NewResponse(&apiv1.WorkerRenewResponse{LockExpiresAt: rfc3339(expires.UnixNano()), LockDurationMillis: uint64(d / time.Millisecond)}), nil
}

func (h *workers) Complete(ctx context.Context, req *connect.Request[apiv1.WorkerCompleteRequest]) (*connect.Response[apiv1.WorkerCompleteResponse], error) {
	id, err := canonicalID(req.Msg.ExecutionId)
	if err != nil {
		return nil, err
	}
	var result json.RawMessage
	if strings.TrimSpace(req.Msg.ResultJson) != "" {
		result = json.RawMessage(req.Msg.ResultJson)
	}
	outcome, err := h.e.CompleteForWorker(ctx, id, req.Msg.RunId, result, req.Msg.Failure)
	if err != nil {
		return nil, apiError(err)
	}
	return connect.NewResponse(&apiv1.WorkerCompleteResponse{Outcome: outcome}), nil
}

// millis converts a count of milliseconds of a request, capped far beyond any bound the
// engine accepts (so that it cannot overflow into one it does).
func millis(ms uint64) time.Duration {
	return time.Duration(min(ms, uint64(1)<<40)) * time.Millisecond
}
