// Package api serves the public API over connect-go: the services of proto/obelisk/v1 as
// gRPC, gRPC-Web and JSON over HTTP, on one listener. It is one of the engine's surfaces,
// beside webhook (the webhook endpoints) and webui (the web UI); besides the services it
// owns the JSON views of stored events (EventView, EventDetails) that the published JSON
// Schemas describe.
package api

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/obelisk-go/obelisk/actors"
	"github.com/obelisk-go/obelisk/auth"
	"github.com/obelisk-go/obelisk/events"
	"github.com/obelisk-go/obelisk/hostguard"
	"github.com/obelisk-go/obelisk/internal/clip"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	apiv1 "github.com/obelisk-go/obelisk/proto/obelisk/v1"
	"github.com/obelisk-go/obelisk/proto/obelisk/v1/obeliskv1connect"
	"github.com/obelisk-go/obelisk/tracing"
	"github.com/obelisk-go/obelisk/verify"
)

// Options configure Serve.
type Options struct {
	// MaxRequestBytes bounds the body of an API request, and each message in it once
	// decompressed (api.max_request_bytes); 0 means DefaultMaxRequestBytes.
	MaxRequestBytes int
	// AllowedHosts are the Host names the API answers to besides those that ln's
	// address admits (hostguard; api.allowed_hosts).
	AllowedHosts hostguard.Allowed
	// Tokens, when set, are the bearer tokens every RPC needs (api.auth_tokens_file);
	// nil: no authentication.
	Tokens *auth.Tokens
	// MetricsAuth makes /metrics need a token of any role too (api.metrics_auth).
	MetricsAuth bool
	// TLS, when set, serves the API over TLS only (api.tls_cert_file, api.tls_key_file).
	TLS *tls.Config
	// Cluster, when set, is the cluster this node is one of (GetClusterStatus); nil: a
	// single node.
	Cluster ClusterView
}

// DefaultMaxRequestBytes is the default of Options.MaxRequestBytes: room for the largest
// parameters an execution may have by default (actors.DefaultMaxParamsBytes) several
// times over, while a request stays far from what the server can hold in memory.
const DefaultMaxRequestBytes = 4 << 20

// Serve serves the API on ln until ctx ends, to the Host names that opts.AllowedHosts
// and ln's address admit (hostguard).
func Serve(ctx context.Context, ln net.Listener, e *actors.Engine, opts Options) error {
	if opts.MaxRequestBytes <= 0 {
		opts.MaxRequestBytes = DefaultMaxRequestBytes
	}
	mux := http.NewServeMux()
	// Small messages (most of them, and every streamed event) are not worth gzipping:
	// compressing each one separately dominated WatchEvents' CPU.
	compress := connect.WithCompressMinBytes(1024)
	handlerOpts := []connect.HandlerOption{compress, connect.WithReadMaxBytes(opts.MaxRequestBytes)}
	errs := connect.NewErrorWriter(handlerOpts...)
	// Every service's handler is guarded alike: tokens first (before any of the body is
	// read), then the size limit.
	handle := func(path string, h http.Handler) {
		h = limitRequest(h, opts.MaxRequestBytes, errs)
		if opts.Tokens != nil {
			h = opts.Tokens.RPC(h, access, errs)
		}
		mux.Handle(path, h)
	}
	handle(obeliskv1connect.NewExecutionServiceHandler(&executions{e: e}, slices.Concat(handlerOpts, []connect.HandlerOption{connect.WithInterceptors(syncReads{e})})...))
	handle(obeliskv1connect.NewComponentServiceHandler(&components{e: e}, handlerOpts...))
	handle(obeliskv1connect.NewScheduleServiceHandler(&schedules{e: e}, slices.Concat(handlerOpts, []connect.HandlerOption{connect.WithInterceptors(syncReads{e})})...))
	handle(obeliskv1connect.NewWorkerServiceHandler(&workers{e: e}, handlerOpts...))
	handle(obeliskv1connect.NewClusterServiceHandler(&cluster{e: e, view: opts.Cluster}, handlerOpts...))
	if m := e.Metrics(); m != nil {
		var metrics http.Handler = promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
		if opts.MetricsAuth && opts.Tokens != nil {
			metrics = opts.Tokens.HTTP(metrics)
		}
		mux.Handle("/metrics", metrics)
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true) // gRPC without TLS
	protocols.SetHTTP2(true)            // gRPC over TLS
	// The guard sees gRPC's :authority as r.Host, so HTTP/2 clients are checked alike.
	handler := hostguard.New(ln.Addr(), opts.AllowedHosts).Host(mux)
	srv := &http.Server{Handler: handler, Protocols: &protocols, ReadHeaderTimeout: 10 * time.Second, TLSConfig: opts.TLS}
	errc := make(chan error, 1)
	go func() {
		if opts.TLS != nil {
			errc <- srv.ServeTLS(ln, "", "") // the certificate is in TLSConfig
			return
		}
		errc <- srv.Serve(ln)
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		return srv.Shutdown(shutdown)
	}
}

