// Package cli defines the obelisk command line (cobra): `server run`, `verify` (also
// `server verify`), the `client` commands that talk to the API, the `component`
// commands (embed-wit, push and update for OCI registries, inspect and wit of files,
// stored versions and OCI references) and `generate wit-extensions`.
package cli

import (
	"github.com/spf13/cobra"
)

// ExitError makes the process exit with Code; Err, if set, is printed first.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return "exit status"
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// Root returns the obelisk command tree.
func Root() *cobra.Command {
	root := &cobra.Command{
		Use:           "obelisk",
		Short:         "A deterministic, durable workflow engine for WebAssembly",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &ExitError{Code: 2, Err: err}
	})
	root.AddCommand(serverCmd(), clientCmd(), componentCmd(), generateCmd(), verifyCmd("verify"))
	root.AddCommand(testCmd())
	return root
}
