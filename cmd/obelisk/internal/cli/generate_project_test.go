package cli

import (
	"errors"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/obelisk-go/obelisk/cmd/obelisk/internal/templates"
)

// repoRoot is the checkout this test runs in, a valid --sdk-replace.
const repoRoot = "../../../.."

func TestGenerateProjectList(t *testing.T) {
	out, err := runCLI(t, "generate", "project", "--list")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	names := templates.Names()
	if len(lines) != len(names) {
		t.Fatalf("%d lines for %d templates:\n%s", len(lines), len(names), out)
	}
	for i, line := range lines {
		fields := strings.Fields(line)
		if len(fields) < 2 || fields[0] != names[i] {
			t.Errorf("line %d is %q, want the template %s first, then what it is", i+1, line, names[i])
		}
	}
	if !strings.HasPrefix(lines[0], "activity  An activity") {
		t.Errorf("first line %q", lines[0])
	}
	// --list takes no DIR.
	if _, err := runCLI(t, "generate", "project", "--list", "somewhere"); exitCode(err) != 2 {
		t.Errorf("--list with a DIR: %v", err)
	}
}

func TestGenerateProjectUnknownTemplate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "app")
	_, err := runCLI(t, "generate", "project", "--template", "nope", "--sdk-replace", repoRoot, dir)
	if exitCode(err) != 2 || !strings.Contains(err.Error(), `unknown template "nope"`) ||
		!strings.Contains(err.Error(), strings.Join(templates.Names(), ", ")) {
		t.Fatalf("got %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s was created: %v", dir, err)
	}
	if _, err := runCLI(t, "generate", "project", dir); exitCode(err) != 2 || !strings.Contains(err.Error(), "--template is required; the templates are: activity,") {
		t.Errorf("without --template: %v", err)
	}
}

func TestGenerateProjectNonEmptyDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "app")
	writeFile(t, filepath.Join(dir, "notes.txt"), "mine")
	writeFile(t, filepath.Join(dir, "go.mod"), "module mine\n")
	_, err := runCLI(t, "generate", "project", "--template", "activity", "--sdk-replace", repoRoot, dir)
	if exitCode(err) != 2 || !strings.Contains(err.Error(), "is not empty") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("got %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if b, _ := os.ReadFile(filepath.Join(dir, "go.mod")); len(entries) != 2 || string(b) != "module mine\n" {
		t.Fatalf("a refused generation wrote into %s: %d entries, go.mod %q", dir, len(entries), b)
	}
	// With --force the project's files are written over; the others stay.
	if _, err := runCLI(t, "generate", "project", "--template", "activity", "--sdk-replace", repoRoot, "--force", dir); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "notes.txt")); string(b) != "mine" {
		t.Errorf("notes.txt is now %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "go.mod")); !strings.HasPrefix(string(b), "module app\n") {
		t.Errorf("go.mod is now %q", b)
	}
	// A file is no folder, even with --force.
	file := filepath.Join(t.TempDir(), "file")
	writeFile(t, file, "x")
	if _, err := runCLI(t, "generate", "project", "--template", "activity", "--sdk-replace", repoRoot, "--force", file); exitCode(err) != 2 || !strings.Contains(err.Error(), "is not a folder") {
		t.Errorf("a file as DIR: %v", err)
	}
}

