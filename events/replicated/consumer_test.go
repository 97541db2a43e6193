package replicated_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/obelisk-go/obelisk/events/replicated"
)

// TestStalledConsumerReplaced: a node whose consumer of the log stopped for good (the
// client gave up re-creating it after its server died) gets another one, from the entry
// after the last it took, once the stream holds entries it did not take: its Commits,
// which wait for their own entry, are answered, and it applies every entry once.
func TestStalledConsumerReplaced(t *testing.T) {
	c := startCluster(t, 1)
	s := c.open(t, 0, "STALL", t.TempDir())
	ctx := context.Background()
	if err := runTree(ctx, s, "E_before"); err != nil {
		t.Fatal(err)
	}
	gen := replicated.StallConsumer(s)
	done := make(chan error, 1)
	go func() { done <- runTree(ctx, s, "E_after") }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("a commit after the consumer stalled was never answered: no consumer replaced it")
	}
	if g := replicated.ConsumerGeneration(s); g <= gen {
		t.Fatalf("consumer generation %d after the stall, %d before: the commits were answered without a new consumer?", g, gen)
	}
	for _, id := range []string{"E_before", "E_after"} {
		if _, err := s.State(ctx, id); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}
	verify(t, s)
}

// TestStreamLeaderDown: the server that leads the stream (where the consumers of the
// log tend to live) stops, twice over; the nodes of the two others go on
// committing and applying, and every node ends with the same store.
func TestStreamLeaderDown(t *testing.T) {
	c := startCluster(t, 3)
	ctx := context.Background()
	var stores []*replicated.Store
	for i := range 3 {
		stores = append(stores, c.open(t, i, "LEADER", t.TempDir()))
	}
	nc, err := nats.Connect("nats://"+c.cfgs[0].Listen, nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for round := range 2 {
		waitApplied(t, stores...)
		leader := streamLeader(t, c)
		c.stop(leader)
		for i, s := range stores {
			if i == leader {
				continue
			}
			done := make(chan error, 1)
			go func() { done <- runTree(ctx, s, fmt.Sprintf("E_r%d_n%d", round, i)) }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("round %d, node %d with the stream's leader (server %d) down: %v", round, i, leader, err)
				}
			case <-time.After(2 * time.Minute):
				t.Fatalf("round %d, node %d with the stream's leader (server %d) down: a commit never answered", round, i, leader)
			}
		}
		c.start(leader)
	}
	waitApplied(t, stores...)
	want := snapshotOf(t, stores[0])
	for i, s := range stores {
		sameSnapshots(t, want, snapshotOf(t, s), fmt.Sprintf("node %d", i))
	}
}

// streamLeader returns the index of the server that leads stream LEADER.
func streamLeader(t *testing.T, c *cluster) int {
	t.Helper()
	for range 100 {
		for i, cfg := range c.cfgs {
			if c.nodes[i] == nil {
				continue
			}
			nc, err := nats.Connect("nats://" + cfg.Listen)
			if err != nil {
				continue
			}
			js, _ := jetstream.New(nc)
			actx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			st, err := js.Stream(actx, "LEADER")
			cancel()
			nc.Close()
			if err != nil {
				continue
			}
			if l := st.CachedInfo().Cluster; l != nil {
				for j, cfg := range c.cfgs {
					if cfg.Name == l.Leader {
						return j
					}
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("no leader of stream LEADER")
	return -1
}
