package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/obelisk-go/obelisk/hostguard"
	"github.com/obelisk-go/obelisk/webui"
)

// startWebUI listens on addr (webui.listening_addr; "" = off) and serves the web UI to
// the Host names allowed admits until ctx ends, proxying its API calls to the API
// listening on api.
func startWebUI(ctx context.Context, log *slog.Logger, out io.Writer, addr string, allowed hostguard.Allowed, api net.Addr) error {
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return &ExitError{Code: 2, Err: fmt.Errorf("webui.listening_addr: %w (set it to \"off\" to disable the web UI)", err)}
	}
	go func() {
		if err := webui.Serve(ctx, ln, webui.APIURL(api), allowed); err != nil {
			log.Error("web UI", "err", err)
		}
	}()
	log.Info("serving web UI", "addr", ln.Addr().String())
	fmt.Fprintf(out, "Serving web UI on http://%s\n", ln.Addr())
	return nil
}
