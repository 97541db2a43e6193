package cli

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/obelisk-go/obelisk/auth"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
	"github.com/obelisk-go/obelisk/proto/obelisk/v1/obeliskv1connect"
)

// DefaultAPIURL is where client commands find the API unless --api-url or
// OBELISK_API_URL says otherwise.
const DefaultAPIURL = "http://127.0.0.1:5005"

type clientOpts struct {
	apiURL string
	json   bool
	// token is the API's bearer token (--token, OBELISK_API_TOKEN); "" sends none.
	token string
	// caCert is a PEM file of the CA certificate(s) an https API's certificate is
	// checked against besides the system's (--ca-cert, OBELISK_API_CA_CERT).
	caCert string
	http   *http.Client // built by httpClient
}

// connectionFlags registers --api-url (described by apiURLHelp), --token and --ca-cert,
// with their defaults from the environment.
func (o *clientOpts) connectionFlags(flags *pflag.FlagSet, apiURLHelp string) {
	flags.StringVar(&o.apiURL, "api-url", cmp.Or(os.Getenv("OBELISK_API_URL"), DefaultAPIURL), apiURLHelp)
	// No default from the environment: --help would print the token.
	flags.StringVar(&o.token, "token", "", "the API's bearer token (default: env OBELISK_API_TOKEN)")
	flags.StringVar(&o.caCert, "ca-cert", os.Getenv("OBELISK_API_CA_CERT"), "PEM file of the CA that signed an https API's certificate, trusted besides the system's (env OBELISK_API_CA_CERT)")
}

