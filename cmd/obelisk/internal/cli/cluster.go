package cli

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go"

	"github.com/obelisk-go/obelisk/actors"
	"github.com/obelisk-go/obelisk/cmd/obelisk/internal/config"
	"github.com/obelisk-go/obelisk/events"
	"github.com/obelisk-go/obelisk/events/replicated"
	"github.com/obelisk-go/obelisk/natsnode"
)

// joinCluster makes the server a node of the cluster of cfg.Cluster: it starts the
// embedded JetStream server (or connects to the external NATS), and has the engine open
// the replicated store on it instead of Pebble. stop, called after the engine closed,
// closes the connection and stops the embedded server.
func joinCluster(ctx context.Context, log *slog.Logger, cfg *config.Server) (stop func(), err error) {
	c := cfg.Cluster
	var node *natsnode.Node
	var conn *nats.Conn
	if c.NATSURL != "" {
		conn, err = nats.Connect(c.NATSURL, nats.Name("obelisk "+c.NodeName), nats.MaxReconnects(-1))
		if err != nil {
			return nil, fmt.Errorf("cluster.nats_url %s: %w", c.NATSURL, err)
		}
	} else {
		nc := natsnode.Config{Name: c.NodeName, Listen: c.Listen, StoreDir: c.StoreDir, Logger: log}
		if len(c.Routes) > 0 {
			nc.Cluster, nc.RouteListen, nc.Routes = c.Name, c.RouteListen, c.Routes
		}
		if node, err = natsnode.Start(ctx, nc); err != nil {
			return nil, err
		}
		if conn, err = node.Connect(nats.Name("obelisk "+c.NodeName), nats.MaxReconnects(-1)); err != nil {
			node.Shutdown()
			return nil, fmt.Errorf("connect to the embedded NATS server: %w", err)
		}
	}
	stop = func() {
		conn.Close()
		if node != nil {
			node.Shutdown()
		}
	}
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
		return s, nil
	}
	return stop, nil
}
