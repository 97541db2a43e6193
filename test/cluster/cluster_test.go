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

// startNodes starts the three nodes of nodeConfigs. Their modules are compiled first, by
// one single node on node 1's components: nodes started together would each compile
// every module at once, on the same cores, which can take minutes on a busy machine.
func startNodes(t testing.TB) []*harness.Server {
	t.Helper()
	paths := nodeConfigs(t)
	b, err := os.ReadFile(paths[0])
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	start := strings.Index(text, "[cluster]")
	n := strings.Index(text[max(start, 0):], "\n[[")
	if start < 0 || n < 0 {
		t.Fatalf("%s: no [cluster] section followed by components", paths[0])
	}
	end := start + n
	single := filepath.Join(t.TempDir(), "single.toml")
	if err := os.WriteFile(single, []byte(text[:start]+text[end+1:]), 0o644); err != nil {
		t.Fatal(err)
	}
	harness.StartConfigs(t, single)[0].Stop()
	return harness.StartConfigs(t, paths...)
}

// TestThreeNodes: three nodes from the contract's files.
//  1. Workflows submitted on every node finish and are readable, with the same result,
//     on every node; `client cluster status` lists the three (checkStatus).
//  2. One node is SIGKILLed right after it took work (workflows with a durable sleep
//     and fiboa, locked by it on submission): the status lists it as unhealthy; the
//     survivors finish every one, once.
//  3. The killed node restarts and rejoins: it serves what finished while it was down.
//  4. 500 workflows (fiboa, fan-outs, durable sleeps, a cancelled tree) submitted
//     across the three; a different node is SIGKILLed mid-run; the two others finish
//     every one, once, with the right result.
//
// Each node's store is verified when it stops (refolds, hash chains, replays).
func TestThreeNodes(t *testing.T) {
	nodes := startNodes(t)

	var ids []string
	for i := range 12 {
		ids = append(ids, nodes[i%3].Submit("testing:fibo-workflow/workflow.fiboa", "[10, 3]"))
	}
	for i, id := range ids {
		for _, n := range []int{(i + 1) % 3, (i + 2) % 3} { // never the node it was submitted on
			harness.JSONEq(t, nodes[n].Result(id, 2*time.Minute), `{"ok":165}`)
		}
	}
	checkStatus(t, nodes)
	// How many children a run that no kill disturbed requests, by function.
	requests := map[string]int{"fiboa": harness.CountKind(nodes[0].Events(ids[0]), "history.join_set_request")}

	// 2. Work the node about to die holds: it locks what is submitted to it (eager
	// dispatch).
	victim := nodes[2]
	var subs []sub
	for range 5 {
		subs = append(subs, sub{victim.Submit(sleepDurable, "[1500]"), `{"ok":null}`, sleepDurable})
		subs = append(subs, sub{victim.Submit(sleepThenCall, "[500, 10]"), `{"ok":55}`, sleepThenCall})
		subs = append(subs, sub{victim.Submit(fiboa, "[10, 3]"), `{"ok":165}`, fiboa})
	}
	victim.Kill()
	killed := time.Now()
	checkKilledUnhealthy(t, nodes)
	finishOnce(t, "the first kill", killed, nodes[:2], subs, requests)

	// 3. The killed node rejoins and serves what finished while it was down.
	victim.Start()
	for _, s := range subs {
		if got := victim.Result(s.id, 2*time.Minute); !jsonSame(got, s.want) {
			t.Errorf("%s on the node that rejoined: %s, want %s", s.id, got, s.want)
		}
	}

	// 4. A load across the three, and a different node killed mid-run.
	var load []sub
	for i := range 500 {
		n := nodes[i%3]
		switch {
		case i%10 < 6:
			load = append(load, sub{n.Submit(fiboa, "[10, 3]"), `{"ok":165}`, fiboa})
		case i%10 < 8:
			// Long enough to be parked, on every node, when the kill comes.
			load = append(load, sub{n.Submit(sleepDurable, "[5000]"), `{"ok":null}`, sleepDurable})
		case i%10 < 9:
			load = append(load, sub{n.Submit(sleepThenCall, "[4000, 10]"), `{"ok":55}`, sleepThenCall})
		case i == 9:
			// A tree whose leaves sleep for ten minutes, cancelled below.
			load = append(load, sub{n.Submit(spawn, "[2, 3, 600000]"), `{"execution_failure":{"kind":"cancelled","reason":"cancelled"}}`, ""})
		default:
			load = append(load, sub{n.Submit(spawn, "[1, 3, 10]"), `{"ok":3}`, spawn})
		}
	}
	nodes[0].Kill()
	killed = time.Now()
	survivors := nodes[1:]
	if out, errOut, code := survivors[0].CLI("execution", "cancel", load[9].id); code != 0 {
		t.Errorf("cancel the tree %s on a survivor: exit %d, %q %q", load[9].id, code, out, errOut)
	}
	finishOnce(t, "the second kill", killed, survivors, load, requests)
}

// Functions of the test's workloads.
const (
	fiboa         = "testing:fibo-workflow/workflow.fiboa"
	sleepDurable  = "testing:sleep-workflow/workflow.sleep-durable"
	sleepThenCall = "testing:sleep-workflow/workflow.sleep-then-call"
	spawn         = "testing:tree/tree.spawn"
)

// sub is a submitted execution and the result it must end with; ffqn (empty: not
// checked) names the function whose runs must all request as many children.
type sub struct{ id, want, ffqn string }

// finishOnce checks that every execution of subs finishes with its result on every
// survivor, once, having requested its children once (as
// many as another run of its function), with the same history on every survivor.
func finishOnce(t *testing.T, what string, killed time.Time, survivors []*harness.Server, subs []sub, requests map[string]int) {
	t.Helper()
	deadline := time.Now().Add(4 * time.Minute) // all of them: a stuck cluster fails in minutes
	work := make(chan int)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				s := subs[i]
				for k := range survivors { // each in turn first
					n := survivors[(i+k)%len(survivors)]
					if got, err := n.WaitResult(s.id, max(time.Until(deadline), time.Second)); err != nil {
						t.Errorf("%s: %v", what, err)
					} else if !jsonSame(got, s.want) {
						t.Errorf("%s: %s on a survivor: %s, want %s", what, s.id, got, s.want)
					}
				}
			}
		}()
	}
	for i := range subs {
		work <- i
	}
	close(work)
	wg.Wait()
	t.Logf("%s: %d executions finished on the survivors %v after it", what, len(subs), time.Since(killed).Round(time.Millisecond))
	for _, s := range subs {
		evs := survivors[0].Events(s.id)
		if f := harness.CountKind(evs, "finished"); f != 1 {
			t.Errorf("%s: %s: %d finished events", what, s.id, f)
		}
		if s.ffqn != "" {
			c := harness.CountKind(evs, "history.join_set_request")
			if want, ok := requests[s.ffqn]; !ok {
				requests[s.ffqn] = c
			} else if c != want {
				t.Errorf("%s: %s (%s): %d children requested, another run %d", what, s.id, s.ffqn, c, want)
			}
		}
		for _, other := range survivors[1:] {
			if a, b := len(evs), len(other.Events(s.id)); a != b {
				t.Errorf("%s: %s: %d events on one survivor, %d on another", what, s.id, a, b)
			}
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
