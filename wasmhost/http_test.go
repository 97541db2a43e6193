package wasmhost

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
)

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

type httpResult struct {
	Ok struct {
		Ok *struct {
			Status  int                 `json:"status"`
			Headers map[string][]string `json:"headers"`
			Body    string              `json:"body"`
		} `json:"ok"`
		Error *abi.Error `json:"error"`
	}
}

func TestHTTPOp(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/echo":
			body, _ := io.ReadAll(r.Body)
			w.Header().Set("X-Method", r.Method)
			w.Header().Add("X-Got", r.Header.Get("X-Test"))
			w.WriteHeader(http.StatusTeapot)
			w.Write(body)
		case "/slow":
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
			}
		case "/big":
			w.Write([]byte(strings.Repeat("z", 2000)))
		default:
			http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
		}
	}))
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	closedLn, _ := net.Listen("tcp", "127.0.0.1:0")
	closedAddr := closedLn.Addr().String()
	closedLn.Close()

	allowed := mustOutbound(t, HTTPPolicy{AllowedHosts: []string{"127.0.0.1:*"}})
	b64 := base64.StdEncoding.EncodeToString
	tests := []struct {
		name     string
		policy   *Outbound
		req      string
		status   int
		body     string
		errKind  string
		errMatch string
	}{
		{name: "POST allowed", policy: allowed,
			req:    fmt.Sprintf(`{"op":"http","method":"POST","url":"%s/echo","headers":{"X-Test":["yes"]},"body":"%s"}`, srv.URL, b64([]byte("hello\x00body"))),
			status: http.StatusTeapot, body: "hello\x00body"},
		{name: "GET default method", policy: allowed,
			req:    fmt.Sprintf(`{"op":"http","url":"%s/echo"}`, srv.URL),
			status: http.StatusTeapot},
		{name: "host not allowed", policy: allowed,
			req:     fmt.Sprintf(`{"op":"http","method":"GET","url":"http://127.0.0.2:%d/echo"}`, port),
			errKind: abi.KindNotAllowed, errMatch: fmt.Sprintf("host 127.0.0.2:%d is not in allowed_hosts", port)},
		{name: "nil policy denies all", policy: nil,
			req:     fmt.Sprintf(`{"op":"http","method":"GET","url":"%s/echo"}`, srv.URL),
			errKind: abi.KindNotAllowed, errMatch: "127.0.0.1"},
		// The host does not follow redirects: the guest's client does, each hop a new
		// request checked against the allow-list.
		{name: "redirect is returned, not followed", policy: allowed,
			req:    fmt.Sprintf(`{"op":"http","method":"GET","url":"%s/r?to=http://localhost:%d/echo"}`, srv.URL, port),
			status: http.StatusFound, body: fmt.Sprintf("<a href=\"http://localhost:%d/echo\">Found</a>.\n\n", port)},
		{name: "connection refused", policy: allowed,
			req:     fmt.Sprintf(`{"op":"http","method":"GET","url":"http://%s/"}`, closedAddr),
			errKind: abi.KindTransport, errMatch: "refused"},
		{name: "timeout_ms", policy: allowed,
			req:     fmt.Sprintf(`{"op":"http","method":"GET","url":"%s/slow","timeout_ms":100}`, srv.URL),
			errKind: abi.KindTransport, errMatch: "deadline exceeded"},
		{name: "body limit", policy: mustOutbound(t, HTTPPolicy{AllowedHosts: []string{"127.0.0.1:*"}, MaxResponseBytes: 1000}),
			req:     fmt.Sprintf(`{"op":"http","url":"%s/big"}`, srv.URL),
			errKind: abi.KindTransport, errMatch: "larger than 1000 bytes"},
		{name: "bad base64", policy: allowed,
			req:     fmt.Sprintf(`{"op":"http","method":"POST","url":"%s/echo","body":"***"}`, srv.URL),
			errKind: abi.KindBadRequest, errMatch: "base64"},
		{name: "relative url", policy: allowed,
			req:     `{"op":"http","url":"/echo"}`,
			errKind: abi.KindBadRequest, errMatch: "absolute"},
		{name: "no host", policy: mustOutbound(t, HTTPPolicy{AllowedHosts: []string{"*:*"}}),
			req:     `{"op":"http","url":"http://:8080/"}`,
			errKind: abi.KindBadRequest, errMatch: "absolute http or https"},
		{name: "bad scheme", policy: allowed,
			req:     `{"op":"http","url":"file:///etc/passwd"}`,
			errKind: abi.KindBadRequest, errMatch: "absolute http or https"},
		{name: "malformed", policy: allowed,
			req:     `{"op":"http","url":7}`,
			errKind: abi.KindBadRequest, errMatch: "http:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := mustRun(t, InstanceConfig{Kind: KindActivity, HTTP: tt.policy}, "hostcall", "["+tt.req+"]")
			var r httpResult
			if err := json.Unmarshal(out, &r); err != nil {
				t.Fatalf("%s: %v", out, err)
			}
			if tt.errKind != "" {
				if r.Ok.Error == nil || r.Ok.Error.Kind != tt.errKind || !strings.Contains(r.Ok.Error.Message, tt.errMatch) {
					t.Fatalf("got %s, want error %s containing %q", out, tt.errKind, tt.errMatch)
				}
				return
			}
			if r.Ok.Ok == nil {
				t.Fatalf("got %s", out)
			}
			body, err := base64.StdEncoding.DecodeString(r.Ok.Ok.Body)
			if err != nil || r.Ok.Ok.Status != tt.status || string(body) != tt.body {
				t.Errorf("status %d body %q (%v), want %d %q", r.Ok.Ok.Status, body, err, tt.status, tt.body)
			}
			if tt.status == http.StatusTeapot && r.Ok.Ok.Headers["X-Method"] == nil {
				t.Errorf("response headers missing: %v", r.Ok.Ok.Headers)
			}
			if strings.Contains(tt.req, "X-Test") && fmt.Sprint(r.Ok.Ok.Headers["X-Got"]) != "[yes]" {
				t.Errorf("request header not sent: %v", r.Ok.Ok.Headers)
			}
		})
	}

	t.Run("run ctx ends during request", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := runGuest(ctx, t, InstanceConfig{Kind: KindActivity, HTTP: allowed}, "hostcall",
			fmt.Sprintf(`[{"op":"http","method":"GET","url":"%s/slow"}]`, srv.URL))
		if !isDeadline(err) {
			t.Fatalf("Run = %v, want DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("took %v", d)
		}
	})
}

