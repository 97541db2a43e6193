package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
	"github.com/obelisk-go/obelisk/test/harness"
)

// digestOf returns the hex SHA-256 of a file: the digest in a component's ID and the
// name of its file in <data_dir>/components.
func digestOf(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// childParams returns the parameters of the children a workflow requested, in order.
func childParams(t *testing.T, s *harness.Server, id string) []string {
	t.Helper()
	var out []string
	for _, ev := range s.Events(id) {
		var d struct {
			Child  string          `json:"child_execution_id"`
			Params json.RawMessage `json:"params"`
		}
		if json.Unmarshal([]byte(ev.DetailsJson), &d) == nil && d.Child != "" {
			out = append(out, string(d.Params))
		}
	}
	return out
}

// lockedComponents returns, from the store of a stopped server, the component IDs in
// the Locked events of each execution.
func lockedComponents(t *testing.T, dataDir string, ids []string) map[string][]string {
	t.Helper()
	store, err := events.Open(filepath.Join(dataDir, "store"), events.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	out := map[string][]string{}
	for _, id := range ids {
		evs, err := store.Events(context.Background(), id, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			if l := ev.GetLocked(); l != nil {
				out[id] = append(out[id], l.ComponentId)
			}
		}
	}
	return out
}

// TestVersionsPinnedExecutions: 100 executions of fibo-workflow (v1) are under way when
// the server is SIGKILLed and restarted with fibo-workflow-v2 deployed under the same
// name, whose fiboa makes one more call first (fibo(1)). Every old execution finishes
// on v1's code, with v1's result and v1's calls only (on v2 its history would be
// nondeterministic), run by v1's component ID; new executions run v2. Once no
// unfinished execution needs v1, its file is dropped from <data_dir>/components, and
// a restart does not bring it back.
func TestVersionsPinnedExecutions(t *testing.T) {
	v1File := filepath.Join(harness.ComponentsDir(), "fibo-workflow.wasm")
	v2File := filepath.Join(harness.ComponentsDir(), "fibo-workflow-v2.wasm")
	v1ID := "workflow:fibo_workflow:sha256:" + digestOf(t, v1File)
	v2ID := "workflow:fibo_workflow:sha256:" + digestOf(t, v2File)
	s := harness.Start(t, harness.Options{})
	ctx := context.Background()
	const n, iterations = 100, 20
	var old []string
	for range n {
		id := s.Submit("testing:fibo-workflow/workflow.fiboa", fmt.Sprintf("[10, %d]", iterations))
		// Paused at once (20 sequential calls take far longer than this): it stays
		// unfinished, whatever it recorded so far, until unpaused after the restart.
		if _, err := s.Exec.Pause(ctx, connect.NewRequest(&pb.PauseRequest{ExecutionId: id})); err != nil {
			t.Fatalf("pause %s: %v", id, err)
		}
		old = append(old, id)
	}
	started := 0
	for _, id := range old {
		if len(childParams(t, s, id)) > 0 {
			started++
		}
	}
	t.Logf("%d of %d v1 executions had called fibo before the kill", started, n)
	s.Kill()
	if !fileExists(t, filepath.Join(s.DataDir(), "components", "sha256-"+digestOf(t, v1File)+".wasm")) {
		t.Fatal("v1's file is not in <data_dir>/components after it was deployed")
	}

	s.Reconfigure(harness.Options{Locations: map[string]string{"fibo_workflow": fmt.Sprintf("location.path = %q", v2File)}})
	s.Start()
	out, _, code := s.CLI("component", "list")
	if code != 0 || !strings.Contains(out, v1ID+" (retired") || !strings.Contains(out, v2ID+"\n") {
		t.Fatalf("component list (exit %d) should show v2 deployed and v1 retired:\n%s", code, out)
	}
	var fresh []string
	for range 5 {
		fresh = append(fresh, s.Submit("testing:fibo-workflow/workflow.fiboa", "[10, 3]"))
	}
	for _, id := range old {
		if _, err := s.Exec.Unpause(ctx, connect.NewRequest(&pb.UnpauseRequest{ExecutionId: id})); err != nil {
			t.Fatalf("unpause %s: %v", id, err)
		}
	}
	for _, id := range fresh {
		harness.JSONEq(t, s.Result(id, 3*time.Minute), `{"ok":166}`) // 1 + 3*55: v2
		if p := childParams(t, s, id); len(p) != 4 || p[0] != "[1]" {
			t.Fatalf("new execution %s on v2: children %q, want [1] then [10] three times", id, p)
		}
	}
	for _, id := range old {
		harness.JSONEq(t, s.Result(id, 5*time.Minute), fmt.Sprintf(`{"ok":%d}`, 55*iterations)) // v1's result
		p := childParams(t, s, id)
		if len(p) != iterations {
			t.Fatalf("old execution %s: %d children, want %d", id, len(p), iterations)
		}
		for _, params := range p {
			if params != "[10]" {
				t.Fatalf("old execution %s called fibo(%s): v2's code ran it", id, params)
			}
		}
	}
	// Its last execution finished: v1 is dropped now, record and file.
	v1Path := filepath.Join(s.DataDir(), "components", "sha256-"+digestOf(t, v1File)+".wasm")
	for deadline := time.Now().Add(time.Minute); fileExists(t, v1Path); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("v1's file is still in <data_dir>/components a minute after its last execution finished")
		}
	}
	if out, _, _ := s.CLI("component", "list"); strings.Contains(out, "retired") {
		t.Fatalf("component list still shows the dropped v1:\n%s", out)
	}
	s.Stop()
	locks := lockedComponents(t, s.DataDir(), append(append([]string(nil), old...), fresh...))
	for _, id := range old {
		for _, c := range locks[id] {
			if c != v1ID {
				t.Fatalf("old execution %s was locked for %s, want v1 %s", id, c, v1ID)
			}
		}
	}
	for _, id := range fresh {
		if len(locks[id]) == 0 || locks[id][0] != v2ID {
			t.Fatalf("new execution %s was locked for %q, want v2 %s", id, locks[id], v2ID)
		}
	}

	// Nothing unfinished needs v1: a restart does not bring it back.
	s.Start()
	if fileExists(t, v1Path) {
		t.Fatal("v1's file is in <data_dir>/components again after a restart with no execution left on it")
	}
	if !fileExists(t, filepath.Join(s.DataDir(), "components", "sha256-"+digestOf(t, v2File)+".wasm")) {
		t.Fatal("v2's file, deployed, is not in <data_dir>/components")
	}
	if out, _, _ := s.CLI("component", "list"); strings.Contains(out, "retired") {
		t.Fatalf("component list still shows a retired version:\n%s", out)
	}
}

