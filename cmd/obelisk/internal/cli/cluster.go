package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/obelisk-go/obelisk/actors"
	"github.com/obelisk-go/obelisk/cmd/obelisk/internal/config"
	"github.com/obelisk-go/obelisk/events"
	"github.com/obelisk-go/obelisk/events/replicated"
	"github.com/obelisk-go/obelisk/membership"
	"github.com/obelisk-go/obelisk/natsnode"
)

// clusterNode is the server's part in a cluster: its connection to JetStream and the
// replicated store the engine opened on it.
type clusterNode struct {
	cfg   *config.Cluster
	log   *slog.Logger
	conn  *nats.Conn
	store *replicated.Store // set once the engine opened it
}

// heartbeat starts this node's heartbeats (membership), once the engine opened the
// store; apiURL is where its API answers.
func (n *clusterNode) heartbeat(ctx context.Context, apiURL string) (*membership.Heart, error) {
	if n.store == nil {
		return nil, errors.New("cluster heartbeat: the replicated store is not open")
	}
	js, err := jetstream.New(n.conn)
	if err != nil {
		return nil, fmt.Errorf("cluster heartbeat: %w", err)
	}
	return membership.Start(ctx, membership.Options{JetStream: js, Cluster: n.cfg.Name, Node: n.cfg.NodeName,
		APIURL: apiURL, Log: n.store, Replicas: n.cfg.Replicas, Logger: n.log})
}

// joinCluster makes the server a node of the cluster of cfg.Cluster: it starts the
// embedded JetStream server (or connects to the external NATS), and has the engine open
// the replicated store on it instead of Pebble. stop, called after the engine closed,
// closes the connection and stops the embedded server.
func joinCluster(ctx context.Context, log *slog.Logger, cfg *config.Server) (cn *clusterNode, stop func(), err error) {
	c := cfg.Cluster
	var node *natsnode.Node
	var conn *nats.Conn
	if c.NATSURL != "" {
		conn, err = nats.Connect(c.NATSURL, nats.Name("obelisk "+c.NodeName), nats.MaxReconnects(-1))
		if err != nil {
			return nil, nil, fmt.Errorf("cluster.nats_url %s: %w", c.NATSURL, err)
		}
	} else {
		nc := natsnode.Config{Name: c.NodeName, Listen: c.Listen, StoreDir: c.StoreDir, Logger: log}
		if len(c.Routes) > 0 {
			nc.Cluster, nc.RouteListen, nc.Routes = c.Name, c.RouteListen, c.Routes
		}
		if node, err = natsnode.Start(ctx, nc); err != nil {
			return nil, nil, err
		}
		if conn, err = node.Connect(nats.Name("obelisk "+c.NodeName), nats.MaxReconnects(-1)); err != nil {
			node.Shutdown()
			return nil, nil, fmt.Errorf("connect to the embedded NATS server: %w", err)
		}
	}
	stop = func() {
		conn.Close()
		if node != nil {
			node.Shutdown()
		}
	}
	cn = &clusterNode{cfg: c, log: log, conn: conn}
	log.Info("cluster node", "node", c.NodeName, "cluster", c.Name, "replicas", c.Replicas, "nats", conn.ConnectedUrlRedacted())
	cfg.Engine.OpenStore = func(ctx context.Context, dir string, opts events.Options) (actors.LocalStore, error) {
		log.Info("opening the replicated store: waiting for a majority of the cluster's nodes", "replicas", c.Replicas)
		s, err := replicated.Open(ctx, dir, replicated.Options{Conn: conn, Replicas: c.Replicas, Pebble: opts, Logger: log})
		if err != nil {
			return nil, err
		}
		// The engine's recovery reads the local projection: it must have applied what the
		// log held when the node started, or it would decide on states others changed.
		if err := s.WaitApplied(ctx); err != nil {
			s.Close()
			return nil, fmt.Errorf("catch up with the replicated log: %w", err)
		}
		log.Info("replicated store caught up", "applied_since_open", s.AppliedSinceOpen())
		cn.store = s
		return s, nil
	}
	return cn, stop, nil
}
