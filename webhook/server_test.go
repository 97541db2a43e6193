package webhook

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/actors"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	"github.com/obelisk-go/obelisk/wasmhost"
)

// fakeEngine answers requests with a function instead of a guest; body is the
// request's body.
type fakeEngine func(ctx context.Context, endpoint string, in guestRequest, body []byte) (json.RawMessage, error)

func (f fakeEngine) RunWebhook(ctx context.Context, endpoint string, req *actors.WebhookRequest) (*actors.WebhookResult, error) {
	var in guestRequest
	if err := json.Unmarshal(req.Input, &in); err != nil {
		return nil, err
	}
	if in.BodyLength != len(req.Body) {
		return nil, fmt.Errorf("body_length %d, body of %d bytes", in.BodyLength, len(req.Body))
	}
	out, err := f(ctx, endpoint, in, req.Body)
	return &actors.WebhookResult{Output: out}, err
}

// fakeEngine serves no function endpoints.
func (f fakeEngine) Function(string) (actors.Function, bool) { return actors.Function{}, false }

func (f fakeEngine) Submit(context.Context, string, string, json.RawMessage, ...actors.SubmitOption) (string, bool, error) {
	return "", false, errors.New("fakeEngine: no functions")
}

func (f fakeEngine) WaitFinished(context.Context, string) (*pb.ExecutionState, error) {
	return nil, errors.New("fakeEngine: no executions")
}

