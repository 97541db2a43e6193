package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/obelisk-go/obelisk/wasmhost/wit"
)

func generateCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "generate", Short: "Generate files for building components"}
	cmd.AddCommand(witExtensionsCmd(), schemasCmd(), goBindingsCmd(), projectCmd())
	return cmd
}

func witExtensionsCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "wit-extensions DIR [INTERFACE...]",
		Short: "Generate the WIT extension packages (-obelisk-ext, -obelisk-schedule, -obelisk-stub) of a component's exports",
		Long: `Generate the WIT extension packages of the interfaces exported by the package of
the WIT folder DIR, or of only the INTERFACEs named (ns:pkg/ifc@version, or without
the version): ns:pkg-obelisk-ext (f-submit, f-await-next, f-get), ns:pkg-obelisk-schedule
(f-schedule) and ns:pkg-obelisk-stub (f-stub), one folder each, plus the obelisk:types
package they use. A workflow imports them from its WIT folder's deps/, next to the
component's own package.

Files are written under OUTDIR (default DIR/deps), overwriting earlier ones; the
paths written are printed.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, names := args[0], args[1:]
			files, err := wit.LoadDir(dir)
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			r, err := parseForGenerate(files)
			if err != nil {
				return &ExitError{Code: 2, Err: fmt.Errorf("WIT in %s: %w", dir, err)}
			}
			gen, err := wit.GenerateExtensions(r, names)
			if err != nil {
				return &ExitError{Code: 2, Err: fmt.Errorf("WIT in %s: %w", dir, err)}
			}
			if out == "" {
				out = filepath.Join(dir, "deps")
			}
			for _, f := range append(wit.TypesPackage(), gen...) {
				p := filepath.Join(out, filepath.FromSlash(f.Path))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					return &ExitError{Code: 2, Err: err}
				}
				if err := os.WriteFile(p, []byte(f.Text), 0o644); err != nil {
					return &ExitError{Code: 2, Err: err}
				}
				fmt.Fprintln(cmd.OutOrStdout(), p)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "", "output folder (default: DIR/deps)")
	return cmd
}

// parseForGenerate parses a WIT folder. When that fails and the folder holds
// generated files, it tries again without them: a rerun writes into DIR/deps,
// where extensions generated from an earlier version of the interfaces may no
// longer parse. The first error is the one reported.
func parseForGenerate(files []wit.File) (*wit.Resolve, error) {
	r, err := wit.Parse(files)
	if err == nil {
		return r, nil
	}
	var written []wit.File
	for _, f := range files {
		if !strings.HasPrefix(f.Text, wit.GeneratedHeader) {
			written = append(written, f)
		}
	}
	if len(written) == len(files) || len(written) == 0 {
		return nil, err
	}
	if r, err2 := wit.Parse(written); err2 == nil {
		return r, nil
	}
	return nil, err
}
