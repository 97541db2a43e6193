package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/obelisk-go/obelisk/actors"
	"github.com/obelisk-go/obelisk/events"
	"github.com/obelisk-go/obelisk/hostguard"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
	"github.com/obelisk-go/obelisk/proto/obelisk/v1/obeliskv1connect"
)

const approvalWIT = `
package testing:approval;

interface approval {
    approve: func(id: string) -> result<bool, string>;
}

world any {
    export approval;
}
`

const approveFFQN = "testing:approval/approval.approve"

// serve starts an engine with one inline activity stub and its API; it returns the
// engine and a client of the API.
func serve(t *testing.T) (*actors.Engine, obeliskv1connect.ExecutionServiceClient) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e, err := actors.New(ctx, actors.Config{
		DataDir:    t.TempDir(),
		Components: []actors.ComponentConfig{{Name: "approval", Type: actors.ActivityStub, WIT: approvalWIT}},
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, e, hostguard.Allowed{}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		e.Close(context.Background())
	})
	return e, obeliskv1connect.NewExecutionServiceClient(http.DefaultClient, "http://"+ln.Addr().String())
}

// stubExecution creates a pending execution of the stub (a workflow would, through its
// stub call; the API does not submit stubs).
func stubExecution(t *testing.T, e *actors.Engine) string {
	t.Helper()
	c := e.Components()[0]
	now := time.Now()
	id := events.NewExecutionID(now)
	created := &pb.Event{CreatedAt: now.UnixNano(), Kind: &pb.Event_Created{Created: &pb.Created{
		Ffqn: approveFFQN, Params: []byte(`["r-1"]`), ScheduledAt: now.UnixNano(),
		ComponentId: c.ID, ComponentType: pb.ComponentType_COMPONENT_TYPE_ACTIVITY_STUB, Queue: c.Config.Name,
	}}}
	if _, err := e.Store().Commit(context.Background(), &events.Tx{Appends: []events.Append{{ExecutionID: id, Events: []*pb.Event{created}}}}); err != nil {
		t.Fatal(err)
	}
	return id
}

func wantCode(t *testing.T, what string, err error, code connect.Code) {
	t.Helper()
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != code {
		t.Fatalf("%s: err = %v, want %v", what, err, code)
	}
}

func TestPauseUnpause(t *testing.T) {
	e, api := serve(t)
	ctx := context.Background()
	id := stubExecution(t, e)
	if _, err := api.Pause(ctx, connect.NewRequest(&pb.PauseRequest{ExecutionId: id})); err != nil {
		t.Fatal(err)
	}
	if st, err := e.State(ctx, id); err != nil || !st.Paused {
		t.Fatalf("paused: %v %v", st, err)
	}
	_, err := api.Pause(ctx, connect.NewRequest(&pb.PauseRequest{ExecutionId: id}))
	wantCode(t, "pause twice", err, connect.CodeFailedPrecondition)
	if _, err := api.Unpause(ctx, connect.NewRequest(&pb.UnpauseRequest{ExecutionId: id})); err != nil {
		t.Fatal(err)
	}
	_, err = api.Unpause(ctx, connect.NewRequest(&pb.UnpauseRequest{ExecutionId: id}))
	wantCode(t, "unpause twice", err, connect.CodeFailedPrecondition)

	missing := events.NewExecutionID(time.Now())
	_, err = api.Pause(ctx, connect.NewRequest(&pb.PauseRequest{ExecutionId: missing}))
	wantCode(t, "pause unknown", err, connect.CodeNotFound)
	_, err = api.Unpause(ctx, connect.NewRequest(&pb.UnpauseRequest{ExecutionId: missing}))
	wantCode(t, "unpause unknown", err, connect.CodeNotFound)
	_, err = api.Pause(ctx, connect.NewRequest(&pb.PauseRequest{}))
	wantCode(t, "pause without ID", err, connect.CodeInvalidArgument)
}

func TestStub(t *testing.T) {
	e, api := serve(t)
	ctx := context.Background()
	id := stubExecution(t, e)
	stub := func(result string) (*connect.Response[pb.StubResponse], error) {
		return api.Stub(ctx, connect.NewRequest(&pb.StubRequest{ExecutionId: id, ResultJson: result}))
	}
	_, err := stub(`{"ok": "yes"}`)
	wantCode(t, "ill-typed result", err, connect.CodeInvalidArgument)
	_, err = stub(`{"ok":`)
	wantCode(t, "malformed result", err, connect.CodeInvalidArgument)
	_, err = stub(``)
	wantCode(t, "no result", err, connect.CodeInvalidArgument)
	resp, err := stub(`{"ok": true}`)
	if err != nil || resp.Msg.Outcome != "stubbed" {
		t.Fatalf("stub: %v %v", resp, err)
	}
	if resp, err = stub(`{ "ok" : true }`); err != nil || resp.Msg.Outcome != "already_stubbed" {
		t.Fatalf("stub again: %v %v", resp, err)
	}
	_, err = stub(`{"err": "no"}`)
	wantCode(t, "conflicting result", err, connect.CodeFailedPrecondition)

	st, err := api.GetStatus(ctx, connect.NewRequest(&pb.GetStatusRequest{ExecutionId: id}))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if !st.Receive() || st.Msg().Summary.Status != "finished" || st.Msg().Summary.ResultJson != `{"ok":true}` {
		t.Fatalf("status after stub: %v %v", st.Msg(), st.Err())
	}

	_, err = api.Stub(ctx, connect.NewRequest(&pb.StubRequest{ExecutionId: events.NewExecutionID(time.Now()), ResultJson: `{"ok": true}`}))
	wantCode(t, "stub unknown", err, connect.CodeNotFound)
}

func TestCancel(t *testing.T) {
	e, api := serve(t)
	ctx := context.Background()
	id := stubExecution(t, e)
	cancel := func(id string) (string, error) {
		resp, err := api.Cancel(ctx, connect.NewRequest(&pb.CancelRequest{ExecutionId: id}))
		if err != nil {
			return "", err
		}
		return resp.Msg.Outcome, nil
	}
	if out, err := cancel(id); err != nil || out != "cancelled" {
		t.Fatalf("cancel: %q %v", out, err)
	}
	if out, err := cancel(id); err != nil || out != "already_finished" {
		t.Fatalf("cancel again: %q %v", out, err)
	}
	_, err := cancel(events.NewExecutionID(time.Now()))
	wantCode(t, "cancel unknown", err, connect.CodeNotFound)
	_, err = cancel("")
	wantCode(t, "cancel without ID", err, connect.CodeInvalidArgument)
	_, err = cancel("Delay_nonsense")
	wantCode(t, "cancel a malformed delay ID", err, connect.CodeInvalidArgument)
	_, err = cancel("Delay_" + strings.TrimPrefix(events.NewExecutionID(time.Now()), "E_") + ".g_1")
	wantCode(t, "cancel a delay of an unknown execution", err, connect.CodeNotFound)
}
