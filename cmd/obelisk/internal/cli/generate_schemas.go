package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/obelisk-go/obelisk/api/schemas"
)

func schemasCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "schemas --out DIR",
		Short: "Generate the JSON Schemas of the API, the event views and the execution state (docs/schemas)",
		Long: `Generate the JSON Schemas (draft 2020-12) of every JSON request and response of the
web API, of the details of every kind of event and of an execution's state, from the
code (the protobuf descriptors and the Go types of the event views), into DIR; schema
files in DIR that are no longer generated are removed. The files that changed are
printed. ` + "`make schemas`" + ` runs it on docs/schemas.`,
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return &ExitError{Code: 2, Err: fmt.Errorf("--out DIR is required")}
			}
			written, err := schemas.Write(out)
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			for _, p := range written {
				fmt.Fprintln(cmd.OutOrStdout(), p)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "", "output folder (docs/schemas in the repository)")
	return cmd
}
