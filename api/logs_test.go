package api

import (
	"context"
	"fmt"
	"testing"

	"connectrpc.com/connect"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
)

func TestGetLogs(t *testing.T) {
	e, api := serve(t)
	ctx := context.Background()
	id := stubExecution(t, e)
	var lines []events.LogLine
	for i := range 3 {
		lines = append(lines, events.LogLine{Time: int64(1e9 + i), Level: abi.LogLevel(i + 2), Attempt: 1, RunID: "Run_1", Context: "c", Message: fmt.Sprintf("line %d", i)})
	}
	if _, err := e.Store().Commit(ctx, &events.Tx{Logs: []events.LogAppend{{ExecutionID: id, Lines: lines}}}); err != nil {
		t.Fatal(err)
	}
	get := func(from uint64, limit uint32) *pb.GetLogsResponse {
		t.Helper()
		resp, err := api.GetLogs(ctx, connect.NewRequest(&pb.GetLogsRequest{ExecutionId: id, FromSeq: from, Limit: limit}))
		if err != nil {
			t.Fatal(err)
		}
		return resp.Msg
	}
	r := get(0, 2)
	if len(r.Lines) != 2 || r.NextSeq != 2 || r.Stored != 3 || r.Finished {
		t.Fatalf("first page: %v", r)
	}
	l := r.Lines[1]
	if l.Seq != 1 || l.Level != "warn" || l.Message != "line 1" || l.Context != "c" || l.Attempt != 1 || l.RunId != "Run_1" || l.Time != "1970-01-01T00:00:01.000000001Z" {
		t.Errorf("line 1 is %v", l)
	}
	if r = get(r.NextSeq, 0); len(r.Lines) != 1 || r.Lines[0].Level != "error" || r.NextSeq != 3 {
		t.Fatalf("second page: %v", r)
	}
	if r = get(r.NextSeq, 0); len(r.Lines) != 0 || r.NextSeq != 3 {
		t.Fatalf("past the end: %v", r)
	}
	// Finished is read before the lines: once it is set, nothing more comes.
	if _, err := api.Stub(ctx, connect.NewRequest(&pb.StubRequest{ExecutionId: id, ResultJson: `{"ok":true}`})); err != nil {
		t.Fatal(err)
	}
	if r = get(3, 0); !r.Finished {
		t.Errorf("after the stub: %v", r)
	}

	_, err := api.GetLogs(ctx, connect.NewRequest(&pb.GetLogsRequest{ExecutionId: "E_01M95GYSWGB1NGVQYPFF0A1AAA"}))
	wantCode(t, "unknown execution", err, connect.CodeNotFound)
	_, err = api.GetLogs(ctx, connect.NewRequest(&pb.GetLogsRequest{}))
	wantCode(t, "no ID", err, connect.CodeInvalidArgument)
}
