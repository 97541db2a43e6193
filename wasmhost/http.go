package wasmhost

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
	"github.com/obelisk-go/obelisk/tracing"
)

// opHTTP performs an activity's http op.
func (i *Instance) opHTTP(ctx context.Context, raw []byte) ([]byte, error) {
	var hr abi.HTTPRequest
	if err := json.Unmarshal(raw, &hr); err != nil {
		return nil, &HostError{Kind: abi.KindBadRequest, Message: "http: " + err.Error()}
	}
	if hr.Method == "" {
		hr.Method = http.MethodGet
	}
	u, err := url.Parse(hr.URL)
	if err != nil {
		return nil, &HostError{Kind: abi.KindBadRequest, Message: "http: " + err.Error()}
	}
	if s := strings.ToLower(u.Scheme); (s != "http" && s != "https") || u.Hostname() == "" {
		return nil, &HostError{Kind: abi.KindBadRequest, Message: fmt.Sprintf("http: url %q must be absolute http or https", hr.URL)}
	}
	t, err := i.http.check(hr.Method, u)
	var denied *deniedError
	switch {
	case errors.As(err, &denied):
		return nil, &HostError{Kind: abi.KindNotAllowed, Message: "http: " + err.Error()}
	case err != nil:
		return nil, &HostError{Kind: abi.KindBadRequest, Message: "http: url: " + err.Error()}
	}
	var body io.Reader
	if hr.Body != "" {
		b, err := base64.StdEncoding.DecodeString(hr.Body)
		if err != nil {
			return nil, &HostError{Kind: abi.KindBadRequest, Message: "http: body is not base64: " + err.Error()}
		}
		body = bytes.NewReader(b)
	}
	if hr.Stream && len(i.streams) >= maxHTTPStreams {
		return nil, &HostError{Kind: abi.KindBadRequest, Message: fmt.Sprintf("http: %d response bodies are open already: close one first (http_body_close)", maxHTTPStreams)}
	}
	// A streamed body is read after this op returns, under the run's ctx (or the
	// request's timeout), until it is closed or the run ends.
	var reqCtx context.Context
	var cancel context.CancelFunc
	if hr.TimeoutMS > 0 {
		reqCtx, cancel = context.WithTimeout(ctx, time.Duration(hr.TimeoutMS)*time.Millisecond)
	} else {
		reqCtx, cancel = context.WithCancel(ctx)
	}
	streaming := false
	defer func() {
		if !streaming {
			cancel()
		}
	}()
	// The dial of a new connection checks its addresses against t (Outbound.dial).
	req, err := http.NewRequestWithContext(context.WithValue(reqCtx, targetKey{}, t), hr.Method, u.String(), body)
	if err != nil {
		return nil, &HostError{Kind: abi.KindBadRequest, Message: "http: " + err.Error()}
	}
	for name, values := range hr.Headers {
		if http.CanonicalHeaderKey(name) == "Host" && len(values) > 0 {
			req.Host = values[0] // net/http ignores a Host entry in Header
			continue
		}
		for _, v := range values {
			req.Header.Add(name, v)
		}
	}
	// The request joins the attempt's trace, naming the attempt's span as its parent.
	tracing.Inject(ctx, req.Header)
	resp, err := i.http.client(t).Do(req)
	if err != nil {
		tracing.HostCall(ctx, abi.OpHTTP, attribute.String("http.request.method", hr.Method), attribute.String("server.address", u.Host),
			attribute.String("error.type", "transport"))
		return nil, i.httpFailure(ctx, err)
	}
	tracing.HostCall(ctx, abi.OpHTTP, attribute.String("http.request.method", hr.Method), attribute.String("server.address", u.Host),
		attribute.Int("http.response.status_code", resp.StatusCode))
	if hr.Stream {
		streaming = true
		i.nextStream++
		if i.streams == nil {
			i.streams = map[int]*httpStream{}
		}
		i.streams[i.nextStream] = &httpStream{body: resp.Body, cancel: cancel}
		out, err := json.Marshal(abi.HTTPResponse{Status: resp.StatusCode, Headers: resp.Header, BodyStream: i.nextStream})
		if err != nil {
			return nil, fmt.Errorf("wasmhost: encoding http response: %w", err)
		}
		return out, nil
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, i.http.maxBody+1))
	if err != nil {
		return nil, i.httpFailure(ctx, err)
	}
	if int64(len(b)) > i.http.maxBody {
		return nil, &HostError{Kind: abi.KindTransport, Message: fmt.Sprintf("http: response body larger than %d bytes", i.http.maxBody)}
	}
	out, err := json.Marshal(abi.HTTPResponse{Status: resp.StatusCode, Headers: resp.Header, Body: base64.StdEncoding.EncodeToString(b)})
	if err != nil {
		return nil, fmt.Errorf("wasmhost: encoding http response: %w", err)
	}
	return out, nil
}

