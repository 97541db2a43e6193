// Package webhook serves the HTTP side of webhook endpoints: the [[http_server]]s of
// obelisk.toml, the route table of every server, and per endpoint a bound on the
// requests in flight and a request timeout. Each request that matches a route runs in a
// fresh instance of its endpoint's module, through the engine (actors.Engine.RunWebhook),
// which records it as an execution if it does something durable; or, for an endpoint
// mapped to a function, submits one execution of it and answers with its result
// (function.go).
//
// Answers the server gives itself, as text/plain:
//
//	404 route not found            no route of the server matches the path
//	405 method not allowed         routes match the path, not the method (Allow lists theirs)
//	413 request body too large     over MaxBodyBytes
//	408 request timeout            the request was not received within read_timeout
//	429 too many requests          the endpoint has max_inflight_requests in flight, or
//	                               its execution's queue is full (max_pending; Retry-After)
//	408 request timeout            the handler ran past request_timeout
//	500 webhook trapped: <reason>  the handler trapped (a Go panic, for instance)
//	500 webhook failed: <reason>   the handler returned an err, or an invalid response
//	503 ...                        the server is stopping, or the instance could not be made
//
// A function endpoint answers with its function's result instead (function.go).
package webhook

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/obelisk-go/obelisk/actors"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	"github.com/obelisk-go/obelisk/tracing"
	"github.com/obelisk-go/obelisk/wasmhost"
	"github.com/obelisk-go/obelisk/wasmhost/wit"
)

// Defaults (contract: documented in examples/obelisk.toml).
const (
	DefaultServerName          = "external"
	DefaultListeningAddr       = "127.0.0.1:9090"
	DefaultMaxInflightRequests = 100
	DefaultRequestTimeout      = 30 * time.Second
	// DefaultReadTimeout bounds the time a client has to send a whole request,
	// headers and body.
	DefaultReadTimeout = 30 * time.Second
	// MaxBodyBytes bounds a request body.
	MaxBodyBytes = 16 << 20
	// maxHeaderTimeout bounds the time to send the headers alone, when read_timeout is
	// longer: a client that has not started its body by then is not going to be fast.
	maxHeaderTimeout = 10 * time.Second
)

// Config is the webhook part of the configuration.
type Config struct {
	Servers   []ServerConfig
	Endpoints []EndpointConfig
}

// ServerConfig is one [[http_server]].
type ServerConfig struct {
	Name          string
	ListeningAddr string
	// ReadTimeout bounds the time to receive a request, headers and body; a request
	// still arriving then is answered 408 and its connection closed. It runs before
	// the request counts against max_inflight_requests. 0 means DefaultReadTimeout.
	ReadTimeout time.Duration
	// TLS, when set, serves the server over TLS only (tls_cert_file, tls_key_file).
	TLS *tls.Config
}

// EndpointConfig is the HTTP side of one [[webhook_endpoint]]; the component itself (its
// module, allowed_hosts) is deployed in the engine under the same name.
type EndpointConfig struct {
	Name                string
	Server              string
	Routes              []Route
	MaxInflightRequests int
	RequestTimeout      time.Duration
	// Function, if set, is the FFQN the endpoint submits for every request, instead of
	// running a module of its own (function.go); the engine then has no component of
	// the endpoint's name.
	Function string
}

// Engine is what the servers need of the engine (an *actors.Engine).
type Engine interface {
	RunWebhook(ctx context.Context, endpoint string, req *actors.WebhookRequest) (*actors.WebhookResult, error)
	// Function, Submit and WaitFinished serve function endpoints.
	Function(ffqn string) (actors.Function, bool)
	Submit(ctx context.Context, id, ffqn string, params json.RawMessage, opts ...actors.SubmitOption) (string, bool, error)
	WaitFinished(ctx context.Context, id string) (*pb.ExecutionState, error)
}

// Servers are the listening HTTP servers of webhook endpoints.
type Servers struct {
	servers   []*server
	endpoints []*endpoint
	ctx       context.Context // the requests' base context, cancelled by Close
	cancel    context.CancelFunc
	running   sync.WaitGroup // handlers
}

type server struct {
	cfg    ServerConfig
	ln     net.Listener
	router Router[*endpoint]
	http   *http.Server
}

type endpoint struct {
	cfg      EndpointConfig
	inflight chan struct{}
	fn       *wit.Function // of a function endpoint, once bound (Serve)
}

