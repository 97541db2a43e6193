// Package templates holds the project templates of `obelisk generate project`
// and renders one into the files of a new project: Go components written
// against the SDK, their WIT folders, a Makefile that builds them into .wasm
// files with their WIT embedded, their tests, and an obelisk.toml that deploys
// them.
//
// The sources are text/template files under files/, one folder per component
// kind and one (project/) for the files at the project's top; they end in
// .tmpl so that Go does not take them for the module's own code. What a
// component imports from another (its WIT package, the -obelisk-ext
// extensions, Go wrappers) is not templated but generated from the rendered
// WIT, with the same code as `obelisk generate wit-extensions` and
// `obelisk generate go-bindings`.
package templates

import (
	"bytes"
	"embed"
	"fmt"
	"go/format"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"text/template"

	"github.com/obelisk-go/obelisk/actors"
	"github.com/obelisk-go/obelisk/wasmhost/wit"
	"github.com/obelisk-go/obelisk/wasmhost/wit/gogen"
)

//go:embed files
var sources embed.FS

// SDKModule is the Go module of the SDK that generated projects require.
const SDKModule = "github.com/obelisk-go/obelisk"

// GoVersion is the go directive of a generated go.mod: the one of SDKModule's
// go.mod, which a project requiring it cannot go below.
const GoVersion = "1.26.0"

// PlaceholderVersion is the version a go.mod requires of a module that a
// replace directive takes from a local folder, where no version is known.
const PlaceholderVersion = "v0.0.0-00010101000000-000000000000"

// Template is one kind of project.
type Template struct {
	// Name is what `--template` takes.
	Name string
	// Summary says what the project holds, in one line.
	Summary string
	parts   []part
}

// part is one component of a template: the folder of files/ it is rendered
// from, the project folder it goes to, and what it imports from the activity.
type part struct {
	src, dir string
	kind     actors.ComponentType // its obelisk.toml table
	about    string               // one line for the project's README
	imports  bool                 // it calls the activity: wit/deps/ gets the activity's package
	ext      bool                 // ...and submits into join sets: the -obelisk-ext extensions and Go wrappers too
}

var activityPart = part{src: "activity", dir: "activity", kind: actors.ActivityWasm,
	about: "an activity exporting `greeter.greet`"}

// templates are the templates in the order --list prints them. A function
// returns them so that no caller can modify a shared table.
func templates() []Template {
	return []Template{
		{Name: "activity", Summary: "An activity: a component with side effects, retried when it fails",
			parts: []part{activityPart}},
		{Name: "workflow", Summary: "A workflow calling an activity, in a join set and after a durable sleep, with the activity",
			parts: []part{activityPart, {src: "workflow", dir: "workflow", kind: actors.Workflow, imports: true, ext: true,
				about: "a workflow calling the activity, concurrently in a join set (`greet-all`) and after a durable sleep (`greet-later`)"}}},
		{Name: "webhook", Summary: "A webhook endpoint (an http.Handler) calling an activity, with the activity",
			parts: []part{activityPart, {src: "webhook", dir: "webhook", kind: actors.WebhookEndpoint, imports: true,
				about: "a webhook endpoint serving `GET /hello/:name` by calling the activity"}}},
		{Name: "blank-workflow", Summary: "A workflow with one function to fill in, the obelisk types and the workflow support ready",
			parts: []part{{src: "blank-workflow", dir: "workflow", kind: actors.Workflow,
				about: "a workflow exporting `workflow.run`, to fill in"}}},
	}
}

// List returns every template, in the order `--list` prints them.
func List() []Template { return templates() }

// Names returns the names of the templates.
func Names() []string {
	var names []string
	for _, t := range templates() {
		names = append(names, t.Name)
	}
	return names
}

// Lookup returns the template called name; the error lists those there are.
func Lookup(name string) (Template, error) {
	for _, t := range templates() {
		if t.Name == name {
			return t, nil
		}
	}
	return Template{}, fmt.Errorf("unknown template %q; the templates are: %s", name, strings.Join(Names(), ", "))
}

