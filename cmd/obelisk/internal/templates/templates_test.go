package templates

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/obelisk-go/obelisk/actors"
	"github.com/obelisk-go/obelisk/cmd/obelisk/internal/config"
	"github.com/obelisk-go/obelisk/wasmhost/wit"
)

// render renders t into a temporary folder and returns the folder and the files.
func render(t *testing.T, tmpl Template, o Options) (string, map[string]string) {
	t.Helper()
	files, err := tmpl.Render(o)
	if err != nil {
		t.Fatalf("render %s: %v", tmpl.Name, err)
	}
	dir := t.TempDir()
	byPath := map[string]string{}
	for _, f := range files {
		byPath[f.Path] = string(f.Data)
		p := filepath.Join(dir, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, byPath
}

func TestRenderEveryTemplate(t *testing.T) {
	want := map[string]struct {
		components map[string]actors.ComponentType // folder -> deployed as
		exports    map[string][]string             // folder -> FFQNs its WIT exports
	}{
		"activity": {
			map[string]actors.ComponentType{"activity": actors.ActivityWasm},
			map[string][]string{"activity": {"my-app:activity/greeter.greet"}},
		},
		"workflow": {
			map[string]actors.ComponentType{"activity": actors.ActivityWasm, "workflow": actors.Workflow},
			map[string][]string{"activity": {"my-app:activity/greeter.greet"}, "workflow": {"my-app:workflow/workflow.greet-all", "my-app:workflow/workflow.greet-later"}},
		},
		"webhook": {
			map[string]actors.ComponentType{"activity": actors.ActivityWasm, "webhook": actors.WebhookEndpoint},
			map[string][]string{"activity": {"my-app:activity/greeter.greet"}, "webhook": nil},
		},
		"blank-workflow": {
			map[string]actors.ComponentType{"workflow": actors.Workflow},
			map[string][]string{"workflow": {"my-app:workflow/workflow.run"}},
		},
	}
	if got := Names(); !slices.Equal(got, []string{"activity", "workflow", "webhook", "blank-workflow"}) {
		t.Fatalf("templates %v", got)
	}
	for _, tmpl := range List() {
		t.Run(tmpl.Name, func(t *testing.T) {
			w := want[tmpl.Name]
			dir, files := render(t, tmpl, Options{Name: "my-app", Module: "example.com/my-app", SDKVersion: "v1.2.3"})
			for _, p := range []string{"go.mod", "Makefile", "obelisk.toml", "README.md", ".gitignore"} {
				if _, ok := files[p]; !ok {
					t.Errorf("no %s", p)
				}
			}
			if gomod := files["go.mod"]; !strings.Contains(gomod, "module example.com/my-app\n") ||
				!strings.Contains(gomod, "require "+SDKModule+" v1.2.3\n") || strings.Contains(gomod, "replace") {
				t.Errorf("go.mod:\n%s", gomod)
			}
			// Every component's WIT folder parses and exports what its code exports.
			for folder, exports := range w.exports {
				var wits []wit.File
				for p, text := range files {
					if rest, ok := strings.CutPrefix(p, folder+"/wit/"); ok {
						wits = append(wits, wit.File{Path: rest, Text: text})
					}
				}
				r, err := wit.Parse(wits)
				if err != nil {
					t.Fatalf("%s/wit: %v", folder, err)
				}
				var got []string
				for _, ifc := range r.ExportedInterfaces() {
					for _, f := range ifc.Functions {
						got = append(got, f.FFQN())
						if !strings.Contains(files[folder+"/main.go"], `obelisk.Export("`+f.FFQN()+`"`) {
							t.Errorf("%s/main.go does not export %s", folder, f.FFQN())
						}
					}
				}
				if slices.Sort(got); !slices.Equal(got, exports) {
					t.Errorf("%s/wit exports %v, want %v", folder, got, exports)
				}
				if !strings.Contains(files[folder+"/main_test.go"], "obelisk.TestHost") {
					t.Errorf("%s has no test on obelisk.TestHost", folder)
				}
			}
			// obelisk.toml is a valid config deploying every component from build/.
			cfg, err := config.Load(filepath.Join(dir, "obelisk.toml"))
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]actors.ComponentType{}
			for _, c := range cfg.Engine.Components {
				got[c.Name] = c.Type
				if want := filepath.Join(dir, "build", c.Name+".wasm"); c.Path != want {
					t.Errorf("component %s at %s, want %s", c.Name, c.Path, want)
				}
			}
			if len(got) != len(w.components) {
				t.Errorf("obelisk.toml deploys %v, want %v", got, w.components)
			}
			for name, typ := range w.components {
				if got[name] != typ {
					t.Errorf("obelisk.toml deploys %s as %q, want %q", name, got[name], typ)
				}
			}
			// The Makefile builds each of them.
			var components []string
			for name := range w.components {
				components = append(components, name)
			}
			slices.Sort(components)
			if line := "COMPONENTS := " + strings.Join(components, " ") + "\n"; !strings.Contains(files["Makefile"], line) {
				t.Errorf("Makefile has no %q:\n%s", line, files["Makefile"])
			}
		})
	}
}

func TestRenderReplace(t *testing.T) {
	tmpl, err := Lookup("workflow")
	if err != nil {
		t.Fatal(err)
	}
	_, files := render(t, tmpl, Options{Name: "x", Module: "x", SDKVersion: PlaceholderVersion, SDKReplace: "/src/obelisk"})
	if gomod := files["go.mod"]; !strings.Contains(gomod, "replace "+SDKModule+" => /src/obelisk\n") {
		t.Errorf("go.mod:\n%s", gomod)
	}
	// go.mod quotes a folder with a space.
	_, files = render(t, tmpl, Options{Name: "x", Module: "x", SDKVersion: PlaceholderVersion, SDKReplace: "/home/me/my src/obelisk"})
	if gomod := files["go.mod"]; !strings.Contains(gomod, "replace "+SDKModule+` => "/home/me/my src/obelisk"`+"\n") {
		t.Errorf("go.mod:\n%s", gomod)
	}
	// The workflow submits into join sets: it gets the activity's package, its
	// extensions, obelisk:types and Go wrappers.
	for _, p := range []string{
		"workflow/wit/deps/x-activity/greeter.wit",
		"workflow/wit/deps/x-activity-obelisk-ext/activity-obelisk-ext.wit",
		"workflow/wit/deps/obelisk-types/types.wit",
		"workflow/internal/greeter/greeter_gen.go",
	} {
		if _, ok := files[p]; !ok {
			t.Errorf("no %s", p)
		}
	}
	if !strings.Contains(files["workflow/internal/greeter/greeter_gen.go"], "func GreetSubmit(") {
		t.Errorf("the Go wrappers have no GreetSubmit")
	}
}

func TestRenderRefusesBadOptions(t *testing.T) {
	tmpl, err := Lookup("activity")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{Name: "My_App", Module: "m", SDKVersion: "v1.0.0"}, `project name "My_App"`},
		{Options{Name: "app-", Module: "m", SDKVersion: "v1.0.0"}, `project name "app-"`},
		{Options{Name: "1app", Module: "m", SDKVersion: "v1.0.0"}, `project name "1app"`},
		{Options{Name: "app", Module: "example.com/a b", SDKVersion: "v1.0.0"}, `Go module path "example.com/a b"`},
		{Options{Name: "app", Module: "", SDKVersion: "v1.0.0"}, `Go module path ""`},
		{Options{Name: "app", Module: "m"}, "no SDK version"},
	} {
		if _, err := tmpl.Render(c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error with %q", c.o, err, c.want)
		}
	}
	for _, ok := range []string{"app", "my-app2", "a-b-c"} {
		if err := CheckName(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}

func TestLookupUnknown(t *testing.T) {
	_, err := Lookup("nope")
	if err == nil || err.Error() != `unknown template "nope"; the templates are: activity, workflow, webhook, blank-workflow` {
		t.Fatalf("got %v", err)
	}
}

// TestGoVersion checks that generated projects ask for the Go the SDK's module
// asks for.
func TestGoVersion(t *testing.T) {
	f, err := os.Open("../../../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go "); ok {
			if v != GoVersion {
				t.Fatalf("go.mod says go %s, GoVersion is %s", v, GoVersion)
			}
			return
		}
	}
	t.Fatal("no go directive in go.mod")
}
