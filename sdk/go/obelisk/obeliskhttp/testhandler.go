package obeliskhttp

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
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
	if t, ok := rt.(*http.Transport); ok && !t.DisableCompression {
		t = t.Clone()
		t.DisableCompression = true
		rt = t
	}
	return func(raw json.RawMessage) (any, error) {
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
		ctx := context.Background()
		if r.TimeoutMS > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, time.Duration(r.TimeoutMS)*time.Millisecond)
			defer cancel()
		}
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
}
