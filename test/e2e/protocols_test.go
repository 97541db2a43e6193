package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
	"github.com/obelisk-go/obelisk/proto/obelisk/v1/obeliskv1connect"
	"github.com/obelisk-go/obelisk/test/harness"
)

// TestAPIProtocols: the API answers gRPC, gRPC-Web, the Connect protocol and plain JSON
// over HTTP on the one listening address.
func TestAPIProtocols(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	h2c := &http.Client{Transport: &http.Transport{Protocols: unencryptedHTTP2()}}
	clients := map[string]obeliskv1connect.ExecutionServiceClient{
		"grpc":     obeliskv1connect.NewExecutionServiceClient(h2c, s.URL, connect.WithGRPC()),
		"grpc-web": obeliskv1connect.NewExecutionServiceClient(http.DefaultClient, s.URL, connect.WithGRPCWeb()),
		"connect":  obeliskv1connect.NewExecutionServiceClient(http.DefaultClient, s.URL, connect.WithProtoJSON()),
	}
	for name, c := range clients {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			resp, err := c.Submit(ctx, connect.NewRequest(&pb.SubmitRequest{Ffqn: "testing:fibo/fibo.fibo", ParamsJson: "[12]"}))
			if err != nil {
				t.Fatal(err)
			}
			stream, err := c.GetStatus(ctx, connect.NewRequest(&pb.GetStatusRequest{ExecutionId: resp.Msg.ExecutionId, Follow: true}))
			if err != nil {
				t.Fatal(err)
			}
			var last *pb.ExecutionSummary
			for stream.Receive() {
				last = stream.Msg().Summary
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			if last == nil || last.Status != "finished" {
				t.Fatalf("last status %v", last)
			}
			harness.JSONEq(t, last.ResultJson, `{"ok":144}`)
			// Errors keep their codes in every protocol.
			_, err = c.Submit(ctx, connect.NewRequest(&pb.SubmitRequest{Ffqn: "testing:fibo/fibo.fibo", ParamsJson: `["x"]`}))
			if connect.CodeOf(err) != connect.CodeInvalidArgument {
				t.Fatalf("mistyped params: %v, want invalid_argument", err)
			}
		})
	}
	t.Run("plain JSON", func(t *testing.T) {
		body := `{"ffqn":"testing:fibo/fibo.fibo","params_json":"[7]"}`
		resp, err := http.Post(s.URL+"/obelisk.v1.ExecutionService/Submit", "application/json", bytes.NewBufferString(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var out struct {
			ExecutionID string `json:"executionId"`
		}
		if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &out) != nil || out.ExecutionID == "" {
			t.Fatalf("status %d, body %s", resp.StatusCode, b)
		}
		harness.JSONEq(t, s.Result(out.ExecutionID, time.Minute), `{"ok":13}`)
	})
}

func unencryptedHTTP2() *http.Protocols {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &p
}
