//go:build cluster

package cluster_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/test/harness"
)

// statusDoc is the part of `obelisk client cluster status --json` the test reads.
type statusDoc struct {
	SingleNode bool   `json:"single_node"`
	Cluster    string `json:"cluster"`
	Self       string `json:"self"`
	LogEnd     uint64 `json:"log_end"`
	LogLeader  string `json:"log_leader"`
	Members    []struct {
		Name       string   `json:"name"`
		Self       bool     `json:"self"`
		Healthy    bool     `json:"healthy"`
		Problem    string   `json:"problem"`
		APIURL     string   `json:"api_url"`
		LastSeen   string   `json:"last_seen"`
		Applied    uint64   `json:"applied"`
		LogReplica bool     `json:"log_replica"`
		LogLeader  bool     `json:"log_leader"`
		Locked     uint32   `json:"locked"`
		LockedIDs  []string `json:"locked_ids"`
	} `json:"members"`
}

// waitStatus polls node n's `cluster status --json` until ok accepts it. A node may
// not answer while a Raft leader is elected (exit status 2): it is asked again.
func waitStatus(t *testing.T, n *harness.Server, what string, ok func(statusDoc, int) bool) statusDoc {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		out, errOut, code := n.CLI("cluster", "status", "--json")
		var doc statusDoc
		err := json.Unmarshal([]byte(out), &doc)
		if err == nil && ok(doc, code) {
			return doc
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: cluster status of %s never did: exit %d, %v\n%s%s", what, n.URL, code, err, out, errOut)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func allHealthy(doc statusDoc, code int) bool {
	if code != 0 || len(doc.Members) != 3 {
		return false
	}
	for _, m := range doc.Members {
		if !m.Healthy {
			return false
		}
	}
	return true
}

// checkStatus: `obelisk client cluster status` on every node of a three-node cluster
// lists the three, healthy, with their API addresses and log replicas, in a stable table
// and in JSON; it shows the executions a node's executors hold locks on; and a status
// read on one node finds an execution submitted to another a moment ago (part of
// TestThreeNodes, which starts the cluster once for all its checks).
func checkStatus(t *testing.T, nodes []*harness.Server) {
	for i, n := range nodes {
		name := fmt.Sprintf("node%d", i+1)
		doc := waitStatus(t, n, "three healthy members", allHealthy)
		if doc.SingleNode || doc.Cluster != "obelisk" || doc.Self != name {
			t.Errorf("%s: cluster %q self %q single %v, want obelisk, %s", name, doc.Cluster, doc.Self, doc.SingleNode, name)
		}
		leaders := 0
		for j, m := range doc.Members {
			if want := fmt.Sprintf("node%d", j+1); m.Name != want {
				t.Errorf("%s: member %d is %q, want %q", name, j, m.Name, want)
			}
			if m.Self != (m.Name == name) {
				t.Errorf("%s: member %s self=%v", name, m.Name, m.Self)
			}
			if m.APIURL != nodes[j].URL {
				t.Errorf("%s: member %s api_url %q, want %q", name, m.Name, m.APIURL, nodes[j].URL)
			}
			if !m.LogReplica || m.LastSeen == "" {
				t.Errorf("%s: member %s: log_replica %v, last_seen %q", name, m.Name, m.LogReplica, m.LastSeen)
			}
			if m.LogLeader {
				leaders++
				if m.Name != doc.LogLeader {
					t.Errorf("%s: member %s is the leader, log_leader %q", name, m.Name, doc.LogLeader)
				}
			}
		}
		if leaders != 1 {
			t.Errorf("%s: %d members lead the log, want 1", name, leaders)
		}

		// The table: a header line, the column names, a row per member.
		out, errOut, code := n.CLI("cluster", "status")
		if code != 0 {
			t.Fatalf("%s: cluster status: exit %d: %s%s", name, code, out, errOut)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 5 || !strings.HasPrefix(lines[0], "cluster obelisk: 3 members") {
			t.Fatalf("%s: cluster status:\n%s", name, out)
		}
		if got := strings.Fields(lines[1]); !slices.Equal(got, []string{"NODE", "HEALTH", "LAST_SEEN", "APPLIED", "BEHIND", "REPLICA", "LOCKED", "API", "PROBLEM"}) {
			t.Errorf("%s: columns %v", name, got)
		}
		for j, l := range lines[2:] {
			f := strings.Fields(l)
			want := fmt.Sprintf("node%d", j+1)
			if want == name {
				want += "*"
			}
			if len(f) != 9 || f[0] != want || f[1] != "healthy" || f[7] != nodes[j].URL || f[8] != "-" {
				t.Errorf("%s: row %d %q", name, j, l)
			}
		}
	}

	// Read your writes: a status asked of node 2 right after a submission to node 1.
	var took []time.Duration
	for i := range 20 {
		id := nodes[0].Submit("testing:fibo-workflow/workflow.fiboa", "[10, 1]")
		start := time.Now()
		if _, err := nodes[1].State(id); err != nil {
			t.Fatalf("submission %d: GetStatus on node2 right after the submission to node1: %v", i, err)
		}
		took = append(took, time.Since(start))
		if i%5 == 0 {
			if out, errOut, code := nodes[2].CLI("execution", "get", id, "--json"); code != 0 || !strings.Contains(out, id) {
				t.Fatalf("submission %d: execution get on node3: exit %d: %s%s", i, code, out, errOut)
			}
		}
	}

	slices.Sort(took)
	t.Logf("GetStatus on node2 right after a submission to node1: median %v, max %v (20 calls)", took[len(took)/2], took[len(took)-1])

	// What a node runs: a running activity is listed under the node that holds its lock,
	// the same on every node. (Which node that is may change: the attempt outlives its
	// lock_expiry, 10s, and is retried wherever a node takes it.)
	long := nodes[0].Submit("testing:sleep/sleep.sleep", "[20000]")
	deadline := time.Now().Add(time.Minute)
	for {
		holders := map[string]bool{}
		for _, n := range nodes {
			out, _, _ := n.CLI("cluster", "status", "--json")
			var doc statusDoc
			holder := ""
			if json.Unmarshal([]byte(out), &doc) == nil {
				for _, m := range doc.Members {
					if m.Locked >= 1 && slices.Contains(m.LockedIDs, long) {
						holder = m.Name
					}
				}
			}
			holders[holder] = true
		}
		if len(holders) == 1 && !holders[""] {
			t.Logf("every node lists the lock on %s under %v", long, holders)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the nodes never agreed on who holds the lock on %s: last %v", long, holders)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// checkKilledUnhealthy: node3, killed, is listed as unhealthy by node1 (exit status 1),
// the two others healthy.
func checkKilledUnhealthy(t *testing.T, nodes []*harness.Server) {
	doc := waitStatus(t, nodes[0], "node3 unhealthy after its kill", func(doc statusDoc, code int) bool {
		if code != 1 || len(doc.Members) != 3 {
			return false
		}
		return !doc.Members[2].Healthy && doc.Members[0].Healthy && doc.Members[1].Healthy
	})
	if doc.Members[2].Problem == "" {
		t.Errorf("node3 unhealthy without a problem: %+v", doc.Members[2])
	}
	t.Logf("node3 after its kill: %s", doc.Members[2].Problem)
}
