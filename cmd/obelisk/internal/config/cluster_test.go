package config

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestClusterAbsentIsSingleNode(t *testing.T) {
	s, err := Load(write(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	if s.Cluster != nil || s.Engine.NodeName != "" {
		t.Errorf("no [cluster]: Cluster %+v, node name %q", s.Cluster, s.Engine.NodeName)
	}
}

func TestClusterKeys(t *testing.T) {
	p := write(t, `data_dir = "d1"
[cluster]
node_name = "node1"
listen = "127.0.0.1:4231"
route_listen = "127.0.0.1:6231"
routes = ["127.0.0.1:6231", "127.0.0.1:6232", "127.0.0.1:6233"]
`)
	s, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	c := s.Cluster
	if c == nil || c.NodeName != "node1" || c.Name != DefaultClusterName || c.Replicas != DefaultClusterReplicas ||
		c.Listen != "127.0.0.1:4231" || c.RouteListen != "127.0.0.1:6231" || len(c.Routes) != 3 ||
		c.StoreDir != filepath.Join("d1", "jetstream") || s.Engine.NodeName != "node1" {
		t.Fatalf("cluster: %+v, engine node name %q", c, s.Engine.NodeName)
	}
	// The data dir of each node comes from the environment; the JetStream dir follows it.
	t.Setenv("OBELISK_DATA_DIR", "/tmp/elsewhere")
	if s, err = Load(p); err != nil || s.Cluster.StoreDir != "/tmp/elsewhere/jetstream" {
		t.Fatalf("OBELISK_DATA_DIR: %+v, %v", s.Cluster, err)
	}
	s, err = Load(write(t, "[cluster]\nnode_name = \"a\"\nnats_url = \"nats://10.0.0.1:4222\"\nreplicas = 1\n"))
	if err != nil || s.Cluster.NATSURL != "nats://10.0.0.1:4222" || s.Cluster.Replicas != 1 {
		t.Fatalf("external NATS: %+v, %v", s.Cluster, err)
	}
	s, err = Load(write(t, "[cluster]\nnode_name = \"a\"\nlisten = \"127.0.0.1:0\"\nreplicas = 1\n"))
	if err != nil || s.Cluster.RouteListen != "" || len(s.Cluster.Routes) != 0 {
		t.Fatalf("one embedded server: %+v, %v", s.Cluster, err)
	}
}

func TestClusterKeyErrors(t *testing.T) {
	const ok = "listen = \"127.0.0.1:4231\"\nroute_listen = \"127.0.0.1:6231\"\nroutes = [\"127.0.0.1:6231\"]\n"
	for _, tc := range []struct{ text, want string }{
		{"[cluster]\n" + ok, "cluster.node_name is required"},
		{"[cluster]\nnode_name = \"a.b\"\n" + ok, `cluster.node_name "a.b"`},
		{"[cluster]\nnode_name = \"a\"\nreplicas = 7\n" + ok, "cluster.replicas = 7"},
		{"[cluster]\nnode_name = \"a\"\nroute_listen = \"127.0.0.1:6231\"\nroutes = [\"127.0.0.1:6231\"]\n", "cluster.listen is required"},
		{"[cluster]\nnode_name = \"a\"\nlisten = \"localhost\"\n", `cluster.listen = "localhost": want host:port`},
		{"[cluster]\nnode_name = \"a\"\nlisten = \"127.0.0.1:4231\"\n", "cluster.route_listen is required"},
		{"[cluster]\nnode_name = \"a\"\nlisten = \"127.0.0.1:4231\"\nroute_listen = \"127.0.0.1:6231\"\n", "cluster.routes is required with replicas = 3"},
		{"[cluster]\nnode_name = \"a\"\nlisten = \"127.0.0.1:4231\"\nroute_listen = \"127.0.0.1:6231\"\nroutes = [\"x\"]\n", `cluster.routes[0] = "x"`},
		{"[cluster]\nnode_name = \"a\"\nnats_url = \"nats://h:4222\"\n" + ok, "cluster.nats_url connects to an external NATS"},
		{"[cluster]\nnode_name = \"a\"\nseeds = []\n" + ok, "seeds"},
	} {
		_, err := Load(write(t, tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.text, err, tc.want)
		}
	}
}

// The contract's three nodes: one cluster, distinct addresses, the example's components.
func TestClusterExamplesLoad(t *testing.T) {
	var apis, listens, routeListens []string
	for n := 1; n <= 3; n++ {
		s, err := Load(filepath.Join("..", "..", "..", "..", "examples", "cluster", fmt.Sprintf("node%d.toml", n)))
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("127.0.0.1:510%d", n); s.ListeningAddr != want {
			t.Errorf("node%d: api %s, want %s", n, s.ListeningAddr, want)
		}
		if s.Cluster == nil || s.Cluster.Replicas != 3 || len(s.Cluster.Routes) != 3 {
			t.Fatalf("node%d: cluster %+v", n, s.Cluster)
		}
		if len(s.Engine.Components) != 9 {
			t.Errorf("node%d: %d components, want the 9 of examples/obelisk.toml", n, len(s.Engine.Components))
		}
		apis, listens, routeListens = append(apis, s.ListeningAddr), append(listens, s.Cluster.Listen), append(routeListens, s.Cluster.RouteListen)
		if !slices.Contains(s.Cluster.Routes, s.Cluster.RouteListen) {
			t.Errorf("node%d: routes %v lack its own %s (every node is given the same list)", n, s.Cluster.Routes, s.Cluster.RouteListen)
		}
		if s.WebUIAddr == DefaultWebUIAddr {
			t.Errorf("node%d: web UI on the default address, which a single node holds", n)
		}
	}
	for _, l := range [][]string{apis, listens, routeListens} {
		if len(slices.Compact(slices.Sorted(slices.Values(l)))) != 3 {
			t.Errorf("addresses collide: %v", l)
		}
	}
}