// limitRequest refuses a request whose body is larger than max bytes, in the protocol
// the client speaks and before reading any of it when the client declared its length;
// a body of unknown length is cut off at max (connect answers resource_exhausted).
// Without it a 100 MB Submit was read whole into memory.
func limitRequest(h http.Handler, max int, ew *connect.ErrorWriter) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > int64(max) {
			err := connect.NewError(connect.CodeResourceExhausted,
				fmt.Errorf("request of %d bytes is larger than the limit of %d bytes (api.max_request_bytes)", r.ContentLength, max))
			if ew.IsSupported(r) {
				_ = ew.Write(w, r, err)
			} else {
				http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
			}
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, int64(max))
		h.ServeHTTP(w, r)
	})
}

type executions struct{ e *actors.Engine }

func (h *executions) Submit(ctx context.Context, req *connect.Request[apiv1.SubmitRequest]) (*connect.Response[apiv1.SubmitResponse], error) {
	params := req.Msg.ParamsJson
	if strings.TrimSpace(params) == "" {
		params = "[]"
	}
	opts := []actors.SubmitOption{actors.InQueue(req.Msg.Queue), actors.OfComponent(strings.TrimSpace(req.Msg.Component))}
	if r := req.Msg.Retry; r != nil {
		o := actors.RetryOverride{MaxRetries: r.MaxRetries, Jitter: r.RetryJitter}
		if b := strings.TrimSpace(r.RetryExpBackoff); b != "" {
			d, err := time.ParseDuration(b)
			if err != nil || d <= 0 {
				return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("retry.retry_exp_backoff %q: want a positive duration with a unit, e.g. \"250ms\" or \"2s\"", b))
			}
			o.Backoff = d
		}
		opts = append(opts, actors.WithRetry(o))
	}
	if d := strings.TrimSpace(req.Msg.Deadline); d != "" {
		in, err := time.ParseDuration(d)
		if err != nil || in <= 0 {
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("deadline %q: want a positive duration with a unit, from now, e.g. \"1s\" or \"2m30s\"", d))
		}
		opts = append(opts, actors.WithDeadline(time.Now().Add(in)))
	}
	// A caller's traceparent header makes the execution part of the caller's trace.
	ctx = tracing.Extract(ctx, req.Header())
	id, existed, err := h.e.Submit(ctx, req.Msg.ExecutionId, req.Msg.Ffqn, json.RawMessage(params), opts...)
	if err != nil {
		return nil, apiError(err)
	}
	return connect.NewResponse(&apiv1.SubmitResponse{ExecutionId: id, AlreadyExisted: existed}), nil
}

