// Package obeliskwebhook lets an Obelisk webhook endpoint be written as an
// ordinary net/http [http.Handler].
//
// A webhook endpoint is a component that exports no functions: the host runs
// it once per HTTP request that matches one of its routes (obelisk.toml,
// [[webhook_endpoint]] routes), each time in a fresh instance. Register the
// handler from an init function:
//
//	func init() {
//		obeliskwebhook.HandleFunc(func(w http.ResponseWriter, r *http.Request) {
//			n, _ := strconv.ParseUint(r.PathValue("n"), 10, 8) // route "GET /fibo/:n"
//			v, err := obelisk.Call[uint64](obeliskwebhook.Context(r), "testing:fibo/fibo.fibo", n)
//			if err != nil {
//				http.Error(w, err.Error(), http.StatusBadGateway)
//				return
//			}
//			fmt.Fprint(w, v)
//		})
//	}
//
//	func main() {}
//
// The route's parameters (":n", and a wildcard's rest of the path, "*" unless
// named) are the request's path values: r.PathValue("n"), or [Param]. The
// handler may also route further itself, e.g. with an http.ServeMux.
//
// [Context] returns the request's [obelisk.Context], with which the handler
// calls ([obelisk.Call], waiting for the result), schedules
// ([obelisk.Schedule]), makes outgoing HTTP requests (obeliskhttp.Client,
// to the endpoint's allowed_hosts), logs, and asks for the status of an
// execution ([GetStatus]). A request that calls or schedules is recorded as
// an execution (its ID is obelisk.Context.ExecutionID, known from the start),
// and the executions it calls are its children; a request that does neither
// leaves nothing in the store. Webhook requests are not replayed: a handler
// needs no determinism, and may use the real clock and randomness.
//
// The request's body stays in the host until the handler reads r.Body, which
// copies it into the module's memory as it is read (the request_body_read
// import): a handler that ignores the body does not pay for it.
//
// A panic in the handler traps: the client gets a 500. The response is
// buffered and sent when the handler returns.
package obeliskwebhook

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
)

// HandlerFFQN is the function the host runs for every request (docs/abi.md,
// "Webhook endpoints").
const HandlerFFQN = "obelisk:webhook/handler.handle"

// Request is a request as the host passes it to the handler function.
type Request struct {
	Method string `json:"method"`
	// Path is the decoded path, Query the raw query (without '?').
	Path    string              `json:"path"`
	Query   string              `json:"query"`
	Host    string              `json:"host"`
	Headers map[string][]string `json:"headers"`
	// BodyLength is the length of the body, which the host hands out with the
	// request_body_read import (BodyReadOp outside the host).
	BodyLength int64 `json:"body_length"`
	// Params are the route parameters.
	Params map[string]string `json:"params"`
}

// Response is what the handler function returns to the host.
type Response struct {
	Status  int                 `json:"status"`
	Headers map[string][]string `json:"headers"`
	Body    []byte              `json:"body"` // base64 in JSON
}

// Handle registers h as the component's webhook handler. Call it once, from
// an init function.
func Handle(h http.Handler) {
	obelisk.Export(HandlerFFQN, func(ctx obelisk.Context, req Request) (Response, error) {
		return serve(ctx, h, &req), nil
	})
}

// HandleFunc registers f as the component's webhook handler.
func HandleFunc(f func(http.ResponseWriter, *http.Request)) { Handle(http.HandlerFunc(f)) }

type ctxKey struct{}

// Context returns the obelisk.Context of the request being handled. It is
// only valid while the handler runs; outside a handler registered with
// Handle, every host operation of the returned Context fails.
func Context(r *http.Request) obelisk.Context {
	ctx, _ := r.Context().Value(ctxKey{}).(obelisk.Context)
	return ctx
}

// Param returns the value of the route parameter name, "" if there is none;
// the same as r.PathValue(name).
func Param(r *http.Request, name string) string { return r.PathValue(name) }

func serve(ctx obelisk.Context, h http.Handler, req *Request) Response {
	r := newRequest(ctx, req)
	w := &recorder{header: http.Header{}}
	h.ServeHTTP(w, r)
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return Response{Status: w.status, Headers: w.header, Body: w.body.Bytes()}
}