func routes(t *testing.T, ss ...string) []Route {
	var rs []Route
	for _, s := range ss {
		r, err := ParseRoute(s)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	return rs
}

func TestWebhookServer(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	e := fakeEngine(func(ctx context.Context, endpoint string, in guestRequest, body []byte) (json.RawMessage, error) {
		switch {
		case strings.HasPrefix(in.Path, "/echo"):
			b, _ := json.Marshal(map[string]any{"ok": map[string]any{
				"status": 201, "headers": map[string][]string{"X-Endpoint": {endpoint}},
				"body": []byte(in.Method + " " + in.Params["n"] + " " + in.Query + " " + string(body) + " " + in.Headers["X-Test"][0]),
			}})
			return b, nil
		case in.Path == "/block":
			entered <- struct{}{}
			<-release
			return json.RawMessage(`{"ok":{"body":"b2s="}}`), nil
		case in.Path == "/slow":
			<-ctx.Done()
			return nil, ctx.Err()
		case in.Path == "/trap":
			return nil, &wasmhost.TrapError{Message: "wasm error: unreachable: panic: boom"}
		case in.Path == "/err":
			return json.RawMessage(`{"err":"nope"}`), nil
		}
		return nil, errors.New("internal")
	})
	ss, err := Listen(Config{
		Servers: []ServerConfig{{Name: "external", ListeningAddr: "127.0.0.1:0"}},
		Endpoints: []EndpointConfig{
			{Name: "a", Server: "external", Routes: routes(t, "POST /echo/:n", "/trap", "/err", "/other"), MaxInflightRequests: 10, RequestTimeout: time.Second},
			{Name: "b", Server: "external", Routes: routes(t, "/block"), MaxInflightRequests: 1, RequestTimeout: time.Minute},
			{Name: "c", Server: "external", Routes: routes(t, "/slow"), MaxInflightRequests: 1, RequestTimeout: 100 * time.Millisecond},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := ss.Serve(e, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	base := "http://" + ss.Addrs()["external"].String()
	do := func(method, path, body string) (int, http.Header, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("X-Test", "yes")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}

	if status, h, body := do("POST", "/echo/42?q=1", "hello"); status != 201 || body != "POST 42 q=1 hello yes" || h.Get("X-Endpoint") != "a" {
		t.Errorf("POST /echo/42: %d %q %v", status, body, h)
	}
	if status, h, _ := do("GET", "/echo/42", ""); status != 405 || h.Get("Allow") != "POST" {
		t.Errorf("GET /echo/42: %d, Allow %q", status, h.Get("Allow"))
	}
	if status, _, body := do("GET", "/none", ""); status != 404 || !strings.Contains(body, "route not found") {
		t.Errorf("GET /none: %d %q", status, body)
	}
	if status, _, body := do("GET", "/trap", ""); status != 500 || body != "webhook trapped: wasm error: unreachable: panic: boom\n" {
		t.Errorf("GET /trap: %d %q", status, body)
	}
	if status, _, body := do("GET", "/err", ""); status != 500 || !strings.Contains(body, `"nope"`) {
		t.Errorf("GET /err: %d %q", status, body)
	}
	if status, _, body := do("GET", "/other", ""); status != 503 || !strings.Contains(body, "internal") {
		t.Errorf("GET /other: %d %q", status, body)
	}
	if status, _, body := do("GET", "/slow", ""); status != 408 {
		t.Errorf("GET /slow: %d %q", status, body)
	}

	var wg sync.WaitGroup
	wg.Add(1)
	var firstStatus int
	var firstBody string
	go func() {
		defer wg.Done()
		resp, err := http.Get(base + "/block")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			firstStatus, firstBody = resp.StatusCode, string(b)
		}
	}()
	<-entered
	if status, _, _ := do("GET", "/block", ""); status != 429 {
		t.Errorf("second GET /block: %d, want 429", status)
	}
	close(release)
	wg.Wait()
	if firstStatus != 200 || firstBody != "ok" {
		t.Errorf("first GET /block: %d %q", firstStatus, firstBody)
	}
}

func TestWebhookListenErrors(t *testing.T) {
	_, err := Listen(Config{Endpoints: []EndpointConfig{{Name: "a", Server: "missing"}}})
	if err == nil || !strings.Contains(err.Error(), `http_server "missing" is not defined`) {
		t.Errorf("unknown server: %v", err)
	}
	_, err = Listen(Config{
		Servers: []ServerConfig{{Name: "s", ListeningAddr: "127.0.0.1:0"}},
		Endpoints: []EndpointConfig{
			{Name: "a", Server: "s", Routes: routes(t, "/x/:id")},
			{Name: "b", Server: "s", Routes: routes(t, "/x/:other")},
		},
	})
	if err == nil || !strings.Contains(err.Error(), "conflicts") {
		t.Errorf("conflicting routes: %v", err)
	}
}

// TestWebhookSlowUploads: clients that send their bodies a byte at a time, more of them
// than the endpoint's max_inflight_requests, do not keep other requests from being
// served, and are cut off at the server's read_timeout.
func TestWebhookSlowUploads(t *testing.T) {
	const slow, inflight = 6, 2
	var guestSaw sync.Map // paths the engine ran
	e := fakeEngine(func(ctx context.Context, endpoint string, in guestRequest, body []byte) (json.RawMessage, error) {
		guestSaw.Store(in.Path, true)
		return json.RawMessage(`{"ok":{"body":"b2s="}}`), nil
	})
	ss, err := Listen(Config{
		Servers: []ServerConfig{{Name: "external", ListeningAddr: "127.0.0.1:0", ReadTimeout: time.Second}},
		Endpoints: []EndpointConfig{
			{Name: "a", Server: "external", Routes: routes(t, "/fast", "POST /slow"), MaxInflightRequests: inflight, RequestTimeout: 10 * time.Second},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := ss.Serve(e, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	addr := ss.Addrs()["external"].String()

	// Each slow client announces a 1 MB body and sends a byte every 100 ms; it reports
	// the status line the server answers, or the error that ended the connection.
	stop := make(chan struct{})
	defer close(stop)
	ended := make(chan string, slow)
	for range slow {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := fmt.Fprintf(conn, "POST /slow HTTP/1.1\r\nHost: %s\r\nContent-Length: 1000000\r\n\r\n", addr); err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
				if _, err := conn.Write([]byte{'x'}); err != nil {
					return
				}
			}
		}()
		go func() {
			line, err := bufio.NewReader(conn).ReadString('\n')
			if err != nil {
				ended <- "connection closed: " + err.Error()
				return
			}
			ended <- strings.TrimSpace(line)
		}()
	}
	// Let the server take the slow requests in (a generous wait, well within the
	// read_timeout), then serve normal requests while they trickle.
	time.Sleep(300 * time.Millisecond)
	for _, c := range []struct{ method, path, body string }{{"GET", "/fast", ""}, {"POST", "/fast", "small body"}} {
		req, _ := http.NewRequest(c.method, "http://"+addr+c.path, strings.NewReader(c.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s while slow uploads trickle: %v", c.method, c.path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "ok" {
			t.Errorf("%s %s while %d slow uploads trickle: %d %q, want 200 \"ok\"", c.method, c.path, slow, resp.StatusCode, body)
		}
	}
	for i := range slow {
		select {
		case got := <-ended:
			if !strings.HasPrefix(got, "HTTP/1.1 408") && !strings.HasPrefix(got, "connection closed") {
				t.Errorf("slow upload %d: %q, want a 408 or the connection closed", i, got)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%d slow uploads are still open 30 s after they started (read_timeout 1s)", slow-i)
		}
	}
	if _, ok := guestSaw.Load("/slow"); ok {
		t.Error("a request whose body never arrived reached the engine")
	}
}
