package natsnode_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/natsnode"
)

func TestStartRefusesBadConfig(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		cfg  natsnode.Config
		want string
	}{
		{natsnode.Config{StoreDir: dir, Listen: "127.0.0.1:0"}, "no name"},
		{natsnode.Config{Name: "a", Listen: "127.0.0.1:0"}, "no store dir"},
		{natsnode.Config{Name: "a", StoreDir: dir, Listen: "127.0.0.1"}, "listen address"},
		{natsnode.Config{Name: "a", StoreDir: dir, Listen: "127.0.0.1:0", Routes: []string{"127.0.0.1:1"}}, "routes without a cluster name"},
		{natsnode.Config{Name: "a", StoreDir: dir, Listen: "127.0.0.1:0", Cluster: "c", RouteListen: "127.0.0.1:0", Routes: []string{"nohost"}}, `route "nohost"`},
	}
	for _, tc := range cases {
		_, err := natsnode.Start(context.Background(), tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want an error saying %q", tc.cfg, err, tc.want)
		}
	}
}

func TestStartSingle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := natsnode.Start(ctx, natsnode.Config{Name: "a", StoreDir: t.TempDir(), Listen: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown()
	if err := n.WaitJetStream(ctx); err != nil {
		t.Fatal(err)
	}
	nc, err := n.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if !strings.HasPrefix(n.ClientURL(), "nats://127.0.0.1:") {
		t.Fatalf("client URL %s", n.ClientURL())
	}
	if err := nc.Publish("x", []byte("y")); err != nil {
		t.Fatal(err)
	}
}

// A port already taken ends Start with NATS's error, not a wait until ctx's deadline.
func TestStartPortTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	n, err := natsnode.Start(ctx, natsnode.Config{Name: "a", StoreDir: t.TempDir(), Listen: l.Addr().String(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil {
		n.Shutdown()
		t.Fatal("started on a port taken")
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	if !strings.Contains(err.Error(), port) || ctx.Err() != nil {
		t.Fatalf("got %v after %v, want an error naming port %s before the deadline", err, time.Since(start), port)
	}
}
