// Package auth checks the bearer tokens of API calls: it reads the tokens file
// ([api] auth_tokens_file), authenticates a request's Authorization header against it and
// authorizes the call by the token's role, as a connect interceptor for the RPCs and as
// an HTTP middleware for plain routes (/metrics). Which RPCs write is the API's to say
// (api.ProcedureAccess); this package only enforces it.
package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"connectrpc.com/connect"
	"github.com/pelletier/go-toml/v2"
)

// Role is what a token may do.
type Role string

// The roles of a token.
const (
	// RoleRead may call the RPCs that only read (list, get, watch, logs, components).
	RoleRead Role = "read"
	// RoleAdmin may call every RPC.
	RoleAdmin Role = "admin"
)

// Access is what an RPC does to the engine: only read, or write (create, change or
// delete something).
type Access int

// The accesses of an RPC.
const (
	// Write is the zero value: an RPC nobody classified needs an admin token.
	Write Access = iota
	Read
)

// Token is one entry of the tokens file: a name for the logs and messages, a role and
// the SHA-256 digest of the secret (the secret itself is never stored).
type Token struct {
	Name   string
	Role   Role
	digest [sha256.Size]byte
}

// Tokens are the tokens an API accepts.
type Tokens struct {
	tokens []Token
}

// file is the TOML layout of a tokens file.
type file struct {
	Token []struct {
		Name   string `toml:"name"`
		Role   string `toml:"role"`
		SHA256 string `toml:"sha256"`
	} `toml:"token"`
}

// LoadTokens reads a tokens file: [[token]] tables with name, role ("read" or "admin")
// and sha256 (the hex SHA-256 of the token). An error names the file and, for a bad
// entry, the entry.
func LoadTokens(path string) (*Tokens, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read tokens file: %w", err)
	}
	t, err := ParseTokens(data)
	if err != nil {
		return nil, fmt.Errorf("tokens file %s: %w", path, err)
	}
	return t, nil
}

// ParseTokens parses the content of a tokens file (LoadTokens).
func ParseTokens(data []byte) (*Tokens, error) {
	var f file
	dec := toml.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		var sm *toml.StrictMissingError
		if errors.As(err, &sm) {
			return nil, fmt.Errorf("unknown key: %s (a [[token]] has name, role and sha256)", strings.TrimSpace(sm.String()))
		}
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return nil, fmt.Errorf("line %d, column %d: %w", row, col, err)
		}
		return nil, err
	}
	if len(f.Token) == 0 {
		return nil, errors.New("no [[token]]: every API call would be refused")
	}
	t := &Tokens{}
	names := map[string]bool{}
	digests := map[[sha256.Size]byte]string{}
	for i, e := range f.Token {
		entry := fmt.Sprintf("[[token]] #%d (name %q)", i+1, e.Name)
		tok := Token{Name: e.Name, Role: Role(e.Role)}
		switch {
		case strings.TrimSpace(e.Name) == "":
			return nil, fmt.Errorf("%s: name is required", entry)
		case names[e.Name]:
			return nil, fmt.Errorf("%s: the name is used twice", entry)
		case tok.Role != RoleRead && tok.Role != RoleAdmin:
			return nil, fmt.Errorf("%s: role %q: want \"read\" or \"admin\"", entry, e.Role)
		}
		b, err := hex.DecodeString(e.SHA256)
		if err != nil || len(b) != sha256.Size {
			return nil, fmt.Errorf("%s: sha256 must be 64 hex digits (the SHA-256 of the token, e.g. printf %%s TOKEN | sha256sum), got %d characters", entry, len(e.SHA256))
		}
		copy(tok.digest[:], b)
		if other, dup := digests[tok.digest]; dup {
			// Which of the two a call was made with could not be told.
			return nil, fmt.Errorf("%s: the same sha256 as token %q", entry, other)
		}
		names[e.Name], digests[tok.digest] = true, e.Name
		t.tokens = append(t.tokens, tok)
	}
	return t, nil
}