// httpClient is the HTTP client of the API calls: with the token and the CA of the flags.
func (o *clientOpts) httpClient() (*http.Client, error) {
	if o.token == "" {
		o.token = os.Getenv("OBELISK_API_TOKEN")
	}
	if o.http != nil {
		return o.http, nil
	}
	transport := http.DefaultTransport
	if o.caCert != "" {
		pem, err := os.ReadFile(o.caCert)
		if err != nil {
			return nil, fmt.Errorf("--ca-cert: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool() // none on this system: the CA file alone
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-cert %s: no PEM certificate in it", o.caCert)
		}
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		transport = t
	}
	if o.token != "" {
		transport = auth.WithToken(transport, o.token)
	}
	o.http = &http.Client{Transport: transport}
	return o.http, nil
}

// client is httpClient for the service constructors, which take no error: a CA file that
// cannot be read was reported by the client command's PersistentPreRunE already, and
// otherwise fails every call with its error.
func (o *clientOpts) client() connect.HTTPClient {
	c, err := o.httpClient()
	if err != nil {
		return failingClient{err}
	}
	return c
}

type failingClient struct{ err error }

func (f failingClient) Do(*http.Request) (*http.Response, error) { return nil, f.err }

func (o *clientOpts) executions() obeliskv1connect.ExecutionServiceClient {
	return obeliskv1connect.NewExecutionServiceClient(o.client(), o.apiURL)
}

func (o *clientOpts) components() obeliskv1connect.ComponentServiceClient {
	return obeliskv1connect.NewComponentServiceClient(o.client(), o.apiURL)
}

func clientCmd() *cobra.Command {
	o := &clientOpts{}
	cmd := &cobra.Command{Use: "client", Short: "Talk to a running engine through its API",
		PersistentPreRunE: func(*cobra.Command, []string) error {
			if _, err := o.httpClient(); err != nil {
				return usage(err)
			}
			return nil
		},
	}
	o.connectionFlags(cmd.PersistentFlags(), "API address, http:// or https:// (env OBELISK_API_URL)")
	cmd.PersistentFlags().BoolVar(&o.json, "json", false, "print one machine-readable JSON document")
	exec := &cobra.Command{Use: "execution", Short: "Submit, inspect and control executions"}
	exec.AddCommand(submitCmd(o), getCmd(o), eventsCmd(o), listCmd(o),
		cancelCmd(o), pauseCmd(o), unpauseCmd(o), stubCmd(o), logsCmd(o), deleteCmd(o), retentionCmd(o))
	exec.AddCommand(replayCmd(o), upgradeCmd(o))
	exec.AddCommand(forkCmd(o))
	comp := &cobra.Command{Use: "component", Short: "Inspect deployed components"}
	comp.AddCommand(componentListCmd(o),
		componentInspectCmd(o, serverLookup(o), "inspect COMPONENT", "List a deployed component's exports and imports with their parameter types and JSON Schemas",
			"List the functions a deployed component exports and imports (COMPONENT: its name or ID).\n`obelisk component inspect` also takes a file, a stored version or an OCI reference."),
		componentWitCmd(o, serverLookup(o), "wit COMPONENT", "Print a deployed component's WIT (COMPONENT: its name or ID)",
			"Print the WIT files of a deployed component: its own package (the files at the top\nlevel of its WIT folder) and its dependencies (deps/...). `obelisk component wit` also\ntakes a file, a stored version or an OCI reference."))
	cmd.AddCommand(exec, comp, eventStreamCmd(o), scheduleCmd(o), clientVerifyCmd(o))
	cmd.AddCommand(clusterCmd(o))
	return cmd
}

// usage wraps an error as a usage/connection failure (exit status 2).
func usage(err error) error { return &ExitError{Code: 2, Err: err} }

func apiErr(err error) error {
	var ce *connect.Error
	if errors.As(err, &ce) {
		if ce.Code() == connect.CodeUnavailable || ce.Code() == connect.CodeUnknown && strings.Contains(ce.Message(), "connect") {
			return usage(fmt.Errorf("cannot reach the API: %s", ce.Message()))
		}
		switch ce.Code() {
		case connect.CodeUnauthenticated:
			return usage(fmt.Errorf("unauthenticated: %s", ce.Message()))
		case connect.CodePermissionDenied:
			return usage(fmt.Errorf("permission denied: %s", ce.Message()))
		}
		return usage(fmt.Errorf("%s: %s", ce.Code(), ce.Message()))
	}
	return usage(err)
}

func submitCmd(o *clientOpts) *cobra.Command {
	var follow bool
	var id, queue, component string
	var maxRetries uint32
	var retryBackoff time.Duration
	var retryJitter float64
	var deadline time.Duration
	cmd := &cobra.Command{
		Use:   "submit FFQN [PARAMS_JSON]",
		Short: "Submit a top-level execution; PARAMS_JSON is a JSON array (default [])",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			params := "[]"
			if len(args) == 2 {
				params = args[1]
			}
			var probe []json.RawMessage
			if err := json.Unmarshal([]byte(params), &probe); err != nil {
				return usage(fmt.Errorf("PARAMS_JSON must be a JSON array: %w", err))
			}
			req := &pb.SubmitRequest{Ffqn: args[0], ParamsJson: params, ExecutionId: id, Queue: queue, Component: component}
			if f := cmd.Flags(); f.Changed("max-retries") || f.Changed("retry-backoff") || f.Changed("retry-jitter") {
				req.Retry = &pb.RetryPolicy{}
				if f.Changed("max-retries") {
					req.Retry.MaxRetries = &maxRetries
				}
				if f.Changed("retry-backoff") {
					req.Retry.RetryExpBackoff = retryBackoff.String()
				}
				if f.Changed("retry-jitter") {
					req.Retry.RetryJitter = &retryJitter
				}
			}
			if cmd.Flags().Changed("deadline") {
				if deadline <= 0 {
					return usage(fmt.Errorf("--deadline %s: want a positive duration, e.g. 1s or 2m30s", deadline))
				}
				req.Deadline = deadline.String()
			}
			resp, err := o.executions().Submit(cmd.Context(), connect.NewRequest(req))
			if err != nil {
				return apiErr(err)
			}
			return printStatus(cmd, o, resp.Msg.ExecutionId, follow)
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "wait for the result")
	cmd.Flags().StringVarP(&id, "execution-id", "e", "", "use this execution ID (E_<ULID>)")
	cmd.Flags().StringVar(&queue, "queue", "", "submit to this execution queue (default: the queue of the function's component)")
	cmd.Flags().StringVar(&component, "component", "", "run it on this deployed component, by name or ID (default: the newest deployed component exporting FFQN)")
	cmd.Flags().Uint32Var(&maxRetries, "max-retries", 0, "retries after the first attempt, for this execution (default: its component's max_retries)")
	cmd.Flags().DurationVar(&retryBackoff, "retry-backoff", 0, "the first retry's delay, doubled for each further one, for this execution (default: its component's retry_exp_backoff)")
	cmd.Flags().Float64Var(&retryJitter, "retry-jitter", 0, "scale each retry's delay by a factor from 1-J to 1+J, 0 <= J <= 1 (default: its component's retry_jitter)")
	cmd.Flags().DurationVar(&deadline, "deadline", 0, "finish it (and its children, which inherit it) as deadline_exceeded if it is still open this long from now, e.g. 1s (default: none)")
	return cmd
}

func getCmd(o *clientOpts) *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "get EXECUTION_ID",
		Short: "Show an execution's status and, once finished, its result",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return printStatus(cmd, o, args[0], follow)
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "wait for the result")
	return cmd
}

