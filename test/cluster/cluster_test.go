//go:build cluster

// Package cluster_test drives clusters of real `obelisk server run` processes on
// loopback (issue 14). It takes minutes, so it runs apart from `make test`:
// `make test-cluster` (the build tag "cluster").
package cluster_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/test/harness"
)

func TestMain(m *testing.M) { harness.Main(m) }

// nodeConfigs writes the contract's examples/cluster/node{1,2,3}.toml for this test:
// the components are the built ones, and every address the files fix (the embedded
// JetStream's client and route ports, the webhook server) is a free one; the harness
// sets the data dir, the API's address and turns the web UI off.
func nodeConfigs(t testing.TB) []string {
	t.Helper()
	addrs := harness.FreeAddrs(t, 9)
	var fixed []string
	for n := 1; n <= 3; n++ {
		fixed = append(fixed, fmt.Sprintf("127.0.0.1:422%d", n), fmt.Sprintf("127.0.0.1:624%d", n), fmt.Sprintf("127.0.0.1:909%d", n))
	}
	pairs := []string{"../../build/components/", harness.ComponentsDir() + "/"}
	for i, f := range fixed {
		pairs = append(pairs, `"`+f+`"`, `"`+addrs[i]+`"`)
	}
	r := strings.NewReplacer(pairs...)
	dir := t.TempDir()
	var paths []string
	for n := 1; n <= 3; n++ {
		b, err := os.ReadFile(filepath.Join("..", "..", "examples", "cluster", fmt.Sprintf("node%d.toml", n)))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, fmt.Sprintf("node%d.toml", n))
		if err := os.WriteFile(p, []byte(r.Replace(string(b))), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

// TestThreeNodes: three nodes from the contract's files. Workflows submitted on every
// node finish and are readable, with the same result, on every node. Then one node is
// SIGKILLed right after it took work (workflows with a durable sleep and fiboa, locked
// by it on submission): the survivors finish every one of them, once.
func TestThreeNodes(t *testing.T) {
	nodes := harness.StartConfigs(t, nodeConfigs(t)...)

	var ids []string
	for i := range 12 {
		ids = append(ids, nodes[i%3].Submit("testing:fibo-workflow/workflow.fiboa", "[10, 3]"))
	}
	for i, id := range ids {
		for _, n := range []int{(i + 1) % 3, (i + 2) % 3} { // never the node it was submitted on
			harness.JSONEq(t, nodes[n].Result(id, 2*time.Minute), `{"ok":165}`)
		}
	}

	// Work the node about to die holds: it locks what is submitted to it (eager dispatch).
	victim, survivors := nodes[2], nodes[:2]
	type sub struct{ id, want, ffqn string }
	var subs []sub
	for range 5 {
		subs = append(subs, sub{victim.Submit("testing:sleep-workflow/workflow.sleep-durable", "[1500]"), `{"ok":null}`, "sleep-durable"})
		subs = append(subs, sub{victim.Submit("testing:sleep-workflow/workflow.sleep-then-call", "[500, 10]"), `{"ok":55}`, "sleep-then-call"})
		subs = append(subs, sub{victim.Submit("testing:fibo-workflow/workflow.fiboa", "[10, 3]"), `{"ok":165}`, "fiboa"})
	}
	victim.Kill()
	killed := time.Now()
	var wg sync.WaitGroup
	for i, s := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := survivors[i%2]
			if got := n.Result(s.id, 2*time.Minute); !jsonSame(got, s.want) {
				t.Errorf("%s on a survivor: %s, want %s", s.id, got, s.want)
			}
		}()
	}
	wg.Wait()
	t.Logf("the killed node's %d executions finished on the survivors %v after the kill", len(subs), time.Since(killed).Round(time.Millisecond))
	// Each finished once, and requested its children once (as many as a run that no
	// kill disturbed): histories the survivors agree on.
	requests := map[string]int{"fiboa": harness.CountKind(survivors[0].Events(ids[0]), "history.join_set_request")}
	for _, s := range subs {
		evs := survivors[0].Events(s.id)
		if f := harness.CountKind(evs, "finished"); f != 1 {
			t.Errorf("%s: %d finished events", s.id, f)
		}
		c := harness.CountKind(evs, "history.join_set_request")
		if want, ok := requests[s.ffqn]; !ok {
			requests[s.ffqn] = c
		} else if c != want {
			t.Errorf("%s (%s): %d children requested, another run %d", s.id, s.ffqn, c, want)
		}
		if a, b := len(evs), len(survivors[1].Events(s.id)); a != b {
			t.Errorf("%s: %d events on one survivor, %d on the other", s.id, a, b)
		}
	}
}

func jsonSame(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}
