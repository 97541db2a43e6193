package bench

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/test/harness"
)

// BenchmarkWebhookThroughput: 2,000 HTTP requests from 32 concurrent clients (a local
// load generator), each in a fresh instance of the fibo-webhook endpoint:
//   - fibo: GET /fibo/1/1, which calls the fiboa workflow (itself calling the fibo
//     activity once) and waits for it: every request is recorded as an execution with a
//     child, which has a child;
//   - const: GET /const, which does nothing durable (the cost of the HTTP side and of an
//     instance per request).
//
// The metrics are requests per second and the latency percentiles.
func BenchmarkWebhookThroughput(b *testing.B) {
	const n, clients = 2000, 32
	s := harness.Start(b, harness.Options{Deployment: fmt.Sprintf(`
[[webhook_endpoint]]
name = "webhook_const"
location.path = %q
routes = ["GET /const"]
`, filepath.Join(harness.ComponentsDir(), "fibo-webhook.wasm"))})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	for _, c := range []struct{ name, path, want string }{{"fibo", "/fibo/1/1", "1"}, {"const", "/const", "constant"}} {
		b.Run(c.name, func(b *testing.B) {
			get := func() (time.Duration, error) {
				start := time.Now()
				resp, err := client.Get(s.WebhookURL + c.path)
				if err != nil {
					return 0, err
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || string(body) != c.want {
					return 0, fmt.Errorf("GET %s: %d %q %v", c.path, resp.StatusCode, body, err)
				}
				return time.Since(start), nil
			}
			for range clients { // warm up: connections, instance pools
				if _, err := get(); err != nil {
					b.Fatal(err)
				}
			}
			for range b.N {
				latencies := make([]time.Duration, n)
				var next atomic.Int64
				var failed atomic.Value
				var wg sync.WaitGroup
				start := time.Now()
				for range clients {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for {
							i := next.Add(1) - 1
							if i >= n {
								return
							}
							d, err := get()
							if err != nil {
								failed.Store(err)
								return
							}
							latencies[i] = d
						}
					}()
				}
				wg.Wait()
				elapsed := time.Since(start)
				if err, _ := failed.Load().(error); err != nil {
					b.Fatal(err)
				}
				slices.Sort(latencies)
				b.ReportMetric(float64(n)/elapsed.Seconds(), "requests/s")
				b.ReportMetric(float64(latencies[n/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(latencies[n*99/100].Microseconds())/1000, "p99-ms")
			}
		})
	}
}
