package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/obelisk-go/obelisk/wasmhost/wit"
)

func componentCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "component", Short: "Work with component files locally"}
	var out string
	embed := &cobra.Command{
		Use:   "embed-wit WIT_DIR IN.wasm",
		Short: "Embed a WIT folder into a built .wasm as its obelisk-wit custom section",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			files, err := wit.LoadDir(args[0])
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			if _, err := wit.Parse(files); err != nil {
				return &ExitError{Code: 2, Err: fmt.Errorf("WIT in %s: %w", args[0], err)}
			}
			wasm, err := os.ReadFile(args[1])
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			embedded, err := wit.EmbedInWasm(wasm, files)
			if err != nil {
				return &ExitError{Code: 2, Err: fmt.Errorf("%s: %w", args[1], err)}
			}
			if out == "" {
				out = args[1]
			}
			if err := os.WriteFile(out, embedded, 0o644); err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			return nil
		},
	}
	embed.Flags().StringVarP(&out, "output", "o", "", "output file (default: overwrite IN.wasm)")
	cmd.AddCommand(embed)
	return cmd
}