// Options are what a project is rendered with.
type Options struct {
	// Name is the project's name: the namespace of its WIT packages
	// (NAME:activity, NAME:workflow...), so lowercase words of letters and
	// digits joined by '-', each starting with a letter.
	Name string
	// Module is the project's Go module path.
	Module string
	// SDKVersion is the version of SDKModule that go.mod requires.
	SDKVersion string
	// SDKReplace, when set, is the folder of a checkout of SDKModule that
	// go.mod replaces it with (an absolute path, as go.mod is not read from
	// where the generator ran).
	SDKReplace string
}

// File is a file of a rendered project.
type File struct {
	// Path is relative to the project's folder, '/'-separated.
	Path string
	Data []byte
}

// component is what the templates know of a part.
type component struct {
	Dir, Kind, About string
	Imports, Ext     bool
}

// data is what the templates are executed with.
type data struct {
	Options
	Template, Summary string
	SDKModule         string
	GoVersion         string
	Components        []component
	Deps, HasExt      bool     // some component imports the activity (with its extensions)
	Try               []string // commands for the README, with the server running
}

// Render returns the files of a project of template t: every path distinct,
// in a stable order.
func (t Template) Render(o Options) ([]File, error) {
	if err := CheckName(o.Name); err != nil {
		return nil, err
	}
	if err := checkModule(o.Module); err != nil {
		return nil, err
	}
	if o.SDKVersion == "" {
		return nil, fmt.Errorf("no SDK version given")
	}
	d := data{Options: o, Template: t.Name, Summary: t.Summary, SDKModule: SDKModule, GoVersion: GoVersion, Try: t.try(o.Name)}
	for _, p := range t.parts {
		d.Components = append(d.Components, component{Dir: p.dir, Kind: string(p.kind), About: p.about, Imports: p.imports, Ext: p.ext})
		d.Deps = d.Deps || p.imports
		d.HasExt = d.HasExt || p.ext
	}
	var out []File
	for _, p := range t.parts {
		files, err := renderDir(p.src, p.dir, d)
		if err != nil {
			return nil, err
		}
		out = append(out, files...)
	}
	top, err := renderDir("project", "", d)
	if err != nil {
		return nil, err
	}
	out = append(out, top...)
	deps, err := t.deps(out)
	if err != nil {
		return nil, err
	}
	out = append(out, deps...)
	slices.SortFunc(out, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	for i := 1; i < len(out); i++ {
		if out[i].Path == out[i-1].Path {
			return nil, fmt.Errorf("template %s: file %s rendered twice", t.Name, out[i].Path)
		}
	}
	return out, nil
}

// try returns the commands the project's README suggests, with the server
// running.
func (t Template) try(name string) []string {
	submit := "obelisk client execution submit --follow "
	switch t.Name {
	case "activity":
		return []string{submit + name + `:activity/greeter.greet '["world"]'    # result: {"ok":"Hello, world!"}`}
	case "workflow":
		return []string{
			submit + name + `:workflow/workflow.greet-all '[["Alice", "Bob"]]'`,
			submit + name + `:workflow/workflow.greet-later '["Carol", 5000]'`,
		}
	case "webhook":
		return []string{"curl http://127.0.0.1:9090/hello/world    # Hello, world!"}
	case "blank-workflow":
		return []string{submit + name + `:workflow/workflow.run '[]'    # result: {"ok":"done"}`}
	}
	return nil
}

// renderDir renders the files under files/src into the project folder dir.
func renderDir(src, dir string, d data) ([]File, error) {
	root := path.Join("files", src)
	var out []File
	err := fs.WalkDir(sources, root, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		text, err := sources.ReadFile(p)
		if err != nil {
			return err
		}
		rel := strings.TrimSuffix(strings.TrimPrefix(p, root+"/"), ".tmpl")
		if rel == "gitignore" {
			rel = ".gitignore" // embed leaves out dot files
		}
		tmpl, err := template.New(p).Option("missingkey=error").Funcs(template.FuncMap{"gomodpath": goModPath}).Parse(string(text))
		if err != nil {
			return fmt.Errorf("template %s: %w", p, err)
		}
		var b bytes.Buffer
		if err := tmpl.Execute(&b, d); err != nil {
			return fmt.Errorf("template %s: %w", p, err)
		}
		data := b.Bytes()
		if strings.HasSuffix(rel, ".go") {
			if data, err = format.Source(data); err != nil {
				return fmt.Errorf("template %s: the Go code it renders: %w", p, err)
			}
		}
		out = append(out, File{Path: path.Join(dir, rel), Data: data})
		return nil
	})
	return out, err
}

