package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
	"github.com/obelisk-go/obelisk/test/harness"
)

// runVerify runs `obelisk server verify` with args and returns its output and exit code.
func runVerify(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runObelisk(t, append([]string{"server", "verify"}, args...)...)
}

// runObelisk runs the obelisk binary with args and returns its output and exit code.
func runObelisk(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(harness.Binary(), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("run obelisk %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

var verifiedLine = regexp.MustCompile(`(?m)^verified (\d+) executions: (\d+) mismatches$`)

// verified parses the summary line of server verify's output.
func verified(t *testing.T, out string) (executions, mismatches int) {
	t.Helper()
	m := verifiedLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no summary line in the output of server verify:\n%s", out)
	}
	executions, _ = strconv.Atoi(m[1])
	mismatches, _ = strconv.Atoi(m[2])
	return executions, mismatches
}

// storeFiles maps every file of a data directory to its contents, but for the
// compilation cache (wasm-cache), which a verify fills as a server does.
func storeFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Name() == "wasm-cache" {
			return filepath.SkipDir
		}
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		files[path] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestServerVerify: `obelisk server verify` refuses the store of a running server; on
// the stopped server's store it checks every execution, writes nothing, and passes;
// after one execution's stored state is damaged, it fails naming that execution.
func TestServerVerify(t *testing.T) {
	t.Parallel()
	var storeDir string
	s := harness.Start(t, harness.Options{Prepare: func(dir string) { storeDir = dir }})
	config := configOf(storeDir)
	var ids []string
	for range 3 {
		ids = append(ids, s.Submit("testing:fibo-workflow/workflow.fiboa", "[10, 2]"))
	}
	for _, id := range ids {
		harness.JSONEq(t, s.Result(id, 2*time.Minute), `{"ok":110}`)
	}
	list, err := s.Exec.ListExecutions(context.Background(), connect.NewRequest(&pb.ListExecutionsRequest{Limit: 1000}))
	if err != nil {
		t.Fatal(err)
	}
	stored := len(list.Msg.Executions) // the workflows and their children

	// The running server verifies its own store, online.
	out, errOut, code := s.CLI("verify")
	if n, m := verified(t, out); code != 0 || n != stored || m != 0 {
		t.Fatalf("client verify: exit %d, %d executions (the API listed %d), %d mismatches\n%s%s", code, n, stored, m, out, errOut)
	}
	out, errOut, code = s.CLI("verify", "--json")
	var online struct {
		Executions      int  `json:"executions"`
		EventsLinked    int  `json:"events_linked"`
		ResponsesLinked int  `json:"responses_linked"`
		EventsUnchained int  `json:"events_unchained"`
		Workflows       int  `json:"workflows"`
		FailureCount    int  `json:"failure_count"`
		ReplayAvailable bool `json:"replay_available"`
		Replayed        int  `json:"workflows_replayed"`
	}
	if err := json.Unmarshal([]byte(out), &online); err != nil || code != 0 {
		t.Fatalf("client verify --json: exit %d, %v\n%s%s", code, err, out, errOut)
	}
	// Every fiboa workflow runs its children one after the other: each one's result is
	// a response.
	if online.Executions != stored || online.Workflows != len(ids) || online.EventsLinked < 5*stored ||
		online.ResponsesLinked < stored-len(ids) || online.EventsUnchained != 0 || online.FailureCount != 0 ||
		!online.ReplayAvailable || online.Replayed != len(ids) {
		t.Errorf("client verify --json: %s", out)
	}

	_, errOut, code = runVerify(t, "--config", config)
	if code != 1 || !strings.Contains(errOut, "stop the server") {
		t.Fatalf("verify of a running server's store: exit %d, %q", code, errOut)
	}

	s.Stop()
	// Nothing of the data directory changes: the store, the component versions and
	// their record.
	before := storeFiles(t, s.DataDir())
	out, errOut, code = runObelisk(t, "verify", "--config", config)
	if code != 0 {
		t.Fatalf("verify of a sound store: exit %d\n%s%s", code, out, errOut)
	}
	if n, m := verified(t, out); n != stored || n <= len(ids) || m != 0 {
		t.Fatalf("verify of a sound store: %d executions (the API listed %d), %d mismatches", n, stored, m)
	}
	// Offline, every workflow execution is replayed too, against the version it is
	// pinned to, with or without a config.
	if want := fmt.Sprintf("%d of %d workflow executions replayed", len(ids), len(ids)); !strings.Contains(out, want) {
		t.Errorf("verify of a sound store does not say %q:\n%s", want, out)
	}
	out, errOut, code = runVerify(t, "--data-dir", s.DataDir(), "--json")
	var offline verifyReplayDoc
	if err := json.Unmarshal([]byte(out), &offline); err != nil || code != 0 {
		t.Fatalf("server verify --json of a sound store: exit %d, %v\n%s%s", code, err, out, errOut)
	}
	if !offline.ReplayAvailable || offline.Workflows != len(ids) || offline.Replayed != len(ids) || offline.Mismatches != 0 {
		t.Errorf("server verify --json of a sound store: %s", out)
	}
	after := storeFiles(t, s.DataDir())
	for name, b := range before {
		if after[name] != b {
			t.Errorf("verify changed or removed %s", name)
		}
	}
	for name := range after {
		if _, ok := before[name]; !ok {
			t.Errorf("verify created %s", name)
		}
	}

	// The file of the workflows' component version is gone (deleted by hand, or the
	// data directory copied without it): each of them fails its replay, naming the
	// file, and the rest is still checked.
	digest := workflowDigest(t, s.DataDir(), "fibo_workflow")
	file := filepath.Join(s.DataDir(), "components", "sha256-"+digest+".wasm")
	if err := os.Rename(file, file+".away"); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = runVerify(t, "--data-dir", s.DataDir(), "--json")
	var missing verifyReplayDoc
	if err := json.Unmarshal([]byte(out), &missing); err != nil || code != 1 {
		t.Fatalf("verify without a component file: exit %d (want 1), %v\n%s%s", code, err, out, errOut)
	}
	if missing.Verified != stored || missing.Replayed != len(ids) || len(missing.Failures) != len(ids) {
		t.Errorf("verify without a component file: %s", out)
	}
	for _, f := range missing.Failures {
		if f.Check != "replay" || !strings.Contains(f.Error, "sha256-"+digest+".wasm") || !strings.Contains(f.Error, "copy") {
			t.Errorf("verify without a component file: failure %+v does not name the missing file and what to do", f)
		}
	}
	if err := os.Rename(file+".away", file); err != nil {
		t.Fatal(err)
	}

	// Damage the stored state of one workflow: its result no longer is the one its
	// Finished event holds. Its replay, which compares the result the code returns with
	// the stored one, fails too.
	damaged := ids[1]
	store, err := events.Open(storeDir, events.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.State(context.Background(), damaged)
	if err != nil {
		t.Fatal(err)
	}
	st = proto.CloneOf(st)
	st.Result = []byte(`{"ok":111}`)
	if err := store.ForgeStateForTest(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	out, errOut, code = runVerify(t, "--data-dir", s.DataDir())
	t.Logf("server verify of the damaged store:\n%s", out)
	if code != 1 {
		t.Fatalf("verify of a damaged store: exit %d\n%s%s", code, out, errOut)
	}
	if n, m := verified(t, out); n != stored || m != 2 {
		t.Errorf("verify of a damaged store: %d executions, %d mismatches", n, m)
	}
	line := damaged + `: result: stored "{\"ok\":111}", refolded "{\"ok\":110}"`
	if !strings.Contains(out, line+"\n") {
		t.Errorf("verify of a damaged store does not say %q:\n%s", line, out)
	}
	if line := damaged + ": replay diverged: "; !strings.Contains(out, line) {
		t.Errorf("verify of a damaged store does not say %q:\n%s", line, out)
	}

	out, _, code = runVerify(t, "--data-dir", s.DataDir(), "--json")
	var doc struct {
		Verified   int `json:"verified"`
		Mismatches int `json:"mismatches"`
		Failures   []struct {
			ExecutionID string `json:"execution_id"`
			Field       string `json:"field"`
		} `json:"failures"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("--json output %q: %v", out, err)
	}
	if code != 1 || doc.Verified != stored || doc.Mismatches != 2 || len(doc.Failures) != 2 ||
		doc.Failures[0].ExecutionID != damaged || doc.Failures[0].Field != "result" || doc.Failures[1].ExecutionID != damaged {
		t.Errorf("verify --json of a damaged store: exit %d, %s", code, out)
	}

	// A workflow execution whose recorded history its code does not reproduce (it
	// calls fibo(1) first, not fibo(5)), sound otherwise (its state folds, its chains
	// hold): only a replay finds it.
	nd := events.NewExecutionID(time.Now())
	recordFiboa(t, storeDir, nd, "fibo_workflow", "[1,2]", "[5]")
	out, errOut, code = runVerify(t, "--data-dir", s.DataDir(), "--json")
	var diverged verifyReplayDoc
	if err := json.Unmarshal([]byte(out), &diverged); err != nil || code != 1 {
		t.Fatalf("verify of a nondeterministic history: exit %d (want 1), %v\n%s%s", code, err, out, errOut)
	}
	var found bool
	for _, f := range diverged.Failures {
		switch {
		case f.ExecutionID == nd && f.Check == "replay" && strings.Contains(f.Error, "[5]"):
			found = true
		case f.ExecutionID == nd:
			t.Errorf("verify of a nondeterministic history: failure %+v, want only a replay failure", f)
		}
	}
	if !found || diverged.Replayed != len(ids)+1 {
		t.Errorf("verify of a nondeterministic history: no replay failure of %s naming the recorded call: %s", nd, out)
	}
}

// verifyReplayDoc is the part of verify's --json document about replays and failures.
type verifyReplayDoc struct {
	Verified        int  `json:"verified"`
	Mismatches      int  `json:"mismatches"`
	Workflows       int  `json:"workflows"`
	Replayed        int  `json:"workflows_replayed"`
	ReplayAvailable bool `json:"replay_available"`
	Failures        []struct {
		ExecutionID string `json:"execution_id"`
		Check       string `json:"check"`
		Error       string `json:"error"`
	} `json:"failures"`
}

// workflowDigest returns the hex digest of the file of component name, as the server
// recorded it in <data_dir>/component-versions.json.
func workflowDigest(t *testing.T, dataDir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "component-versions.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Versions map[string]struct {
			Name   string `json:"name"`
			Digest string `json:"digest"`
		} `json:"versions"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, v := range doc.Versions {
		if v.Name == name {
			return strings.TrimPrefix(v.Digest, "sha256:")
		}
	}
	t.Fatalf("no version of %s in component-versions.json: %s", name, b)
	return ""
}

// TestVerifyFlippedByte: one byte changed in an event of a stopped server's store,
// through Pebble itself, is a broken hash chain that `obelisk verify` names: the
// execution and the event's version.
func TestVerifyFlippedByte(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	id := s.Submit("testing:fibo-workflow/workflow.fiboa", "[10, 1]")
	harness.JSONEq(t, s.Result(id, 2*time.Minute), `{"ok":55}`)
	s.Stop()
	dir := filepath.Join(s.DataDir(), "store")
	db, err := pebble.Open(dir, &pebble.Options{Logger: quietPebble{}})
	if err != nil {
		t.Fatal(err)
	}
	key := append([]byte("e\x00"+id+"\x00"), 0, 0, 0, 2) // the store's key of event v2 (events/keys.go)
	v, closer, err := db.Get(key)
	if err != nil {
		t.Fatalf("read event v2 of %s: %v", id, err)
	}
	damaged := bytes.Clone(v)
	closer.Close()
	damaged[len(damaged)/3] ^= 0x20
	if err := db.Set(key, damaged, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Pebble replaced the store's WAL: its record of them would call that a loss.
	if err := os.Remove(filepath.Join(dir, "OBELISK-WALS")); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runObelisk(t, "verify", "--data-dir", s.DataDir())
	t.Logf("verify of the flipped byte:\n%s", out)
	if code != 1 || !strings.Contains(out, id+": hash chain broken at event 2: ") {
		t.Errorf("verify of a flipped byte: exit %d\n%s%s", code, out, errOut)
	}
}

type quietPebble struct{}

func (quietPebble) Infof(string, ...any)              {}
func (quietPebble) Errorf(string, ...any)             {}
func (quietPebble) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