// statusDoc is the --json document of submit and get (contract).
type statusDoc struct {
	ExecutionID     string          `json:"execution_id"`
	Status          string          `json:"status"`
	Paused          bool            `json:"paused,omitempty"`
	CancelRequested bool            `json:"cancel_requested,omitempty"`
	LastFailure     string          `json:"last_failure,omitempty"` // why the last attempt failed or timed out
	Result          json.RawMessage `json:"result,omitempty"`
	// Queue is the queue a pending execution waits in (one no executor serves, maybe).
	Queue string `json:"queue,omitempty"`
	// Lineage: the execution this one was forked from and where, and its own forks.
	ForkedFrom      string   `json:"forked_from,omitempty"`
	ForkedAtVersion uint32   `json:"forked_at_version,omitempty"`
	Forks           []string `json:"forks,omitempty"`
	// Deadline is when it finishes deadline_exceeded if still open (RFC 3339).
	Deadline string `json:"deadline,omitempty"`
}

// statusText is a status as people read it: "pending_at (paused)".
func statusText(s *pb.ExecutionSummary) string {
	switch {
	case s.CancelRequested:
		return s.Status + " (cancelling)"
	case s.Paused:
		return s.Status + " (paused)"
	}
	return s.Status
}

// printStatus prints the execution's status (following it to the end if asked) and
// returns the exit status: 0 unless it finished with something other than ok.
func printStatus(cmd *cobra.Command, o *clientOpts, id string, follow bool) error {
	ctx := cmd.Context()
	stream, err := o.executions().GetStatus(ctx, connect.NewRequest(&pb.GetStatusRequest{ExecutionId: id, Follow: follow}))
	if err != nil {
		return apiErr(err)
	}
	defer stream.Close()
	var last *pb.ExecutionSummary
	for stream.Receive() {
		last = stream.Msg().Summary
		if follow && !o.json && last.Status != "finished" {
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", last.ExecutionId, statusText(last))
		}
	}
	if err := stream.Err(); err != nil {
		return apiErr(err)
	}
	if last == nil {
		return usage(fmt.Errorf("no status received for %s", id))
	}
	doc := statusDoc{ExecutionID: last.ExecutionId, Status: last.Status, Paused: last.Paused, CancelRequested: last.CancelRequested,
		LastFailure: last.LastFailure, ForkedFrom: last.ForkedFrom, ForkedAtVersion: last.ForkedAtVersion, Forks: last.Forks, Deadline: last.Deadline}
	if doc.Status == "pending_at" {
		doc.Queue = last.Queue
	}
	if last.ResultJson != "" {
		doc.Result = json.RawMessage(last.ResultJson)
	}
	out := cmd.OutOrStdout()
	if o.json {
		if err := writeJSON(out, doc); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(out, "%s %s\n", doc.ExecutionID, statusText(last))
		if doc.Queue != "" {
			fmt.Fprintf(out, "queue: %s\n", doc.Queue)
		}
		if doc.LastFailure != "" {
			fmt.Fprintf(out, "last failure: %s\n", doc.LastFailure)
		}
		if doc.Deadline != "" {
			fmt.Fprintf(out, "deadline: %s\n", doc.Deadline)
		}
		if doc.ForkedFrom != "" {
			fmt.Fprintf(out, "forked from: %s at version %d\n", doc.ForkedFrom, doc.ForkedAtVersion)
		}
		if len(doc.Forks) > 0 {
			fmt.Fprintf(out, "forks: %s\n", strings.Join(doc.Forks, " "))
		}
		if doc.Result != nil {
			fmt.Fprintf(out, "result: %s\n", doc.Result)
		}
	}
	if doc.Status == "finished" && !strings.HasPrefix(strings.TrimSpace(last.ResultJson), `{"ok"`) {
		return &ExitError{Code: 1}
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func eventsCmd(o *clientOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "events EXECUTION_ID",
		Short: "List an execution's events",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			resp, err := o.executions().ListEvents(cmd.Context(), connect.NewRequest(&pb.ListEventsRequest{ExecutionId: args[0]}))
			if err != nil {
				return apiErr(err)
			}
			type ev struct {
				Version   uint32          `json:"version"`
				CreatedAt string          `json:"created_at"`
				Kind      string          `json:"kind"`
				Details   json.RawMessage `json:"details"`
			}
			doc := struct {
				ExecutionID string `json:"execution_id"`
				Events      []ev   `json:"events"`
			}{ExecutionID: args[0], Events: []ev{}}
			for _, e := range resp.Msg.Events {
				doc.Events = append(doc.Events, ev{e.Version, e.CreatedAt, e.Kind, json.RawMessage(e.DetailsJson)})
			}
			if o.json {
				return writeJSON(cmd.OutOrStdout(), doc)
			}
			for _, e := range doc.Events {
				fmt.Fprintf(cmd.OutOrStdout(), "%4d %s %-26s %s\n", e.Version, e.CreatedAt, e.Kind, e.Details)
			}
			return nil
		},
	}
}

