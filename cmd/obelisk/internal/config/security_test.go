package config

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/obelisk-go/obelisk/internal/testcert"
)

func sha(token string) string {
	d := sha256.Sum256([]byte(token))
	return hex.EncodeToString(d[:])
}

// TestSecurityKeys: auth_tokens_file (relative to the config's folder), metrics_auth and
// the TLS pairs of [api], [webui] and [[http_server]] are read; without them nothing is
// needed.
func TestSecurityKeys(t *testing.T) {
	dir := t.TempDir()
	certs := testcert.Write(t, dir)
	tokens := "[[token]]\nname = \"ci\"\nrole = \"read\"\nsha256 = \"" + sha("s") + "\"\n"
	if err := os.WriteFile(filepath.Join(dir, "tokens.toml"), []byte(tokens), 0o600); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "obelisk.toml")
	text := `
[api]
auth_tokens_file = "tokens.toml"
metrics_auth = true
tls_cert_file = "server.pem"
tls_key_file = "server-key.pem"
[webui]
tls_cert_file = "` + certs.ServerCert + `"
tls_key_file = "` + certs.ServerKey + `"
[[http_server]]
name = "external"
listening_addr = "127.0.0.1:9091"
tls_cert_file = "server.pem"
tls_key_file = "server-key.pem"
`
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if s.APITokens.Len() != 1 || !s.MetricsAuth || s.APITLS == nil || s.WebUITLS == nil || len(s.Webhooks.Servers) != 1 || s.Webhooks.Servers[0].TLS == nil {
		t.Fatalf("tokens %d, metrics_auth %v, api TLS %v, webui TLS %v, servers %+v", s.APITokens.Len(), s.MetricsAuth, s.APITLS != nil, s.WebUITLS != nil, s.Webhooks.Servers)
	}
	none, err := Load(write(t, "[[http_server]]\nname = \"x\"\nlisting_addr = \"127.0.0.1:1\"\n"))
	if err == nil {
		t.Fatalf("a misspelt key loads: %+v", none)
	}
	none, err = Load("")
	if err != nil || none.APITokens != nil || none.MetricsAuth || none.APITLS != nil || none.WebUITLS != nil {
		t.Fatalf("defaults: %+v %v", none, err)
	}
	t.Setenv("OBELISK_API_AUTH_TOKENS_FILE", filepath.Join(dir, "tokens.toml"))
	if env, err := Load(""); err != nil || env.APITokens.Len() != 1 {
		t.Fatalf("OBELISK_API_AUTH_TOKENS_FILE: %+v %v", env, err)
	}
}

// TestSecurityKeyErrors: a bad tokens file or TLS pair stops the start, naming the key,
// the file and the entry at fault.
func TestSecurityKeyErrors(t *testing.T) {
	dir := t.TempDir()
	certs := testcert.Write(t, dir)
	files := map[string]string{
		"badtoml.toml": "[[token]\n",
		"role.toml":    "[[token]]\nname = \"ci\"\nrole = \"writer\"\nsha256 = \"" + sha("s") + "\"\n",
		"short.toml":   "[[token]]\nname = \"ci\"\nrole = \"read\"\nsha256 = \"abc\"\n",
		"dup.toml":     "[[token]]\nname = \"ci\"\nrole = \"read\"\nsha256 = \"" + sha("a") + "\"\n[[token]]\nname = \"ci\"\nrole = \"admin\"\nsha256 = \"" + sha("b") + "\"\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name, text string
		want       []string
	}{
		{"bad TOML", "[api]\nauth_tokens_file = \"badtoml.toml\"\n", []string{"api.auth_tokens_file", "badtoml.toml", "line 1"}},
		{"unknown role", "[api]\nauth_tokens_file = \"role.toml\"\n", []string{"role.toml", `[[token]] #1 (name "ci")`, `role "writer"`}},
		{"short sha256", "[api]\nauth_tokens_file = \"short.toml\"\n", []string{"short.toml", `[[token]] #1 (name "ci")`, "64 hex digits"}},
		{"duplicate name", "[api]\nauth_tokens_file = \"dup.toml\"\n", []string{"dup.toml", `[[token]] #2 (name "ci")`, "used twice"}},
		{"missing file", "[api]\nauth_tokens_file = \"none.toml\"\n", []string{"api.auth_tokens_file", "none.toml"}},
		{"metrics_auth without tokens", "[api]\nmetrics_auth = true\n", []string{"api.metrics_auth", "api.auth_tokens_file"}},
		{"cert without key", "[api]\ntls_cert_file = \"server.pem\"\n", []string{"api.tls_cert_file is set without api.tls_key_file"}},
		{"key without cert", "[webui]\ntls_key_file = \"server-key.pem\"\n", []string{"webui.tls_key_file is set without webui.tls_cert_file"}},
		{"mismatched pair", "[api]\ntls_cert_file = \"server.pem\"\ntls_key_file = \"ca.pem\"\n", []string{"api.tls_cert_file", "ca.pem"}},
		{"http_server pair", "[[http_server]]\nname = \"ext\"\nlistening_addr = \"127.0.0.1:9092\"\ntls_cert_file = \"" + certs.CACert + "\"\n", []string{`[[http_server]] #1 (name "ext")`, "http_server.tls_cert_file is set without http_server.tls_key_file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, "obelisk.toml")
			if err := os.WriteFile(p, []byte(tc.text), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Load(p)
			if err == nil {
				t.Fatal("loads")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
