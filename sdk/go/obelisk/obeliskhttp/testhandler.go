package obeliskhttp

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
)

// TestHandler returns a handler of the http op for an [obelisk.TestHost],
// which sends the requests with rt, e.g. http.DefaultTransport:
//
//	host := &obelisk.TestHost{Ops: map[string]obelisk.OpHandler{
//		"http": obeliskhttp.TestHandler(http.DefaultTransport),
//	}}
//
// Like the host, it sends one request per operation, without following
// redirects, and returns the body as the server sent it (an *http.Transport
// is cloned with DisableCompression set). An error of rt is answered as a
// transport host error. A nil rt answers every request with a not_allowed
// host error, as for an activity with no allowed hosts.
func TestHandler(rt http.RoundTripper) obelisk.OpHandler {
	return TestHandlers(rt)[abi.OpHTTP]
}

// TestHandlers returns the handlers of the http op and of the ops that read a
// streamed body (http_body_read, http_body_close; see [StreamingClient]) for an
// [obelisk.TestHost], sharing the bodies open:
//
//	host := &obelisk.TestHost{Ops: obeliskhttp.TestHandlers(http.DefaultTransport)}
//
// The http handler is [TestHandler]'s. Add other handlers to the map as needed.
func TestHandlers(rt http.RoundTripper) map[string]obelisk.OpHandler {
	if t, ok := rt.(*http.Transport); ok && !t.DisableCompression {
		t = t.Clone()
		t.DisableCompression = true
		rt = t
	}
	var mu sync.Mutex
	streams := map[int]io.ReadCloser{}
	next := 0
	stream := func(raw json.RawMessage, op string) (int, io.ReadCloser, error) {
		var q abi.HTTPBodyReadRequest
		if err := json.Unmarshal(raw, &q); err != nil {
			return 0, nil, &obelisk.HostError{Kind: obelisk.KindBadRequest, Message: err.Error()}
		}
		mu.Lock()
		defer mu.Unlock()
		b := streams[q.Stream]
		if b == nil {
			return 0, nil, &obelisk.HostError{Kind: obelisk.KindNotFound, Message: fmt.Sprintf("%s: no open body stream %d", op, q.Stream)}
		}
		return q.Stream, b, nil
	}
	closeStream := func(id int) {
		mu.Lock()
		defer mu.Unlock()
		if b := streams[id]; b != nil {
			b.Close()
			delete(streams, id)
		}
	}
	read := func(raw json.RawMessage) (any, error) {
		id, b, err := stream(raw, abi.OpHTTPBodyRead)
		if err != nil {
			return nil, err
		}
		buf := make([]byte, 64<<10)
		var n int
		for n == 0 && err == nil {
			n, err = b.Read(buf)
		}
		switch {
		case err == io.EOF:
			closeStream(id)
			return abi.HTTPBodyChunk{Data: buf[:n], EOF: true}, nil
		case err != nil && n == 0:
			closeStream(id)
			return nil, &obelisk.HostError{Kind: obelisk.KindTransport, Message: err.Error()}
		}
		return abi.HTTPBodyChunk{Data: buf[:n]}, nil
	}
	closeOp := func(raw json.RawMessage) (any, error) {
		id, _, err := stream(raw, abi.OpHTTPBodyClose)
		if err != nil {
			return nil, err
		}
		closeStream(id)
		return nil, nil
	}
	do := func(raw json.RawMessage) (any, error) {
		var r abi.HTTPRequest
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, &obelisk.HostError{Kind: obelisk.KindBadRequest, Message: err.Error()}
		}
		if rt == nil {
			return nil, &obelisk.HostError{Kind: obelisk.KindNotAllowed, Message: "obeliskhttp.TestHandler has no RoundTripper: " + r.URL}
		}
		body, err := base64.StdEncoding.DecodeString(r.Body)
		if err != nil {
			return nil, &obelisk.HostError{Kind: obelisk.KindBadRequest, Message: "body: " + err.Error()}
		}
		ctx, cancel := context.WithCancel(context.Background())
		if r.TimeoutMS > 0 {
			cancel()
			ctx, cancel = context.WithTimeout(context.Background(), time.Duration(r.TimeoutMS)*time.Millisecond)
		}
		// A streamed body is read after this returns: closing it cancels its request.
		streaming := false
		defer func() {
			if !streaming {
				cancel()
			}
		}()
		hreq, err := http.NewRequestWithContext(ctx, r.Method, r.URL, bytes.NewReader(body))
		if err != nil {
			return nil, &obelisk.HostError{Kind: obelisk.KindBadRequest, Message: err.Error()}
		}
		for k, vs := range r.Headers {
			hreq.Header[http.CanonicalHeaderKey(k)] = vs
		}
		if host := hreq.Header.Get("Host"); host != "" {
			hreq.Host = host
			hreq.Header.Del("Host")
		}
		resp, err := rt.RoundTrip(hreq)
		if err != nil {
			return nil, &obelisk.HostError{Kind: obelisk.KindTransport, Message: err.Error()}
		}
		if r.Stream {
			streaming = true
			mu.Lock()
			next++
			streams[next] = &cancelBody{resp.Body, cancel}
			mu.Unlock()
			return abi.HTTPResponse{Status: resp.StatusCode, Headers: resp.Header, BodyStream: next}, nil
		}
		defer resp.Body.Close()
		respBody, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, &obelisk.HostError{Kind: obelisk.KindTransport, Message: err.Error()}
		}
		return abi.HTTPResponse{
			Status:  resp.StatusCode,
			Headers: resp.Header,
			Body:    base64.StdEncoding.EncodeToString(respBody),
		}, nil
	}
	return map[string]obelisk.OpHandler{abi.OpHTTP: do, abi.OpHTTPBodyRead: read, abi.OpHTTPBodyClose: closeOp}
}

// cancelBody is a streamed body whose Close also ends its request's context.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	defer b.cancel()
	return b.ReadCloser.Close()
}