func (h *executions) GetStatus(ctx context.Context, req *connect.Request[apiv1.GetStatusRequest], stream *connect.ServerStream[apiv1.GetStatusResponse]) error {
	id, err := canonicalID(req.Msg.ExecutionId)
	if err != nil {
		return err
	}
	if !req.Msg.Follow {
		st, err := h.e.State(ctx, id)
		if err != nil {
			return apiError(err)
		}
		s, err := h.summary(ctx, st)
		if err != nil {
			return apiError(err)
		}
		return stream.Send(&apiv1.GetStatusResponse{Summary: s})
	}
	var sendErr error
	var last string
	_, err = h.e.Follow(ctx, id, func(st *pb.ExecutionState) bool {
		s := Summary(st)
		if key := s.Status + "/" + fmt.Sprint(s.Version); key != last {
			last = key
			if s, sendErr = h.summary(ctx, st); sendErr != nil {
				return true
			}
			if sendErr = stream.Send(&apiv1.GetStatusResponse{Summary: s}); sendErr != nil {
				return true
			}
		}
		return st.Status == pb.Status_STATUS_FINISHED
	})
	if sendErr != nil {
		return sendErr
	}
	if err != nil {
		return apiError(err)
	}
	return nil
}

func (h *executions) ListExecutions(ctx context.Context, req *connect.Request[apiv1.ListExecutionsRequest]) (*connect.Response[apiv1.ListExecutionsResponse], error) {
	f := events.ListFilter{FFQNPrefix: req.Msg.FfqnPrefix, TopLevelOnly: req.Msg.TopLevelOnly, Limit: int(min(req.Msg.Limit, 1000)), Before: req.Msg.Cursor}
	if req.Msg.Status != "" {
		st, ok := statusByName[req.Msg.Status]
		if !ok {
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("status %s: want one of pending_at, locked, blocked_by_join_set, finished", clip.Quote(req.Msg.Status)))
		}
		f.Status = st
	}
	page, err := h.e.Store().List(ctx, f)
	if err != nil {
		return nil, apiError(err)
	}
	resp := &apiv1.ListExecutionsResponse{NextCursor: page.Next}
	for _, st := range page.States {
		resp.Executions = append(resp.Executions, Summary(st)) // no forks: see ExecutionSummary.forks
	}
	return connect.NewResponse(resp), nil
}

var statusByName = map[string]pb.Status{
	"pending_at": pb.Status_STATUS_PENDING_AT, "locked": pb.Status_STATUS_LOCKED,
	"blocked_by_join_set": pb.Status_STATUS_BLOCKED_BY_JOIN_SET, "finished": pb.Status_STATUS_FINISHED,
}

func (h *executions) ListEvents(ctx context.Context, req *connect.Request[apiv1.ListEventsRequest]) (*connect.Response[apiv1.ListEventsResponse], error) {
	id, err := canonicalID(req.Msg.ExecutionId)
	if err != nil {
		return nil, err
	}
	st, err := h.e.State(ctx, id)
	if err != nil {
		return nil, apiError(err)
	}
	evs, err := h.e.Store().Events(ctx, id, req.Msg.FromVersion, int(req.Msg.Limit))
	if err != nil {
		return nil, apiError(err)
	}
	resp := &apiv1.ListEventsResponse{NextVersion: st.NextVersion}
	for i, ev := range evs {
		resp.Events = append(resp.Events, EventView(req.Msg.FromVersion+uint32(i), ev))
	}
	return connect.NewResponse(resp), nil
}

