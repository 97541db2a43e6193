// Package webui serves the browser UI of the engine: plain HTML, CSS and JavaScript
// modules embedded in the binary, talking to the API with the connect JSON protocol.
// Requests for the API services (/obelisk.v1.*) are reverse-proxied to the API address,
// so the page and the API share one origin.
package webui

import (
	"context"
	"embed"
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
func Handler(api *url.URL) http.Handler {
	files, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded folder is part of the binary
	}
	proxy := &httputil.ReverseProxy{
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

// Serve serves the UI on ln until ctx ends, proxying API calls to api. It answers only to
// the Host names that allowed and ln's address admit (hostguard): otherwise any page the
// user opens could drive the API through it by DNS rebinding. (Pages of other origins
// are refused by the proxy's sameOrigin check.)
func Serve(ctx context.Context, ln net.Listener, api *url.URL, allowed hostguard.Allowed) error {
	handler := hostguard.New(ln.Addr(), allowed).Host(Handler(api))
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		return srv.Shutdown(shutdown)
	}
}

// APIURL is the URL through which the UI reaches an API listening on addr: an
// unspecified host (0.0.0.0, ::) is reached on loopback.
func APIURL(addr net.Addr) *url.URL {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return &url.URL{Scheme: "http", Host: addr.String()}
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip.To4() == nil {
			host = "::1"
		}
	}
	return &url.URL{Scheme: "http", Host: net.JoinHostPort(host, port)}
}
