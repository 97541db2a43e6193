package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
	"github.com/obelisk-go/obelisk/proto/obelisk/v1/obeliskv1connect"
)

// fakeWatch serves WatchEvents from a fixed log; its first stream breaks after two
// events.
type fakeWatch struct {
	obeliskv1connect.UnimplementedExecutionServiceHandler
	mu    sync.Mutex
	calls []*pb.WatchEventsRequest
}

func (f *fakeWatch) WatchEvents(ctx context.Context, req *connect.Request[pb.WatchEventsRequest], st *connect.ServerStream[pb.WatchEventsResponse]) error {
	f.mu.Lock()
	f.calls = append(f.calls, req.Msg)
	first := len(f.calls) == 1
	f.mu.Unlock()
	if len(req.Msg.Kinds) > 0 && req.Msg.Kinds[0] == "bad" {
		return connect.NewError(connect.CodeInvalidArgument, errors.New("unknown event kind"))
	}
	if err := st.Send(nil); err != nil {
		return err
	}
	for pos := req.Msg.FromPosition + 1; pos <= 3; pos++ {
		ev := &pb.EventView{Version: uint32(pos - 1), CreatedAt: "2026-01-01T00:00:00Z", Kind: "created", DetailsJson: `{"ffqn":"a:b/c.d"}`}
		if err := st.Send(&pb.WatchEventsResponse{Position: pos, ExecutionId: "E_1", Event: ev}); err != nil {
			return err
		}
		if first && pos == 2 {
			return connect.NewError(connect.CodeUnavailable, errors.New("connection lost"))
		}
	}
	<-ctx.Done()
	return nil
}

func TestEventsWatch(t *testing.T) {
	watchRetry = 10 * time.Millisecond
	f := &fakeWatch{}
	_, h := obeliskv1connect.NewExecutionServiceHandler(f)
	srv := httptest.NewServer(h)
	defer srv.Close()

	for _, asJSON := range []bool{false, true} {
		f.calls = nil
		o := &clientOpts{apiURL: srv.URL, json: asJSON}
		ctx, cancel := context.WithCancel(context.Background())
		var out, errOut syncBuffer
		done := make(chan error, 1)
		go func() {
			done <- watchEvents(ctx, o, &pb.WatchEventsRequest{ExecutionIdPrefix: "E_"}, &out, &errOut)
		}()
		deadline := time.Now().Add(10 * time.Second)
		for strings.Count(out.String(), "\n") < 3 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("interrupted watch: %v", err)
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if len(lines) != 3 {
			t.Fatalf("json=%v: %d lines:\n%s", asJSON, len(lines), out.String())
		}
		for i, l := range lines {
			if asJSON {
				var doc watchLine
				if err := json.Unmarshal([]byte(l), &doc); err != nil || doc.Position != uint64(i+1) || doc.ExecutionID != "E_1" || string(doc.Details) != `{"ffqn":"a:b/c.d"}` {
					t.Fatalf("line %q: %+v %v", l, doc, err)
				}
			} else if !strings.HasPrefix(l, fmt.Sprintf("%d E_1 v%d 2026-01-01T00:00:00Z created ", i+1, i)) || !strings.HasSuffix(l, ` {"ffqn":"a:b/c.d"}`) {
				t.Fatalf("line %q", l)
			}
		}
		// It reconnected after position 2, with the same filters.
		if len(f.calls) != 2 || f.calls[1].FromPosition != 2 || f.calls[1].ExecutionIdPrefix != "E_" {
			t.Fatalf("calls: %v", f.calls)
		}
		if !strings.Contains(errOut.String(), "after position 2") {
			t.Fatalf("stderr: %q", errOut.String())
		}
	}

	// A bad request, or no server, is exit status 2.
	var out, errOut syncBuffer
	err := watchEvents(context.Background(), &clientOpts{apiURL: srv.URL}, &pb.WatchEventsRequest{Kinds: []string{"bad"}}, &out, &errOut)
	var exit *ExitError
	if !errors.As(err, &exit) || exit.Code != 2 {
		t.Fatalf("bad kind: %v", err)
	}
	err = watchEvents(context.Background(), &clientOpts{apiURL: "http://127.0.0.1:1"}, &pb.WatchEventsRequest{}, &out, &errOut)
	if !errors.As(err, &exit) || exit.Code != 2 {
		t.Fatalf("no server: %v", err)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
