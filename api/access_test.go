package api

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/obelisk-go/obelisk/actors"
	"github.com/obelisk-go/obelisk/auth"
	"github.com/obelisk-go/obelisk/internal/testcert"
	"github.com/obelisk-go/obelisk/metrics"
	apiv1 "github.com/obelisk-go/obelisk/proto/obelisk/v1"
	"github.com/obelisk-go/obelisk/proto/obelisk/v1/obeliskv1connect"
)

// TestEveryRPCIsClassified fails when an RPC of api.proto is not in ProcedureAccess: a
// new RPC must be classified as reading or writing before read tokens meet it.
func TestEveryRPCIsClassified(t *testing.T) {
	services := apiv1.File_obelisk_v1_api_proto.Services()
	n := 0
	for i := range services.Len() {
		svc := services.Get(i)
		for j := range svc.Methods().Len() {
			procedure := fmt.Sprintf("/%s/%s", svc.FullName(), svc.Methods().Get(j).Name())
			if _, ok := ProcedureAccess(procedure); !ok {
				t.Errorf("%s is not classified: add it to the reading or the writing RPCs of ProcedureAccess (api/access.go)", procedure)
			}
			n++
		}
	}
	if n < 15 {
		t.Fatalf("found %d RPCs in api.proto, expected at least 15", n)
	}
	for _, p := range []string{obeliskv1connect.ExecutionServiceSubmitProcedure, obeliskv1connect.ExecutionServiceCancelProcedure,
		obeliskv1connect.ExecutionServicePauseProcedure, obeliskv1connect.ExecutionServiceUnpauseProcedure,
		obeliskv1connect.ExecutionServiceStubProcedure, obeliskv1connect.ExecutionServiceDeleteProcedure} {
		if a, _ := ProcedureAccess(p); a != auth.Write {
			t.Errorf("%s is classified as reading", p)
		}
	}
	if a, ok := ProcedureAccess("/obelisk.v1.ExecutionService/Unknown"); ok || a != auth.Write {
		t.Errorf("an unknown RPC: %v %v, want writing and unclassified", a, ok)
	}
}

func tokenDigest(token string) string {
	d := sha256.Sum256([]byte(token))
	return hex.EncodeToString(d[:])
}

// serveAuth serves the API of an engine with the stub component and metrics, with opts;
// it returns the engine and the API's URL.
func serveAuth(t *testing.T, opts Options) (*actors.Engine, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e, err := actors.New(ctx, actors.Config{
		DataDir:    t.TempDir(),
		Components: []actors.ComponentConfig{{Name: "approval", Type: actors.ActivityStub, WIT: approvalWIT}},
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		Metrics:    metrics.New(),
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, e, opts) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		e.Close(context.Background())
	})
	scheme := "http"
	if opts.TLS != nil {
		scheme = "https"
	}
	return e, scheme + "://" + ln.Addr().String()
}

func testTokens(t *testing.T) *auth.Tokens {
	t.Helper()
	toks, err := auth.ParseTokens([]byte(fmt.Sprintf(`
[[token]]
name = "viewer"
role = "read"
sha256 = %q
[[token]]
name = "ops"
role = "admin"
sha256 = %q
`, tokenDigest("read-secret"), tokenDigest("admin-secret"))))
	if err != nil {
		t.Fatal(err)
	}
	return toks
}

