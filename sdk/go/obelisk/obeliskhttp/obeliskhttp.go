// Package obeliskhttp lets Obelisk activities make HTTP requests through the
// host, with a standard *http.Client.
//
// It is a package of its own so that components that do not make HTTP
// requests do not link net/http, which adds 2 to 7 MB to a module and slows
// down its instantiation: the host instantiates a module for every activity
// attempt and every workflow replay.
//
//	func get(ctx obelisk.Context, url string) (string, error) {
//		resp, err := obeliskhttp.Client(ctx).Get(url)
//		...
//	}
//
// The requests are made by the host (the http op of docs/abi.md), and only to
// the hosts the component is allowed to reach. Workflows cannot make HTTP
// requests.
package obeliskhttp

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
)

// Client returns an HTTP client for an activity, whose requests are made by
// the host through a [Transport]. The client follows redirects itself (the
// host does not), each one a request of its own; its Timeout, or the request
// context's deadline, is passed on to the host. An error the host answers
// with is returned wrapped in a *url.Error and can be found with errors.As as
// an [*obelisk.HostError], whose Kind is [obelisk.KindNotAllowed],
// [obelisk.KindTransport] or, in a workflow, [obelisk.KindUnsupportedOp].
func Client(ctx obelisk.Context) *http.Client {
	return &http.Client{Transport: NewTransport(ctx)}
}

// Transport is an http.RoundTripper that sends every request through the
// host's http op. It sends one request per RoundTrip: it does not follow
// redirects, and does not ask for or undo compression (the body is returned
// as the server sent it).
type Transport struct {
	ctx obelisk.Context
	// stream: bodies are read from the host as they arrive (StreamingClient).
	stream bool
}

// StreamingClient is [Client] for responses whose body is read as it arrives, such as
// a stream of events that never ends: the response is returned once its headers are
// in, and every Read of its body takes what has arrived from the host (the http op
// with stream, then http_body_read), waiting for more when nothing has. Close the
// body when done with it; the host closes what is left open when the run ends. The
// client's Timeout (or the request context's deadline) bounds the reading of the
// body too. For activities, webhook endpoints and triggers.
func StreamingClient(ctx obelisk.Context) *http.Client {
	return &http.Client{Transport: &Transport{ctx: ctx, stream: true}}
}

// NewTransport returns a Transport making requests for the function that
// was passed ctx.
func NewTransport(ctx obelisk.Context) *Transport {
	return &Transport{ctx: ctx}
}

// RoundTrip sends req through the host and returns its response, whose body
// has been read in full by the host.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		var err error
		body, err = io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("obeliskhttp: reading the request body: %w", err)
		}
	}
	if req.URL == nil {
		return nil, fmt.Errorf("obeliskhttp: request without URL")
	}
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	hr := abi.HTTPRequest{
		Method:  req.Method,
		URL:     req.URL.String(),
		Headers: make(map[string][]string, len(req.Header)+1),
	}
	if hr.Method == "" {
		hr.Method = http.MethodGet
	}
	for k, vs := range req.Header {
		hr.Headers[k] = vs
	}
	if req.Host != "" && req.Host != req.URL.Host {
		hr.Headers["Host"] = []string{req.Host}
	}
	if len(body) > 0 {
		hr.Body = base64.StdEncoding.EncodeToString(body)
	}
	hr.Stream = t.stream
	if deadline, ok := req.Context().Deadline(); ok {
		ms := time.Until(deadline).Milliseconds()
		if ms <= 0 {
			return nil, context.DeadlineExceeded
		}
		hr.TimeoutMS = ms
	}

	var hresp abi.HTTPResponse
	if err := t.ctx.HostCall(abi.OpHTTP, hr, &hresp); err != nil {
		return nil, err
	}
	var respBody []byte
	if !t.stream {
		var err error
		if respBody, err = base64.StdEncoding.DecodeString(hresp.Body); err != nil {
			return nil, fmt.Errorf("obeliskhttp: malformed response body: %w", err)
		}
	}
	// Names that differ only in case are merged, in a deterministic order.
	header := make(http.Header, len(hresp.Headers))
	for _, k := range slices.Sorted(maps.Keys(hresp.Headers)) {
		ck := http.CanonicalHeaderKey(k)
		header[ck] = append(header[ck], hresp.Headers[k]...)
	}
	status := strconv.Itoa(hresp.Status)
	if text := http.StatusText(hresp.Status); text != "" {
		status += " " + text
	}
	resp := &http.Response{
		Status:        status,
		StatusCode:    hresp.Status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        header,
		Body:          io.NopCloser(bytes.NewReader(respBody)),
		ContentLength: int64(len(respBody)),
		Request:       req,
	}
	if t.stream {
		resp.Body, resp.ContentLength = &streamBody{ctx: t.ctx, stream: hresp.BodyStream}, -1
	}
	return resp, nil
}

// streamBody is a response body read from the host as it arrives.
type streamBody struct {
	ctx    obelisk.Context
	stream int
	buf    []byte // arrived, not read yet
	eof    bool
	err    error // a failed read: every later read returns it (the body was cut)
	closed bool
}

func (b *streamBody) Read(p []byte) (int, error) {
	if b.closed {
		return 0, fmt.Errorf("obeliskhttp: read of a closed body")
	}
	for len(b.buf) == 0 {
		if b.err != nil {
			return 0, b.err
		}
		if b.eof {
			return 0, io.EOF
		}
		var chunk abi.HTTPBodyChunk
		if err := b.ctx.HostCall(abi.OpHTTPBodyRead, abi.HTTPBodyReadRequest{Stream: b.stream, MaxBytes: max(len(p), 4096)}, &chunk); err != nil {
			b.err = fmt.Errorf("obeliskhttp: reading the response body: %w", err) // the host closed the stream
			return 0, b.err
		}
		b.buf, b.eof = chunk.Data, chunk.EOF
	}
	n := copy(p, b.buf)
	b.buf = b.buf[n:]
	return n, nil
}

func (b *streamBody) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	if b.eof {
		return nil // the host closed it at the end
	}
	return b.ctx.HostCall(abi.OpHTTPBodyClose, abi.HTTPBodyCloseRequest{Stream: b.stream}, nil)
}
