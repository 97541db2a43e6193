package config

import (
	"slices"
	"strings"
	"testing"
)

// requires is "auto" (or absent: nil) or a list of component names, on a workflow and a
// webhook endpoint; anything else is refused naming the component and the value.
func TestRequires(t *testing.T) {
	p := write(t, `
[[workflow]]
name = "auto"
location.path = "wf.wasm"
requires = "auto"

[[workflow]]
name = "absent"
location.path = "wf.wasm"

[[workflow]]
name = "listed"
location.path = "wf.wasm"
requires = ["fibo", "fibo2"]

[[webhook_endpoint]]
name = "hook"
location.path = "hook.wasm"
routes = ["/x"]
requires = ["fibo2"]

[[trigger]]
name = "trig"
location.path = "trig.wasm"
requires = ["fibo"]
`)
	s, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, c := range s.Engine.Components {
		got[c.Name] = c.Requires
	}
	if got["auto"] != nil || got["absent"] != nil {
		t.Errorf("auto / absent: %q, %q, want nil (auto)", got["auto"], got["absent"])
	}
	if !slices.Equal(got["listed"], []string{"fibo", "fibo2"}) || !slices.Equal(got["hook"], []string{"fibo2"}) || !slices.Equal(got["trig"], []string{"fibo"}) {
		t.Errorf("lists: %q, %q, %q", got["listed"], got["hook"], got["trig"])
	}
	for _, bad := range []struct{ value, want string }{
		{`"fibo"`, `[[workflow]] #1 (name "w"): requires = "fibo": want "auto" or a list of component names`},
		{`[1]`, `[[workflow]] #1 (name "w"): requires: 1 is not a component name`},
		{`["a b"]`, `[[workflow]] #1 (name "w"): requires: "a b" is not a component name`},
	} {
		p := write(t, "[[workflow]]\nname = \"w\"\nlocation.path = \"wf.wasm\"\nrequires = "+bad.value+"\n")
		if _, err := Load(p); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("requires = %s: %v, want an error containing %q", bad.value, err, bad.want)
		}
	}
}
