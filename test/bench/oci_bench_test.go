package bench

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/test/harness"
)

// pullTook reads the time the server logged for pulling a component
// ("oci: pulled component ... took=...").
var pullTook = regexp.MustCompile(`msg="oci: pulled component" .* took=(\S+)`)

// BenchmarkOCI: seconds from starting the server on the example deployment, with fibo
// deployed from a loopback registry (location.oci), to its API answering: with an empty
// data directory (resolve, pull into the component store, lock: a cold pull), again
// with the wasm stored and the registry up (the tag is resolved again and compared with
// the lock), and with the registry stopped (the lock alone). s-path/op is the same start
// with fibo from its file, for comparison; the compilation cache is warm throughout, so
// the differences are OCI's. ms-pull/op is the pull itself, as the server logged it.
// Skipped without docker-registry.
func BenchmarkOCI(b *testing.B) {
	reg := harness.StartRegistry(b)
	fibo := filepath.Join(harness.ComponentsDir(), "fibo.wasm")
	ref := reg.Addr + "/fibo:v1"
	if out, err := exec.Command(harness.Binary(), "component", "push", fibo, ref).CombinedOutput(); err != nil {
		b.Fatalf("push: %v\n%s", err, out)
	}
	// Fill the compilation cache, then time a start from files.
	s := harness.Start(b, harness.Options{})
	s.Stop()
	var path, cold, cached, offline, pull time.Duration
	timed := func(start func()) time.Duration {
		t := time.Now()
		start()
		return time.Since(t)
	}
	for range b.N {
		path += timed(s.Start)
		s.Stop()
		var o *harness.Server
		cold += timed(func() {
			o = harness.Start(b, harness.Options{Locations: map[string]string{"fibo": `location.oci = "` + ref + `"`}})
		})
		m := pullTook.FindStringSubmatch(o.Log())
		if m == nil {
			b.Fatalf("no pull logged:\n%s", o.Log())
		}
		d, err := time.ParseDuration(strings.TrimSpace(m[1]))
		if err != nil {
			b.Fatalf("pull time %q: %v", m[1], err)
		}
		pull += d
		o.Stop()
		cached += timed(o.Start)
		o.Stop()
		reg.Stop()
		offline += timed(o.Start)
		o.Stop()
		reg.Start()
	}
	n := float64(b.N)
	b.ReportMetric(path.Seconds()/n, "s-path/op")
	b.ReportMetric(cold.Seconds()/n, "s-cold-pull/op")
	b.ReportMetric(cached.Seconds()/n, "s-cached/op")
	b.ReportMetric(offline.Seconds()/n, "s-offline/op")
	b.ReportMetric(float64(pull.Microseconds())/1000/n, "ms-pull/op")
}
