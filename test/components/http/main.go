// Command http is an activity making HTTP GET requests through the host.
//
// Build it as a WASI reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o http.wasm ./test/components/http
//
// The host only lets it reach the hosts listed in the component's
// allowed_hosts. It is the only test component that imports
// obeliskhttp, and so the only one that links net/http.
package main

import (
	"fmt"
	"io"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/obeliskhttp"
)

func init() {
	obelisk.Export("testing:http/http-get.get", get)
}

// get implements `get: func(url: string) -> result<string, string>`: the
// body when the status is 2xx, otherwise an err describing the status or the
// transport error. A returned error's message becomes the err string, and the
// activity is retried.
func get(ctx obelisk.Context, url string) (string, error) {
	resp, err := obeliskhttp.Client(ctx).Get(url)
	if err != nil {
		// e.g. `Get "http://x/": obelisk: http: not_allowed: ...`
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return "", fmt.Errorf("status %s", resp.Status)
	}
	return string(body), nil
}

func main() {}