// Listen checks the configuration, builds the route tables and listens on every server
// that has endpoints (nothing is served until Serve).
func Listen(cfg Config) (*Servers, error) {
	s := &Servers{}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	byName := map[string]*server{}
	for _, sc := range cfg.Servers {
		if byName[sc.Name] != nil {
			return nil, fmt.Errorf("http_server %q is defined twice", sc.Name)
		}
		byName[sc.Name] = &server{cfg: sc}
	}
	for _, ec := range cfg.Endpoints {
		srv := byName[ec.Server]
		if srv == nil {
			return nil, fmt.Errorf("webhook_endpoint %q: http_server %q is not defined", ec.Name, ec.Server)
		}
		ep := &endpoint{cfg: ec, inflight: make(chan struct{}, max(ec.MaxInflightRequests, 1))}
		s.endpoints = append(s.endpoints, ep)
		for _, r := range ec.Routes {
			if err := srv.router.Add(r, ep); err != nil {
				return nil, fmt.Errorf("webhook_endpoint %q on http_server %q: %w", ec.Name, ec.Server, err)
			}
		}
	}
	for _, sc := range cfg.Servers {
		srv := byName[sc.Name]
		ln, err := net.Listen("tcp", sc.ListeningAddr)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("http_server %q: %w", sc.Name, err)
		}
		srv.ln = ln
		s.servers = append(s.servers, srv)
	}
	return s, nil
}

// Addrs returns the address every server listens on, by name.
func (s *Servers) Addrs() map[string]net.Addr {
	m := map[string]net.Addr{}
	for _, srv := range s.servers {
		m[srv.cfg.Name] = srv.ln.Addr()
	}
	return m
}

// Serve serves every server until Close; it returns at once. It serves nothing and
// returns an error when the function of a function endpoint is not one the engine can
// submit (naming the endpoint and the function).
func (s *Servers) Serve(e Engine, log *slog.Logger) error {
	for _, ep := range s.endpoints {
		if ep.cfg.Function != "" {
			if err := ep.bindFunction(e); err != nil {
				return err
			}
		}
	}
	for _, srv := range s.servers {
		read := srv.cfg.ReadTimeout
		if read <= 0 {
			read = DefaultReadTimeout
		}
		srv.http = &http.Server{
			TLSConfig:   srv.cfg.TLS,
			Handler:     &handler{s: s, srv: srv, e: e, log: log},
			BaseContext: func(net.Listener) context.Context { return s.ctx },
			// The whole request, body included: net/http lifts the deadline once the
			// body has been read, so it does not cut the handler short.
			ReadTimeout:       read,
			ReadHeaderTimeout: min(read, maxHeaderTimeout),
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		}
		log.Info("serving webhooks", "http_server", srv.cfg.Name, "addr", srv.ln.Addr().String())
		go func() {
			serve := func() error { return srv.http.Serve(srv.ln) }
			if srv.cfg.TLS != nil {
				serve = func() error { return srv.http.ServeTLS(srv.ln, "", "") } // the certificate is in TLSConfig
			}
			if err := serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("webhook server", "http_server", srv.cfg.Name, "err", err)
			}
		}()
	}
	return nil
}

// Close stops listening, stops the requests in flight (their handlers are killed and
// answer 503) and waits for them, so that the engine can be closed after it.
func (s *Servers) Close() {
	s.cancel()
	for _, srv := range s.servers {
		if srv.http != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = srv.http.Shutdown(ctx)
			cancel()
			_ = srv.http.Close()
		} else if srv.ln != nil {
			srv.ln.Close()
		}
	}
	s.running.Wait()
}

type handler struct {
	s   *Servers
	srv *server
	e   Engine
	log *slog.Logger
}

// guestRequest is the request as the guest receives it (docs/abi.md).
type guestRequest struct {
	Method  string              `json:"method"`
	Path    string              `json:"path"`
	Query   string              `json:"query"`
	Host    string              `json:"host"`
	Headers map[string][]string `json:"headers"`
	// BodyLength is the length of the body, which the guest copies with the
	// request_body_read import (the body goes in actors.WebhookRequest.Body).
	BodyLength int               `json:"body_length"`
	Params     map[string]string `json:"params"`
}

