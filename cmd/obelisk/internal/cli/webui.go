package cli

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/obelisk-go/obelisk/cmd/obelisk/internal/config"
	"github.com/obelisk-go/obelisk/webui"
)

// startWebUI listens on cfg.WebUIAddr (webui.listening_addr; "" = off) and serves the
// web UI to the Host names cfg allows until ctx ends, proxying its API calls to the API
// listening on api.
func startWebUI(ctx context.Context, log *slog.Logger, out io.Writer, cfg *config.Server, api net.Addr) error {
	if cfg.WebUIAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", cfg.WebUIAddr)
	if err != nil {
		return &ExitError{Code: 2, Err: fmt.Errorf("webui.listening_addr: %w (set it to \"off\" to disable the web UI)", err)}
	}
	opts := webui.Options{AllowedHosts: cfg.WebUIAllowedHosts, TLS: cfg.WebUITLS}
	if cfg.APITLS != nil {
		opts.APICert = &cfg.APITLS.Certificates[0]
	}
	go func() {
		if err := webui.Serve(ctx, ln, webui.APIURL(api, cfg.APITLS != nil), opts); err != nil {
			log.Error("web UI", "err", err)
		}
	}()
	warnIfOpen(log, "web UI", "webui.listening_addr", ln.Addr(), cfg, cfg.WebUITLS != nil)
	log.Info("serving web UI", "addr", ln.Addr().String())
	fmt.Fprintf(out, "Serving web UI on %s://%s\n", scheme(cfg.WebUITLS), ln.Addr())
	return nil
}

// scheme is the URL scheme of a server with that TLS configuration.
func scheme(tlsConfig *tls.Config) string {
	if tlsConfig != nil {
		return "https"
	}
	return "http"
}

// warnIfOpen logs a warning when a surface that drives the API (the API itself, or the
// web UI's proxy to it) listens on an address other machines can reach while the API
// asks for no token (anyone who reaches it may submit, cancel and delete), or while
// tokens travel to it in clear text (secure: the surface has TLS).
func warnIfOpen(log *slog.Logger, what, key string, addr net.Addr, cfg *config.Server, secure bool) {
	if tcp, ok := addr.(*net.TCPAddr); ok && tcp.IP.IsLoopback() {
		return
	}
	switch {
	case cfg.APITokens == nil:
		log.Warn(what+" listens on a non-loopback address without authentication: anyone who reaches it can submit, cancel and delete executions; set api.auth_tokens_file",
			key, addr.String())
	case !secure:
		log.Warn(what+" listens on a non-loopback address without TLS: its bearer tokens travel in clear text; set its tls_cert_file and tls_key_file",
			key, addr.String())
	}
}