func listCmd(o *clientOpts) *cobra.Command {
	req := &pb.ListExecutionsRequest{}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List executions, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := o.executions().ListExecutions(cmd.Context(), connect.NewRequest(req))
			if err != nil {
				return apiErr(err)
			}
			if o.json {
				type item struct {
					ExecutionID string          `json:"execution_id"`
					FFQN        string          `json:"ffqn"`
					Status      string          `json:"status"`
					CreatedAt   string          `json:"created_at"`
					Queue       string          `json:"queue"`
					Result      json.RawMessage `json:"result,omitempty"`
				}
				doc := struct {
					Executions []item `json:"executions"`
					NextCursor string `json:"next_cursor,omitempty"`
				}{Executions: []item{}, NextCursor: resp.Msg.NextCursor}
				for _, s := range resp.Msg.Executions {
					it := item{ExecutionID: s.ExecutionId, FFQN: s.Ffqn, Status: s.Status, CreatedAt: s.CreatedAt, Queue: s.Queue}
					if s.ResultJson != "" {
						it.Result = json.RawMessage(s.ResultJson)
					}
					doc.Executions = append(doc.Executions, it)
				}
				return writeJSON(cmd.OutOrStdout(), doc)
			}
			for _, s := range resp.Msg.Executions {
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s %s queue=%s %s\n", s.ExecutionId, s.Ffqn, s.Status, s.Queue, s.ResultJson)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&req.FfqnPrefix, "ffqn", "", "only functions whose FFQN starts with this")
	cmd.Flags().StringVar(&req.Status, "status", "", "only this status: pending_at|locked|blocked_by_join_set|finished")
	cmd.Flags().BoolVar(&req.TopLevelOnly, "top-level", false, "hide child executions")
	cmd.Flags().Uint32Var(&req.Limit, "limit", 20, "page size")
	cmd.Flags().StringVar(&req.Cursor, "cursor", "", "continue after a previous page (its next_cursor)")
	return cmd
}

// outcomeDoc is the --json document of cancel, pause, unpause and stub (contract).
type outcomeDoc struct {
	ExecutionID string `json:"execution_id"`
	Outcome     string `json:"outcome"`
}

// noChange words, in the human output, the outcomes that changed nothing.
var noChange = map[string]string{
	"already_finished":   "already finished: nothing changed",
	"already_cancelling": "already cancelling: nothing changed",
	"already_stubbed":    "already has this result: nothing changed",
}

func printOutcome(cmd *cobra.Command, o *clientOpts, id, outcome string) error {
	doc := outcomeDoc{ExecutionID: id, Outcome: outcome}
	if o.json {
		return writeJSON(cmd.OutOrStdout(), doc)
	}
	if text, ok := noChange[outcome]; ok {
		_, err := fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", id, text)
		return err
	}
	_, err := fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", id, outcome)
	return err
}

// executionIDArg checks a command's one ID argument (exit status 2 if blank).
func executionIDArg(cmd *cobra.Command, args []string) error {
	if err := cobra.ExactArgs(1)(cmd, args); err != nil {
		return err
	}
	if strings.TrimSpace(args[0]) == "" {
		return errors.New("the execution ID is empty")
	}
	return nil
}

func cancelCmd(o *clientOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "cancel EXECUTION_ID|DELAY_ID",
		Short: "Cancel an execution (a workflow with its whole subtree) or a delay",
		Long: `Cancel an execution or, given a delay ID (Delay_...), a delay.

An activity, a stub or a delay is cancelled at once (outcome cancelled); a workflow's
cancellation is requested (cancel_requested) and completes once its subtree has been
cancelled. A finished execution is left as it is (already_finished, exit status 0).`,
		Args: executionIDArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			resp, err := o.executions().Cancel(cmd.Context(), connect.NewRequest(&pb.CancelRequest{ExecutionId: args[0]}))
			if err != nil {
				return apiErr(err)
			}
			return printOutcome(cmd, o, args[0], resp.Msg.Outcome)
		},
	}
}

