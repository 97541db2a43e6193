package webui

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/obelisk-go/obelisk/internal/testcert"
)

func TestHandler(t *testing.T) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"path":"`+r.URL.Path+`","body":`+string(body)+`}`)
	}))
	defer api.Close()
	u, _ := url.Parse(api.URL)
	ui := httptest.NewServer(Handler(u, nil))
	defer ui.Close()

	get := func(path string) (int, string, string) {
		resp, err := http.Get(ui.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	for path, want := range map[string]string{"/": "<main id=\"app\">", "/app.js": "import", "/style.css": ".timeline", "/wit.js": "parseSignature", "/api.js": "connect+json"} {
		code, _, body := get(path)
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("GET %s: %d, body lacks %q", path, code, want)
		}
	}
	if code, _, _ := get("/nothing.js"); code != http.StatusNotFound {
		t.Errorf("GET /nothing.js: %d", code)
	}

	call := func(origin string) (int, string) {
		req, _ := http.NewRequest("POST", ui.URL+"/obelisk.v1.ExecutionService/ListExecutions", strings.NewReader(`{"limit":1}`))
		req.Header.Set("Content-Type", "application/json")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := call(""); code != http.StatusOK || body != `{"path":"/obelisk.v1.ExecutionService/ListExecutions","body":{"limit":1}}` {
		t.Errorf("proxied call: %d %s", code, body)
	}
	if code, _ := call(ui.URL); code != http.StatusOK {
		t.Errorf("same-origin call: %d", code)
	}
	if code, _ := call("http://evil.example"); code != http.StatusForbidden {
		t.Errorf("cross-origin call: %d, want 403", code)
	}
}

func TestAPIURL(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:5005": "http://127.0.0.1:5005",
		"0.0.0.0:5005":   "http://127.0.0.1:5005",
		"[::]:5005":      "http://[::1]:5005",
		"[::1]:5005":     "http://[::1]:5005",
	} {
		a, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := APIURL(a, false).String(); got != want {
			t.Errorf("APIURL(%s) = %s, want %s", addr, got, want)
		}
	}
	a, err := net.ResolveTCPAddr("tcp", "0.0.0.0:5005")
	if err != nil {
		t.Fatal(err)
	}
	if got := APIURL(a, true).String(); got != "https://127.0.0.1:5005" {
		t.Errorf("APIURL(0.0.0.0:5005, https) = %s", got)
	}
}

// TestProxyTLS: the proxy reaches an API served over TLS when it presents the configured
// certificate, whatever names that certificate carries, and refuses any other; it passes
// the page's Authorization header on.
func TestProxyTLS(t *testing.T) {
	var gotAuth string
	api := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = r.Header.Get("Authorization")
		w.Write([]byte(`{}`))
	}))
	defer api.Close()
	u, err := url.Parse(api.URL)
	if err != nil {
		t.Fatal(err)
	}
	call := func(apiCert *tls.Certificate) int {
		ui := httptest.NewServer(Handler(u, apiCert))
		defer ui.Close()
		req, err := http.NewRequest("POST", ui.URL+"/obelisk.v1.ExecutionService/ListExecutions", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer page-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	pinned := api.TLS.Certificates[0]
	if code := call(&pinned); code != http.StatusOK || gotAuth != "Bearer page-token" {
		t.Errorf("pinned certificate: %d, Authorization %q", code, gotAuth)
	}
	other := testcert.Write(t, t.TempDir()).ServerTLS(t).Certificates[0]
	gotAuth = ""
	if code := call(&other); code != http.StatusBadGateway || gotAuth != "" {
		t.Errorf("another certificate: %d (want 502), the API got Authorization %q", code, gotAuth)
	}
}
