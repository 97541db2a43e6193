package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/obelisk-go/obelisk/cmd/obelisk/internal/templates"
)

func projectCmd() *cobra.Command {
	var (
		tmplName, name, module, sdkVersion, sdkReplace string
		list, force                                    bool
	)
	cmd := &cobra.Command{
		Use:   "project --template NAME DIR | --list",
		Short: "Create a project of Go components from a template: WIT, code, tests, Makefile, obelisk.toml",
		Long: `Create a project in DIR from a template (--list shows them): Go components
written against the Obelisk SDK, their WIT folders, tests running on the SDK's
TestHost, a Makefile whose ` + "`make`" + ` builds them into .wasm files with their WIT
embedded, and an obelisk.toml deploying them:

  obelisk generate project --template workflow hello
  cd hello && make && obelisk server run --config obelisk.toml

The project name (--name, default DIR's base name) is the namespace of its WIT
packages; the Go module path (--module) defaults to it.

go.mod requires the SDK module ` + templates.SDKModule + ` at the
version this obelisk was built from (--sdk-version sets another). An obelisk
built from a checkout has no published version: give the checkout with
--sdk-replace PATH, and go.mod replaces the module with that folder.

DIR must be empty or absent; --force writes into a non-empty DIR, overwriting
the files of the project that are there.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if list {
				return cobra.NoArgs(cmd, args)
			}
			return cobra.ExactArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if list {
				return printTemplates(cmd.OutOrStdout())
			}
			if tmplName == "" {
				return &ExitError{Code: 2, Err: fmt.Errorf("--template is required; the templates are: %s", strings.Join(templates.Names(), ", "))}
			}
			t, err := templates.Lookup(tmplName)
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			dir := args[0]
			if err := checkTarget(dir, force); err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			if name == "" {
				abs, err := filepath.Abs(dir)
				if err != nil {
					return &ExitError{Code: 2, Err: err}
				}
				name = filepath.Base(abs)
				if err := templates.CheckName(name); err != nil {
					return &ExitError{Code: 2, Err: fmt.Errorf("%w; or give one with --name", err)}
				}
			}
			if module == "" {
				module = name
			}
			if sdkVersion != "" && (!strings.HasPrefix(sdkVersion, "v") || strings.ContainsAny(sdkVersion, " \t\n")) {
				return &ExitError{Code: 2, Err: fmt.Errorf("--sdk-version %q: want a module version such as v1.2.3", sdkVersion)}
			}
			o := templates.Options{Name: name, Module: module, SDKVersion: sdkVersion}
			if sdkReplace != "" {
				if o.SDKReplace, err = checkSDKCheckout(sdkReplace); err != nil {
					return &ExitError{Code: 2, Err: err}
				}
			}
			if o.SDKVersion == "" {
				o.SDKVersion = buildVersion()
			}
			if o.SDKVersion == "" {
				if o.SDKReplace == "" {
					return &ExitError{Code: 2, Err: errors.New("this obelisk was built from a checkout, not a published version, so it cannot tell which version of the SDK to require: " +
						"give the checkout with --sdk-replace PATH (or a published version with --sdk-version)")}
				}
				o.SDKVersion = templates.PlaceholderVersion
			}
			files, err := t.Render(o)
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			for _, f := range files {
				p := filepath.Join(dir, filepath.FromSlash(f.Path))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					return &ExitError{Code: 1, Err: fmt.Errorf("create %s: %w", filepath.Dir(p), err)}
				}
				if err := os.WriteFile(p, f.Data, 0o644); err != nil {
					return &ExitError{Code: 1, Err: fmt.Errorf("write %s: %w", p, err)}
				}
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "Created %s (template %s, %d files) in %s. Next:\n", name, t.Name, len(files), dir)
			fmt.Fprintf(w, "  cd %s\n  make        # builds build/*.wasm (OBELISK=path/to/obelisk if it is not on PATH)\n  make test\n  obelisk server run --config obelisk.toml\n", dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&tmplName, "template", "", "the template (see --list)")
	cmd.Flags().BoolVar(&list, "list", false, "list the templates, one per line, its name first")
	cmd.Flags().StringVar(&name, "name", "", "project name, the namespace of its WIT packages (default: DIR's base name)")
	cmd.Flags().StringVar(&module, "module", "", "Go module path (default: the project name)")
	cmd.Flags().StringVar(&sdkVersion, "sdk-version", "", "version of "+templates.SDKModule+" to require (default: this obelisk's)")
	cmd.Flags().StringVar(&sdkReplace, "sdk-replace", "", "a checkout of "+templates.SDKModule+" to build the SDK from (a replace in go.mod)")
	cmd.Flags().BoolVar(&force, "force", false, "write into DIR even if it is not empty")
	return cmd
}

// printTemplates writes one line per template: its name, two spaces and its
// summary. Not aligned in columns: a script takes the first field.
func printTemplates(w io.Writer) error {
	for _, t := range templates.List() {
		if _, err := fmt.Fprintf(w, "%s  %s\n", t.Name, t.Summary); err != nil {
			return err
		}
	}
	return nil
}

// buildVersion returns the version of the SDK module this binary was built
// as, when it is one the module proxy may serve: `go install
// github.com/obelisk-go/obelisk/cmd/obelisk@v1.2.3` records v1.2.3. A build
// in a checkout records "(devel)", or with VCS stamping a pseudo-version of a
// commit, "+dirty" when there were changes: "" for those, which are not
// published.
func buildVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	return moduleVersion(info.Main)
}

// moduleVersion is buildVersion of the main module m.
func moduleVersion(m debug.Module) string {
	v := m.Version
	if m.Path != templates.SDKModule || m.Replace != nil || !strings.HasPrefix(v, "v") || strings.Contains(v, "+") {
		return ""
	}
	return v
}

// checkSDKCheckout checks that dir is a checkout of the SDK module and returns
// its absolute path.
func checkSDKCheckout(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("--sdk-replace %s: %w", dir, err)
	}
	f, err := os.Open(filepath.Join(abs, "go.mod"))
	if err != nil {
		return "", fmt.Errorf("--sdk-replace %s: not a checkout of %s: %w", dir, templates.SDKModule, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if mod, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			if mod = strings.Trim(strings.TrimSpace(mod), `"`); mod != templates.SDKModule {
				return "", fmt.Errorf("--sdk-replace %s: its go.mod is of module %s, not %s", dir, mod, templates.SDKModule)
			}
			return abs, nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("--sdk-replace %s: read go.mod: %w", dir, err)
	}
	return "", fmt.Errorf("--sdk-replace %s: its go.mod names no module", dir)
}

// checkTarget refuses a DIR that exists and is not an empty folder, unless
// force (then only a folder).
func checkTarget(dir string, force bool) error {
	st, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s exists and is not a folder", dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(entries) > 0 && !force {
		holds := entries[0].Name()
		if len(entries) > 1 {
			holds += ", ..."
		}
		return fmt.Errorf("%s is not empty (it holds %s): give an empty or new folder, or --force to write the project's files over what is there", dir, holds)
	}
	return nil
}