func forkCmd(o *clientOpts) *cobra.Command {
	var at uint32
	var component string
	var cancelOriginal bool
	cmd := &cobra.Command{
		Use:   "fork EXECUTION_ID --at VERSION [--component COMPONENT] [--cancel-original]",
		Short: "Create a workflow execution whose history is another's up to VERSION, and let it go on",
		Long: `Fork a workflow execution: a new execution (new ID, same function and parameters)
whose history is the original's events 0..VERSION-1, with the children, responses and
delays recorded in them, continues from there on COMPONENT (default: the original's),
which replays that history first. The original is left as it is, or cancelled with
--cancel-original. Prints the new execution's ID (--json: {"execution_id": ...}); if
the original cannot be cancelled, the fork exists all the same: its ID is printed, the
reason goes to standard error (--json: "cancel_error") and the exit status is 1.

VERSION must be at a step boundary (not inside the events of one call or one join set's
close) and before the result; children requested before it must have finished (their
results come to the fork as they came to the original). An unknown execution, a
version beyond the history or not at a step boundary, or an execution that is not a
workflow's is refused (exit status 2) and nothing is created.`,
		Args: executionIDArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("at") {
				return usage(errors.New("--at VERSION is required: the fork keeps the events before it"))
			}
			resp, err := o.executions().Fork(cmd.Context(), connect.NewRequest(&pb.ForkRequest{ExecutionId: args[0], AtVersion: at, Component: component, CancelOriginal: cancelOriginal}))
			if err != nil {
				return apiErr(err)
			}
			if o.json {
				err = writeJSON(cmd.OutOrStdout(), struct {
					ExecutionID string `json:"execution_id"`
					CancelError string `json:"cancel_error,omitempty"`
				}{resp.Msg.ExecutionId, resp.Msg.CancelError})
			} else {
				_, err = fmt.Fprintln(cmd.OutOrStdout(), resp.Msg.ExecutionId)
			}
			if err == nil && resp.Msg.CancelError != "" {
				// Forked, but the original goes on: said, and exit status 1.
				fmt.Fprintf(cmd.ErrOrStderr(), "forked as %s, but the original was not cancelled: %s\n", resp.Msg.ExecutionId, resp.Msg.CancelError)
				return &ExitError{Code: 1}
			}
			return err
		},
	}
	cmd.Flags().Uint32Var(&at, "at", 0, "the version to fork at: events 0..VERSION-1 are kept")
	cmd.Flags().StringVar(&component, "component", "", "continue on this deployed component, by name or ID (default: the original's)")
	cmd.Flags().BoolVar(&cancelOriginal, "cancel-original", false, "cancel the original once the fork exists")
	return cmd
}

