package replicated_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/obelisk-go/obelisk/events"
	"github.com/obelisk-go/obelisk/events/replicated"
	"github.com/obelisk-go/obelisk/natsnode"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	"github.com/obelisk-go/obelisk/snapshot"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// cluster is n embedded JetStream servers routed to each other on loopback.
type cluster struct {
	t     testing.TB
	cfgs  []natsnode.Config
	nodes []*natsnode.Node
}

func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startCluster(t testing.TB, n int) *cluster {
	c := &cluster{t: t}
	var routes []string
	for i := 0; i < n; i++ {
		cfg := natsnode.Config{Name: "n" + strconv.Itoa(i), Listen: freeAddr(t), StoreDir: filepath.Join(t.TempDir(), "js"), Logger: quiet()}
		if n > 1 {
			cfg.Cluster, cfg.RouteListen = "test", freeAddr(t)
			routes = append(routes, cfg.RouteListen)
		}
		c.cfgs = append(c.cfgs, cfg)
	}
	for i := range c.cfgs {
		c.cfgs[i].Routes = routes
	}
	c.nodes = make([]*natsnode.Node, n)
	var wg sync.WaitGroup
	for i := range c.cfgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.start(i)
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for i := range c.nodes {
			c.stop(i)
		}
	})
	return c
}

func (c *cluster) start(i int) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := natsnode.Start(ctx, c.cfgs[i])
	if err != nil {
		c.t.Error(err)
		return
	}
	c.nodes[i] = n
}

func (c *cluster) stop(i int) {
	if c.nodes[i] != nil {
		c.nodes[i].Shutdown()
		c.nodes[i] = nil
	}
}