func fileExists(t *testing.T, p string) bool {
	t.Helper()
	_, err := os.Stat(p)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return err == nil
}

// fibo2 deploys the fibo activity's file a second time, as "fibo2" (declared after
// "fibo": the newest).
func fibo2() string {
	return fmt.Sprintf("[[activity_wasm]]\nname = \"fibo2\"\nlocation.path = %q\n", filepath.Join(harness.ComponentsDir(), "fibo.wasm"))
}

// fiboOtherFile writes a copy of fibo.wasm with one more custom section: the same code
// and WIT in another file (another digest), as a rebuilt fibo would be.
func fiboOtherFile(t *testing.T, dir string) string {
	wasm, err := os.ReadFile(filepath.Join(harness.ComponentsDir(), "fibo.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	name := "obelisk-test-copy"
	section := append(append([]byte{byte(len(name))}, name...), 1) // a custom section: id 0, size, name, payload
	wasm = append(append(wasm, 0, byte(len(section))), section...)
	path := filepath.Join(dir, "fibo-copy.wasm")
	if err := os.WriteFile(path, wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestVersionsTwoExportersNeedRequires: with two components made from different files
// exporting testing:fibo/fibo, a workflow that imports it with requires "auto" (the
// default) does not start, and the message names both candidates. The same file under
// two names does start (TestVersionsRequiresAndComponentOption and the routing unit
// tests): the same code runs whichever is called.
func TestVersionsTwoExportersNeedRequires(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	wasm := func(name string) string { return filepath.Join(harness.ComponentsDir(), name+".wasm") }
	code, stderr := runServerExpectingFailure(t, fmt.Sprintf(`data_dir = %q
[api]
listening_addr = %q
[webui]
listening_addr = "off"
[[activity_wasm]]
name = "fibo"
location.path = %q
%s
[[workflow]]
name = "fibo_workflow"
location.path = %q
`, filepath.Join(dir, "data"), harness.FreeAddr(t), wasm("fibo"),
		fmt.Sprintf("[[activity_wasm]]\nname = \"fibo2\"\nlocation.path = %q\n", fiboOtherFile(t, dir)), wasm("fibo-workflow")))
	want := `component "fibo_workflow" imports testing:fibo/fibo.fibo, which components "fibo" and "fibo2" all export`
	if code == 0 || !strings.Contains(stderr, want) || !strings.Contains(stderr, "requires") {
		t.Fatalf("exit %d; start failed without naming both candidates (want %q):\n%s", code, want, stderr)
	}
}

// TestVersionsRequiresAndComponentOption: the same file deployed under two names starts
// and serves (the Contract case); a workflow with requires = ["fibo2"] calls fibo2 (its
// child's component ID says so); a submission goes to the component it names
// (--component, by name or ID), else to the newest exporter (declared last); an unknown
// component, or one that does not export the function, is a clear error.
func TestVersionsRequiresAndComponentOption(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{
		Deployment: fibo2(),
		ExtraTOML: map[string]string{
			"fibo_workflow":  `requires = ["fibo2"]`,
			"sleep_workflow": `requires = ["sleep", "fibo"]`,
		},
	})
	digest := digestOf(t, filepath.Join(harness.ComponentsDir(), "fibo.wasm"))
	fiboID, fibo2ID := "activity_wasm:fibo:sha256:"+digest, "activity_wasm:fibo2:sha256:"+digest

	wf := s.Submit("testing:fibo-workflow/workflow.fiboa", "[10, 1]")
	harness.JSONEq(t, s.Result(wf, 2*time.Minute), `{"ok":55}`)
	child := events.ChildExecutionID(wf, events.OneOffJoinSetID(1, "fibo"), 1)
	if st, err := s.State(child); err != nil || st.ComponentId != fibo2ID {
		t.Fatalf("the child of a workflow requiring fibo2 ran on %v (%v), want %s", st.GetComponentId(), err, fibo2ID)
	}

	for _, c := range []struct{ flag, want string }{{"fibo", fiboID}, {"fibo2", fibo2ID}, {fiboID, fiboID}, {"", fibo2ID}} {
		args := []string{"execution", "submit", "--json", "--follow", "testing:fibo/fibo.fibo", "[10]"}
		if c.flag != "" {
			args = append(args, "--component", c.flag)
		}
		out, errOut, code := s.CLI(args...)
		var doc struct {
			ID     string          `json:"execution_id"`
			Result json.RawMessage `json:"result"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &doc) != nil {
			t.Fatalf("submit --component %q: exit %d\n%s%s", c.flag, code, out, errOut)
		}
		harness.JSONEq(t, string(doc.Result), `{"ok":55}`)
		if st, err := s.State(doc.ID); err != nil || st.ComponentId != c.want {
			t.Fatalf("submit --component %q ran on %v (%v), want %s", c.flag, st.GetComponentId(), err, c.want)
		}
	}

	_, errOut, code := s.CLI("execution", "submit", "testing:fibo/fibo.fibo", "[10]", "--component", "nosuch")
	if code != 2 || !strings.Contains(errOut, `component "nosuch" not found`) || !strings.Contains(errOut, "fibo2") {
		t.Fatalf("--component nosuch: exit %d, %q; want 2 and a message naming it and the deployed components", code, errOut)
	}
	_, errOut, code = s.CLI("execution", "submit", "testing:fibo/fibo.fibo", "[10]", "--component", "fibo_workflow")
	if code != 2 || !strings.Contains(errOut, `component "fibo_workflow" does not export "testing:fibo/fibo.fibo"`) {
		t.Fatalf("--component of a component not exporting the function: exit %d, %q", code, errOut)
	}
	_, err := s.Exec.Submit(context.Background(), connect.NewRequest(&pb.SubmitRequest{Ffqn: "testing:fibo/fibo.fibo", ParamsJson: "[1]", Component: "nosuch"}))
	if connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("API submit to an unknown component: %v, want not_found", err)
	}
}

// TestVersionsSameFileTwiceAuto: the same file deployed under two names starts with every
// importer on requires "auto" (the Contract, on the default deployment: its workflows
// import testing:fibo): the same code runs whichever is called, so a workflow's child goes
// to the one declared last, and both names serve submissions.
func TestVersionsSameFileTwiceAuto(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{Deployment: fibo2()})
	digest := digestOf(t, filepath.Join(harness.ComponentsDir(), "fibo.wasm"))
	wf := s.Submit("testing:fibo-workflow/workflow.fiboa", "[10, 1]")
	harness.JSONEq(t, s.Result(wf, 2*time.Minute), `{"ok":55}`)
	child := events.ChildExecutionID(wf, events.OneOffJoinSetID(1, "fibo"), 1)
	if st, err := s.State(child); err != nil || st.ComponentId != "activity_wasm:fibo2:sha256:"+digest {
		t.Fatalf("the child ran on %v (%v), want fibo2, declared last", st.GetComponentId(), err)
	}
	for _, name := range []string{"fibo", "fibo2"} {
		out, errOut, code := s.CLI("execution", "submit", "--json", "--follow", "--component", name, "testing:fibo/fibo.fibo", "[10]")
		var doc struct {
			Result json.RawMessage `json:"result"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &doc) != nil {
			t.Fatalf("submit to %s: exit %d\n%s\n%s", name, code, out, errOut)
		}
		harness.JSONEq(t, string(doc.Result), `{"ok":55}`)
	}
}