func isDeadline(err error) bool {
	return errors.Is(err, context.DeadlineExceeded)
}

// TestHTTPStream: a streamed response's body is read as it arrives, each read
// answering what came (waiting for it), until eof, after which the stream is gone; a
// read blocked on a body that never ends stops when the run's ctx does.
func TestHTTPStream(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("one\n"))
		w.(http.Flusher).Flush()
		if r.URL.Path == "/forever" {
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		time.Sleep(200 * time.Millisecond)
		w.Write([]byte("two\n"))
	}))
	defer srv.Close()
	defer close(release)
	allowed := mustOutbound(t, HTTPPolicy{AllowedHosts: []string{"127.0.0.1:*"}})
	cfg := InstanceConfig{Kind: KindActivity, HTTP: allowed}

	out := mustRun(t, cfg, "stream", fmt.Sprintf("[%q]", srv.URL+"/two"))
	var r struct {
		Ok struct {
			Chunks []string `json:"chunks"`
			After  struct {
				Error *abi.Error `json:"error"`
			} `json:"after"`
		} `json:"ok"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	if strings.Join(r.Ok.Chunks, "") != "one\ntwo\n" || len(r.Ok.Chunks) < 2 {
		t.Fatalf("chunks %q, want \"one\\n\" and \"two\\n\" apart (they came 200ms apart)", r.Ok.Chunks)
	}
	if e := r.Ok.After.Error; e == nil || e.Kind != abi.KindNotFound {
		t.Fatalf("a read after eof: %s", out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := runGuest(ctx, t, cfg, "stream", fmt.Sprintf("[%q]", srv.URL+"/forever"))
	if !isDeadline(err) {
		t.Fatalf("Run = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a read of an endless body stopped %v after the run's ctx ended", d)
	}

	// Not for workflows.
	out = mustRun(t, wfConfig(1), "hostcall", `[{"op":"http_body_read","stream":1}]`)
	if !strings.Contains(string(out), abi.KindUnsupportedOp) {
		t.Fatalf("a workflow's http_body_read: %s", out)
	}
}
