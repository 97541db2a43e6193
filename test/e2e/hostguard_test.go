package e2e

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"connectrpc.com/connect"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
	"github.com/obelisk-go/obelisk/proto/obelisk/v1/obeliskv1connect"
	"github.com/obelisk-go/obelisk/test/harness"
)

// TestDNSRebinding drives the API and the web UI of a real server as a page whose host
// name was rebound to 127.0.0.1 would (a forged Host), and as the CLI, the harness and a
// browser on http://localhost do.
func TestDNSRebinding(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{WebUI: true})
	const submit = "/obelisk.v1.ExecutionService/Submit"
	const body = `{"ffqn":"testing:fibo/fibo.fibo","paramsJson":"[10]"}`
	post := func(base, host, origin string) (int, string) {
		t.Helper()
		req, err := http.NewRequest("POST", base+submit, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if host != "" {
			req.Host = host
		}
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
	count := func() int {
		t.Helper()
		r, err := s.Exec.ListExecutions(context.Background(), connect.NewRequest(&pb.ListExecutionsRequest{Limit: 1000}))
		if err != nil {
			t.Fatal(err)
		}
		return len(r.Msg.Executions)
	}
	before := count()
	for _, port := range []struct{ name, base, key string }{
		{"API", s.URL, "api.allowed_hosts"},
		{"web UI", s.WebURL, "webui.allowed_hosts"},
	} {
		u, err := url.Parse(port.base)
		if err != nil {
			t.Fatal(err)
		}
		evil := "evil.example:" + u.Port()
		code, msg := post(port.base, evil, "http://"+evil)
		if code != http.StatusMisdirectedRequest || !strings.Contains(msg, `"`+evil+`"`) || !strings.Contains(msg, port.key) {
			t.Errorf("%s: Submit with Host %s: %d %q, want 421 naming the host and %s", port.name, evil, code, msg, port.key)
		}
		for _, host := range []string{u.Host, "localhost:" + u.Port()} {
			code, msg := post(port.base, host, "http://"+host)
			if code != http.StatusOK || !strings.Contains(msg, "executionId") {
				t.Errorf("%s: Submit with Host %s: %d %q, want 200", port.name, host, code, msg)
			}
		}
	}
	// A page of another origin cannot call the API through the web UI even with a
	// loopback Host (the proxy's same-origin check).
	if code, msg := post(s.WebURL, "", "http://evil.example"); code != http.StatusForbidden || !strings.Contains(msg, "cross-origin") {
		t.Errorf("web UI: Submit from Origin http://evil.example: %d %q, want 403 refusing a cross-origin call", code, msg)
	}
	// The refused requests stored nothing; the accepted ones did.
	if after := count(); after != before+4 {
		t.Errorf("%d executions after 4 accepted submits (and 3 refused), want %d", after, before+4)
	}
	// gRPC over h2c carries the host as :authority, which the API checks alike.
	forged := &http.Client{Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
		r = r.Clone(r.Context())
		r.Host = "evil.example"
		return (&http.Transport{Protocols: unencryptedHTTP2()}).RoundTrip(r)
	})}
	grpc := obeliskv1connect.NewExecutionServiceClient(forged, s.URL, connect.WithGRPC())
	if _, err := grpc.Submit(context.Background(), connect.NewRequest(&pb.SubmitRequest{Ffqn: "testing:fibo/fibo.fibo", ParamsJson: "[10]"})); err == nil || !strings.Contains(err.Error(), "421") {
		t.Errorf("gRPC Submit with :authority evil.example: %v, want HTTP status 421", err)
	}
	// The CLI talks to the API on 127.0.0.1.
	if out, errOut, code := s.CLI("execution", "submit", "testing:fibo/fibo.fibo", "[10]"); code != 0 {
		t.Errorf("CLI submit: exit %d: %s %s", code, out, errOut)
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