// Len is the number of tokens (0 for nil: no authentication).
func (t *Tokens) Len() int {
	if t == nil {
		return 0
	}
	return len(t.tokens)
}

// Authenticate finds the token of an Authorization header ("Bearer TOKEN"). The error is
// a connect error of code unauthenticated.
func (t *Tokens) Authenticate(header string) (Token, error) {
	scheme, secret, ok := strings.Cut(strings.TrimSpace(header), " ")
	if header == "" {
		return Token{}, connect.NewError(connect.CodeUnauthenticated, errors.New("no token: send the header Authorization: Bearer TOKEN (CLI: --token or OBELISK_API_TOKEN)"))
	}
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(secret) == "" {
		return Token{}, connect.NewError(connect.CodeUnauthenticated, errors.New("the Authorization header is not \"Bearer TOKEN\""))
	}
	d := sha256.Sum256([]byte(strings.TrimSpace(secret)))
	// Every digest is compared, in constant time, so that the time taken tells nothing
	// of which bytes or which entry matched.
	found := -1
	for i := range t.tokens {
		if subtle.ConstantTimeCompare(d[:], t.tokens[i].digest[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Token{}, connect.NewError(connect.CodeUnauthenticated, errors.New("the token is not valid"))
	}
	return t.tokens[found], nil
}

// Authorize checks that tok may make a call of the given access to procedure. The error
// is a connect error of code permission_denied.
func Authorize(tok Token, procedure string, access Access) error {
	if access == Read || tok.Role == RoleAdmin {
		return nil
	}
	return connect.NewError(connect.CodePermissionDenied,
		fmt.Errorf("token %q has the role %s: %s writes and needs an admin token", tok.Name, tok.Role, procedure))
}

// RPC guards the API's RPC handler h: it authenticates every call and authorizes it by
// access(procedure), the classification of the API's RPCs, from the request's headers
// and path alone, so that a refused call is answered before its body is read (a body
// may be megabytes). Refusals are written by ew in the protocol the client speaks
// (Connect, gRPC, gRPC-Web). The caller's token reaches the handler in its context
// (Caller).
func (t *Tokens) RPC(h http.Handler, access func(procedure string) Access, ew *connect.ErrorWriter) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		procedure := r.URL.Path // a connect procedure is the path: "/package.Service/Method"
		tok, err := t.Authenticate(r.Header.Get("Authorization"))
		if err == nil {
			err = Authorize(tok, procedure, access(procedure))
		}
		if err != nil {
			if ew.IsSupported(r) {
				_ = ew.Write(w, r, err)
				return
			}
			status := http.StatusForbidden
			if connect.CodeOf(err) == connect.CodeUnauthenticated {
				status = http.StatusUnauthorized
				w.Header().Set("WWW-Authenticate", `Bearer realm="obelisk"`)
			}
			http.Error(w, err.Error(), status)
			return
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, tok)))
	})
}

type callerKey struct{}

// Caller returns the token that authenticated the call of ctx (RPC), and false when
// the API has no tokens.
func Caller(ctx context.Context) (Token, bool) {
	tok, ok := ctx.Value(callerKey{}).(Token)
	return tok, ok
}

// HTTP guards a plain HTTP route (not an RPC): any valid token may call it; without one
// it answers 401 with a WWW-Authenticate challenge.
func (t *Tokens) HTTP(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := t.Authenticate(r.Header.Get("Authorization")); err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="obelisk"`)
			var ce *connect.Error
			msg := err.Error()
			if errors.As(err, &ce) {
				msg = "unauthenticated: " + ce.Message()
			}
			http.Error(w, msg, http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// WithToken returns a round tripper that sends token as the bearer token of every
// request through base (nil: http.DefaultTransport): the client side of the tokens.
func WithToken(base http.RoundTripper, token string) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &bearer{base: base, header: "Bearer " + token}
}

type bearer struct {
	base   http.RoundTripper
	header string
}

func (b *bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context()) // a RoundTripper must not change the caller's request
	r.Header.Set("Authorization", b.header)
	return b.base.RoundTrip(r)
}