// deps returns what the parts that call the activity hold of it, generated
// from its rendered WIT: its package under their wit/deps/ and, for join sets,
// the extension packages, obelisk:types and Go wrappers. A part that imports
// nothing still gets obelisk:types, for the types its own WIT may use.
func (t Template) deps(rendered []File) ([]File, error) {
	var actWIT []wit.File
	for _, f := range rendered {
		if rest, ok := strings.CutPrefix(f.Path, activityPart.dir+"/wit/"); ok {
			actWIT = append(actWIT, wit.File{Path: rest, Text: string(f.Data)})
		}
	}
	var out []File
	add := func(dir string, files []wit.File) {
		for _, f := range files {
			out = append(out, File{Path: path.Join(dir, "wit/deps", f.Path), Data: []byte(f.Text)})
		}
	}
	for _, p := range t.parts {
		if p.kind == actors.ActivityWasm {
			continue
		}
		if !p.imports {
			add(p.dir, wit.TypesPackage())
			continue
		}
		r, err := wit.Parse(actWIT)
		if err != nil {
			return nil, fmt.Errorf("template %s: the activity's WIT: %w", t.Name, err)
		}
		pkgDir := r.Main().Name.Namespace + "-" + r.Main().Name.Name // as `make deps` copies it
		for _, f := range actWIT {
			out = append(out, File{Path: path.Join(p.dir, "wit/deps", pkgDir, f.Path), Data: []byte(f.Text)})
		}
		if !p.ext {
			continue
		}
		ext, err := wit.GenerateExtensions(r, nil)
		if err != nil {
			return nil, fmt.Errorf("template %s: extensions of the activity: %w", t.Name, err)
		}
		add(p.dir, append(wit.TypesPackage(), ext...))
		src, err := gogen.Generate(r, gogen.Options{Package: "greeter"})
		if err != nil {
			return nil, fmt.Errorf("template %s: Go wrappers of the activity: %w", t.Name, err)
		}
		out = append(out, File{Path: path.Join(p.dir, "internal/greeter/greeter_gen.go"), Data: src})
	}
	return out, nil
}

// goModPath returns a folder as go.mod writes it: quoted (a Go string) when it
// holds anything besides what a path without spaces needs.
func goModPath(p string) string {
	for _, c := range p {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("/._~+-:@", c)) {
			return strconv.Quote(p)
		}
	}
	return p
}

// CheckName checks a project name: lowercase words of ASCII letters and
// digits, each starting with a letter, joined by single dashes (a WIT
// identifier, which is also fine in a file name and a Go module path).
func CheckName(name string) error {
	if name == "" {
		return fmt.Errorf("project name is empty")
	}
	for _, w := range strings.Split(name, "-") {
		ok := w != "" && w[0] >= 'a' && w[0] <= 'z'
		for _, c := range []byte(w) {
			ok = ok && (c >= 'a' && c <= 'z' || c >= '0' && c <= '9')
		}
		if !ok {
			return fmt.Errorf("project name %q: want lowercase words of letters and digits, each starting with a letter, joined by '-' (e.g. my-project)", name)
		}
	}
	return nil
}

// checkModule checks the characters of a Go module path; the go command
// checks the rest when it reads go.mod.
func checkModule(m string) error {
	ok := m != "" && !strings.HasPrefix(m, "/") && !strings.HasSuffix(m, "/") && !strings.Contains(m, "//")
	for _, c := range m {
		ok = ok && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-._~/", c))
	}
	if !ok {
		return fmt.Errorf("Go module path %q: want elements of letters, digits and -._~ joined by '/' (e.g. example.com/my-project)", m)
	}
	return nil
}