func (h *executions) ListResponses(ctx context.Context, req *connect.Request[apiv1.ListResponsesRequest]) (*connect.Response[apiv1.ListResponsesResponse], error) {
	id, err := canonicalID(req.Msg.ExecutionId)
	if err != nil {
		return nil, err
	}
	if _, err := h.e.State(ctx, id); err != nil {
		return nil, apiError(err)
	}
	rs, err := h.e.Store().Responses(ctx, id, req.Msg.FromCursor)
	if err != nil {
		return nil, apiError(err)
	}
	resp := &apiv1.ListResponsesResponse{}
	for _, r := range rs {
		v := &apiv1.ResponseView{Cursor: r.Cursor, CreatedAt: rfc3339(r.CreatedAt), JoinSetId: r.JoinSetId}
		switch k := r.Kind.(type) {
		case *pb.Response_Child:
			v.ChildExecutionId, v.ResultJson = k.Child.ChildExecutionId, string(k.Child.Result)
		case *pb.Response_Delay:
			v.DelayId, v.DelayCancelled = k.Delay.DelayId, k.Delay.Cancelled
		}
		resp.Responses = append(resp.Responses, v)
	}
	return connect.NewResponse(resp), nil
}

func (h *executions) Cancel(ctx context.Context, req *connect.Request[apiv1.CancelRequest]) (*connect.Response[apiv1.CancelResponse], error) {
	id, err := canonicalID(req.Msg.ExecutionId)
	if err != nil {
		return nil, err
	}
	outcome, err := h.e.Cancel(ctx, id)
	if err != nil {
		return nil, apiError(err)
	}
	return connect.NewResponse(&apiv1.CancelResponse{Outcome: string(outcome)}), nil
}

// Delete deletes a finished top-level execution's tree now (events.PebbleStore.DeleteTrees).
func (h *executions) Delete(ctx context.Context, req *connect.Request[apiv1.DeleteRequest]) (*connect.Response[apiv1.DeleteResponse], error) {
	id, err := canonicalID(req.Msg.ExecutionId)
	if err != nil {
		return nil, err
	}
	d, err := h.e.Delete(ctx, id)
	if err != nil {
		return nil, apiError(err)
	}
	return connect.NewResponse(&apiv1.DeleteResponse{Executions: uint32(d.Executions), Events: uint32(d.Events)}), nil
}

// ListRetention lists what the next retention pass would delete.
func (h *executions) ListRetention(ctx context.Context, req *connect.Request[apiv1.ListRetentionRequest]) (*connect.Response[apiv1.ListRetentionResponse], error) {
	limit := int(req.Msg.Limit)
	if limit <= 0 {
		limit = 1000
	}
	trees, err := h.e.RetentionDue(ctx, limit)
	if err != nil {
		return nil, apiError(err)
	}
	out := &apiv1.ListRetentionResponse{Trees: make([]*apiv1.RetainedTree, 0, len(trees))}
	for _, t := range trees {
		rt := &apiv1.RetainedTree{ExecutionId: t.Root, ComponentId: t.ComponentID, Executions: uint32(t.Executions)}
		if !t.Deleting { // an interrupted deletion, resumed by the next pass, has no summary
			rt.FinishedAt = rfc3339(t.FinishedAt.UnixNano())
		}
		out.Trees = append(out.Trees, rt)
	}
	return connect.NewResponse(out), nil
}

// summary is Summary with the execution's forks, which the state does not hold.
func (h *executions) summary(ctx context.Context, st *pb.ExecutionState) (*apiv1.ExecutionSummary, error) {
	s := Summary(st)
	forks, err := h.e.Store().Forks(ctx, st.ExecutionId)
	s.Forks = forks
	return s, err
}

func (h *executions) Fork(ctx context.Context, req *connect.Request[apiv1.ForkRequest]) (*connect.Response[apiv1.ForkResponse], error) {
	id, err := canonicalID(req.Msg.ExecutionId)
	if err != nil {
		return nil, err
	}
	fork, err := h.e.Fork(ctx, id, req.Msg.AtVersion, actors.ForkOptions{Component: req.Msg.Component, CancelOriginal: req.Msg.CancelOriginal})
	if fork == "" {
		return nil, apiError(err)
	}
	resp := &apiv1.ForkResponse{ExecutionId: fork}
	if err != nil {
		// The fork exists; only the original's cancellation failed.
		resp.CancelError = err.Error()
	}
	return connect.NewResponse(resp), nil
}

