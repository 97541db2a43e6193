package config

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/obelisk-go/obelisk/oci"
)

// TestOCILocations: location.oci on every kind of component is recorded for the server
// to resolve (the component has no path until then); location.path stays relative to
// the config; oci.plain_http is read.
func TestOCILocations(t *testing.T) {
	p := write(t, `
[oci]
plain_http = ["registry.internal:5000"]
[[activity_wasm]]
name = "fibo"
location.oci = "127.0.0.1:5000/fibo:v1"
[[activity_wasm]]
name = "local"
location.path = "local.wasm"
[[workflow]]
name = "wf"
location.oci = "ghcr.io/org/wf@sha256:`+"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"+`"
[[activity_stub]]
name = "stub"
location.oci = "localhost:5000/stub:v1"
[[webhook_endpoint]]
name = "hook"
location.oci = "ghcr.io/org/hook:1.0"
routes = ["/"]
`)
	s, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	want := []oci.Location{
		{Component: "fibo", Reference: "127.0.0.1:5000/fibo:v1"},
		{Component: "wf", Reference: "ghcr.io/org/wf@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
		{Component: "stub", Reference: "localhost:5000/stub:v1"},
		{Component: "hook", Reference: "ghcr.io/org/hook:1.0"},
	}
	if !slices.Equal(s.OCI, want) {
		t.Fatalf("OCI = %+v", s.OCI)
	}
	if !slices.Equal(s.OCIPlainHTTP, []string{"registry.internal:5000"}) {
		t.Fatalf("OCIPlainHTTP = %v", s.OCIPlainHTTP)
	}
	paths := map[string]string{}
	for _, c := range s.Engine.Components {
		paths[c.Name] = c.Path
	}
	if paths["fibo"] != "" || paths["wf"] != "" || paths["stub"] != "" || paths["hook"] != "" || paths["local"] != filepath.Join(filepath.Dir(p), "local.wasm") {
		t.Fatalf("paths = %v", paths)
	}
}