func newRequest(ctx obelisk.Context, req *Request) *http.Request {
	u := &url.URL{Path: req.Path, RawQuery: req.Query}
	header := make(http.Header, len(req.Headers))
	for k, vs := range req.Headers {
		ck := http.CanonicalHeaderKey(k)
		header[ck] = append(header[ck], vs...)
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	r := &http.Request{
		Method:        method,
		URL:           u,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        header,
		Body:          &requestBody{ctx: ctx, size: req.BodyLength},
		ContentLength: req.BodyLength,
		Host:          req.Host,
		RequestURI:    u.RequestURI(),
	}
	if req.BodyLength <= 0 {
		r.Body, r.ContentLength = http.NoBody, 0
	}
	r = r.WithContext(context.WithValue(context.Background(), ctxKey{}, ctx))
	for _, name := range slices.Sorted(maps.Keys(req.Params)) {
		r.SetPathValue(name, req.Params[name])
	}
	return r
}

// requestBody is the body of a request, copied from the host as the handler
// reads it (readBody).
type requestBody struct {
	ctx          obelisk.Context
	offset, size int64
}

func (b *requestBody) Read(p []byte) (int, error) {
	if b.offset >= b.size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	n, err := readBody(b.ctx, b.offset, p[:min(int64(len(p)), b.size-b.offset)])
	if err != nil {
		return 0, fmt.Errorf("obeliskwebhook: reading the request body at byte %d: %w", b.offset, err)
	}
	if n == 0 {
		return 0, fmt.Errorf("obeliskwebhook: reading the request body at byte %d of %d: %w", b.offset, b.size, io.ErrUnexpectedEOF)
	}
	b.offset += int64(n)
	return n, nil
}

func (b *requestBody) Close() error { return nil }

// recorder is the http.ResponseWriter of a handler: the response is buffered
// and returned to the host when the handler returns.
type recorder struct {
	header      http.Header
	status      int
	wroteHeader bool
	body        bytes.Buffer
}

func (w *recorder) Header() http.Header { return w.header }

func (w *recorder) WriteHeader(status int) {
	if w.wroteHeader {
		return
	}
	if status < 100 || status > 999 {
		panic(fmt.Sprintf("obeliskwebhook: invalid WriteHeader code %d", status))
	}
	w.status, w.wroteHeader = status, true
}

func (w *recorder) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return w.body.Write(b)
}

// Flush does nothing: the response is sent when the handler returns.
func (w *recorder) Flush() {}

// Status is the status of an execution, as GetStatus reports it: Status is
// pending_at, locked, blocked_by_join_set or finished, and Result the result of
// a finished execution, {"ok": v}, {"err": v} or {"execution_failure": {"kind":
// k, "reason": r}}.
type Status = abi.Status

// GetStatus returns the status of any execution, e.g. one the handler
// scheduled. An unknown ID is an *obelisk.HostError of kind not_found.
func GetStatus(ctx obelisk.Context, executionID string) (Status, error) {
	var st Status
	err := ctx.HostCall(abi.OpGetStatus, abi.GetStatusRequest{ExecutionID: executionID}, &st)
	return st, err
}

// Serve runs the handler registered with Handle for r, with the route
// parameters params, on host as the Obelisk host would, and returns its
// response. The handler's reads of the body, which the Obelisk host answers
// with its request_body_read import, reach host as the operation BodyReadOp;
// Serve answers it from r.Body unless host.Ops has a handler for it. It is
// meant for tests of a webhook endpoint outside the host; a panic of the
// handler is not recovered.
func Serve(host *obelisk.TestHost, r *http.Request, params map[string]string) *http.Response {
	var body []byte
	if r.Body != nil {
		body, _ = io.ReadAll(r.Body)
	}
	if host.Ops[BodyReadOp] == nil {
		withBody := *host
		withBody.Ops = maps.Clone(host.Ops)
		if withBody.Ops == nil {
			withBody.Ops = map[string]obelisk.OpHandler{}
		}
		withBody.Ops[BodyReadOp] = bodyReader(body)
		host = &withBody
	}
	req := Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Host: r.Host, Headers: r.Header, BodyLength: int64(len(body)), Params: params}
	out := host.Run(HandlerFFQN, req)
	var res struct {
		Ok *Response `json:"ok"`
	}
	if err := json.Unmarshal(out, &res); err != nil || res.Ok == nil {
		panic(fmt.Sprintf("obeliskwebhook: the handler returned %s", out))
	}
	status := strconv.Itoa(res.Ok.Status)
	if text := http.StatusText(res.Ok.Status); text != "" {
		status += " " + text
	}
	return &http.Response{
		Status: status, StatusCode: res.Ok.Status, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header(res.Ok.Headers), Body: io.NopCloser(bytes.NewReader(res.Ok.Body)),
		ContentLength: int64(len(res.Ok.Body)), Request: r,
	}
}

// BodyReadOp is the operation by which, outside an Obelisk host, the
// handler's reads of the request body reach a [obelisk.TestHost]: request
// {"offset": n, "length": n}, ok value the bytes from offset (at most length
// and at most 64 KiB of them) in base64, "" at the end of the body. Inside
// the host they are copied by the request_body_read import (docs/abi.md).
const BodyReadOp = "request_body_read"

// maxBodyChunk is the most one BodyReadOp answers.
const maxBodyChunk = 64 << 10

// bodyReader answers BodyReadOp from body.
func bodyReader(body []byte) obelisk.OpHandler {
	return func(request json.RawMessage) (any, error) {
		var q struct {
			Offset *int64 `json:"offset"`
			Length *int64 `json:"length"`
		}
		if err := json.Unmarshal(request, &q); err != nil {
			return nil, err
		}
		switch size := int64(len(body)); {
		case q.Offset == nil || q.Length == nil:
			return nil, fmt.Errorf("%s: offset and length are required", BodyReadOp)
		case *q.Offset < 0 || *q.Offset > size:
			return nil, fmt.Errorf("%s: offset %d is outside the body of %d bytes", BodyReadOp, *q.Offset, size)
		case *q.Length < 0:
			return nil, fmt.Errorf("%s: length %d is negative", BodyReadOp, *q.Length)
		}
		chunk := body[*q.Offset:]
		return base64.StdEncoding.EncodeToString(chunk[:min(int64(len(chunk)), *q.Length, maxBodyChunk)]), nil
	}
}