// Verify checks the live store (actors.Engine.Verify).
func (h *executions) Verify(ctx context.Context, req *connect.Request[apiv1.VerifyRequest]) (*connect.Response[apiv1.VerifyResponse], error) {
	limit := int(req.Msg.MaxFailures)
	if limit == 0 {
		limit = 1000
	}
	out := &apiv1.VerifyResponse{Failures: []*apiv1.VerifyFailure{}}
	rep, err := h.e.Verify(ctx, func(f verify.Failure) error {
		if len(out.Failures) < limit {
			out.Failures = append(out.Failures, &apiv1.VerifyFailure{ExecutionId: f.ExecutionID, Check: f.Check,
				Field: f.Field, Stored: f.Stored, Refolded: f.Refolded, Log: f.Log, Index: f.Index, Error: f.Error})
		}
		return nil
	})
	if err != nil {
		return nil, apiError(err)
	}
	out.Executions = uint32(rep.Executions)
	out.EventsLinked, out.ResponsesLinked = uint64(rep.EventsLinked), uint64(rep.ResponsesLinked)
	out.EventsUnchained, out.ResponsesUnchained = uint64(rep.EventsUnchained), uint64(rep.ResponsesUnchained)
	out.Workflows, out.WorkflowsReplayed, out.ReplayAvailable = uint32(rep.Workflows), uint32(rep.Replayed), rep.ReplayAvailable
	out.FailureCount = uint32(rep.Failures)
	return connect.NewResponse(out), nil
}

func (h *executions) Pause(ctx context.Context, req *connect.Request[apiv1.PauseRequest]) (*connect.Response[apiv1.PauseResponse], error) {
	id, err := canonicalID(req.Msg.ExecutionId)
	if err != nil {
		return nil, err
	}
	if err := h.e.Pause(ctx, id); err != nil {
		return nil, apiError(err)
	}
	return connect.NewResponse(&apiv1.PauseResponse{}), nil
}

func (h *executions) Unpause(ctx context.Context, req *connect.Request[apiv1.UnpauseRequest]) (*connect.Response[apiv1.UnpauseResponse], error) {
	id, err := canonicalID(req.Msg.ExecutionId)
	if err != nil {
		return nil, err
	}
	if err := h.e.Unpause(ctx, id); err != nil {
		return nil, apiError(err)
	}
	return connect.NewResponse(&apiv1.UnpauseResponse{}), nil
}

func (h *executions) Stub(ctx context.Context, req *connect.Request[apiv1.StubRequest]) (*connect.Response[apiv1.StubResponse], error) {
	id, err := canonicalID(req.Msg.ExecutionId)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(req.Msg.ResultJson) == "" {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New(`result_json is required: {"ok": v} or {"err": v}`))
	}
	outcome, err := h.e.Stub(ctx, id, json.RawMessage(req.Msg.ResultJson))
	if err != nil {
		return nil, apiError(err)
	}
	return connect.NewResponse(&apiv1.StubResponse{Outcome: string(outcome)}), nil
}

// canonicalID checks an execution (or delay) ID given to the API and returns it in its
// canonical form (events.CanonicalID): IDs differing only in the case of their ULID name
// one execution.
func canonicalID(id string) (string, error) {
	if strings.TrimSpace(id) == "" {
		return "", connect.NewError(connect.CodeInvalidArgument, errors.New("execution_id is required"))
	}
	id, err := events.CanonicalID(id)
	if err != nil {
		return "", connect.NewError(connect.CodeInvalidArgument, err)
	}
	return id, nil
}

type components struct{ e *actors.Engine }

