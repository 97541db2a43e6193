package bench

import (
	"bytes"
	"crypto/sha256"
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

// BenchmarkWebhookBody: 20 POSTs of a 1 MB body, one at a time, each in a fresh
// instance of the fibo-webhook endpoint:
//   - ignore: POST /const, whose handler never reads the body (what a body costs the
//     server before and after the handler, e.g. receiving it and handing it over);
//   - read: POST /size, whose handler reads the whole body (and hashes it with SHA-256,
//     which in the guest costs more than the reading).
//
// The metrics are the mean latency and the body megabytes per second.
func BenchmarkWebhookBody(b *testing.B) {
	const n, size = 20, 1 << 20
	s := harness.Start(b, harness.Options{Deployment: fmt.Sprintf(`
[[webhook_endpoint]]
name = "webhook_body"
location.path = %q
routes = ["POST /const", "POST /size"]
`, filepath.Join(harness.ComponentsDir(), "fibo-webhook.wasm"))})
	body := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	for _, c := range []struct{ name, path, want string }{
		{"ignore", "/const", "constant"},
		{"read", "/size", fmt.Sprintf("%d %d %x", size, size, sha256.Sum256(body))},
	} {
		b.Run(c.name, func(b *testing.B) {
			post := func() error {
				resp, err := http.Post(s.WebhookURL+c.path, "application/octet-stream", bytes.NewReader(body))
				if err != nil {
					return err
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || string(got) != c.want {
					return fmt.Errorf("POST %s: %d %q %v", c.path, resp.StatusCode, got, err)
				}
				return nil
			}
			if err := post(); err != nil { // warm up: connections, instance pools
				b.Fatal(err)
			}
			for range b.N {
				start := time.Now()
				for range n {
					if err := post(); err != nil {
						b.Fatal(err)
					}
				}
				elapsed := time.Since(start)
				b.ReportMetric(float64(elapsed.Microseconds())/1000/n, "ms/request")
				b.ReportMetric(float64(n*size)/(1<<20)/elapsed.Seconds(), "MB/s")
			}
		})
	}
}