// guestResponse is the ok value of the guest's result.
type guestResponse struct {
	Status  int                 `json:"status"`
	Headers map[string][]string `json:"headers"`
	Body    []byte              `json:"body"` // base64
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m, allowed, ok := h.srv.router.Lookup(r.Method, r.URL.EscapedPath())
	if !ok {
		if len(allowed) > 0 {
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			plain(w, http.StatusMethodNotAllowed, "method not allowed")
			return
		}
		plain(w, http.StatusNotFound, "route not found")
		return
	}
	ep := m.Target
	h.s.running.Add(1)
	defer h.s.running.Done()
	// The body is read before the request takes an inflight slot: a client that sends
	// it slowly holds its connection (until read_timeout), not the endpoint.
	body, ok := h.readBody(w, r)
	if !ok {
		return
	}
	select {
	case ep.inflight <- struct{}{}:
		defer func() { <-ep.inflight }()
	default:
		plain(w, http.StatusTooManyRequests, "too many requests: webhook endpoint "+ep.cfg.Name+" has max_inflight_requests in flight")
		return
	}
	timeout := ep.cfg.RequestTimeout
	if timeout <= 0 {
		timeout = DefaultRequestTimeout
	}
	// A caller's traceparent header makes the request's execution part of its trace.
	ctx, cancel := context.WithTimeout(tracing.Extract(r.Context(), r.Header), timeout)
	defer cancel()
	if ep.fn != nil {
		h.serveFunction(ctx, w, r, ep, m.Params, body)
		return
	}
	gr := guestRequest{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Host: r.Host, Headers: r.Header, BodyLength: len(body), Params: map[string]string{}}
	for _, p := range m.Params {
		gr.Params[p.Name] = p.Value
	}
	input, err := json.Marshal(gr)
	if err != nil {
		plain(w, http.StatusBadRequest, "encoding the request: "+err.Error())
		return
	}
	res, err := h.e.RunWebhook(ctx, ep.cfg.Name, &actors.WebhookRequest{Input: input, Body: body, Method: r.Method, Path: r.URL.Path})
	if err != nil {
		h.fail(w, r, ep, ctx, err)
		return
	}
	var out struct {
		Ok  *guestResponse  `json:"ok"`
		Err json.RawMessage `json:"err"`
	}
	if err := json.Unmarshal(res.Output, &out); err != nil || out.Ok == nil {
		var reason string
		switch {
		case err != nil:
			reason = "invalid response: " + err.Error()
		case out.Err != nil:
			reason = "it returned an err: " + firstLine(string(out.Err))
		default:
			reason = "invalid response: no status, headers and body"
		}
		h.log.Warn("webhook failed", "endpoint", ep.cfg.Name, "path", r.URL.Path, "reason", reason)
		plain(w, http.StatusInternalServerError, "webhook failed: "+reason)
		return
	}
	status := out.Ok.Status
	if status == 0 {
		status = http.StatusOK
	}
	if status < 100 || status > 999 {
		plain(w, http.StatusInternalServerError, fmt.Sprintf("webhook failed: invalid status %d", status))
		return
	}
	for k, vs := range out.Ok.Headers {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(status)
	_, _ = w.Write(out.Ok.Body)
}

// readBody reads the request's body, at most MaxBodyBytes within the server's
// read_timeout; otherwise it answers the request and returns ok=false.
func (h *handler) readBody(w http.ResponseWriter, r *http.Request) (body []byte, ok bool) {
	if r.ContentLength > MaxBodyBytes {
		plain(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body too large: %d bytes, the limit is %d", r.ContentLength, MaxBodyBytes))
		return nil, false
	}
	// Read as it arrives rather than into a buffer of the announced length: a
	// Content-Length costs the client nothing to claim.
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err == nil {
		return body, true
	}
	var tooLarge *http.MaxBytesError
	var netErr net.Error
	switch {
	case errors.As(err, &tooLarge):
		plain(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body too large: the limit is %d bytes", MaxBodyBytes))
	case errors.As(err, &netErr) && netErr.Timeout():
		plain(w, http.StatusRequestTimeout, fmt.Sprintf("request timeout: the request was not received within the read_timeout of http_server %q (%v)", h.srv.cfg.Name, h.srv.http.ReadTimeout))
	default:
		plain(w, http.StatusBadRequest, "reading the request body: "+err.Error())
	}
	return nil, false
}

// fail answers a request whose handler did not produce a response.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, ep *endpoint, ctx context.Context, err error) {
	var trap *wasmhost.TrapError
	var full *actors.ResourceExhaustedError
	switch {
	case errors.As(err, &full):
		retryLater(w, full)
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() == context.DeadlineExceeded:
		plain(w, http.StatusRequestTimeout, fmt.Sprintf("request timeout: the webhook ran past its request_timeout (%v)", ep.cfg.RequestTimeout))
	case errors.As(err, &trap):
		h.log.Warn("webhook trapped", "endpoint", ep.cfg.Name, "path", r.URL.Path, "err", trap.Message)
		plain(w, http.StatusInternalServerError, "webhook trapped: "+firstLine(trap.Message))
	case h.s.ctx.Err() != nil:
		plain(w, http.StatusServiceUnavailable, "the server is stopping")
	case r.Context().Err() != nil:
		// The client is gone: nobody reads the answer.
	default:
		h.log.Error("webhook", "endpoint", ep.cfg.Name, "path", r.URL.Path, "err", err)
		plain(w, http.StatusServiceUnavailable, "webhook unavailable: "+firstLine(err.Error()))
	}
}

// retryLater answers a request whose execution a max_pending limit refused: 429 with
// Retry-After (seconds), as for the API's resource_exhausted.
func retryLater(w http.ResponseWriter, full *actors.ResourceExhaustedError) {
	w.Header().Set("Retry-After", strconv.Itoa(full.RetryAfterSeconds()))
	plain(w, http.StatusTooManyRequests, "too many requests: "+full.Error())
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	const max = 500
	if len(s) > max {
		s = s[:max] + "..."
	}
	return s
}

func plain(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, msg+"\n")
}
