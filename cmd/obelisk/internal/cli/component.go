package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/obelisk-go/obelisk/wasmhost/wit"
)

// emptyModule is the smallest valid core module: its header, no sections. A WIT-only
// component is it with the WIT embedded.
const emptyModule = "\x00asm\x01\x00\x00\x00"

func componentCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "component", Short: "Work with component files, the component store and OCI registries"}
	l := &localLookup{client: &clientOpts{}}
	inspect := componentInspectCmd(l.client, l.lookup, "inspect TARGET",
		"List a component's exports and imports with their parameter types and JSON Schemas (a file, a component ID or an OCI reference)",
		"List the functions a component exports and imports, and its component ID.\n\n"+localLong)
	l.flags(inspect)
	lw := &localLookup{client: &clientOpts{}}
	witCmd := componentWitCmd(lw.client, lw.lookup, "wit TARGET",
		"Print a component's WIT (a file, a component ID or an OCI reference)",
		"Print the WIT files of a component: its own package (the files at the top level of\nits WIT folder) and its dependencies (deps/...).\n\n"+localLong)
	lw.flags(witCmd)
	cmd.AddCommand(embedWitCmd(), componentPushCmd(), componentUpdateCmd(), inspect, witCmd)
	return cmd
}

func embedWitCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "embed-wit WIT_DIR [IN.wasm]",
		Short: "Embed a WIT folder into a built .wasm as its obelisk-wit custom section, or make a WIT-only .wasm",
		Long: `Embed the WIT folder WIT_DIR into the module IN.wasm (overwritten unless -o), as its
obelisk-wit custom section: what the engine reads a component's interface from.

Without IN.wasm, -o OUT.wasm is a WIT-only file: a module with no code, carrying the
WIT alone. Such a file declares an interface without implementing it: it deploys an
[[activity_stub]] (location.path or, pushed, location.oci), and push and inspect take
it like any component.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			files, err := wit.LoadDir(args[0])
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			if _, err := wit.Parse(files); err != nil {
				return &ExitError{Code: 2, Err: fmt.Errorf("WIT in %s: %w", args[0], err)}
			}
			wasm, what := []byte(emptyModule), "a WIT-only module"
			if len(args) == 2 {
				if wasm, err = os.ReadFile(args[1]); err != nil {
					return &ExitError{Code: 2, Err: err}
				}
				what = args[1]
				if out == "" {
					out = args[1]
				}
			} else if out == "" {
				return &ExitError{Code: 2, Err: fmt.Errorf("a WIT-only module (no IN.wasm) needs -o OUT.wasm")}
			}
			embedded, err := wit.EmbedInWasm(wasm, files)
			if err != nil {
				return &ExitError{Code: 2, Err: fmt.Errorf("%s: %w", what, err)}
			}
			if err := os.WriteFile(out, embedded, 0o644); err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "output file (default: overwrite IN.wasm; required without IN.wasm)")
	return cmd
}
