package obeliskhttp_test

import (
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/obeliskhttp"
)

var registered int

// register exports fn under a new name.
func register(fn any) string {
	registered++
	ffqn := fmt.Sprintf("test:obeliskhttp/fns.fn-%d", registered)
	obelisk.Export(ffqn, fn)
	return ffqn
}

// testHost is a TestHost whose http op is answered by handler.
func testHost(handler obelisk.OpHandler) *obelisk.TestHost {
	return &obelisk.TestHost{Ops: map[string]obelisk.OpHandler{"http": handler}}
}

func TestClient(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Echo", r.Header.Get("X-In"))
		w.Header().Set("X-Host", r.Host)
		w.WriteHeader(http.StatusTeapot)
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, body)
	}))
	defer srv.Close()

	var status int
	var header, host, body string
	ffqn := register(func(ctx obelisk.Context, u string) error {
		req, _ := http.NewRequest("POST", u+"/p", strings.NewReader("data\x00\xff"))
		req.Header.Set("X-In", "in")
		req.Host = "virtual.example"
		resp, err := obeliskhttp.Client(ctx).Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		status, header, host, body = resp.StatusCode, resp.Header.Get("x-echo"), resp.Header.Get("x-host"), string(b)
		return nil
	})
	out := testHost(obeliskhttp.TestHandler(http.DefaultTransport)).Run(ffqn, srv.URL)
	if string(out) != `{"ok":null}` || status != 418 || header != "in" || host != "virtual.example" || body != "POST /p data\x00\xff" {
		t.Errorf("got %s %d %q %q %q", out, status, header, host, body)
	}
}

func TestRedirectsAndCompression(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/old" {
			http.Redirect(w, r, "/new", http.StatusFound)
			return
		}
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		fmt.Fprintf(zw, "at %s, Accept-Encoding %q", r.URL.Path, r.Header.Get("Accept-Encoding"))
		zw.Close()
	}))
	defer srv.Close()

	var ops int
	handler := obeliskhttp.TestHandler(http.DefaultTransport)
	counting := func(req json.RawMessage) (any, error) {
		ops++
		return handler(req)
	}
	ffqn := register(func(ctx obelisk.Context, u string) (string, error) {
		resp, err := obeliskhttp.Client(ctx).Get(u)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			return "", err
		}
		b, err := io.ReadAll(zr)
		return resp.Header.Get("Content-Encoding") + ": " + string(b), err
	})
	// The client follows the redirect: two host requests. The body arrives
	// compressed, as the server sent it, and nothing asked for gzip.
	out := testHost(counting).Run(ffqn, srv.URL+"/old")
	if want := `{"ok":"gzip: at /new, Accept-Encoding \"\""}`; string(out) != want || ops != 2 {
		t.Errorf("got %s after %d ops, want %s", out, ops, want)
	}
}

func TestHostErrors(t *testing.T) {
	// Host errors reach the caller inside a *url.Error, with their kind.
	ffqn := register(func(ctx obelisk.Context, u string) error {
		_, err := obeliskhttp.Client(ctx).Get(u)
		if _, ok := errors.AsType[*url.Error](err); !ok {
			return fmt.Errorf("not a url.Error: %T", err)
		}
		if he, ok := errors.AsType[*obelisk.HostError](err); !ok || he.Op != "http" {
			return fmt.Errorf("no HostError in %v", err)
		}
		return err
	})
	out := testHost(obeliskhttp.TestHandler(nil)).Run(ffqn, "http://example.com/")
	if want := `{"err":"Get \"http://example.com/\": obelisk: http: not_allowed: obeliskhttp.TestHandler has no RoundTripper: http://example.com/"}`; string(out) != want {
		t.Errorf("not_allowed: got %s, want %s", out, want)
	}
	out = new(obelisk.TestHost).Run(ffqn, "http://example.com/")
	if !strings.Contains(string(out), "obelisk: http: unsupported_op: ") {
		t.Errorf("unsupported_op: got %s", out)
	}
	out = testHost(obeliskhttp.TestHandler(http.DefaultTransport)).Run(ffqn, "http://127.0.0.1:1/")
	if !strings.Contains(string(out), "obelisk: http: transport: ") {
		t.Errorf("transport: got %s", out)
	}
}

func TestNoHost(t *testing.T) {
	if _, err := obeliskhttp.Client(obelisk.Context{}).Get("http://example.com/"); err == nil ||
		!strings.Contains(err.Error(), "not running in an Obelisk host") {
		t.Errorf("HTTP: %v", err)
	}
}

func TestRequest(t *testing.T) {
	var requests []string
	resp := `{"status":299,"headers":{"content-type":["text/plain"],"X-A":["1"],"x-a":["2"]},"body":"aGk="}`
	host := testHost(func(req json.RawMessage) (any, error) {
		requests = append(requests, string(req))
		return json.RawMessage(resp), nil
	})
	var got string
	ffqn := register(func(ctx obelisk.Context) error {
		client := obeliskhttp.Client(ctx)
		client.Timeout = time.Minute
		resp, err := client.Get("https://example.com/x?q=1")
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		got = fmt.Sprintf("%s|%s|%q|%s|%d", resp.Status, resp.Header.Get("Content-Type"), resp.Header.Values("X-A"), b, resp.ContentLength)
		return nil
	})
	if out := string(host.Run(ffqn)); out != `{"ok":null}` {
		t.Fatal(out)
	}
	if want := `299|text/plain|["1" "2"]|hi|2`; got != want {
		t.Errorf("response %s, want %s", got, want)
	}
	var req struct {
		Op        string
		Method    string
		URL       string
		Headers   map[string][]string
		Body      *string
		TimeoutMS int64 `json:"timeout_ms"`
	}
	if err := json.Unmarshal([]byte(requests[0]), &req); err != nil {
		t.Fatal(err)
	}
	if req.Op != "http" || req.Method != "GET" || req.URL != "https://example.com/x?q=1" || req.Body != nil ||
		req.TimeoutMS <= 59000 || req.TimeoutMS > 60000 || req.Headers == nil {
		t.Errorf("request %s", requests[0])
	}
	if !strings.HasPrefix(requests[0], `{"op":"http",`) {
		t.Errorf("op not first: %s", requests[0])
	}
}
