package cli

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"connectrpc.com/connect"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
	"github.com/obelisk-go/obelisk/proto/obelisk/v1/obeliskv1connect"
)

// fakeExecutions answers Cancel, Pause, Unpause and Stub from fixed tables by ID.
type fakeExecutions struct {
	obeliskv1connect.UnimplementedExecutionServiceHandler
	outcomes map[string]string         // Cancel and Stub
	errs     map[string]*connect.Error // any call
	stubbed  map[string]string         // the RESULT_JSON Stub received
}

func (f *fakeExecutions) answer(id string) (string, error) {
	if err, ok := f.errs[id]; ok {
		return "", err
	}
	return f.outcomes[id], nil
}

func (f *fakeExecutions) Cancel(_ context.Context, req *connect.Request[pb.CancelRequest]) (*connect.Response[pb.CancelResponse], error) {
	out, err := f.answer(req.Msg.ExecutionId)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.CancelResponse{Outcome: out}), nil
}

func (f *fakeExecutions) Pause(_ context.Context, req *connect.Request[pb.PauseRequest]) (*connect.Response[pb.PauseResponse], error) {
	if _, err := f.answer(req.Msg.ExecutionId); err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.PauseResponse{}), nil
}

func (f *fakeExecutions) Unpause(_ context.Context, req *connect.Request[pb.UnpauseRequest]) (*connect.Response[pb.UnpauseResponse], error) {
	if _, err := f.answer(req.Msg.ExecutionId); err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.UnpauseResponse{}), nil
}

func (f *fakeExecutions) Stub(_ context.Context, req *connect.Request[pb.StubRequest]) (*connect.Response[pb.StubResponse], error) {
	out, err := f.answer(req.Msg.ExecutionId)
	if err != nil {
		return nil, err
	}
	f.stubbed[req.Msg.ExecutionId] = req.Msg.ResultJson
	return connect.NewResponse(&pb.StubResponse{Outcome: out}), nil
}

func fakeAPI(t *testing.T) (*fakeExecutions, string) {
	t.Helper()
	f := &fakeExecutions{
		outcomes: map[string]string{
			"E_wf": "cancel_requested", "E_act": "cancelled", "E_done": "already_finished",
			"E_going": "already_cancelling", "Delay_x.g_1": "cancelled",
			"E_stub": "stubbed", "E_stubbed": "already_stubbed",
		},
		errs: map[string]*connect.Error{
			"E_missing":  connect.NewError(connect.CodeNotFound, errors.New("execution E_missing not found")),
			"E_conflict": connect.NewError(connect.CodeFailedPrecondition, errors.New("conflict: execution E_conflict already has the result {\"ok\":1}")),
			"E_badtype":  connect.NewError(connect.CodeInvalidArgument, errors.New("stub E_badtype: result does not match")),
		},
		stubbed: map[string]string{},
	}
	mux := http.NewServeMux()
	mux.Handle(obeliskv1connect.NewExecutionServiceHandler(f))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

func exitCode(err error) int {
	var ee *ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.Code
	}
	return 2 // main exits with 2 on any other error (cobra's argument errors)
}

func TestExecutionControlCommands(t *testing.T) {
	_, url := fakeAPI(t)
	cases := []struct {
		name    string
		args    []string
		code    int
		out     string // the human output, or a part of the error
		outcome string // the --json outcome, if the command succeeds
	}{
		{"cancel workflow", []string{"cancel", "E_wf"}, 0, "E_wf cancel_requested\n", "cancel_requested"},
		{"cancel activity", []string{"cancel", "E_act"}, 0, "E_act cancelled\n", "cancelled"},
		{"cancel finished", []string{"cancel", "E_done"}, 0, "E_done already finished: nothing changed\n", "already_finished"},
		{"cancel cancelling", []string{"cancel", "E_going"}, 0, "E_going already cancelling: nothing changed\n", "already_cancelling"},
		{"cancel delay", []string{"cancel", "Delay_x.g_1"}, 0, "Delay_x.g_1 cancelled\n", "cancelled"},
		{"cancel unknown", []string{"cancel", "E_missing"}, 2, "not_found: execution E_missing not found", ""},
		{"cancel without ID", []string{"cancel"}, 2, "accepts 1 arg", ""},
		{"cancel blank ID", []string{"cancel", " "}, 2, "execution ID is empty", ""},
		{"pause", []string{"pause", "E_wf"}, 0, "E_wf paused\n", "paused"},
		{"pause unknown", []string{"pause", "E_missing"}, 2, "not_found", ""},
		{"unpause", []string{"unpause", "E_wf"}, 0, "E_wf unpaused\n", "unpaused"},
		{"stub", []string{"stub", "E_stub", `{"ok": 1}`}, 0, "E_stub stubbed\n", "stubbed"},
		{"stub again", []string{"stub", "E_stubbed", `{"ok": 1}`}, 0, "E_stubbed already has this result: nothing changed\n", "already_stubbed"},
		{"stub conflict", []string{"stub", "E_conflict", `{"ok": 2}`}, 2, "failed_precondition: conflict", ""},
		{"stub ill-typed", []string{"stub", "E_badtype", `{"ok": "x"}`}, 2, "invalid_argument", ""},
		{"stub not JSON", []string{"stub", "E_stub", `{"ok":`}, 2, "RESULT_JSON must be a JSON object", ""},
		{"stub not an object", []string{"stub", "E_stub", `[1]`}, 2, "RESULT_JSON must be a JSON object", ""},
		{"stub without result", []string{"stub", "E_stub"}, 2, "accepts 2 arg", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"client", "--api-url", url, "execution"}, c.args...)
			out, err := runCLI(t, args...)
			if got := exitCode(err); got != c.code {
				t.Fatalf("exit status %d (err %v), want %d", got, err, c.code)
			}
			if c.code != 0 {
				if !strings.Contains(err.Error(), c.out) {
					t.Fatalf("err = %v, want it to mention %q", err, c.out)
				}
				return
			}
			if out != c.out {
				t.Fatalf("output %q, want %q", out, c.out)
			}
			out, err = runCLI(t, append([]string{"client", "--api-url", url, "--json", "execution"}, c.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			var doc map[string]string
			if err := json.Unmarshal([]byte(out), &doc); err != nil {
				t.Fatalf("--json output %q: %v", out, err)
			}
			if len(doc) != 2 || doc["execution_id"] != c.args[1] || doc["outcome"] != c.outcome {
				t.Fatalf("--json output %v, want execution_id %q and outcome %q", doc, c.args[1], c.outcome)
			}
		})
	}
}

func TestStubSendsTheResult(t *testing.T) {
	f, url := fakeAPI(t)
	if _, err := runCLI(t, "client", "--api-url", url, "execution", "stub", "E_stub", `{"err": "denied"}`); err != nil {
		t.Fatal(err)
	}
	if got := f.stubbed["E_stub"]; got != `{"err": "denied"}` {
		t.Fatalf("the API received %q", got)
	}
}

func TestControlCommandsWithoutServer(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	_, err := runCLI(t, "client", "--api-url", url, "execution", "cancel", "E_wf")
	if exitCode(err) != 2 || !strings.Contains(err.Error(), "cannot reach the API") {
		t.Fatalf("err = %v, want exit status 2 and cannot reach the API", err)
	}
}