// TestTokens: over every protocol, a call without a token or with a wrong one is
// unauthenticated, a read token reads (unary and streaming) but may not write, and an
// admin token writes.
func TestTokens(t *testing.T) {
	e, url := serveAuth(t, Options{Tokens: testTokens(t)})
	id := stubExecution(t, e)
	withToken := func(rt http.RoundTripper, token string) http.RoundTripper {
		if token == "" {
			return rt
		}
		return auth.WithToken(rt, token)
	}
	h2c := func(token string) *http.Client {
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		return &http.Client{Transport: withToken(&http.Transport{Protocols: &p}, token)}
	}
	h1 := func(token string) *http.Client {
		return &http.Client{Transport: withToken(http.DefaultTransport, token)}
	}
	protocols := map[string]func(token string) obeliskv1connect.ExecutionServiceClient{
		"connect": func(tok string) obeliskv1connect.ExecutionServiceClient {
			return obeliskv1connect.NewExecutionServiceClient(h1(tok), url)
		},
		"grpc": func(tok string) obeliskv1connect.ExecutionServiceClient {
			return obeliskv1connect.NewExecutionServiceClient(h2c(tok), url, connect.WithGRPC())
		},
		"grpc-web": func(tok string) obeliskv1connect.ExecutionServiceClient {
			return obeliskv1connect.NewExecutionServiceClient(h1(tok), url, connect.WithGRPCWeb())
		},
	}
	ctx := context.Background()
	status := func(c obeliskv1connect.ExecutionServiceClient) error {
		stream, err := c.GetStatus(ctx, connect.NewRequest(&apiv1.GetStatusRequest{ExecutionId: id}))
		if err != nil {
			return err
		}
		defer stream.Close()
		for stream.Receive() {
		}
		return stream.Err()
	}
	list := func(c obeliskv1connect.ExecutionServiceClient) error {
		_, err := c.ListExecutions(ctx, connect.NewRequest(&apiv1.ListExecutionsRequest{}))
		return err
	}
	pause := func(c obeliskv1connect.ExecutionServiceClient) error {
		_, err := c.Pause(ctx, connect.NewRequest(&apiv1.PauseRequest{ExecutionId: id}))
		return err
	}
	for name, client := range protocols {
		t.Run(name, func(t *testing.T) {
			for _, tok := range []string{"", "wrong-secret"} {
				c := client(tok)
				for what, call := range map[string]func(obeliskv1connect.ExecutionServiceClient) error{"list": list, "status": status, "pause": pause} {
					if err := call(c); connect.CodeOf(err) != connect.CodeUnauthenticated {
						t.Errorf("%s with token %q: %v, want unauthenticated", what, tok, err)
					}
				}
			}
			reader := client("read-secret")
			if err := list(reader); err != nil {
				t.Errorf("list with a read token: %v", err)
			}
			if err := status(reader); err != nil {
				t.Errorf("status with a read token: %v", err)
			}
			if err := pause(reader); connect.CodeOf(err) != connect.CodePermissionDenied || !strings.Contains(err.Error(), "viewer") {
				t.Errorf("pause with a read token: %v, want permission_denied naming the token", err)
			}
			if st, err := e.State(ctx, id); err != nil || st.Paused {
				t.Fatalf("after a refused pause: paused %v, %v", st.GetPaused(), err)
			}
			admin := client("admin-secret")
			if err := pause(admin); err != nil {
				t.Errorf("pause with an admin token: %v", err)
			}
			if _, err := admin.Unpause(ctx, connect.NewRequest(&apiv1.UnpauseRequest{ExecutionId: id})); err != nil {
				t.Errorf("unpause with an admin token: %v", err)
			}
		})
	}
}

// TestMetricsAuth: /metrics is open unless MetricsAuth, then it needs a token of any role.
func TestMetricsAuth(t *testing.T) {
	get := func(url, token string) int {
		req, err := http.NewRequest("GET", url+"/metrics", nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	_, open := serveAuth(t, Options{Tokens: testTokens(t)})
	if code := get(open, ""); code != http.StatusOK {
		t.Errorf("metrics without metrics_auth: %d", code)
	}
	_, guarded := serveAuth(t, Options{Tokens: testTokens(t), MetricsAuth: true})
	for token, want := range map[string]int{"": 401, "wrong": 401, "read-secret": 200, "admin-secret": 200} {
		if code := get(guarded, token); code != want {
			t.Errorf("metrics with metrics_auth, token %q: %d, want %d", token, code, want)
		}
	}
}

// TestTLS: over TLS, a client that trusts the CA reaches the API (Connect and gRPC, which
// negotiates HTTP/2), one that does not is refused by its own verification, and a plain
// HTTP client gets nothing.
func TestTLS(t *testing.T) {
	certs := testcert.Write(t, t.TempDir())
	e, url := serveAuth(t, Options{TLS: certs.ServerTLS(t)})
	id := stubExecution(t, e)
	ctx := context.Background()
	trusting := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: certs.Pool}, ForceAttemptHTTP2: true}}
	for name, c := range map[string]obeliskv1connect.ExecutionServiceClient{
		"connect": obeliskv1connect.NewExecutionServiceClient(trusting, url),
		"grpc":    obeliskv1connect.NewExecutionServiceClient(trusting, url, connect.WithGRPC()),
	} {
		if _, err := c.ListExecutions(ctx, connect.NewRequest(&apiv1.ListExecutionsRequest{})); err != nil {
			t.Errorf("%s client trusting the CA: %v", name, err)
		}
		if _, err := c.Pause(ctx, connect.NewRequest(&apiv1.PauseRequest{ExecutionId: id})); err != nil {
			t.Errorf("%s client trusting the CA, pause: %v", name, err)
		}
		if _, err := c.Unpause(ctx, connect.NewRequest(&apiv1.UnpauseRequest{ExecutionId: id})); err != nil {
			t.Errorf("%s client trusting the CA, unpause: %v", name, err)
		}
	}
	_, err := obeliskv1connect.NewExecutionServiceClient(http.DefaultClient, url).ListExecutions(ctx, connect.NewRequest(&apiv1.ListExecutionsRequest{}))
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Errorf("client not trusting the CA: %v, want an unknown-authority error", err)
	}
	plain := "http://" + strings.TrimPrefix(url, "https://")
	if _, err := obeliskv1connect.NewExecutionServiceClient(http.DefaultClient, plain).ListExecutions(ctx, connect.NewRequest(&apiv1.ListExecutionsRequest{})); err == nil {
		t.Errorf("plain HTTP to the TLS listener succeeded")
	}
}
