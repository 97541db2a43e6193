package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/obelisk-go/obelisk/test/harness"
)

// cActivity is the folder of the example activity written in C (issue 12 §8).
const cActivity = "../../examples/c-activity"

// cActivityWasm returns the C activity's .wasm: the one `make c-components` built into
// the components folder, else one built here when the toolchain is installed. Without
// either the test skips.
func cActivityWasm(t *testing.T) string {
	t.Helper()
	built := filepath.Join(harness.ComponentsDir(), "c-activity.wasm")
	if _, err := os.Stat(built); err == nil {
		return built
	}
	if out, err := exec.Command("make", "-s", "-C", cActivity, "check").CombinedOutput(); err != nil {
		t.Skipf("no %s and no C toolchain for wasm32-wasi to build it (Debian: apt-get install clang lld wasi-libc libclang-rt-dev-wasm32; .ci/run installs them): %v\n%s", built, err, out)
	}
	wasm := filepath.Join(t.TempDir(), "c-activity.wasm")
	if out, err := exec.Command("make", "-s", "-C", cActivity, "OBELISK="+harness.Binary(), "OUT="+wasm).CombinedOutput(); err != nil {
		t.Fatalf("build the C activity: %v\n%s", err, out)
	}
	return wasm
}

// TestCGuest deploys the activity written in C on the real server and calls its functions
// through the CLI: integers, strings crossing the guest's memory both ways (escapes,
// multi-byte UTF-8), host calls (the key-value store, with a response larger than the
// guest's buffer, fetched with host_take), wasi:logging, and permanent failures.
func TestCGuest(t *testing.T) {
	t.Parallel()
	wasm := cActivityWasm(t)
	s := harness.Start(t, harness.Options{
		Deployment: fmt.Sprintf(`
[[activity_wasm]]
name = "c_activity"
location.path = %q
max_retries = 3
retry_exp_backoff = "10ms"
`, wasm),
		ExtraWorkflows: map[string]string{"c_caller": "test/e2e/testdata/c-caller-workflow"},
	})

	const fibo = "examples:c-activity/text.fibo"
	for n, want := range map[int]string{0: "0", 1: "1", 10: "55", 50: "12586269025", 93: "12200160415121876738"} {
		res, code := submitCLI(t, s, fibo, fmt.Sprintf("[%d]", n))
		if code != 0 {
			t.Errorf("fibo(%d): exit %d, result %s", n, code, res)
		}
		harness.JSONEq(t, res, `{"ok":`+want+`}`)
	}

	t.Run("logs", func(t *testing.T) {
		out, errOut, code := s.CLI("execution", "submit", "--follow", "--json", fibo, "[12]")
		var doc struct {
			ExecutionID string `json:"execution_id"`
		}
		if err := json.Unmarshal([]byte(out), &doc); code != 0 || err != nil {
			t.Fatalf("submit: exit %d, %q (%v), stderr %s", code, out, err, errOut)
		}
		if msgs := logMessages(cliLogs(t, s, doc.ExecutionID)); len(msgs) != 1 || msgs[0] != "info fibo(12) = 144" {
			t.Errorf("logs %q, want [info fibo(12) = 144] (through the wasi:logging import)", msgs)
		}
	})

	t.Run("permanent failure", func(t *testing.T) {
		out, errOut, code := s.CLI("execution", "submit", "--follow", "--json", fibo, "[94]")
		var doc struct {
			ExecutionID string          `json:"execution_id"`
			Result      json.RawMessage `json:"result"`
		}
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("submit: %q (%v), stderr %s", out, err, errOut)
		}
		if code != 1 {
			t.Errorf("fibo(94): exit %d, want 1 (an err result)", code)
		}
		harness.JSONEq(t, string(doc.Result), `{"err":{"permanent_failure":"fibo(94) does not fit in a u64"}}`)
		// The case name says permanent: one attempt, not max_retries + 1.
		if n := harness.CountKind(s.Events(doc.ExecutionID), "temporarily_failed"); n != 0 {
			t.Errorf("%d temporarily_failed events, want 0: a permanent failure is not retried", n)
		}
	})

	t.Run("parameters the WIT refuses", func(t *testing.T) {
		// u8 is checked by the host before the guest runs: nothing is created.
		out, errOut, code := s.CLI("execution", "submit", "--follow", "--json", fibo, "[256]")
		if code == 0 || !strings.Contains(errOut, "256") {
			t.Errorf("fibo(256): exit %d, stdout %q, stderr %q: want a refusal naming the value", code, out, errOut)
		}
	})

	t.Run("strings", func(t *testing.T) {
		for _, in := range []string{
			"",
			"abc",
			"héllo, 世界 🙂!",
			"quotes \" and \\ backslashes, <tags> & ampersands",
			"control\n\t\x01 characters",
			strings.Repeat("long ✓ ", 2000),
		} {
			params, _ := json.Marshal([]string{in})
			res, code := submitCLI(t, s, "examples:c-activity/text.reverse", string(params))
			want, _ := json.Marshal(map[string]string{"ok": reverseRunes(in)})
			if code != 0 {
				t.Errorf("reverse(%.40q): exit %d", in, code)
			}
			harness.JSONEq(t, res, string(want))
		}
	})

	t.Run("host calls", func(t *testing.T) {
		const swap = "examples:c-activity/text.swap"
		// Larger than the guest's 4 KiB response buffer: the kv get that reads it back
		// answers through host_take.
		big := strings.Repeat("ünïcode \"quoted\" ", 1000)
		steps := []struct{ value, previous string }{
			{"first", `null`},
			{big, `"first"`},
			{"third", mustJSON(t, big)},
		}
		for i, step := range steps {
			res, code := submitCLI(t, s, swap, mustJSON(t, []string{"key", step.value}))
			if code != 0 {
				t.Errorf("swap %d: exit %d", i, code)
			}
			harness.JSONEq(t, res, `{"ok":`+step.previous+`}`)
		}
		// The store holds what the C activity wrote.
		res, _ := submitCLI(t, s, "obelisk:kv/store.get", `["c-activity","key"]`)
		harness.JSONEq(t, res, `{"ok":"third"}`)

		// The store refuses an empty key; the activity reports its answer.
		res, code := submitCLI(t, s, swap, `["","value"]`)
		var doc struct {
			Err struct {
				PermanentFailure string `json:"permanent_failure"`
			} `json:"err"`
		}
		if err := json.Unmarshal([]byte(res), &doc); err != nil || code != 1 ||
			!strings.HasPrefix(doc.Err.PermanentFailure, "kv get: ") || !strings.Contains(doc.Err.PermanentFailure, "invalid") {
			t.Errorf("swap with an empty key: exit %d, result %s, want a permanent failure with the store's invalid error", code, res)
		}
	})
	t.Run("called from a Go workflow", func(t *testing.T) {
		const fiboReversed = "testing:c-caller-workflow/workflow.fibo-reversed"
		res, code := submitCLI(t, s, fiboReversed, "[93]")
		if code != 0 {
			t.Errorf("fibo-reversed(93): exit %d", code)
		}
		harness.JSONEq(t, res, mustJSON(t, map[string]string{"ok": reverseRunes("12200160415121876738")}))
		res, code = submitCLI(t, s, fiboReversed, "[94]")
		var doc struct {
			Err string `json:"err"`
		}
		if err := json.Unmarshal([]byte(res), &doc); err != nil || code != 1 ||
			!strings.Contains(doc.Err, "examples:c-activity/text.fibo") || !strings.Contains(doc.Err, `{"permanent_failure":"fibo(94) does not fit in a u64"}`) {
			t.Errorf("fibo-reversed(94): exit %d, result %s, want the C activity's err in the message", code, res)
		}
	})
}

func reverseRunes(s string) string {
	r := []rune(s)
	for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
		r[i], r[j] = r[j], r[i]
	}
	return string(r)
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
