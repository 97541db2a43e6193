// Command proxy-webhook is a test-only webhook endpoint: it fetches the URL given in
// its `url` query parameter through the host (under the endpoint's allowed_hosts) and
// answers with the status and body it got, or 502 with the error.
package main

import (
	"fmt"
	"io"
	"net/http"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk/obeliskhttp"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/obeliskwebhook"
)

func init() {
	obeliskwebhook.HandleFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, err := obeliskhttp.Client(obeliskwebhook.Context(r)).Get(r.URL.Query().Get("url"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		fmt.Fprintf(w, "%d %s", resp.StatusCode, body)
	})
}

func main() {}