func pauseCmd(o *clientOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "pause EXECUTION_ID",
		Short: "Stop an execution from being run until unpause (responses still arrive)",
		Args:  executionIDArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := o.executions().Pause(cmd.Context(), connect.NewRequest(&pb.PauseRequest{ExecutionId: args[0]})); err != nil {
				return apiErr(err)
			}
			return printOutcome(cmd, o, args[0], "paused")
		},
	}
}

func unpauseCmd(o *clientOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "unpause EXECUTION_ID",
		Short: "Let a paused execution run again",
		Args:  executionIDArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := o.executions().Unpause(cmd.Context(), connect.NewRequest(&pb.UnpauseRequest{ExecutionId: args[0]})); err != nil {
				return apiErr(err)
			}
			return printOutcome(cmd, o, args[0], "unpaused")
		},
	}
}

func stubCmd(o *clientOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "stub EXECUTION_ID RESULT_JSON",
		Short: `Write the result of an activity stub's execution: RESULT_JSON is {"ok": v} or {"err": v}`,
		Long: `Write the result of an execution of an activity_stub component. RESULT_JSON is
{"ok": v} or {"err": v} (use {"ok": null} for result<_, E>), type-checked against the
function's WIT. Writing the result the execution already has is fine (already_stubbed);
another one is a conflict.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if err := cobra.ExactArgs(2)(cmd, args); err != nil {
				return err
			}
			return executionIDArg(cmd, args[:1])
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			var probe map[string]json.RawMessage
			if err := json.Unmarshal([]byte(args[1]), &probe); err != nil {
				return usage(fmt.Errorf(`RESULT_JSON must be a JSON object, {"ok": v} or {"err": v}: %w`, err))
			}
			resp, err := o.executions().Stub(cmd.Context(), connect.NewRequest(&pb.StubRequest{ExecutionId: args[0], ResultJson: args[1]}))
			if err != nil {
				return apiErr(err)
			}
			return printOutcome(cmd, o, args[0], resp.Msg.Outcome)
		},
	}
}

func deleteCmd(o *clientOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "delete EXECUTION_ID",
		Short: "Delete a finished top-level execution with its whole tree, now",
		Long: `Delete a finished top-level execution with its whole tree: its descendants, their
events, responses and delays, and their entries in the global event log (a watcher
resuming from one of those positions is told how many it skipped).

Refused (exit status 2, FAILED_PRECONDITION) for a child execution, and for a tree in
which anything has not finished. Retention ([retention] finished_after) does the same
by itself for trees finished long enough ago.`,
		Args: executionIDArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			resp, err := o.executions().Delete(cmd.Context(), connect.NewRequest(&pb.DeleteRequest{ExecutionId: args[0]}))
			if err != nil {
				return apiErr(err)
			}
			if o.json {
				return writeJSON(cmd.OutOrStdout(), struct {
					ExecutionID string `json:"execution_id"`
					Outcome     string `json:"outcome"`
					Executions  uint32 `json:"executions"`
					Events      uint32 `json:"events"`
				}{args[0], "deleted", resp.Msg.Executions, resp.Msg.Events})
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s deleted (%d executions, %d events)\n", args[0], resp.Msg.Executions, resp.Msg.Events)
			return err
		},
	}
}

func retentionCmd(o *clientOpts) *cobra.Command {
	var dryRun bool
	var limit uint32
	cmd := &cobra.Command{
		Use:   "retention --dry-run",
		Short: "List the finished trees the next retention pass would delete",
		Long: `List the top-level executions whose whole tree finished longer ago than
[retention] finished_after (or their component's retention.finished_after), oldest
first: what the next retention pass deletes. Passes run by themselves about every
second; --dry-run is required (use delete to delete one tree now).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !dryRun {
				return usage(errors.New("retention runs by itself: give --dry-run to list what its next pass deletes, or use delete EXECUTION_ID"))
			}
			resp, err := o.executions().ListRetention(cmd.Context(), connect.NewRequest(&pb.ListRetentionRequest{Limit: limit}))
			if err != nil {
				return apiErr(err)
			}
			if o.json {
				type tree struct {
					ExecutionID string `json:"execution_id"`
					ComponentID string `json:"component_id"`
					FinishedAt  string `json:"finished_at,omitempty"`
					Executions  uint32 `json:"executions"`
				}
				doc := struct {
					Trees []tree `json:"trees"`
				}{Trees: []tree{}}
				for _, t := range resp.Msg.Trees {
					doc.Trees = append(doc.Trees, tree{t.ExecutionId, t.ComponentId, t.FinishedAt, t.Executions})
				}
				return writeJSON(cmd.OutOrStdout(), doc)
			}
			for _, t := range resp.Msg.Trees {
				finished := t.FinishedAt
				if finished == "" {
					finished = "(deletion interrupted, resumed)"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s executions=%d finished_at=%s\n", t.ExecutionId, t.ComponentId, t.Executions, finished)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "list, delete nothing (required)")
	cmd.Flags().Uint32Var(&limit, "limit", 1000, "list at most this many trees")
	return cmd
}

func componentListCmd(o *clientOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List deployed components and their functions, and the retired versions still finishing executions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := o.components().ListComponents(context.WithoutCancel(cmd.Context()), connect.NewRequest(&pb.ListComponentsRequest{}))
			if err != nil {
				return apiErr(err)
			}
			if o.json {
				type fn struct {
					FFQN      string `json:"ffqn"`
					Signature string `json:"signature"`
				}
				type comp struct {
					ComponentID string `json:"component_id"`
					Name        string `json:"name"`
					Type        string `json:"type"`
					Exports     []fn   `json:"exports"`
					Imports     []fn   `json:"imports"`
					Retired     bool   `json:"retired,omitempty"`
				}
				doc := struct {
					Components []comp `json:"components"`
				}{Components: []comp{}}
				for _, c := range resp.Msg.Components {
					x := comp{ComponentID: c.ComponentId, Name: c.Name, Type: c.Type, Exports: []fn{}, Imports: []fn{}, Retired: c.Retired}
					for _, f := range c.Exports {
						x.Exports = append(x.Exports, fn{f.Ffqn, f.Signature})
					}
					for _, f := range c.Imports {
						x.Imports = append(x.Imports, fn{f.Ffqn, f.Signature})
					}
					doc.Components = append(doc.Components, x)
				}
				return writeJSON(cmd.OutOrStdout(), doc)
			}
			for _, c := range resp.Msg.Components {
				if c.Retired {
					// Not deployed any more: it only finishes the executions pinned to it.
					fmt.Fprintf(cmd.OutOrStdout(), "%s %s (retired: serving pinned executions only)\n", c.Type, c.ComponentId)
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", c.Type, c.ComponentId)
				for _, f := range c.Exports {
					fmt.Fprintf(cmd.OutOrStdout(), "  export %s: %s\n", f.Ffqn, f.Signature)
				}
				for _, f := range c.Imports {
					fmt.Fprintf(cmd.OutOrStdout(), "  import %s: %s\n", f.Ffqn, f.Signature)
				}
			}
			return nil
		},
	}
}
