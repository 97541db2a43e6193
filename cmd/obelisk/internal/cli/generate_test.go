package cli

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/obelisk-go/obelisk/wasmhost/wit"
)

const genFiboWIT = `package testing:fibo@1.0.0;

interface fibo {
  record stats { calls: u32 }
  fibo: func(n: u8) -> result<u64>;
  fibo-stats: func(n: u8) -> result<stats, string>;
}

interface extra {
  ping: func() -> result;
}

world any {
  export fibo;
  export extra;
}
`

// runCLI runs the obelisk command with args and returns its standard output.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := Root()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestGenerateWITExtensions(t *testing.T) {
	tmp := t.TempDir()
	witDir := filepath.Join(tmp, "fibo", "wit")
	writeFile(t, filepath.Join(witDir, "fibo.wit"), genFiboWIT)
	// a workflow's WIT folder that imports the extensions of testing:fibo
	wf := filepath.Join(tmp, "workflow", "wit")
	writeFile(t, filepath.Join(wf, "workflow.wit"), `package testing:fibo-workflow;
interface workflow {
  run: func() -> result;
}
world any {
  export workflow;
  import testing:fibo-obelisk-ext/fibo@1.0.0;
  import testing:fibo-obelisk-schedule/fibo@1.0.0;
  import testing:fibo-obelisk-stub/fibo@1.0.0;
}
`)
	writeFile(t, filepath.Join(wf, "deps", "testing-fibo", "fibo.wit"), genFiboWIT)

	out, err := runCLI(t, "generate", "wit-extensions", witDir, "testing:fibo/fibo", "--out", filepath.Join(wf, "deps"))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, p := range []string{
		"obelisk-types/types.wit",
		"testing-fibo-obelisk-ext/fibo-obelisk-ext.wit",
		"testing-fibo-obelisk-schedule/fibo-obelisk-schedule.wit",
		"testing-fibo-obelisk-stub/fibo-obelisk-stub.wit",
	} {
		want = append(want, filepath.Join(wf, "deps", filepath.FromSlash(p)))
	}
	if got := strings.Fields(out); !slices.Equal(got, want) {
		t.Fatalf("printed %q, want %q", got, want)
	}
	files, err := wit.LoadDir(wf)
	if err != nil {
		t.Fatal(err)
	}
	r, err := wit.Parse(files)
	if err != nil {
		t.Fatalf("the workflow does not parse with the generated packages: %v", err)
	}
	var imports []string
	for _, f := range r.Imports() {
		imports = append(imports, f.FFQN())
	}
	wantImports := []string{
		"testing:fibo-obelisk-ext/fibo@1.0.0.fibo-submit",
		"testing:fibo-obelisk-ext/fibo@1.0.0.fibo-await-next",
		"testing:fibo-obelisk-ext/fibo@1.0.0.fibo-get",
		"testing:fibo-obelisk-ext/fibo@1.0.0.fibo-stats-submit",
		"testing:fibo-obelisk-ext/fibo@1.0.0.fibo-stats-await-next",
		"testing:fibo-obelisk-ext/fibo@1.0.0.fibo-stats-get",
		"testing:fibo-obelisk-schedule/fibo@1.0.0.fibo-schedule",
		"testing:fibo-obelisk-schedule/fibo@1.0.0.fibo-stats-schedule",
		"testing:fibo-obelisk-stub/fibo@1.0.0.fibo-stub",
		"testing:fibo-obelisk-stub/fibo@1.0.0.fibo-stats-stub",
	}
	if !slices.Equal(imports, wantImports) {
		t.Errorf("imports\n%s\nwant\n%s", strings.Join(imports, "\n"), strings.Join(wantImports, "\n"))
	}
	// only the interface named
	if b, _ := os.ReadFile(want[1]); strings.Contains(string(b), "extra") {
		t.Errorf("generated the interface not named:\n%s", b)
	}
}

func TestGenerateWITExtensionsDefaultOut(t *testing.T) {
	witDir := t.TempDir()
	writeFile(t, filepath.Join(witDir, "fibo.wit"), genFiboWIT)
	if _, err := runCLI(t, "generate", "wit-extensions", witDir); err != nil {
		t.Fatal(err)
	}
	ext := filepath.Join(witDir, "deps", "testing-fibo-obelisk-ext", "fibo-obelisk-ext.wit")
	b, err := os.ReadFile(ext)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "interface extra {") || !strings.Contains(string(b), "interface fibo {") {
		t.Errorf("not every exported interface:\n%s", b)
	}
	// the folder with its own extensions under deps/ still parses
	files, err := wit.LoadDir(witDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wit.Parse(files); err != nil {
		t.Fatal(err)
	}

	// rerun after the interface changed: the stale extensions (which use the
	// removed record) no longer parse with it, and are regenerated all the same
	writeFile(t, filepath.Join(witDir, "fibo.wit"), strings.NewReplacer(
		"  record stats { calls: u32 }\n", "",
		"result<stats, string>", "result<u32, string>").Replace(genFiboWIT))
	if _, err := runCLI(t, "generate", "wit-extensions", witDir); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(ext); strings.Contains(string(b), "stats,") || !strings.Contains(string(b), "result<u32, string>") {
		t.Errorf("not regenerated:\n%s", b)
	}
	files, _ = wit.LoadDir(witDir)
	if _, err := wit.Parse(files); err != nil {
		t.Fatal(err)
	}
}

func TestGenerateWITExtensionsErrors(t *testing.T) {
	good := t.TempDir()
	writeFile(t, filepath.Join(good, "fibo.wit"), genFiboWIT)
	bad := t.TempDir()
	writeFile(t, filepath.Join(bad, "fibo.wit"), "package testing:fibo;\ninterface fibo {\n  fibo: func(n: u8) -> result<u64>\n}\n")
	for _, tc := range []struct {
		name  string
		args  []string
		want  string
		plain bool // cobra's own argument error, which main exits 2 for
	}{
		{"unknown interface", []string{good, "testing:fibo/fibo", "testing:fibo/nope"}, `interface "testing:fibo/nope" is not exported by package testing:fibo@1.0.0`, false},
		{"unparseable", []string{bad}, "WIT in " + bad + ": fibo.wit:4:1: expected ';' after the function `fibo`", false},
		{"no WIT", []string{t.TempDir()}, "no .wit files found", false},
		{"no args", nil, "requires at least 1 arg", true},
	} {
		out := filepath.Join(t.TempDir(), "out")
		_, err := runCLI(t, append([]string{"generate", "wit-extensions", "--out", out}, tc.args...)...)
		var exit *ExitError
		if err == nil || !tc.plain && (!errors.As(err, &exit) || exit.Code != 2) {
			t.Errorf("%s: error %#v, want exit status 2", tc.name, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q, want it to contain %q", tc.name, err, tc.want)
		}
		if _, statErr := os.Stat(out); !os.IsNotExist(statErr) {
			t.Errorf("%s: wrote %s", tc.name, out)
		}
	}
}
