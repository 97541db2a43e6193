package api

import (
	"bytes"
	"context"
	"encoding/json"
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
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	apiv1 "github.com/obelisk-go/obelisk/proto/obelisk/v1"
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
	e, api, _ := serveWith(t, Options{})
	return e, api
}

// serveWith is serve with options; it also returns the API's URL.
func serveWith(t *testing.T, opts Options) (*actors.Engine, obeliskv1connect.ExecutionServiceClient, string) {
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
	go func() { done <- Serve(ctx, ln, e, opts) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		e.Close(context.Background())
	})
	url := "http://" + ln.Addr().String()
	return e, obeliskv1connect.NewExecutionServiceClient(http.DefaultClient, url), url
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
	if _, err := api.Pause(ctx, connect.NewRequest(&apiv1.PauseRequest{ExecutionId: id})); err != nil {
		t.Fatal(err)
	}
	if st, err := e.State(ctx, id); err != nil || !st.Paused {
		t.Fatalf("paused: %v %v", st, err)
	}
	_, err := api.Pause(ctx, connect.NewRequest(&apiv1.PauseRequest{ExecutionId: id}))
	wantCode(t, "pause twice", err, connect.CodeFailedPrecondition)
	if _, err := api.Unpause(ctx, connect.NewRequest(&apiv1.UnpauseRequest{ExecutionId: id})); err != nil {
		t.Fatal(err)
	}
	_, err = api.Unpause(ctx, connect.NewRequest(&apiv1.UnpauseRequest{ExecutionId: id}))
	wantCode(t, "unpause twice", err, connect.CodeFailedPrecondition)

	missing := events.NewExecutionID(time.Now())
	_, err = api.Pause(ctx, connect.NewRequest(&apiv1.PauseRequest{ExecutionId: missing}))
	wantCode(t, "pause unknown", err, connect.CodeNotFound)
	_, err = api.Unpause(ctx, connect.NewRequest(&apiv1.UnpauseRequest{ExecutionId: missing}))
	wantCode(t, "unpause unknown", err, connect.CodeNotFound)
	_, err = api.Pause(ctx, connect.NewRequest(&apiv1.PauseRequest{}))
	wantCode(t, "pause without ID", err, connect.CodeInvalidArgument)
}

