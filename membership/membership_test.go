package membership_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/obelisk-go/obelisk/events/replicated"
	"github.com/obelisk-go/obelisk/membership"
	"github.com/obelisk-go/obelisk/natsnode"
)

// fakeLog is a log held by the servers replicas, at end, of which a node applied applied.
type fakeLog struct {
	replicas []replicated.Replica
	end      uint64
	applied  atomic.Uint64
}

func (f *fakeLog) LogStatus(context.Context) (replicated.LogStatus, error) {
	return replicated.LogStatus{LastSeq: f.end, Applied: f.applied.Load(), Leader: f.replicas[0].Name, Replicas: f.replicas}, nil
}
func (f *fakeLog) Applied() uint64 { return f.applied.Load() }

func jetStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	n, err := natsnode.Start(ctx, natsnode.Config{Name: "s", Listen: addr, StoreDir: filepath.Join(t.TempDir(), "js"), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Shutdown)
	nc, err := n.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// TestStatus: two nodes beating; a third holds a replica of the log but never beat; a
// node that stops beating goes stale, one that stops cleanly keeps only its replica.
func TestStatus(t *testing.T) {
	js := jetStream(t)
	ctx := context.Background()
	log := &fakeLog{end: 12, replicas: []replicated.Replica{{Name: "a", Current: true}, {Name: "b", Current: true}, {Name: "c", Offline: true}}}
	log.applied.Store(12)
	opts := func(node string) membership.Options {
		return membership.Options{JetStream: js, Cluster: "x", Node: node, APIURL: "http://" + node, Log: log,
			Interval: 50 * time.Millisecond, StaleAfter: 2 * time.Second}
	}
	a, err := membership.Start(ctx, opts("a"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Stop(ctx)
	b, err := membership.Start(ctx, opts("b"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := a.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Cluster != "x" || st.Self != "a" || st.Log.LastSeq != 12 || len(st.Members) != 3 || len(st.Errors) != 0 {
		t.Fatalf("status: %+v", st)
	}
	ma, mb, mc := st.Members[0], st.Members[1], st.Members[2]
	if ma.Name != "a" || !ma.Self || !ma.Healthy || ma.APIURL != "http://a" || ma.Applied != 12 || ma.Replica == nil {
		t.Errorf("a: %+v", ma)
	}
	if mb.Name != "b" || mb.Self || !mb.Healthy || mb.APIURL != "http://b" || mb.LastSeen.IsZero() || mb.StartedAt.IsZero() {
		t.Errorf("b: %+v", mb)
	}
	if mc.Name != "c" || mc.Healthy || mc.Problem != "no heartbeat" || mc.Replica == nil || !mc.Replica.Offline {
		t.Errorf("c: %+v", mc)
	}

	// b stops cleanly: its heartbeat is removed at once; it stays listed while it holds
	// a replica of the log.
	b.Stop(ctx)
	st, err = a.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if mb := st.Members[1]; mb.Name != "b" || mb.Healthy || mb.Problem != "no heartbeat" {
		t.Errorf("b stopped: %+v", mb)
	}

	// d beats once and dies (no Stop): stale after StaleAfter.
	d, err := membership.Start(ctx, membership.Options{JetStream: js, Node: "d", Log: log, Interval: time.Hour, StaleAfter: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	_ = d // never stopped: its one heartbeat stays in the bucket
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err = a.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		md := st.Members[3]
		if md.Name != "d" {
			t.Fatalf("members: %+v", st.Members)
		}
		if !md.Healthy && md.Problem != "" {
			t.Logf("d: %s", md.Problem)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("d never went stale: %+v", md)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestBucketUnreachable: a bucket that cannot be made (three replicas on one server)
// does not stop the node: Start succeeds, and Status shows the log's replicas, itself,
// and what it could not read.
func TestBucketUnreachable(t *testing.T) {
	js := jetStream(t)
	ctx := context.Background()
	log := &fakeLog{end: 3, replicas: []replicated.Replica{{Name: "a", Current: true}}}
	h, err := membership.Start(ctx, membership.Options{JetStream: js, Node: "a", Log: log, Replicas: 3, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop(ctx)
	st, err := h.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Errors) != 1 || !strings.Contains(st.Errors[0], "heartbeats") || len(st.Members) != 1 || !st.Members[0].Self || !st.Members[0].Healthy {
		t.Fatalf("status: %+v", st)
	}
}
