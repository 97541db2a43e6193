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

	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
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
	reqCtx := ctx
	if hr.TimeoutMS > 0 {
		var cancel context.CancelFunc
		reqCtx, cancel = context.WithTimeout(ctx, time.Duration(hr.TimeoutMS)*time.Millisecond)
		defer cancel()
	}
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
	resp, err := i.http.client(t).Do(req)
	if err != nil {
		return nil, i.httpFailure(ctx, err)
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
