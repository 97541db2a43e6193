package obeliskwebhook_test

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/obeliskwebhook"
)

func init() {
	obeliskwebhook.HandleFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := obeliskwebhook.Context(r)
		switch {
		case r.URL.Path == "/empty":
			return // 200 without a body
		case r.URL.Path == "/size":
			h := sha256.New()
			n, err := io.Copy(h, r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			fmt.Fprintf(w, "%d %d %x", r.ContentLength, n, h.Sum(nil))
			return
		case strings.HasPrefix(r.URL.Path, "/status/"):
			st, err := obeliskwebhook.GetStatus(ctx, obeliskwebhook.Param(r, "id"))
			if err != nil {
				http.Error(w, err.Error(), http.StatusNotFound)
				return
			}
			fmt.Fprintf(w, "%s %s", st.Status, st.Result)
			return
		}
		body, _ := io.ReadAll(r.Body)
		v, err := obelisk.Call[uint64](ctx, "testing:fibo/fibo.fibo", r.PathValue("n"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.Header().Set("X-Exec", ctx.ExecutionID())
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, "%s %s %s q=%s body=%s fibo=%d", r.Method, r.URL.Path, r.Header.Get("X-In"), r.URL.Query().Get("q"), body, v)
	})
}

func TestServe(t *testing.T) {
	host := &obelisk.TestHost{
		ExecutionID: "E_REQ",
		Call: func(ffqn string, params json.RawMessage) (json.RawMessage, error) {
			if ffqn != "testing:fibo/fibo.fibo" || string(params) != `["10"]` {
				t.Errorf("call %s %s", ffqn, params)
			}
			return json.RawMessage(`{"ok":55}`), nil
		},
		Ops: map[string]obelisk.OpHandler{
			"get_status": func(req json.RawMessage) (any, error) {
				var q struct {
					ExecutionID string `json:"execution_id"`
				}
				json.Unmarshal(req, &q)
				if q.ExecutionID != "E_X" {
					return nil, &obelisk.HostError{Kind: "not_found", Message: "no " + q.ExecutionID}
				}
				return map[string]any{"status": "finished", "result": map[string]any{"ok": 1}}, nil
			},
		},
	}
	req := httptest.NewRequest("POST", "/fibo/10?q=x", strings.NewReader("payload"))
	req.Header.Set("x-in", "hdr")
	resp := obeliskwebhook.Serve(host, req, map[string]string{"n": "10"})
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 201 || resp.Header.Get("X-Exec") != "E_REQ" || string(body) != "POST /fibo/10 hdr q=x body=payload fibo=55" {
		t.Fatalf("got %d %v %q", resp.StatusCode, resp.Header, body)
	}

	resp = obeliskwebhook.Serve(host, httptest.NewRequest("GET", "/empty", nil), nil)
	if body, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || len(body) != 0 {
		t.Fatalf("/empty: %d %q", resp.StatusCode, body)
	}

	resp = obeliskwebhook.Serve(host, httptest.NewRequest("GET", "/status/E_X", nil), map[string]string{"id": "E_X"})
	if body, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || string(body) != `finished {"ok":1}` {
		t.Fatalf("/status/E_X: %d %q", resp.StatusCode, body)
	}
	resp = obeliskwebhook.Serve(host, httptest.NewRequest("GET", "/status/E_Y", nil), map[string]string{"id": "E_Y"})
	if body, _ := io.ReadAll(resp.Body); resp.StatusCode != 404 || !strings.Contains(string(body), "not_found") {
		t.Fatalf("/status/E_Y: %d %q", resp.StatusCode, body)
	}
}

// TestServeBody: the handler reads a body of several chunks through the
// BodyReadOp operation, which Serve answers; a host with its own
// handler for the operation is asked instead.
func TestServeBody(t *testing.T) {
	body := make([]byte, 300_001) // several chunks, the last one short
	rand.Read(body)
	resp := obeliskwebhook.Serve(&obelisk.TestHost{}, httptest.NewRequest("POST", "/size", strings.NewReader(string(body))), nil)
	got, _ := io.ReadAll(resp.Body)
	if want := fmt.Sprintf("%d %d %x", len(body), len(body), sha256.Sum256(body)); resp.StatusCode != 200 || string(got) != want {
		t.Fatalf("POST /size: %d %q, want 200 %q", resp.StatusCode, got, want)
	}

	resp = obeliskwebhook.Serve(&obelisk.TestHost{}, httptest.NewRequest("POST", "/size", nil), nil)
	if got, _ := io.ReadAll(resp.Body); string(got) != fmt.Sprintf("0 0 %x", sha256.Sum256(nil)) {
		t.Fatalf("POST /size without a body: %q", got)
	}

	// A host that fails the reads: the handler sees the error.
	host := &obelisk.TestHost{Ops: map[string]obelisk.OpHandler{
		obeliskwebhook.BodyReadOp: func(json.RawMessage) (any, error) {
			return nil, &obelisk.HostError{Kind: "bad_request", Message: "no body today"}
		},
	}}
	resp = obeliskwebhook.Serve(host, httptest.NewRequest("POST", "/size", strings.NewReader("x")), nil)
	if got, _ := io.ReadAll(resp.Body); resp.StatusCode != 400 || !strings.Contains(string(got), "no body today") {
		t.Fatalf("POST /size, reads failing: %d %q", resp.StatusCode, got)
	}
}