func (h *components) ListComponents(ctx context.Context, req *connect.Request[apiv1.ListComponentsRequest]) (*connect.Response[apiv1.ListComponentsResponse], error) {
	resp := &apiv1.ListComponentsResponse{}
	for _, c := range append(slices.Clip(h.e.Components()), h.e.RetiredComponents()...) {
		ci := &apiv1.ComponentInfo{ComponentId: c.ID, Name: c.Config.Name, Type: string(c.Config.Type), Retired: c.Retired}
		for _, fn := range c.Exports {
			ci.Exports = append(ci.Exports, &apiv1.FunctionInfo{Ffqn: fn.FFQN(), Signature: fn.Signature(), Submittable: !c.Retired})
		}
		for _, fn := range c.Imports {
			ci.Imports = append(ci.Imports, &apiv1.FunctionInfo{Ffqn: fn.FFQN(), Signature: fn.Signature()})
		}
		resp.Components = append(resp.Components, ci)
	}
	return connect.NewResponse(resp), nil
}

// apiError maps engine errors to connect codes.
func apiError(err error) error {
	var nf *actors.FunctionNotFoundError
	var cnf *actors.ComponentNotFoundError
	var enf *actors.NotFoundError
	var ia *actors.InvalidArgumentError
	var fp *actors.FailedPreconditionError
	var ex *actors.ExistsError
	var full *actors.ResourceExhaustedError
	switch {
	case errors.As(err, &full):
		// Retry-After (seconds) travels as metadata: an HTTP header on the Connect and
		// JSON protocols, also on gRPC's trailers-only error response.
		ce := connect.NewError(connect.CodeResourceExhausted, err)
		ce.Meta().Set("Retry-After", strconv.Itoa(full.RetryAfterSeconds()))
		return ce
	case errors.Is(err, events.ErrFailed):
		return connect.NewError(connect.CodeUnavailable, err)
	case errors.As(err, &nf), errors.As(err, &cnf), errors.As(err, &enf), errors.Is(err, events.ErrNotFound):
		return connect.NewError(connect.CodeNotFound, err)
	case errors.As(err, &ia), errors.Is(err, events.ErrInvalidArgument):
		return connect.NewError(connect.CodeInvalidArgument, err)
	case errors.As(err, &ex):
		return connect.NewError(connect.CodeAlreadyExists, err)
	case errors.As(err, &fp):
		return connect.NewError(connect.CodeFailedPrecondition, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeCanceled, err)
	}
	return connect.NewError(connect.CodeInternal, err)
}

func rfc3339(ns int64) string {
	if ns == 0 {
		return ""
	}
	return time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
}

// Summary renders a state for the API.
func Summary(st *pb.ExecutionState) *apiv1.ExecutionSummary {
	s := &apiv1.ExecutionSummary{
		ExecutionId: st.ExecutionId, Ffqn: st.Ffqn, Status: events.StatusName(st.Status),
		CreatedAt: rfc3339(st.CreatedAt), ComponentId: st.ComponentId, ParentId: st.ParentId,
		Version: st.NextVersion, AttemptsFailed: st.IntermittentFailures, LastFailure: st.LastFailure,
		Paused: st.Paused, CancelRequested: st.CancelRequested && st.Status != pb.Status_STATUS_FINISHED,
		Queue: st.Queue, ForkedFrom: st.ForkedFrom, ForkedAtVersion: st.ForkedAtVersion,
		Deadline: rfc3339(st.Deadline),
	}
	switch st.Status {
	case pb.Status_STATUS_PENDING_AT:
		s.ScheduledAt = rfc3339(st.PendingAt)
	case pb.Status_STATUS_LOCKED:
		s.LockExpiresAt = rfc3339(st.LockExpiresAt)
	case pb.Status_STATUS_BLOCKED_BY_JOIN_SET:
		s.JoinSetId = st.BlockedJoinSetId
	case pb.Status_STATUS_FINISHED:
		s.FinishedAt = rfc3339(st.FinishedAt)
		s.ResultJson = string(st.Result)
	}
	return s
}
