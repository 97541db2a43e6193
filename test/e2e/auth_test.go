package e2e

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/chromedp/chromedp"

	"github.com/obelisk-go/obelisk/auth"
	"github.com/obelisk-go/obelisk/internal/testcert"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
	"github.com/obelisk-go/obelisk/proto/obelisk/v1/obeliskv1connect"
	"github.com/obelisk-go/obelisk/test/harness"
)

const (
	adminToken = "admin-token-0123456789"
	readToken  = "read-token-0123456789"
)

// writeTokens writes a tokens file with an admin and a read token and returns its path.
func writeTokens(t *testing.T) string {
	t.Helper()
	digest := func(token string) string {
		d := sha256.Sum256([]byte(token))
		return hex.EncodeToString(d[:])
	}
	p := filepath.Join(t.TempDir(), "tokens.toml")
	text := fmt.Sprintf("[[token]]\nname = \"ops\"\nrole = \"admin\"\nsha256 = %q\n\n[[token]]\nname = \"dashboard\"\nrole = \"read\"\nsha256 = %q\n",
		digest(adminToken), digest(readToken))
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAuth drives a server with api.auth_tokens_file and metrics_auth through the CLI, the
// API, /metrics and the web UI: no token and a wrong one are unauthenticated, a read
// token reads and may not write, an admin token does everything.
func TestAuth(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{
		WebUI:    true,
		APIKeys:  fmt.Sprintf("auth_tokens_file = %q\nmetrics_auth = true\n", writeTokens(t)),
		APIToken: adminToken, // the harness's own calls
	})
	done := s.Submit("testing:fibo/fibo.fibo", "[10]")
	if r := s.Result(done, time.Minute); r != `{"ok":55}` {
		t.Fatalf("fibo(10) = %s", r)
	}
	sleeping := s.Submit("testing:sleep-workflow/workflow.sleep-durable", "[600000]")
	count := func() int {
		resp, err := s.Exec.ListExecutions(context.Background(), connect.NewRequest(&pb.ListExecutionsRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		return len(resp.Msg.Executions)
	}
	before := count()

	t.Run("CLI", func(t *testing.T) {
		refused := func(what string, env []string, want string, args ...string) {
			t.Helper()
			stdout, stderr, code := s.CLIEnv(env, args...)
			if code != 2 || !strings.Contains(stderr, want) {
				t.Errorf("%s: exit %d, stderr %q, stdout %q; want exit 2 saying %q", what, code, stderr, stdout, want)
			}
		}
		readEnv := []string{"OBELISK_API_TOKEN=" + readToken}
		refused("list without a token", nil, "unauthenticated", "execution", "list")
		refused("components without a token", nil, "unauthenticated", "component", "list")
		refused("list with a wrong token", []string{"OBELISK_API_TOKEN=not-a-token"}, "unauthenticated", "execution", "list")
		refused("get with a wrong --token", nil, "unauthenticated", "execution", "get", "--token", "not-a-token", done)
		refused("submit with a read token", readEnv, "permission denied", "execution", "submit", "testing:fibo/fibo.fibo", "[10]")
		refused("cancel with a read token", readEnv, "permission denied", "execution", "cancel", sleeping)
		refused("pause with a read token", readEnv, "permission denied", "execution", "pause", sleeping)
		refused("delete with a read token", readEnv, "permission denied", "execution", "delete", done)
		refused("schedules without a token", nil, "unauthenticated", "schedule", "list")
		refused("a schedule with a read token", readEnv, "permission denied", "schedule", "create", "--name", "s", "--cron", "* * * * *", "--ffqn", "testing:fibo/fibo.fibo", "--params", "[1]")
		if n := count(); n != before {
			t.Errorf("refused calls changed the store: %d executions, were %d", n, before)
		}
		if st, err := s.State(sleeping); err != nil || st.Paused || st.CancelRequested {
			t.Errorf("after a refused pause and cancel: %v %v", st, err)
		}

		if stdout, stderr, code := s.CLIEnv(readEnv, "execution", "get", done); code != 0 || !strings.Contains(stdout, `{"ok":55}`) {
			t.Errorf("get with a read token: exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
		if stdout, stderr, code := s.CLIEnv(readEnv, "execution", "list", "--json"); code != 0 || !strings.Contains(stdout, done) {
			t.Errorf("list with a read token: exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
		if _, stderr, code := s.CLIEnv(readEnv, "schedule", "list"); code != 0 {
			t.Errorf("schedule list with a read token: exit %d: %s", code, stderr)
		}
		if stdout, stderr, code := s.CLIEnv(readEnv, "component", "list"); code != 0 || !strings.Contains(stdout, "fibo_workflow") {
			t.Errorf("component list with a read token: exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
		stdout, stderr, code := s.CLI("--token", adminToken, "execution", "submit", "--follow", "testing:fibo/fibo.fibo", "[11]")
		if code != 0 || !strings.Contains(stdout, `{"ok":89}`) {
			t.Errorf("submit --follow with an admin --token: exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
		if _, stderr, code := s.CLIEnv([]string{"OBELISK_API_TOKEN=" + adminToken}, "execution", "pause", sleeping); code != 0 {
			t.Errorf("pause with an admin token: exit %d, %s", code, stderr)
		}
		if _, stderr, code := s.CLIEnv([]string{"OBELISK_API_TOKEN=" + adminToken}, "execution", "unpause", sleeping); code != 0 {
			t.Errorf("unpause with an admin token: exit %d, %s", code, stderr)
		}
	})

	t.Run("API", func(t *testing.T) {
		post := func(method, token, body string) (int, string) {
			t.Helper()
			req, err := http.NewRequest("POST", s.URL+"/obelisk.v1.ExecutionService/"+method, strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		const submit = `{"ffqn":"testing:fibo/fibo.fibo","paramsJson":"[12]"}`
		for _, c := range []struct {
			what, method, token, body string
			status                    int
			code                      string
		}{
			{"list, no token", "ListExecutions", "", `{}`, 401, "unauthenticated"},
			{"list, wrong token", "ListExecutions", "wrong", `{}`, 401, "unauthenticated"},
			{"submit, no token", "Submit", "", submit, 401, "unauthenticated"},
			{"list, read token", "ListExecutions", readToken, `{}`, 200, ""},
			{"submit, read token", "Submit", readToken, submit, 403, "permission_denied"},
			{"cancel, read token", "Cancel", readToken, `{"executionId":"` + sleeping + `"}`, 403, "permission_denied"},
			{"submit, admin token", "Submit", adminToken, submit, 200, ""},
		} {
			status, body := post(c.method, c.token, c.body)
			if status != c.status || !strings.Contains(body, c.code) {
				t.Errorf("%s: %d %s, want %d %s", c.what, status, body, c.status, c.code)
			}
		}
		// gRPC, with a read token: reads, and may not write.
		h2c := &http.Client{Transport: auth.WithToken(&http.Transport{Protocols: unencryptedHTTP2()}, readToken)}
		grpc := obeliskv1connect.NewExecutionServiceClient(h2c, s.URL, connect.WithGRPC())
		if _, err := grpc.ListExecutions(context.Background(), connect.NewRequest(&pb.ListExecutionsRequest{})); err != nil {
			t.Errorf("gRPC list with a read token: %v", err)
		}
		if _, err := grpc.Pause(context.Background(), connect.NewRequest(&pb.PauseRequest{ExecutionId: sleeping})); connect.CodeOf(err) != connect.CodePermissionDenied {
			t.Errorf("gRPC pause with a read token: %v, want permission_denied", err)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		for token, want := range map[string]int{"": 401, "wrong": 401, readToken: 200} {
			req, err := http.NewRequest("GET", s.URL+"/metrics", nil)
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
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want || want == 200 && !strings.Contains(string(b), "obelisk_") {
				t.Errorf("/metrics with token %q: %d, want %d", token, resp.StatusCode, want)
			}
		}
	})

	t.Run("web UI", func(t *testing.T) {
		chrome := chromiumPath(t)
		b := browser(t, chrome)
		ctx := open(t, b, s.WebURL+"/#/executions")
		// A wrong token is refused and asked for again, saying so.
		do(t, ctx, "token prompt",
			chromedp.WaitVisible(chromedp.CSS(`#token-dialog #token-input`)),
			chromedp.SendKeys(chromedp.CSS(`#token-input`), "not-a-token"),
			chromedp.Click(chromedp.CSS(`#token-submit`)),
			waitJS(`document.querySelector('#token-dialog p')?.textContent.includes('refused')`),
			chromedp.SendKeys(chromedp.CSS(`#token-input`), readToken),
			chromedp.Click(chromedp.CSS(`#token-submit`)),
			chromedp.WaitVisible(chromedp.CSS(`table.executions tr[data-id="`+sleeping+`"]`)),
		)
		if prompts := get(t, ctx, "prompt gone", evalInt(`document.querySelectorAll('#token-dialog').length`)); prompts != 0 {
			t.Errorf("%d token prompts still open after the token was entered", prompts)
		}
		// The token stays in the tab's session: a reload lists at once, with no prompt.
		do(t, ctx, "reload",
			chromedp.Reload(),
			chromedp.WaitVisible(chromedp.CSS(`table.executions tr[data-id="`+done+`"]`)),
		)
		if prompts := get(t, ctx, "no prompt after reload", evalInt(`document.querySelectorAll('#token-dialog').length`)); prompts != 0 {
			t.Errorf("the token prompt came back after a reload")
		}
		// A read token may look at an execution but not pause it: the page says why.
		do(t, ctx, "pause refused",
			chromedp.Navigate(s.WebURL+"/#/execution/"+sleeping),
			waitJS(`document.querySelector('#status')?.textContent === 'blocked_by_join_set' && !document.querySelector('#pause').hidden`),
			chromedp.Click(chromedp.CSS(`#pause`)),
			waitJS(`document.querySelector('#action-msg')?.textContent.includes('permission_denied')`),
		)
		if st, err := s.State(sleeping); err != nil || st.Paused {
			t.Errorf("after a pause refused in the web UI: %v %v", st, err)
		}
	})
}

// TestTLS serves the API, the web UI and the webhook server over TLS with a certificate of
// a CA made here: clients that trust the CA (Go, the CLI with --ca-cert or
// OBELISK_API_CA_CERT) get through, clients that do not are refused by their own check.
func TestTLS(t *testing.T) {
	t.Parallel()
	certs := testcert.Write(t, t.TempDir())
	s := harness.Start(t, harness.Options{
		WebUI:    true,
		TLS:      &certs,
		APIKeys:  fmt.Sprintf("auth_tokens_file = %q\n", writeTokens(t)),
		APIToken: adminToken,
	})
	if !strings.HasPrefix(s.URL, "https://") || !strings.HasPrefix(s.WebURL, "https://") || !strings.HasPrefix(s.WebhookURL, "https://") {
		t.Fatalf("URLs %s %s %s", s.URL, s.WebURL, s.WebhookURL)
	}
	// The API, to a client that verifies the certificate against the CA (the harness's).
	id := s.Submit("testing:fibo/fibo.fibo", "[10]")
	if r := s.Result(id, time.Minute); r != `{"ok":55}` {
		t.Fatalf("fibo(10) over TLS = %s", r)
	}
	// ... and to one that does not trust the CA.
	untrusting := obeliskv1connect.NewComponentServiceClient(&http.Client{Transport: auth.WithToken(nil, adminToken)}, s.URL)
	_, err := untrusting.ListComponents(context.Background(), connect.NewRequest(&pb.ListComponentsRequest{}))
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Errorf("a client not trusting the CA: %v, want x509.UnknownAuthorityError", err)
	}

	t.Run("CLI", func(t *testing.T) {
		token := "OBELISK_API_TOKEN=" + adminToken
		stdout, stderr, code := s.CLIEnv([]string{token, "OBELISK_API_CA_CERT=" + certs.CACert}, "execution", "submit", "--follow", "testing:fibo/fibo.fibo", "[11]")
		if code != 0 || !strings.Contains(stdout, `{"ok":89}`) {
			t.Errorf("CLI with OBELISK_API_CA_CERT: exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
		if stdout, stderr, code := s.CLIEnv([]string{token}, "--ca-cert", certs.CACert, "execution", "get", id); code != 0 || !strings.Contains(stdout, `{"ok":55}`) {
			t.Errorf("CLI with --ca-cert: exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
		if _, stderr, code := s.CLIEnv([]string{token}, "execution", "get", id); code != 2 || !strings.Contains(stderr, "certificate") {
			t.Errorf("CLI not trusting the CA: exit %d, stderr %q; want exit 2 naming the certificate", code, stderr)
		}
		if _, stderr, code := s.CLIEnv([]string{token}, "--ca-cert", filepath.Join(t.TempDir(), "none.pem"), "execution", "get", id); code != 2 || !strings.Contains(stderr, "--ca-cert") {
			t.Errorf("CLI with a missing --ca-cert file: exit %d, stderr %q", code, stderr)
		}
	})

	t.Run("webhook", func(t *testing.T) {
		resp, err := s.HTTP.Get(s.WebhookURL + "/fibo/10/1")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != "55" {
			t.Errorf("webhook over TLS: %d %q", resp.StatusCode, b)
		}
		if _, err := http.Get(s.WebhookURL + "/fibo/10/1"); !errors.As(err, &unknown) {
			t.Errorf("webhook to a client not trusting the CA: %v", err)
		}
	})

	t.Run("web UI", func(t *testing.T) {
		trusting := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: certs.Pool}}}
		resp, err := trusting.Get(s.WebURL + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("web UI page over TLS: %d", resp.StatusCode)
		}
		// The UI's proxy reaches the TLS API and passes the page's token on.
		for token, want := range map[string]int{"": 401, readToken: 200} {
			req, err := http.NewRequest("POST", s.WebURL+"/obelisk.v1.ComponentService/ListComponents", strings.NewReader(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := trusting.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want || want == 200 && !strings.Contains(string(b), "fibo_workflow") {
				t.Errorf("API call through the web UI, token %q: %d %s, want %d", token, resp.StatusCode, b, want)
			}
		}
	})
}

// runServer runs `obelisk server run --config config` until it prints "Serving API" or
// exits, and returns its output so far and its exit code (-1: still running; it is then
// stopped).
func runServer(t *testing.T, config string) (output string, code int) {
	t.Helper()
	cmd := exec.Command(harness.Binary(), "server", "run", "--config", config)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout // one stream: the log and the "Serving" lines in order
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	lines := bufio.NewScanner(out)
	serving := false
	for lines.Scan() {
		b.WriteString(lines.Text() + "\n")
		if strings.HasPrefix(lines.Text(), "Serving API on") {
			serving = true
			break
		}
	}
	if serving {
		_ = cmd.Process.Signal(os.Interrupt)
		go io.Copy(io.Discard, out)
		_ = cmd.Wait()
		return b.String(), -1
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return b.String(), exit.ExitCode()
	}
	return b.String(), 0
}

// TestAuthConfigErrors: a malformed tokens file or an incomplete TLS pair stops the
// server at start (exit 2), naming the file and the entry; an API or web UI on a
// non-loopback address without tokens starts with a warning, and with tokens without.
func TestAuthConfigErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := writeTokens(t)
	files := map[string]string{
		"bad.toml":  "[[token]\nname = \"x\"\n",
		"role.toml": "[[token]]\nname = \"ci\"\nrole = \"root\"\nsha256 = \"" + strings.Repeat("ab", 32) + "\"\n",
		"sha.toml":  "[[token]]\nname = \"ci\"\nrole = \"read\"\nsha256 = \"abcd\"\n",
		"dup.toml":  "[[token]]\nname = \"ci\"\nrole = \"read\"\nsha256 = \"" + strings.Repeat("ab", 32) + "\"\n[[token]]\nname = \"ci\"\nrole = \"admin\"\nsha256 = \"" + strings.Repeat("cd", 32) + "\"\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	config := func(name, api string) string {
		p := filepath.Join(dir, name+".obelisk.toml")
		text := fmt.Sprintf("data_dir = %q\n[api]\nlistening_addr = \"127.0.0.1:0\"\n%s\n[webui]\nlistening_addr = \"off\"\n", filepath.Join(dir, name+"-data"), api)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, c := range []struct {
		name, api string
		want      []string
	}{
		{"bad TOML", `auth_tokens_file = "bad.toml"`, []string{"api.auth_tokens_file", "bad.toml", "line 1"}},
		{"unknown role", `auth_tokens_file = "role.toml"`, []string{"role.toml", `[[token]] #1 (name "ci")`, `role "root"`}},
		{"short sha256", `auth_tokens_file = "sha.toml"`, []string{"sha.toml", `[[token]] #1 (name "ci")`, "64 hex digits"}},
		{"duplicate name", `auth_tokens_file = "dup.toml"`, []string{"dup.toml", `[[token]] #2 (name "ci")`, "used twice"}},
		{"metrics_auth alone", `metrics_auth = true`, []string{"api.metrics_auth", "api.auth_tokens_file"}},
		{"cert without key", `tls_cert_file = "cert.pem"`, []string{"api.tls_cert_file is set without api.tls_key_file"}},
	} {
		out, code := runServer(t, config(strings.ReplaceAll(c.name, " ", "-"), c.api))
		if code != 2 {
			t.Errorf("%s: exit %d, want 2:\n%s", c.name, code, out)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: the error lacks %q:\n%s", c.name, w, out)
			}
		}
	}

	const warning = "non-loopback address without authentication"
	open := filepath.Join(dir, "open.obelisk.toml")
	if err := os.WriteFile(open, []byte(fmt.Sprintf("data_dir = %q\n[api]\nlistening_addr = \"0.0.0.0:0\"\n[webui]\nlistening_addr = \"off\"\n", filepath.Join(dir, "open-data"))), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := runServer(t, open); code != -1 || !strings.Contains(out, "level=WARN") || !strings.Contains(out, warning) {
		t.Errorf("API on 0.0.0.0 without tokens: exit %d, want a running server and a warning:\n%s", code, out)
	}
	guarded := filepath.Join(dir, "guarded.obelisk.toml")
	if err := os.WriteFile(guarded, []byte(fmt.Sprintf("data_dir = %q\n[api]\nlistening_addr = \"0.0.0.0:0\"\nauth_tokens_file = %q\n[webui]\nlistening_addr = \"off\"\n", filepath.Join(dir, "guarded-data"), good)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := runServer(t, guarded); code != -1 || strings.Contains(out, warning) || !strings.Contains(out, "without TLS: its bearer tokens travel in clear text") {
		t.Errorf("API on 0.0.0.0 with tokens, without TLS: exit %d, want a running server and only the clear-text warning:\n%s", code, out)
	}
}
