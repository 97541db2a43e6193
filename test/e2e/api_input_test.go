package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
	"github.com/obelisk-go/obelisk/test/harness"
)

func connectCode(err error) connect.Code {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce.Code()
	}
	return 0
}

// TestAPIInputLimits: a request over api.max_request_bytes or parameters over
// api.max_params_bytes are refused, name the limit, and store nothing; errors about huge
// inputs stay short.
func TestAPIInputLimits(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	ctx := context.Background()
	store := filepath.Join(s.DataDir(), "store")
	before := harness.DirSize(t, store)
	url := func(n int) string { return `["http://127.0.0.1:1/` + strings.Repeat("a", n) + `"]` }

	// 10 MB through the Go client ...
	_, err := s.Exec.Submit(ctx, connect.NewRequest(&pb.SubmitRequest{Ffqn: "testing:http/http-get.get", ParamsJson: url(10 << 20)}))
	if connectCode(err) != connect.CodeResourceExhausted || len(err.Error()) > 300 {
		t.Fatalf("10 MB submit: %.300v", err)
	}
	// ... and as JSON (curl), refused before it is read, naming the setting.
	body, _ := json.Marshal(map[string]string{"ffqn": "testing:http/http-get.get", "params_json": url(10 << 20)})
	resp, err := http.Post(s.URL+"/obelisk.v1.ExecutionService/Submit", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(msg), "resource_exhausted") || !strings.Contains(string(msg), "api.max_request_bytes") {
		t.Fatalf("10 MB JSON submit: %s %.300s", resp.Status, msg)
	}

	// Under the request limit, over the parameters' limit.
	_, err = s.Exec.Submit(ctx, connect.NewRequest(&pb.SubmitRequest{Ffqn: "testing:http/http-get.get", ParamsJson: url(3 << 19)}))
	if connectCode(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "api.max_params_bytes") {
		t.Fatalf("1.5 MB params: %.300v", err)
	}

	// Huge IDs: over the request limit, or under it and malformed; either way a short error.
	for _, n := range []int{5 << 20, 3 << 20} {
		id := "E_" + strings.Repeat("x", n)
		stream, err := s.Exec.GetStatus(ctx, connect.NewRequest(&pb.GetStatusRequest{ExecutionId: id}))
		if err == nil {
			stream.Receive()
			err = stream.Err()
			stream.Close()
		}
		if code := connectCode(err); code != connect.CodeResourceExhausted && code != connect.CodeInvalidArgument || len(err.Error()) > 300 {
			t.Errorf("status of a %d-byte ID: %.300v (%d bytes)", n, err, len(err.Error()))
		}
		_, err = s.Exec.Submit(ctx, connect.NewRequest(&pb.SubmitRequest{Ffqn: "testing:fibo/fibo.fibo", ParamsJson: "[1]", ExecutionId: id}))
		if code := connectCode(err); code != connect.CodeResourceExhausted && code != connect.CodeInvalidArgument || len(err.Error()) > 300 {
			t.Errorf("submit with a %d-byte ID: %.300v (%d bytes)", n, err, len(err.Error()))
		}
	}

	list, err := s.Exec.ListExecutions(ctx, connect.NewRequest(&pb.ListExecutionsRequest{}))
	if err != nil || len(list.Msg.Executions) != 0 {
		t.Fatalf("executions after refused requests: %v %v", list, err)
	}
	if after := harness.DirSize(t, store); after-before > 1<<20 {
		t.Errorf("the store grew from %d to %d bytes with every request refused", before, after)
	}
}

// TestExecutionIDCase: an ID differing only in the case of its ULID names the same
// execution, on submit and everywhere else.
func TestExecutionIDCase(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	const upper = "E_01M95GYSWGB1NGVQYPFF0A1AAA"
	lower := "E_" + strings.ToLower(strings.TrimPrefix(upper, "E_"))
	out, errOut, code := s.CLI("execution", "submit", "--json", "-e", lower, "testing:fibo/fibo.fibo", "[10]")
	if code != 0 || !strings.Contains(out, upper) {
		t.Fatalf("submit with a lower-case ID: exit %d, %s %s", code, out, errOut)
	}
	resp, err := s.Exec.Submit(context.Background(), connect.NewRequest(&pb.SubmitRequest{Ffqn: "testing:fibo/fibo.fibo", ParamsJson: "[10]", ExecutionId: upper}))
	if err != nil || !resp.Msg.AlreadyExisted || resp.Msg.ExecutionId != upper {
		t.Fatalf("submit with the upper-case ID: %v %v", resp, err)
	}
	harness.JSONEq(t, s.Result(lower, time.Minute), `{"ok":55}`)
	list, err := s.Exec.ListExecutions(context.Background(), connect.NewRequest(&pb.ListExecutionsRequest{}))
	if err != nil || len(list.Msg.Executions) != 1 || list.Msg.Executions[0].ExecutionId != upper {
		t.Fatalf("executions: %v %v", list, err)
	}
	if _, errOut, code := s.CLI("execution", "list", "--cursor", "not-a-cursor"); code != 2 || !strings.Contains(errOut, "invalid_argument") {
		t.Fatalf("list with a bad cursor: exit %d, %s", code, errOut)
	}
}
