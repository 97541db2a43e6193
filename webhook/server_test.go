package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/actors"
	"github.com/obelisk-go/obelisk/wasmhost"
)

// fakeEngine answers requests with a function instead of a guest.
type fakeEngine func(ctx context.Context, endpoint string, in guestRequest) (json.RawMessage, error)

func (f fakeEngine) RunWebhook(ctx context.Context, endpoint string, req *actors.WebhookRequest) (*actors.WebhookResult, error) {
	var in guestRequest
	if err := json.Unmarshal(req.Input, &in); err != nil {
		return nil, err
	}
	out, err := f(ctx, endpoint, in)
	return &actors.WebhookResult{Output: out}, err
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
	e := fakeEngine(func(ctx context.Context, endpoint string, in guestRequest) (json.RawMessage, error) {
		switch {
		case strings.HasPrefix(in.Path, "/echo"):
			b, _ := json.Marshal(map[string]any{"ok": map[string]any{
				"status": 201, "headers": map[string][]string{"X-Endpoint": {endpoint}},
				"body": []byte(in.Method + " " + in.Params["n"] + " " + in.Query + " " + string(in.Body) + " " + in.Headers["X-Test"][0]),
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
	ss.Serve(e, slog.New(slog.DiscardHandler))
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
