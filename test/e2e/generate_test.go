package e2e

import (
	"bytes"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/test/harness"
)

// TestGenerateProject generates a project of every template from this checkout,
// builds it with its own Makefile, runs its tests, serves it with its own
// obelisk.toml and calls what it deploys.
func TestGenerateProject(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed: generated projects are built with their Makefile")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		template string
		// deps are folders that `make deps` regenerates from the activity's WIT.
		deps  []string
		check func(t *testing.T, s *harness.Server, webhookURL string)
	}{
		{template: "activity", check: func(t *testing.T, s *harness.Server, _ string) {
			id := s.Submit("hello-activity:activity/greeter.greet", `["world"]`)
			harness.JSONEq(t, s.Result(id, time.Minute), `{"ok":"Hello, world!"}`)
		}},
		{template: "workflow", deps: []string{"workflow/wit/deps", "workflow/internal"}, check: func(t *testing.T, s *harness.Server, _ string) {
			all := s.Submit("hello-workflow:workflow/workflow.greet-all", `[["Alice", "Bob", "Eve"]]`)
			later := s.Submit("hello-workflow:workflow/workflow.greet-later", `["Carol", 100]`)
			harness.JSONEq(t, s.Result(all, time.Minute), `{"ok":["Hello, Alice!","Hello, Bob!","Hello, Eve!"]}`)
			harness.JSONEq(t, s.Result(later, time.Minute), `{"ok":"Hello, Carol!"}`)
			// The greetings were child executions of the activity, submitted into a join set.
			if n := harness.CountKind(s.Events(all), "history.join_set_request"); n != 3 {
				t.Errorf("greet-all made %d join set requests, want 3: %v", n, s.Events(all))
			}
		}},
		{template: "webhook", deps: []string{"webhook/wit/deps"}, check: func(t *testing.T, s *harness.Server, webhookURL string) {
			resp, err := http.Get(webhookURL + "/hello/world")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "Hello, world!\n" {
				t.Errorf("GET /hello/world: %d %q", resp.StatusCode, body)
			}
		}},
		{template: "blank-workflow", check: func(t *testing.T, s *harness.Server, _ string) {
			id := s.Submit("hello-blank-workflow:workflow/workflow.run", `[]`)
			harness.JSONEq(t, s.Result(id, time.Minute), `{"ok":"done"}`)
		}},
	}
	for _, c := range cases {
		t.Run(c.template, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "hello-"+c.template)
			runIn(t, "", harness.Binary(), "generate", "project", "--template", c.template, "--sdk-replace", root, dir)
			if len(c.deps) > 0 {
				// The Makefile regenerates what the generator wrote.
				before := readTree(t, dir, c.deps)
				runIn(t, dir, "make", "deps", "OBELISK="+harness.Binary())
				if after := readTree(t, dir, c.deps); !maps.Equal(before, after) {
					t.Errorf("make deps changed the generated files:\nbefore %v\nafter  %v", slices.Sorted(maps.Keys(before)), slices.Sorted(maps.Keys(after)))
				}
			}
			runIn(t, dir, "make", "OBELISK="+harness.Binary())
			runIn(t, dir, "go", "test", "-count=1", "./...")
			// The project's obelisk.toml as it is, but for the webhook server's address.
			config, err := os.ReadFile(filepath.Join(dir, "obelisk.toml"))
			if err != nil {
				t.Fatal(err)
			}
			webhookAddr := harness.FreeAddr(t)
			config = bytes.ReplaceAll(config, []byte(`"127.0.0.1:9090"`), []byte(`"`+webhookAddr+`"`))
			testConfig := filepath.Join(dir, "obelisk.test.toml")
			if err := os.WriteFile(testConfig, config, 0o644); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			s := harness.StartConfig(t, testConfig)
			t.Logf("server started: %v", time.Since(start).Round(time.Millisecond))
			c.check(t, s, "http://"+webhookAddr)
			t.Logf("checked: %v", time.Since(start).Round(time.Millisecond))
		})
	}
}

// runIn runs a command in dir and fails the test with its output if it fails.
func runIn(t *testing.T, dir, name string, args ...string) {
	t.Helper()
	start := time.Now()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	t.Logf("%s %s: %v", filepath.Base(name), strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
}

// readTree returns the files under the given folders of dir: path -> contents.
func readTree(t *testing.T, dir string, folders []string) map[string]string {
	t.Helper()
	files := map[string]string{}
	for _, f := range folders {
		err := filepath.WalkDir(filepath.Join(dir, f), func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			files[p] = string(b)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return files
}