// httpFailure maps a failed request: when the run's ctx ended (lock expiry,
// cancellation) the instance is aborted with the ctx error, an address the policy
// refused once resolved is not_allowed, anything else is transport.
func (i *Instance) httpFailure(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var denied *deniedError
	if errors.As(err, &denied) {
		return &HostError{Kind: abi.KindNotAllowed, Message: "http: " + denied.Error()}
	}
	return &HostError{Kind: abi.KindTransport, Message: "http: " + err.Error()}
}

// maxHTTPStreams bounds the response bodies an instance keeps open at once: each holds
// a connection.
const maxHTTPStreams = 16

// maxHTTPChunk bounds what one http_body_read answers.
const maxHTTPChunk = 1 << 20

// httpStream is a response body the guest reads with http_body_read.
type httpStream struct {
	body   io.ReadCloser
	cancel context.CancelFunc
}

func (s *httpStream) close() {
	s.cancel()
	s.body.Close()
}

// opHTTPBodyRead answers http_body_read: the bytes of a streamed body that arrived,
// waiting for at least one (or the end). The read is cut short when the run's ctx ends
// (the request's ctx derives from it), which is how a guest blocked on a stream that
// never ends is stopped at shutdown.
func (i *Instance) opHTTPBodyRead(ctx context.Context, raw []byte) ([]byte, error) {
	var q abi.HTTPBodyReadRequest
	if err := json.Unmarshal(raw, &q); err != nil {
		return nil, &HostError{Kind: abi.KindBadRequest, Message: "http_body_read: " + err.Error()}
	}
	s := i.streams[q.Stream]
	if s == nil {
		return nil, &HostError{Kind: abi.KindNotFound, Message: fmt.Sprintf("http_body_read: no open body stream %d", q.Stream)}
	}
	n := q.MaxBytes
	if n <= 0 {
		n = 64 << 10
	}
	buf := make([]byte, min(n, maxHTTPChunk))
	var got int
	var err error
	for got == 0 && err == nil {
		got, err = s.body.Read(buf)
	}
	chunk := abi.HTTPBodyChunk{Data: buf[:got]}
	switch {
	case err == io.EOF:
		chunk.EOF = true
		s.close()
		delete(i.streams, q.Stream)
	case err != nil:
		s.close()
		delete(i.streams, q.Stream)
		if got == 0 {
			return nil, i.httpFailure(ctx, err)
		}
		// The bytes that came are the guest's; the failure answers the next read.
		i.streams[q.Stream] = &httpStream{body: failedBody{err}, cancel: func() {}}
	}
	out, merr := json.Marshal(chunk)
	if merr != nil {
		return nil, fmt.Errorf("wasmhost: encoding http body chunk: %w", merr)
	}
	return out, nil
}

// failedBody answers a read with the error a stream met after its last bytes.
type failedBody struct{ err error }

func (b failedBody) Read([]byte) (int, error) { return 0, b.err }
func (b failedBody) Close() error             { return nil }

// opHTTPBodyClose answers http_body_close.
func (i *Instance) opHTTPBodyClose(raw []byte) ([]byte, error) {
	var q abi.HTTPBodyCloseRequest
	if err := json.Unmarshal(raw, &q); err != nil {
		return nil, &HostError{Kind: abi.KindBadRequest, Message: "http_body_close: " + err.Error()}
	}
	s := i.streams[q.Stream]
	if s == nil {
		return nil, &HostError{Kind: abi.KindNotFound, Message: fmt.Sprintf("http_body_close: no open body stream %d", q.Stream)}
	}
	s.close()
	delete(i.streams, q.Stream)
	return nil, nil
}

// closeStreams closes the bodies the guest left open when its run ends.
func (i *Instance) closeStreams() {
	for id, s := range i.streams {
		s.close()
		delete(i.streams, id)
	}
}
