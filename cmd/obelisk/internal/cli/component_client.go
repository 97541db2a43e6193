package cli

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
)

// getComponent asks the API for one component (by name or ID).
func getComponent(cmd *cobra.Command, o *clientOpts, name string) (*pb.GetComponentResponse, error) {
	if strings.TrimSpace(name) == "" {
		return nil, usage(fmt.Errorf("the component name is empty"))
	}
	resp, err := o.components().GetComponent(cmd.Context(), connect.NewRequest(&pb.GetComponentRequest{Component: name}))
	if err != nil {
		return nil, apiErr(err)
	}
	return resp.Msg, nil
}

// componentView is a component as `component inspect` and `component wit` show it: its
// description (as the API's GetComponent gives it), and where it was found.
type componentView struct {
	*pb.GetComponentResponse
	// Source is where it was found: "server" (deployed on the server the API answers
	// for), "file", "store" (the component store of a data directory) or "oci" (a
	// registry).
	Source string
	// Reference and Digest: an OCI artifact's reference and manifest digest.
	Reference, Digest string
}

// componentLookup finds the component a command shows.
type componentLookup func(cmd *cobra.Command, target string) (*componentView, error)

// serverLookup finds a deployed component by name or ID (the client commands).
func serverLookup(o *clientOpts) componentLookup {
	return func(cmd *cobra.Command, name string) (*componentView, error) {
		c, err := getComponent(cmd, o, name)
		if err != nil {
			return nil, err
		}
		return &componentView{GetComponentResponse: c, Source: "server"}, nil
	}
}

const witLong = `With several files, each is preceded by a "// ==> PATH <==" line. With --out DIR, the
files are written under DIR instead and their paths printed. With --json:
{"component_id", "name", "source", "reference", "digest", "files": [{"path", "text"}]}
(reference and digest: for an OCI artifact).`

func componentWitCmd(o *clientOpts, lookup componentLookup, use, short, long string) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long + "\n\n" + witLong,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := lookup(cmd, args[0])
			if err != nil {
				return err
			}
			return printWIT(cmd.OutOrStdout(), c, out, o.json)
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "", "write the files under this folder")
	return cmd
}

// printWIT prints a component's WIT files, or writes them under out.
func printWIT(w io.Writer, c *componentView, out string, asJSON bool) error {
	if out != "" {
		for _, f := range c.WitFiles {
			p := filepath.Join(out, filepath.FromSlash(f.Path))
			if !filepath.IsLocal(filepath.FromSlash(f.Path)) {
				return usage(fmt.Errorf("refusing to write %q outside %s", f.Path, out))
			}
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return usage(err)
			}
			if err := os.WriteFile(p, []byte(f.Text), 0o644); err != nil {
				return usage(err)
			}
			if !asJSON {
				fmt.Fprintln(w, p)
			}
		}
	}
	if asJSON {
		type file struct {
			Path string `json:"path"`
			Text string `json:"text"`
		}
		doc := struct {
			ComponentID string `json:"component_id"`
			Name        string `json:"name"`
			Source      string `json:"source"`
			Reference   string `json:"reference,omitempty"`
			Digest      string `json:"digest,omitempty"`
			Files       []file `json:"files"`
		}{ComponentID: c.ComponentId, Name: c.Name, Source: c.Source, Reference: c.Reference, Digest: c.Digest, Files: []file{}}
		for _, f := range c.WitFiles {
			doc.Files = append(doc.Files, file{f.Path, f.Text})
		}
		return writeJSON(w, doc)
	}
	if out != "" {
		return nil
	}
	for i, f := range c.WitFiles {
		if len(c.WitFiles) > 1 {
			if i > 0 {
				fmt.Fprintln(w)
			}
			fmt.Fprintf(w, "// ==> %s <==\n", f.Path)
		}
		fmt.Fprint(w, f.Text)
		if !strings.HasSuffix(f.Text, "\n") {
			fmt.Fprintln(w)
		}
	}
	return nil
}

// functionDoc is a function in the --json document of component inspect.
type functionDoc struct {
	FFQN         string          `json:"ffqn"`
	Signature    string          `json:"signature"`
	Submittable  bool            `json:"submittable"`
	Params       []paramDoc      `json:"params"`
	Result       string          `json:"result,omitempty"`
	ParamsSchema json.RawMessage `json:"params_schema"`
	ResultSchema json.RawMessage `json:"result_schema"`
}

type paramDoc struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

func functionDocs(fns []*pb.FunctionDetail) []functionDoc {
	out := []functionDoc{}
	for _, f := range fns {
		d := functionDoc{FFQN: f.Ffqn, Signature: f.Signature, Submittable: f.Submittable, Params: []paramDoc{}, Result: f.Result,
			ParamsSchema: jsonOrNull(f.ParamsSchemaJson), ResultSchema: jsonOrNull(f.ResultSchemaJson)}
		for _, p := range f.Params {
			d.Params = append(d.Params, paramDoc{p.Name, p.Type})
		}
		out = append(out, d)
	}
	return out
}

func jsonOrNull(s string) json.RawMessage {
	if !json.Valid([]byte(s)) {
		return json.RawMessage("null")
	}
	return json.RawMessage(s)
}

const inspectLong = `Each function is listed with its parameters and their WIT types, its result type, and
the JSON Schema (draft 2020-12) of its parameters: the JSON array submit takes. With
--json: {"component_id", "name", "type", "source", "reference", "digest", "exports":
[F], "imports": [F]}, F being {"ffqn", "signature", "submittable", "params": [{"name",
"type"}], "result", "params_schema", "result_schema"} (reference and digest: for an
OCI artifact).`

func componentInspectCmd(o *clientOpts, lookup componentLookup, use, short, long string) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long + "\n\n" + inspectLong,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := lookup(cmd, args[0])
			if err != nil {
				return err
			}
			return printInspect(cmd.OutOrStdout(), c, o.json)
		},
	}
}

// printInspect prints a component's ID and functions.
func printInspect(w io.Writer, c *componentView, asJSON bool) error {
	exports, imports := functionDocs(c.Exports), functionDocs(c.Imports)
	if asJSON {
		return writeJSON(w, struct {
			ComponentID string        `json:"component_id"`
			Name        string        `json:"name"`
			Type        string        `json:"type"`
			Source      string        `json:"source"`
			Reference   string        `json:"reference,omitempty"`
			Digest      string        `json:"digest,omitempty"`
			Exports     []functionDoc `json:"exports"`
			Imports     []functionDoc `json:"imports"`
		}{c.ComponentId, c.Name, c.Type, c.Source, c.Reference, c.Digest, exports, imports})
	}
	fmt.Fprintf(w, "%s %s\n", cmp.Or(c.Type, "component"), c.ComponentId)
	if c.Reference != "" {
		fmt.Fprintf(w, "oci %s digest %s\n", c.Reference, c.Digest)
	}
	for _, group := range []struct {
		name string
		fns  []functionDoc
	}{{"exports", exports}, {"imports", imports}} {
		if len(group.fns) == 0 {
			continue
		}
		fmt.Fprintf(w, "%s:\n", group.name)
		for _, f := range group.fns {
			fmt.Fprintf(w, "  %s: %s\n", f.FFQN, f.Signature)
			for i, p := range f.Params {
				fmt.Fprintf(w, "    param %d %s: %s\n", i, p.Name, p.Type)
			}
			if f.Result != "" {
				fmt.Fprintf(w, "    result: %s\n", f.Result)
			}
			fmt.Fprintf(w, "    params schema: %s\n", f.ParamsSchema)
		}
	}
	return nil
}
