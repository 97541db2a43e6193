package obeliskhttp_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/obeliskhttp"
)

// An activity making an HTTP request through the host. The TestHost sends it
// to a local test server.
func ExampleClient() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "hello")
	}))
	defer srv.Close()

	obelisk.Export("example:http/http-get.get", func(ctx obelisk.Context, url string) (string, error) {
		resp, err := obeliskhttp.Client(ctx).Get(url)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return string(body), err
	})

	host := &obelisk.TestHost{Ops: map[string]obelisk.OpHandler{
		"http": obeliskhttp.TestHandler(http.DefaultTransport),
	}}
	fmt.Printf("%s\n", host.Run("example:http/http-get.get", srv.URL))
	// Output: {"ok":"hello"}
}
