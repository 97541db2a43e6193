package harness

import (
	"net/http"
	"path/filepath"
	"testing"

	"github.com/obelisk-go/obelisk/proto/obelisk/v1/obeliskv1connect"
)

// StartConfig starts the server on a config file of the test's own, such as the
// obelisk.toml of a generated project, and served as it is but for what the
// environment overrides (config.Load): the data goes to a temporary folder, the
// compilation cache is the one shared by the test process, the API listens on a
// free address and the web UI is off. Addresses in the file's [[http_server]]
// tables are the test's to choose.
func StartConfig(t testing.TB, config string) *Server {
	t.Helper()
	dir := t.TempDir()
	s := &Server{t: t, dir: dir, addr: FreeAddr(t), config: config, webAddr: "off"}
	s.URL = "http://" + s.addr
	s.env = []string{
		"OBELISK_DATA_DIR=" + filepath.Join(dir, "data"),
		"OBELISK_CACHE_DIR=" + wasmCacheDir,
		"OBELISK_API_LISTENING_ADDR=" + s.addr,
		"OBELISK_WEBUI_LISTENING_ADDR=off",
	}
	s.HTTP = http.DefaultClient
	s.Exec = obeliskv1connect.NewExecutionServiceClient(s.HTTP, s.URL)
	s.Comp = obeliskv1connect.NewComponentServiceClient(s.HTTP, s.URL)
	s.Start()
	t.Cleanup(s.Stop)
	return s
}
