package config

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
)

// ClusterFile is [cluster]: this server is one node of a cluster whose event store is a
// replicated log on NATS JetStream (events/replicated), run by an embedded JetStream
// server per node (listen, route_listen, routes) or by an external NATS cluster
// (nats_url). Absent: a single node on its own Pebble store.
type ClusterFile struct {
	// NodeName names this node, unique in the cluster: its JetStream server's name and
	// the owner of the locks its executors take.
	NodeName string `mapstructure:"node_name"`
	// Name is the cluster's name, the same on every node (DefaultClusterName).
	Name string `mapstructure:"name"`
	// Listen is the embedded JetStream server's client address (host:port).
	Listen string `mapstructure:"listen"`
	// RouteListen is the address the other nodes' routes connect to (host:port).
	RouteListen string `mapstructure:"route_listen"`
	// Routes are the route addresses of the cluster's nodes (this one's may be among
	// them, so every node can be given the same list).
	Routes []string `mapstructure:"routes"`
	// StoreDir is where the embedded JetStream keeps its streams ("" = data_dir/jetstream).
	StoreDir string `mapstructure:"store_dir"`
	// NATSURL connects to an external NATS cluster with JetStream instead of running
	// one: then listen, route_listen and routes are not given.
	NATSURL string `mapstructure:"nats_url"`
	// Replicas of the log's stream: 3 for a three-node cluster (DefaultClusterReplicas).
	Replicas int `mapstructure:"replicas"`
}

// Defaults of [cluster] (contract: documented in examples/obelisk.toml).
const (
	DefaultClusterName     = "obelisk"
	DefaultClusterReplicas = 3
)

// Cluster is the resolved [cluster].
type Cluster struct {
	NodeName, Name      string
	Listen, RouteListen string
	Routes              []string
	StoreDir            string // absolute, or relative to the working directory
	NATSURL             string
	Replicas            int
}

// resolveCluster checks [cluster]; nil when the table is absent.
func resolveCluster(c *ClusterFile, dataDir string) (*Cluster, error) {
	if c == nil {
		return nil, nil
	}
	r := &Cluster{NodeName: c.NodeName, Name: c.Name, Listen: c.Listen, RouteListen: c.RouteListen, Routes: c.Routes,
		StoreDir: c.StoreDir, NATSURL: strings.TrimSpace(c.NATSURL), Replicas: c.Replicas}
	if r.Name == "" {
		r.Name = DefaultClusterName
	}
	if r.Replicas == 0 {
		r.Replicas = DefaultClusterReplicas
	}
	switch {
	case r.NodeName == "":
		return nil, errors.New("cluster.node_name is required (unique in the cluster, e.g. \"node1\")")
	case strings.ContainsAny(r.NodeName, " \t.*>@/"):
		return nil, fmt.Errorf("cluster.node_name %q: letters, digits, '-' and '_' only", r.NodeName)
	case r.Replicas < 1 || r.Replicas > 5:
		return nil, fmt.Errorf("cluster.replicas = %d: want 1 to 5 (JetStream's limit), 3 for a three-node cluster", r.Replicas)
	}
	if r.NATSURL != "" {
		if r.Listen != "" || r.RouteListen != "" || len(r.Routes) > 0 || r.StoreDir != "" {
			return nil, errors.New("cluster.nats_url connects to an external NATS: leave out listen, route_listen, routes and store_dir (they configure the embedded one)")
		}
		return r, nil
	}
	if err := hostPort("cluster.listen", r.Listen); err != nil {
		return nil, err
	}
	if len(r.Routes) > 0 || r.Replicas > 1 {
		if err := hostPort("cluster.route_listen", r.RouteListen); err != nil {
			return nil, fmt.Errorf("%w (the other nodes' routes connect to it)", err)
		}
		if len(r.Routes) == 0 {
			return nil, fmt.Errorf("cluster.routes is required with replicas = %d: the route addresses of the nodes (host:port)", r.Replicas)
		}
		for i, rt := range r.Routes {
			if err := hostPort(fmt.Sprintf("cluster.routes[%d]", i), rt); err != nil {
				return nil, err
			}
		}
	} else if r.RouteListen != "" {
		return nil, errors.New("cluster.route_listen without routes: give the nodes' route addresses in cluster.routes")
	}
	if r.StoreDir == "" {
		r.StoreDir = filepath.Join(dataDir, "jetstream")
	}
	return r, nil
}

func hostPort(key, addr string) error {
	if addr == "" {
		return fmt.Errorf("%s is required (host:port)", key)
	}
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s = %q: want host:port: %v", key, addr, err)
	}
	if n, err := strconv.Atoi(p); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%s = %q: bad port", key, addr)
	}
	return nil
}