func TestStub(t *testing.T) {
	e, api := serve(t)
	ctx := context.Background()
	id := stubExecution(t, e)
	stub := func(result string) (*connect.Response[apiv1.StubResponse], error) {
		return api.Stub(ctx, connect.NewRequest(&apiv1.StubRequest{ExecutionId: id, ResultJson: result}))
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

	st, err := api.GetStatus(ctx, connect.NewRequest(&apiv1.GetStatusRequest{ExecutionId: id}))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if !st.Receive() || st.Msg().Summary.Status != "finished" || st.Msg().Summary.ResultJson != `{"ok":true}` {
		t.Fatalf("status after stub: %v %v", st.Msg(), st.Err())
	}

	_, err = api.Stub(ctx, connect.NewRequest(&apiv1.StubRequest{ExecutionId: events.NewExecutionID(time.Now()), ResultJson: `{"ok": true}`}))
	wantCode(t, "stub unknown", err, connect.CodeNotFound)
}

func TestCancel(t *testing.T) {
	e, api := serve(t)
	ctx := context.Background()
	id := stubExecution(t, e)
	cancel := func(id string) (string, error) {
		resp, err := api.Cancel(ctx, connect.NewRequest(&apiv1.CancelRequest{ExecutionId: id}))
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

func TestRequestSizeLimit(t *testing.T) {
	const limit = 64 << 10
	e, api, url := serveWith(t, Options{MaxRequestBytes: limit})
	ctx := context.Background()
	params := `["` + strings.Repeat("x", 2*limit) + `"]`
	// The Go client sends the body's length: refused before it is read, naming the setting.
	_, err := api.Submit(ctx, connect.NewRequest(&apiv1.SubmitRequest{Ffqn: approveFFQN, ParamsJson: params}))
	wantCode(t, "submit over the limit", err, connect.CodeResourceExhausted)
	if !strings.Contains(err.Error(), "api.max_request_bytes") {
		t.Errorf("submit over the limit: %v", err)
	}
	_, err = api.Stub(ctx, connect.NewRequest(&apiv1.StubRequest{ExecutionId: events.NewExecutionID(time.Now()), ResultJson: `{"err": "` + strings.Repeat("x", 2*limit) + `"}`}))
	wantCode(t, "stub over the limit", err, connect.CodeResourceExhausted)

	// A body of unknown length (chunked) is cut off at the limit.
	body, _ := json.Marshal(map[string]string{"ffqn": approveFFQN, "params_json": params})
	for name, r := range map[string]io.Reader{"with a length": bytes.NewReader(body), "chunked": io.MultiReader(bytes.NewReader(body))} {
		resp, err := http.Post(url+"/obelisk.v1.ExecutionService/Submit", "application/json", r)
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(msg), "resource_exhausted") {
			t.Fatalf("JSON submit over the limit, %s: %s %s", name, resp.Status, msg)
		}
	}

	page, err := e.Store().List(ctx, events.ListFilter{})
	if err != nil || len(page.States) != 0 {
		t.Fatalf("executions after refused submits: %v %v", page.States, err)
	}
	// Under the limit the same request is served (and refused for what it asks).
	_, err = api.Submit(ctx, connect.NewRequest(&apiv1.SubmitRequest{Ffqn: approveFFQN, ParamsJson: `["x"]`}))
	wantCode(t, "submit of a stub's function", err, connect.CodeInvalidArgument)
}

// TestLongIDs: an error about a huge ID quotes a short part of it, not all of it.
func TestLongIDs(t *testing.T) {
	_, api := serve(t)
	ctx := context.Background()
	long := "E_" + strings.Repeat("x", 3<<20)
	child := events.NewExecutionID(time.Now()) + "." + strings.Repeat("g", 3<<20) + "_1"
	for _, id := range []string{long, child, strings.Repeat("E", 3<<20)} {
		var errs []error
		_, err := api.Submit(ctx, connect.NewRequest(&apiv1.SubmitRequest{Ffqn: approveFFQN, ExecutionId: id}))
		errs = append(errs, err)
		st, err := api.GetStatus(ctx, connect.NewRequest(&apiv1.GetStatusRequest{ExecutionId: id}))
		if err == nil {
			st.Receive()
			err = st.Err()
			st.Close()
		}
		errs = append(errs, err)
		_, err = api.Cancel(ctx, connect.NewRequest(&apiv1.CancelRequest{ExecutionId: id}))
		errs = append(errs, err)
		_, err = api.Pause(ctx, connect.NewRequest(&apiv1.PauseRequest{ExecutionId: id}))
		errs = append(errs, err)
		_, err = api.Stub(ctx, connect.NewRequest(&apiv1.StubRequest{ExecutionId: id, ResultJson: `{"ok": true}`}))
		errs = append(errs, err)
		_, err = api.ListEvents(ctx, connect.NewRequest(&apiv1.ListEventsRequest{ExecutionId: id}))
		errs = append(errs, err)
		for i, err := range errs {
			var ce *connect.Error
			if !errors.As(err, &ce) || ce.Code() == connect.CodeInternal || ce.Code() == connect.CodeUnknown {
				t.Fatalf("call %d with a %d-byte ID: err %.300v", i, len(id), err)
			}
			if len(err.Error()) > 400 || !strings.Contains(err.Error(), "bytes)") {
				t.Errorf("call %d with a %d-byte ID: a %d-byte error: %.300s", i, len(id), len(err.Error()), err)
			}
		}
	}
}

// TestIDCase: an execution ID's ULID is case-insensitive; the API answers with the
// canonical (upper case) ID whichever case it was given.
func TestIDCase(t *testing.T) {
	e, api := serve(t)
	ctx := context.Background()
	id := stubExecution(t, e)
	lower := "E_" + strings.ToLower(strings.TrimPrefix(id, "E_"))
	if _, err := api.Pause(ctx, connect.NewRequest(&apiv1.PauseRequest{ExecutionId: lower})); err != nil {
		t.Fatalf("pause by the lower-case ID: %v", err)
	}
	if st, err := e.State(ctx, id); err != nil || !st.Paused {
		t.Fatalf("after pause by the lower-case ID: %v %v", st, err)
	}
	st, err := api.GetStatus(ctx, connect.NewRequest(&apiv1.GetStatusRequest{ExecutionId: lower}))
	if err != nil {
		t.Fatal(err)
	}
	if !st.Receive() || st.Msg().Summary.ExecutionId != id {
		t.Fatalf("status by the lower-case ID: %v %v", st.Msg(), st.Err())
	}
	st.Close()
	if resp, err := api.Stub(ctx, connect.NewRequest(&apiv1.StubRequest{ExecutionId: lower, ResultJson: `{"ok": true}`})); err != nil || resp.Msg.Outcome != "stubbed" {
		t.Fatalf("stub by the lower-case ID: %v %v", resp, err)
	}
	evs, err := api.ListEvents(ctx, connect.NewRequest(&apiv1.ListEventsRequest{ExecutionId: lower}))
	if err != nil || len(evs.Msg.Events) == 0 {
		t.Fatalf("events by the lower-case ID: %v %v", evs, err)
	}
	// An ID that is not E_<ULID> is refused as such, not looked up.
	_, err = api.Cancel(ctx, connect.NewRequest(&apiv1.CancelRequest{ExecutionId: "e_" + strings.TrimPrefix(id, "E_")}))
	wantCode(t, "cancel with prefix e_", err, connect.CodeInvalidArgument)
	_, err = api.Cancel(ctx, connect.NewRequest(&apiv1.CancelRequest{ExecutionId: "E_NOTAULID"}))
	wantCode(t, "cancel a malformed ID", err, connect.CodeInvalidArgument)
}

func TestListCursor(t *testing.T) {
	e, api := serve(t)
	ctx := context.Background()
	for range 3 {
		stubExecution(t, e)
	}
	page, err := api.ListExecutions(ctx, connect.NewRequest(&apiv1.ListExecutionsRequest{Limit: 2}))
	if err != nil || len(page.Msg.Executions) != 2 || page.Msg.NextCursor == "" {
		t.Fatalf("first page: %v %v", page, err)
	}
	next, err := api.ListExecutions(ctx, connect.NewRequest(&apiv1.ListExecutionsRequest{Limit: 2, Cursor: page.Msg.NextCursor}))
	if err != nil || len(next.Msg.Executions) != 1 {
		t.Fatalf("second page: %v %v", next, err)
	}
	for _, cursor := range []string{"zz", "63", "7300", "not a cursor " + strings.Repeat("x", 1000)} {
		_, err := api.ListExecutions(ctx, connect.NewRequest(&apiv1.ListExecutionsRequest{Cursor: cursor}))
		wantCode(t, "cursor "+cursor[:min(len(cursor), 20)], err, connect.CodeInvalidArgument)
		if len(err.Error()) > 400 {
			t.Errorf("a %d-byte error", len(err.Error()))
		}
	}
}

// TestSubmitDeadlineLimit: a deadline too far ahead to be stored (it would wrap into the
// past and end the execution at once) is an invalid argument naming the limit; a
// refusal for a full queue carries its Retry-After in whole seconds.
func TestSubmitDeadlineLimit(t *testing.T) {
	_, api, _ := serveWith(t, Options{})
	_, err := api.Submit(context.Background(), connect.NewRequest(&apiv1.SubmitRequest{Ffqn: approveFFQN, ParamsJson: `["x"]`, Deadline: "2500000h"}))
	wantCode(t, "submit with a deadline in 285 years", err, connect.CodeInvalidArgument)
	if err != nil && !strings.Contains(err.Error(), "100 years") {
		t.Errorf("submit with a deadline in 285 years: %v, want the limit named", err)
	}
	var ce *connect.Error
	if !errors.As(apiError(&actors.ResourceExhaustedError{Queue: "q", RetryAfter: 3 * time.Second}), &ce) || ce.Meta().Get("Retry-After") != "3" {
		t.Errorf("a full queue's refusal: %v, want Retry-After 3", ce)
	}
}