func TestGenerateProjectFiles(t *testing.T) {
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "shop")
	out, err := runCLI(t, "generate", "project", "--template", "workflow", "--module", "example.com/shop", "--sdk-replace", repoRoot, dir)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "Created shop (template workflow") {
		t.Errorf("output %q", out)
	}
	gomod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	// An obelisk built from a checkout knows no published version: the replace is
	// the SDK, the version a placeholder.
	for _, want := range []string{"module example.com/shop\n", "replace " + templates.SDKModule + " => " + root + "\n"} {
		if !strings.Contains(string(gomod), want) {
			t.Errorf("go.mod has no %q:\n%s", want, gomod)
		}
	}
	main, _ := os.ReadFile(filepath.Join(dir, "workflow", "main.go"))
	if !strings.Contains(string(main), `"example.com/shop/workflow/internal/greeter"`) || !strings.Contains(string(main), `"shop:workflow/workflow.greet-all"`) {
		t.Errorf("workflow/main.go:\n%s", main)
	}

	// A published version instead of a checkout.
	dir = filepath.Join(t.TempDir(), "x")
	if _, err := runCLI(t, "generate", "project", "--template", "activity", "--name", "shop", "--sdk-version", "v1.4.0", dir); err != nil {
		t.Fatal(err)
	}
	gomod, _ = os.ReadFile(filepath.Join(dir, "go.mod"))
	if !strings.Contains(string(gomod), "require "+templates.SDKModule+" v1.4.0\n") || strings.Contains(string(gomod), "replace") {
		t.Errorf("go.mod:\n%s", gomod)
	}
}

func TestGenerateProjectRefuses(t *testing.T) {
	tmp := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--template", "activity", "--sdk-replace", repoRoot, filepath.Join(tmp, "My_App")}, `project name "My_App"`},
		{[]string{"--template", "activity", "--sdk-replace", repoRoot, "--name", "ok", "--module", "a b", filepath.Join(tmp, "a")}, `Go module path "a b"`},
		{[]string{"--template", "activity", "--sdk-version", "1.2.3", filepath.Join(tmp, "f")}, `--sdk-version "1.2.3": want a module version such as v1.2.3`},
		{[]string{"--template", "activity", "--sdk-replace", tmp, filepath.Join(tmp, "b")}, "not a checkout of " + templates.SDKModule},
		{[]string{"--template", "activity", "--sdk-replace", "testdata-other-module", filepath.Join(tmp, "c")}, "not a checkout"},
	} {
		_, err := runCLI(t, append([]string{"generate", "project"}, c.args...)...)
		if exitCode(err) != 2 || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error with %q", c.args, err, c.want)
		}
	}
	other := filepath.Join(tmp, "other")
	writeFile(t, filepath.Join(other, "go.mod"), "module example.com/other\n")
	_, err := runCLI(t, "generate", "project", "--template", "activity", "--sdk-replace", other, filepath.Join(tmp, "d"))
	if exitCode(err) != 2 || !strings.Contains(err.Error(), "its go.mod is of module example.com/other") {
		t.Errorf("--sdk-replace of another module: %v", err)
	}
	// A test binary is built from a checkout: without --sdk-replace or
	// --sdk-version it cannot tell which SDK to require.
	if buildVersion() == "" {
		_, err := runCLI(t, "generate", "project", "--template", "activity", filepath.Join(tmp, "e"))
		if exitCode(err) != 2 || !strings.Contains(err.Error(), "--sdk-replace PATH") {
			t.Errorf("no SDK: %v", err)
		}
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 1 { // other
		t.Errorf("refused generations wrote %d entries into %s", len(entries), tmp)
	}
}

func TestModuleVersion(t *testing.T) {
	for _, c := range []struct {
		m    debug.Module
		want string
	}{
		{debug.Module{Path: templates.SDKModule, Version: "v1.2.3"}, "v1.2.3"},
		{debug.Module{Path: templates.SDKModule, Version: "v0.0.0-20261206204647-7039e0a1b2c3"}, "v0.0.0-20261206204647-7039e0a1b2c3"},
		{debug.Module{Path: templates.SDKModule, Version: "v0.0.0-20261206204647-7039e0a1b2c3+dirty"}, ""},
		{debug.Module{Path: templates.SDKModule, Version: "(devel)"}, ""},
		{debug.Module{Path: templates.SDKModule, Version: "v1.2.3", Replace: &debug.Module{Path: "../x"}}, ""},
		{debug.Module{Path: "example.com/fork", Version: "v1.2.3"}, ""},
	} {
		if got := moduleVersion(c.m); got != c.want {
			t.Errorf("%+v: %q, want %q", c.m, got, c.want)
		}
	}
}
