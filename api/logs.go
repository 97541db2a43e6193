package api

import (
	"context"

	"connectrpc.com/connect"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	apiv1 "github.com/obelisk-go/obelisk/proto/obelisk/v1"
)

// maxLogLines is the default and the largest GetLogs page.
const maxLogLines = 1000

func (h *executions) GetLogs(ctx context.Context, req *connect.Request[apiv1.GetLogsRequest]) (*connect.Response[apiv1.GetLogsResponse], error) {
	id, err := canonicalID(req.Msg.ExecutionId)
	if err != nil {
		return nil, err
	}
	// The state first: an execution seen finished has stored every line, since its
	// lines go with its progress; read after it, the log has them all.
	st, err := h.e.State(ctx, id)
	if err != nil {
		return nil, apiError(err)
	}
	limit := int(req.Msg.Limit)
	if limit <= 0 || limit > maxLogLines {
		limit = maxLogLines
	}
	page, err := h.e.Store().Logs(ctx, id, req.Msg.FromSeq, limit)
	if err != nil {
		return nil, apiError(err)
	}
	resp := &apiv1.GetLogsResponse{
		NextSeq: max(req.Msg.FromSeq, page.Stored), Stored: page.Stored, Dropped: page.Dropped,
		Finished: st.Status == pb.Status_STATUS_FINISHED,
	}
	if n := len(page.Lines); n > 0 {
		resp.NextSeq = page.Lines[n-1].Seq + 1
	}
	for _, l := range page.Lines {
		resp.Lines = append(resp.Lines, &apiv1.LogLine{
			Seq: l.Seq, Time: rfc3339(l.Time), Level: l.Level.String(), Attempt: l.Attempt,
			RunId: l.RunID, Context: l.Context, Message: l.Message,
		})
	}
	return connect.NewResponse(resp), nil
}