// open opens a replicated store on node i's server, over TCP (so that it reconnects
// when the server restarts), on stream, in dir.
func (c *cluster) open(t testing.TB, i int, stream, dir string) *replicated.Store {
	t.Helper()
	nc, err := nats.Connect("nats://"+c.cfgs[i].Listen, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := replicated.Open(ctx, dir, replicated.Options{Conn: nc, Stream: stream, Replicas: len(c.cfgs), Logger: quiet(), Pebble: events.Options{NoSync: true, Logger: quiet()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.Close()
		nc.Close()
	})
	return s
}

func waitApplied(t testing.TB, stores ...*replicated.Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, s := range stores {
		if err := s.WaitApplied(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// snapshotOf is everything a node's store answers about its executions, in a form
// compared byte for byte: every state, event and response, the global log, the KV
// bucket and the logs.
func snapshotOf(t testing.TB, s events.Store) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	out := map[string][]byte{}
	det := proto.MarshalOptions{Deterministic: true}
	put := func(k string, m proto.Message) {
		b, err := det.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		out[k] = b
	}
	err := s.AllStates(ctx, func(st *pb.ExecutionState) error {
		id := st.ExecutionId
		put("state/"+id, st)
		evs, err := s.Events(ctx, id, 0, 0)
		if err != nil {
			return err
		}
		for i, ev := range evs {
			put(fmt.Sprintf("event/%s/%d", id, i), ev)
		}
		rs, err := s.Responses(ctx, id, 0)
		if err != nil {
			return err
		}
		for i, r := range rs {
			put(fmt.Sprintf("response/%s/%d", id, i), r)
		}
		logs, err := s.Logs(ctx, id, 0, 0)
		if err != nil {
			return err
		}
		out["logs/"+id] = fmt.Appendf(nil, "%+v", logs)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	pes, _, err := s.EventsFrom(ctx, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, pe := range pes {
		out[fmt.Sprintf("global/%d", pe.Position)] = fmt.Appendf(nil, "%s v%d", pe.ExecutionID, pe.Version)
	}
	kvs, _, err := s.KVList(ctx, "b", "", "", events.MaxKVListLimit)
	if err != nil {
		t.Fatal(err)
	}
	out["kv"] = fmt.Appendf(nil, "%v", kvs)
	return out
}

func sameSnapshots(t testing.TB, a, b map[string][]byte, what string) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%s: %d items against %d", what, len(a), len(b))
	}
	for k, v := range a {
		if string(b[k]) != string(v) {
			t.Fatalf("%s: %s differs", what, k)
		}
	}
}

func verify(t testing.TB, s events.Store) {
	t.Helper()
	if err := snapshot.VerifyAll(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

// TestCluster runs the replicated store on three JetStream servers (R3), one store per
// node, each subtest on a stream of its own.
func TestCluster(t *testing.T) {
	c := startCluster(t, 3)
	open3 := func(t *testing.T, stream string) []*replicated.Store {
		var out []*replicated.Store
		for i := range 3 {
			out = append(out, c.open(t, i, stream, t.TempDir()))
		}
		return out
	}

	t.Run("converge", func(t *testing.T) {
		stores := open3(t, "CONVERGE")
		var wg sync.WaitGroup
		errs := make(chan error, 3)
		for n, s := range stores {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 8 {
					if err := runTree(context.Background(), s, fmt.Sprintf("E_%d_%d", n, i)); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		waitApplied(t, stores...)
		want := snapshotOf(t, stores[0])
		if len(want) < 3*8*2 {
			t.Fatalf("only %d items stored", len(want))
		}
		for i, s := range stores {
			sameSnapshots(t, want, snapshotOf(t, s), fmt.Sprintf("node %d", i))
			verify(t, s)
		}
	})

	t.Run("conflict", func(t *testing.T) {
		stores := open3(t, "CONFLICT")
		ctx := context.Background()
		for round := range 5 {
			id := fmt.Sprintf("E_c%d", round)
			if _, err := stores[0].Commit(ctx, appendTx(id, 0, "", createdEv("testing:a/b.c", "q", 1, 1))); err != nil {
				t.Fatal(err)
			}
			waitApplied(t, stores[1])
			// Both nodes saw version 1 and claim the execution with their own run.
			errs := make([]error, 2)
			var wg sync.WaitGroup
			for n := range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, errs[n] = stores[n].Commit(ctx, appendTx(id, 1, "", lockedEv(fmt.Sprintf("R%d", n), 2, 1_000)))
				}()
			}
			wg.Wait()
			winner := -1
			for n, err := range errs {
				var ce *events.ConflictError
				switch {
				case err == nil:
					if winner >= 0 {
						t.Fatalf("round %d: both locks won", round)
					}
					winner = n
				case errors.As(err, &ce):
				default:
					t.Fatalf("round %d: node %d: %v", round, n, err)
				}
			}
			if winner < 0 {
				t.Fatalf("round %d: no lock won: %v", round, errs)
			}
			waitApplied(t, stores...)
			for i, s := range stores {
				st, err := s.State(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if st.RunId != fmt.Sprintf("R%d", winner) || st.NextVersion != 2 {
					t.Fatalf("round %d: node %d holds run %q at v%d, node %d won", round, i, st.RunId, st.NextVersion, winner)
				}
			}
		}
	})

	t.Run("reopen and fresh node", func(t *testing.T) {
		ctx := context.Background()
		dirs := []string{t.TempDir(), t.TempDir()}
		a := c.open(t, 0, "REOPEN", dirs[0])
		b := c.open(t, 1, "REOPEN", dirs[1])
		for i := range 3 {
			if err := runTree(ctx, a, fmt.Sprintf("E_r%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		waitApplied(t, b)
		before := b.AppliedSinceOpen()
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		for i := 3; i < 5; i++ {
			if err := runTree(ctx, a, fmt.Sprintf("E_r%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		total := before + 2*treeCommits
		b = c.open(t, 1, "REOPEN", dirs[1])
		waitApplied(t, b)
		if got := b.AppliedSinceOpen(); got != 2*treeCommits {
			t.Fatalf("the reopened store applied %d entries, want the %d it missed", got, 2*treeCommits)
		}
		fresh := c.open(t, 2, "REOPEN", t.TempDir())
		waitApplied(t, fresh)
		if got := fresh.AppliedSinceOpen(); got != total {
			t.Fatalf("the fresh store applied %d entries, want all %d", got, total)
		}
		want := snapshotOf(t, a)
		sameSnapshots(t, want, snapshotOf(t, b), "reopened")
		sameSnapshots(t, want, snapshotOf(t, fresh), "fresh")
		verify(t, fresh)
	})

	t.Run("retention through the log", func(t *testing.T) {
		ctx := context.Background()
		stores := open3(t, "RETENTION")
		for i := range 2 {
			if err := runTree(ctx, stores[i], fmt.Sprintf("E_d%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		d, err := stores[2].DeleteTrees(ctx, []string{"E_d0", "E_nope"})
		if err != nil {
			t.Fatal(err)
		}
		if d.Trees != 1 || d.Refused["E_nope"] == nil {
			t.Fatalf("deleted %+v", d)
		}
		waitApplied(t, stores...)
		want := snapshotOf(t, stores[0])
		for i, s := range stores {
			if _, err := s.State(ctx, "E_d0"); !errors.Is(err, events.ErrNotFound) {
				t.Fatalf("node %d still has the deleted tree: %v", i, err)
			}
			if _, err := s.State(ctx, "E_d1"); err != nil {
				t.Fatalf("node %d: %v", i, err)
			}
			sameSnapshots(t, want, snapshotOf(t, s), fmt.Sprintf("node %d", i))
		}
	})

	t.Run("local snapshots, big and unreadable entries", func(t *testing.T) {
		ctx := context.Background()
		stores := open3(t, "EDGES")
		txs := treeTxs("E_s")
		for _, tx := range txs[:len(txs)-1] { // not the finish: a finished execution takes no snapshot
			if _, err := stores[0].Commit(ctx, tx); err != nil {
				t.Fatal(err)
			}
		}
		waitApplied(t, stores...)
		// A snapshot stays on the node that took it, with or without other writes.
		snap := events.SnapshotPut{ExecutionID: "E_s", Entry: events.SnapshotEntry{Position: 3, Prefix: []byte{3}, ComponentID: "comp"}, Blob: []byte("memory")}
		if _, err := stores[0].Commit(ctx, &events.Tx{Snapshots: []events.SnapshotPut{snap}, KV: []events.KVWrite{{Bucket: "b", Key: "k", Value: "v"}}}); err != nil {
			t.Fatal(err)
		}
		waitApplied(t, stores...)
		for i, s := range stores {
			snaps, err := s.Snapshots(ctx, "E_s")
			if err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int{true: 1, false: 0}[i == 0]; len(snaps) != want {
				t.Fatalf("node %d holds %d snapshots, want %d", i, len(snaps), want)
			}
			if v, ok, _ := s.KVGet(ctx, "b", "k"); !ok || v != "v" {
				t.Fatalf("node %d: the snapshot's Tx lost its KV write", i)
			}
		}
		// An entry over NATS's max_payload (1 MiB) is refused, and nothing of it stored.
		big := appendTx("E_big", 0, "", createdEv("testing:a/b.c", "q", 1, 1))
		big.Appends[0].Events[0].GetCreated().Params = make([]byte, 2<<20)
		if _, err := stores[1].Commit(ctx, big); !errors.Is(err, replicated.ErrTooLarge) {
			t.Fatalf("a 2 MiB Tx: %v", err)
		}
		if _, err := stores[1].State(ctx, "E_big"); !errors.Is(err, events.ErrNotFound) {
			t.Fatalf("the refused Tx left %v", err)
		}
		// An entry no node can read stops every node before it: applying what follows
		// could fork them.
		nc, err := nats.Connect("nats://" + c.cfgs[0].Listen)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		if err := nc.Publish("EDGES.tx", []byte{0xff, 0xff}); err != nil {
			t.Fatal(err)
		}
		for i, s := range stores {
			select {
			case <-s.Failed():
			case <-time.After(30 * time.Second):
				t.Fatalf("node %d applied past an unreadable entry", i)
			}
			if _, err := s.Commit(ctx, appendTx("E_after", 0, "", createdEv("testing:a/b.c", "q", 1, 1))); !errors.Is(err, events.ErrFailed) {
				t.Fatalf("node %d: a commit after the failure: %v", i, err)
			}
		}
	})

	// Last: it stops a server.
	t.Run("server down", func(t *testing.T) {
		ctx := context.Background()
		stores := open3(t, "DOWN")
		if err := runTree(ctx, stores[0], "E_before"); err != nil {
			t.Fatal(err)
		}
		waitApplied(t, stores...)
		c.stop(2)
		for i := range 4 {
			if err := runTree(ctx, stores[i%2], fmt.Sprintf("E_down%d", i)); err != nil {
				t.Fatalf("commit with one server of three down: %v", err)
			}
		}
		c.start(2)
		waitApplied(t, stores...)
		want := snapshotOf(t, stores[0])
		for i, s := range stores {
			sameSnapshots(t, want, snapshotOf(t, s), fmt.Sprintf("node %d", i))
		}
		if _, err := stores[2].State(ctx, "E_down3"); err != nil {
			t.Fatalf("the restarted node did not catch up: %v", err)
		}
	})
}

// TestSingleServer: one server, the stream R1, as a single node with a log would run;
// a stream asked with another replication factor than it has is refused.
func TestSingleServer(t *testing.T) {
	c := startCluster(t, 1)
	dir := t.TempDir()
	s := c.open(t, 0, "SINGLE", dir)
	if err := runTree(context.Background(), s, "E_1"); err != nil {
		t.Fatal(err)
	}
	verify(t, s)
	nc, err := nats.Connect("nats://" + c.cfgs[0].Listen)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = replicated.Open(ctx, t.TempDir(), replicated.Options{Conn: nc, Stream: "SINGLE", Replicas: 3, Logger: quiet()})
	if err == nil || !strings.Contains(err.Error(), "has 1 replicas, 3 asked") {
		t.Fatalf("a stream R1 opened as R3: %v", err)
	}
}
