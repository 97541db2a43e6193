package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"connectrpc.com/connect"
)

func digest(token string) string {
	d := sha256.Sum256([]byte(token))
	return hex.EncodeToString(d[:])
}

func tokensFile(entries ...string) string { return strings.Join(entries, "\n") }

func entry(name, role, sha string) string {
	return "[[token]]\nname = \"" + name + "\"\nrole = \"" + role + "\"\nsha256 = \"" + sha + "\"\n"
}

func TestParseTokensErrors(t *testing.T) {
	good := digest("secret")
	for _, tc := range []struct{ name, file, want string }{
		{"bad TOML", "[[token]\nname = 1", "line 1"},
		{"unknown role", entry("ci", "writer", good), `[[token]] #1 (name "ci"): role "writer": want "read" or "admin"`},
		{"short sha256", entry("ci", "read", "abc"), `[[token]] #1 (name "ci"): sha256 must be 64 hex digits`},
		{"not hex", entry("ci", "read", strings.Repeat("z", 64)), `[[token]] #1 (name "ci"): sha256 must be 64 hex digits`},
		{"duplicate name", tokensFile(entry("ci", "read", good), entry("ci", "admin", digest("other"))), `[[token]] #2 (name "ci"): the name is used twice`},
		{"duplicate digest", tokensFile(entry("ci", "read", good), entry("ops", "admin", good)), `[[token]] #2 (name "ops"): the same sha256 as token "ci"`},
		{"no name", entry("", "read", good), `[[token]] #1 (name ""): name is required`},
		{"unknown key", entry("ci", "read", good) + "secret = \"x\"\n", "unknown key"},
		{"empty", "", "no [[token]]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseTokens([]byte(tc.file))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestLoadTokensNamesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.toml")
	if err := os.WriteFile(path, []byte(entry("ci", "root", digest("x"))), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadTokens(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), `name "ci"`) {
		t.Fatalf("err = %v, want the file and the entry named", err)
	}
	if _, err := LoadTokens(filepath.Join(t.TempDir(), "missing.toml")); err == nil || !strings.Contains(err.Error(), "missing.toml") {
		t.Fatalf("missing file: err = %v", err)
	}
}

func code(err error) connect.Code {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce.Code()
	}
	return 0
}

func TestAuthenticateAndAuthorize(t *testing.T) {
	toks, err := ParseTokens([]byte(tokensFile(entry("viewer", "read", digest("r-secret")), entry("ops", "admin", digest("a-secret")))))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"", "r-secret", "Basic r-secret", "Bearer ", "Bearer wrong", "Bearer r-secretX"} {
		if _, err := toks.Authenticate(h); code(err) != connect.CodeUnauthenticated {
			t.Errorf("Authenticate(%q): %v, want unauthenticated", h, err)
		}
	}
	viewer, err := toks.Authenticate("Bearer r-secret")
	if err != nil || viewer.Name != "viewer" || viewer.Role != RoleRead {
		t.Fatalf("read token: %+v %v", viewer, err)
	}
	admin, err := toks.Authenticate("bearer  a-secret ")
	if err != nil || admin.Name != "ops" || admin.Role != RoleAdmin {
		t.Fatalf("admin token: %+v %v", admin, err)
	}
	if err := Authorize(viewer, "/s/Get", Read); err != nil {
		t.Errorf("read token reading: %v", err)
	}
	if err := Authorize(viewer, "/s/Submit", Write); code(err) != connect.CodePermissionDenied || !strings.Contains(err.Error(), `"viewer"`) {
		t.Errorf("read token writing: %v, want permission_denied naming the token", err)
	}
	if err := Authorize(admin, "/s/Submit", Write); err != nil {
		t.Errorf("admin token writing: %v", err)
	}
}

