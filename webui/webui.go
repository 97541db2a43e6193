// Package webui serves the browser UI of the engine: plain HTML, CSS and JavaScript
// modules embedded in the binary, talking to the API with the connect JSON protocol.
// Requests for the API services (/obelisk.v1.*) are reverse-proxied to the API address,
// so the page and the API share one origin.
package webui

import (
	"bytes"
	"context"
	"crypto/tls"
	"embed"
	"errors"
	"io/fs"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/obelisk-go/obelisk/hostguard"
)

//go:embed static
var static embed.FS

// apiPrefix starts the path of every RPC of the API's services.
const apiPrefix = "/obelisk.v1."

// Handler serves the UI's files and proxies API calls to api (e.g. http://127.0.0.1:5005).
// An https API must present apiCert (pinned: see apiTransport). The proxy passes the
// page's Authorization header on, so the API checks the token the page was given.
func Handler(api *url.URL, apiCert *tls.Certificate) http.Handler {
	files, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded folder is part of the binary
	}
	proxy := &httputil.ReverseProxy{
		Transport: apiTransport(apiCert),
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(api)
			r.Out.Host = api.Host
		},
		FlushInterval: -1, // server streams (GetStatus with follow) pass through as they come
	}
	fileServer := http.FileServerFS(files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, apiPrefix) {
			if !sameOrigin(r) {
				http.Error(w, "cross-origin API calls are not allowed", http.StatusForbidden)
				return
			}
			proxy.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:")
		fileServer.ServeHTTP(w, r)
	})
}

// apiTransport is how the proxy reaches the API: over TLS when the API has a certificate.
// It reaches the API on loopback by address (APIURL), which the certificate need not name
// (it names what clients elsewhere use), so the usual name check cannot apply; instead
// the proxy accepts exactly the certificate the API was configured with, and nothing
// else. A CA pool would be weaker (any certificate of that CA) and would not cover a
// self-signed one.
func apiTransport(apiCert *tls.Certificate) http.RoundTripper {
	if apiCert == nil || len(apiCert.Certificate) == 0 {
		return http.DefaultTransport
	}
	want := apiCert.Certificate[0]
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // replaced by the pin below
		// VerifyConnection, unlike VerifyPeerCertificate, also runs on resumed sessions.
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, want) {
				return errors.New("the API presented another certificate than its configured one (api.tls_cert_file)")
			}
			return nil
		},
	}
	return t
}

// sameOrigin rejects API calls made by pages of other origins (a browser sends Origin
// on every POST); tools such as curl send none.
func sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host == r.Host
}

// Options configure Serve.
type Options struct {
	// AllowedHosts are the Host names the UI answers to besides those ln's address
	// admits (webui.allowed_hosts).
	AllowedHosts hostguard.Allowed
	// TLS, when set, serves the UI over TLS only (webui.tls_cert_file, tls_key_file).
	TLS *tls.Config
	// APICert is the certificate of an API served over TLS (api.tls_cert_file); nil:
	// the API is plain HTTP.
	APICert *tls.Certificate
}

// Serve serves the UI on ln until ctx ends, proxying API calls to api. It answers only to
// the Host names that opts.AllowedHosts and ln's address admit (hostguard): otherwise any
// page the user opens could drive the API through it by DNS rebinding. (Pages of other
// origins are refused by the proxy's sameOrigin check.)
func Serve(ctx context.Context, ln net.Listener, api *url.URL, opts Options) error {
	handler := hostguard.New(ln.Addr(), opts.AllowedHosts).Host(Handler(api, opts.APICert))
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, TLSConfig: opts.TLS}
	errc := make(chan error, 1)
	go func() {
		if opts.TLS != nil {
			errc <- srv.ServeTLS(ln, "", "") // the certificate is in TLSConfig
			return
		}
		errc <- srv.Serve(ln)
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		return srv.Shutdown(shutdown)
	}
}

// APIURL is the URL through which the UI reaches an API listening on addr (over TLS if
// https): an unspecified host (0.0.0.0, ::) is reached on loopback.
func APIURL(addr net.Addr, https bool) *url.URL {
	scheme := "http"
	if https {
		scheme = "https"
	}
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return &url.URL{Scheme: scheme, Host: addr.String()}
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip.To4() == nil {
			host = "::1"
		}
	}
	return &url.URL{Scheme: scheme, Host: net.JoinHostPort(host, port)}
}
