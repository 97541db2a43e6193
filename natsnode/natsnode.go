// Package natsnode runs an embedded NATS server with JetStream, alone or as one node of
// a cluster of them (routes between the nodes; JetStream's meta group and streams
// replicated by Raft), for a cluster's replicated event store (events/replicated). It
// only starts and stops the server; what is stored is the store's business.
package natsnode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Config is what one node needs to start.
type Config struct {
	// Name is the node's server name, unique in the cluster (JetStream's Raft groups
	// name their peers by it).
	Name string
	// Listen is the host:port clients connect to (port 0: any free port; see ClientURL).
	Listen string
	// Cluster is the cluster's name, the same on every node; empty runs a single server
	// (then Routes must be empty).
	Cluster string
	// RouteListen is the host:port the other nodes' routes connect to.
	RouteListen string
	// Routes are the route addresses (host:port) of the nodes to connect to; a node's own
	// address may be among them (every node can be given the same list).
	Routes []string
	// StoreDir is where JetStream keeps its streams and Raft logs.
	StoreDir string
	// SyncAlways makes JetStream sync every write to disk before acknowledging it. By
	// default it syncs every two minutes, and an acknowledged write survives because a
	// majority of the servers holds it: a single server (R1) that must survive a power
	// loss needs SyncAlways.
	SyncAlways bool
	// MaxPayload is the largest message accepted, in bytes (0: NATS's default, 1 MiB).
	MaxPayload int32
	// Logger receives the server's messages (nil: slog.Default()); its debug level
	// gets NATS's debug messages.
	Logger *slog.Logger
}

// Node is a running embedded server.
type Node struct {
	srv *server.Server
}

// Start starts the node and waits until it accepts connections, or ctx ends. It does not
// wait for the cluster: JetStream answers once a majority of the nodes has met (see
// WaitJetStream).
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if cfg.Name == "" {
		return nil, errors.New("start nats node: no name")
	}
	if cfg.StoreDir == "" {
		return nil, fmt.Errorf("start nats node %s: no store dir", cfg.Name)
	}
	host, port, err := splitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("start nats node %s: listen address: %w", cfg.Name, err)
	}
	opts := &server.Options{
		ServerName: cfg.Name,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		MaxPayload: cfg.MaxPayload,
		SyncAlways: cfg.SyncAlways,
		NoSigs:     true, // the process's signals belong to its owner
		// A peer that is down is retried every second, each failure an error line by
		// default: once a minute says the same and leaves the log readable.
		ReconnectErrorReports: 60,
	}
	if port == 0 {
		opts.Port = server.RANDOM_PORT
	}
	if cfg.Cluster != "" {
		rh, rp, err := splitHostPort(cfg.RouteListen)
		if err != nil {
			return nil, fmt.Errorf("start nats node %s: route listen address: %w", cfg.Name, err)
		}
		opts.Cluster = server.ClusterOpts{Name: cfg.Cluster, Host: rh, Port: rp}
		for _, r := range cfg.Routes {
			u, err := url.Parse("nats://" + r)
			if err != nil || u.Port() == "" {
				return nil, fmt.Errorf("start nats node %s: route %q: want host:port", cfg.Name, r)
			}
			opts.Routes = append(opts.Routes, u)
		}
	} else if len(cfg.Routes) > 0 {
		return nil, fmt.Errorf("start nats node %s: routes without a cluster name", cfg.Name)
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("start nats node %s: %w", cfg.Name, err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("nats", cfg.Name)
	// NATS reports what stops it starting (a port taken) through Fatalf, and then never
	// becomes ready: the error is kept to end the wait with it.
	sl := slogLogger{l: logger, fatal: make(chan error, 1)}
	srv.SetLoggerV2(sl, logger.Enabled(ctx, slog.LevelDebug), false, false)
	go srv.Start()
	for !srv.ReadyForConnections(100 * time.Millisecond) {
		select {
		case err := <-sl.fatal:
			srv.Shutdown()
			return nil, fmt.Errorf("start nats node %s: %w", cfg.Name, err)
		default:
		}
		if err := ctx.Err(); err != nil {
			srv.Shutdown()
			return nil, fmt.Errorf("start nats node %s: %w", cfg.Name, err)
		}
	}
	return &Node{srv: srv}, nil
}

// ClientURL is the URL clients connect to.
func (n *Node) ClientURL() string { return n.srv.ClientURL() }

// Connect returns a connection to the node that bypasses the network (in-process).
func (n *Node) Connect(opts ...nats.Option) (*nats.Conn, error) {
	return nats.Connect("", append([]nats.Option{nats.InProcessServer(n.srv)}, opts...)...)
}

// WaitJetStream waits until JetStream is current on the node: for a cluster, the meta
// group has a leader and the node has caught up with it.
func (n *Node) WaitJetStream(ctx context.Context) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for !n.srv.JetStreamIsCurrent() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for jetstream on %s: %w", n.srv.Name(), ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// Shutdown stops the node and waits until it stopped.
func (n *Node) Shutdown() {
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
}

func splitHostPort(addr string) (string, int, error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("%q: bad port", addr)
	}
	return h, port, nil
}

// slogLogger hands the server's messages to slog: notices are Info, traces Debug. The
// first fatal message also goes to fatal.
type slogLogger struct {
	l     *slog.Logger
	fatal chan error
}

func (s slogLogger) Noticef(format string, v ...any) { s.l.Info(fmt.Sprintf(format, v...)) }
func (s slogLogger) Warnf(format string, v ...any)   { s.l.Warn(fmt.Sprintf(format, v...)) }
func (s slogLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	s.l.Error(msg)
	select {
	case s.fatal <- errors.New(msg):
	default:
	}
}
func (s slogLogger) Errorf(format string, v ...any) { s.l.Error(fmt.Sprintf(format, v...)) }
func (s slogLogger) Debugf(format string, v ...any) { s.l.Debug(fmt.Sprintf(format, v...)) }
func (s slogLogger) Tracef(format string, v ...any) { s.l.Debug(fmt.Sprintf(format, v...)) }