func TestHTTPGuard(t *testing.T) {
	toks, err := ParseTokens([]byte(entry("viewer", "read", digest("r-secret"))))
	if err != nil {
		t.Fatal(err)
	}
	h := toks.HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("metrics")) }))
	for header, want := range map[string]int{"": 401, "Bearer nope": 401, "Bearer r-secret": 200} {
		req := httptest.NewRequest("GET", "/metrics", nil)
		if header != "" {
			req.Header.Set("Authorization", header)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("%q: %d %s, want %d", header, rec.Code, rec.Body, want)
		}
		if want == 401 && (!strings.Contains(rec.Body.String(), "unauthenticated") || rec.Header().Get("WWW-Authenticate") == "") {
			t.Errorf("%q: body %q, WWW-Authenticate %q", header, rec.Body, rec.Header().Get("WWW-Authenticate"))
		}
	}
}

// countingBody counts the bytes read of a request body.
type countingBody struct {
	r    io.Reader
	read *int
}

func (b countingBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	*b.read += n
	return n, err
}

func (countingBody) Close() error { return nil }

// TestRPCGuard: a refused call is answered, in the Connect protocol, before any of its
// body is read; an accepted one reaches the handler with its token in the context.
func TestRPCGuard(t *testing.T) {
	toks, err := ParseTokens([]byte(tokensFile(entry("viewer", "read", digest("r-secret")), entry("ops", "admin", digest("a-secret")))))
	if err != nil {
		t.Fatal(err)
	}
	access := func(procedure string) Access {
		if procedure == "/s/Get" {
			return Read
		}
		return Write
	}
	var caller Token
	h := toks.RPC(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		caller, _ = Caller(r.Context())
		io.Copy(io.Discard, r.Body)
		w.Write([]byte("{}"))
	}), access, connect.NewErrorWriter())
	for _, tc := range []struct {
		name, path, header string
		wantStatus         int
		wantCode, wantName string
	}{
		{"no token", "/s/Get", "", 401, "unauthenticated", ""},
		{"wrong token", "/s/Get", "Bearer nope", 401, "unauthenticated", ""},
		{"read token writing", "/s/Submit", "Bearer r-secret", 403, "permission_denied", ""},
		{"read token reading", "/s/Get", "Bearer r-secret", 200, "", "viewer"},
		{"admin token writing", "/s/Submit", "Bearer a-secret", 200, "", "ops"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			caller = Token{}
			read := 0
			body := strings.Repeat("x", 1<<20)
			req := httptest.NewRequest("POST", tc.path, nil)
			req.Body = countingBody{strings.NewReader(body), &read}
			req.Header.Set("Content-Type", "application/json")
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.wantStatus || !strings.Contains(rec.Body.String(), tc.wantCode) {
				t.Fatalf("%d %s, want %d with %q", rec.Code, rec.Body, tc.wantStatus, tc.wantCode)
			}
			if tc.wantCode != "" && read != 0 {
				t.Errorf("refused after reading %d bytes of the body", read)
			}
			if caller.Name != tc.wantName {
				t.Errorf("the handler saw caller %q, want %q", caller.Name, tc.wantName)
			}
		})
	}
	// A request in no RPC protocol (a browser's GET) is refused in plain HTTP, with the
	// status of the refusal.
	for header, want := range map[string]int{"": 401, "Bearer r-secret": 403} {
		req := httptest.NewRequest("GET", "/s/Submit", nil)
		if header != "" {
			req.Header.Set("Authorization", header)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("GET with %q: %d %s, want %d", header, rec.Code, rec.Body, want)
		}
	}
}

// BenchmarkAuthenticate measures what the token guard adds to every call: hashing the
// token and comparing it with each of 10 digests.
func BenchmarkAuthenticate(b *testing.B) {
	var entries []string
	for i := range 10 {
		entries = append(entries, entry(fmt.Sprintf("t%d", i), "read", digest(fmt.Sprintf("secret-%d", i))))
	}
	toks, err := ParseTokens([]byte(tokensFile(entries...)))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := toks.Authenticate("Bearer secret-9"); err != nil {
			b.Fatal(err)
		}
	}
}
