package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/obelisk-go/obelisk/wasmhost/wit"
	"github.com/obelisk-go/obelisk/wasmhost/wit/gogen"
)

func goBindingsCmd() *cobra.Command {
	var out, pkg string
	cmd := &cobra.Command{
		Use:   "go-bindings DIR --package NAME [INTERFACE...]",
		Short: "Generate typed Go wrappers (Go SDK) for calling a component's exports",
		Long: `Generate a Go source file of typed wrappers for the functions of the interfaces
exported by the package of the WIT folder DIR, or of only the INTERFACEs named
(ns:pkg/ifc@version, or without the version). For each function f there are F
(obelisk.Call), FSubmit, FAwaitNext, FGet, FSchedule and the constant FFQNF; with
several interfaces the names are prefixed with the interface's name (FiboFibo).
Records become Go structs; see package wasmhost/wit/gogen for the type mapping.

The file is written to --out, or to the standard output.`,
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
			src, err := gogen.Generate(r, gogen.Options{Package: pkg, Interfaces: names})
			if err != nil {
				return &ExitError{Code: 2, Err: fmt.Errorf("WIT in %s: %w", dir, err)}
			}
			if out == "" {
				_, err := cmd.OutOrStdout().Write(src)
				return err
			}
			if err := os.WriteFile(out, src, 0o644); err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			fmt.Fprintln(cmd.OutOrStdout(), out)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "", "output file (default: standard output)")
	cmd.Flags().StringVar(&pkg, "package", "", "Go package name of the generated file (required)")
	_ = cmd.MarkFlagRequired("package")
	return cmd
}
