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
	s := newConfigServer(t, config)
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// StartConfigs starts a server on each config file as StartConfig does, all at once,
// and then waits until every one serves: the nodes of a cluster, each of which waits
// for a majority of them before it serves.
func StartConfigs(t testing.TB, configs ...string) []*Server {
	t.Helper()
	var servers []*Server
	for _, c := range configs {
		s := newConfigServer(t, c)
		s.launch()
		t.Cleanup(s.Stop)
		servers = append(servers, s)
	}
	for _, s := range servers {
		s.waitReady()
	}
	return servers
}

func newConfigServer(t testing.TB, config string) *Server {
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
	return s
}
