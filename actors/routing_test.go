package actors

import (
	"errors"
	"strings"
	"testing"

	"github.com/obelisk-go/obelisk/wasmhost/wit"
)

const fiboWIT = "package testing:fibo;\ninterface fibo { fibo: func(n: u8) -> result<u64>; }\nworld any { export fibo; }\n"

// witComponent is a component made from WIT alone (no module): enough for the registry.
// deps are the WIT packages it imports, as files under deps/.
func witComponent(t *testing.T, typ ComponentType, name, text string, deps ...string) *Component {
	t.Helper()
	files := []wit.File{{Path: name + ".wit", Text: text}}
	for i, d := range deps {
		files = append(files, wit.File{Path: "deps/d" + string(rune('a'+i)) + "/d.wit", Text: d})
	}
	res, err := wit.Parse(files)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	c := &Component{Config: ComponentConfig{Name: name, Type: typ}, ID: string(typ) + ":" + name + ":sha256:" + name, Digest: "sha256:" + name,
		WIT: res, Exports: res.Exports(), routes: map[string]Function{}, exports: map[string]*wit.Function{}}
	if typ == Workflow {
		c.Imports = res.Imports()
	}
	for _, fn := range c.Exports {
		c.exports[fn.FFQN()] = fn
	}
	return c
}

func workflowImportingFibo(t *testing.T, name string, requires []string) *Component {
	c := witComponent(t, Workflow, name, "package testing:wf;\ninterface wf { run: func() -> result; }\nworld any { export wf; import testing:fibo/fibo; }\n", fiboWIT)
	c.Config.Requires = requires
	return c
}

// One place picks the component of a new execution (registry.route): with two deployed
// exporters of a function, a submission naming none goes to the one declared last, one
// naming a component to it (by name or ID); a workflow's import with requires "auto"
// and two candidates is refused at start, naming both; with a list, it goes to the
// listed one. A retired version is never chosen.
func TestRoute(t *testing.T) {
	const ffqn = "testing:fibo/fibo.fibo"
	a, b := witComponent(t, ActivityWasm, "fibo", fiboWIT), witComponent(t, ActivityWasm, "fibo2", fiboWIT)
	old := witComponent(t, ActivityWasm, "fibo_old", fiboWIT)

	_, err := newRegistry([]*Component{a, b, workflowImportingFibo(t, "wf", nil)}, nil)
	if err == nil || !strings.Contains(err.Error(), `component "wf" imports testing:fibo/fibo.fibo, which components "fibo" and "fibo2" all export`) {
		t.Fatalf("auto with two candidates: %v", err)
	}
	_, err = newRegistry([]*Component{a, b, workflowImportingFibo(t, "wf", []string{"nosuch"})}, nil)
	if err == nil || !strings.Contains(err.Error(), `requires "nosuch", which is not a deployed component`) {
		t.Fatalf("requires naming no component: %v", err)
	}

	wf := workflowImportingFibo(t, "wf", []string{"fibo"})
	reg, err := newRegistry([]*Component{a, b, wf}, []*Component{old})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		caller    *Component
		component string
		want      *Component
	}{
		{nil, "", b},           // the newest
		{nil, "fibo", a},       // by name
		{nil, a.ID, a},         // by ID
		{wf, "", a},            // requires = ["fibo"]
		{a, "", b},             // not an import of the caller: the newest
		{wf, "fibo2", b},       // the submitter's choice wins
		{nil, "fibo_old", nil}, // a retired version's name is no deployed component
		{nil, old.ID, nil},     // nor its ID
		{nil, "nosuch", nil},   // unknown
		{nil, "wf", nil},       // does not export it
	} {
		fn, err := reg.route(c.caller, ffqn, c.component)
		if c.want == nil {
			if err == nil {
				t.Errorf("route(%v, %q) = %s, want an error", c.caller != nil, c.component, fn.Component.Config.Name)
			}
			continue
		}
		if err != nil || fn.Component != c.want || fn.Fn.FFQN() != ffqn {
			t.Errorf("route(caller %v, %q) = %v, %v; want %s", c.caller != nil, c.component, fn.Component, err, c.want.Config.Name)
		}
	}
	var nf *ComponentNotFoundError
	if _, err := reg.route(nil, ffqn, "nosuch"); !errors.As(err, &nf) || !strings.Contains(err.Error(), "fibo2") {
		t.Errorf("unknown component: %v, want a ComponentNotFoundError listing the deployed ones", err)
	}
	if _, err := reg.route(nil, ffqn, old.ID); err == nil || !strings.Contains(err.Error(), "retired version") {
		t.Errorf("a retired version: %v", err)
	}
	if fn, ok := reg.functionOf(old.ID, ffqn); !ok || fn.Component != old {
		t.Errorf("functionOf a retired version's execution: %v", fn.Component)
	}
	if fn, ok := reg.functionOf("activity_wasm:gone:sha256:00", ffqn); !ok || fn.Component != b {
		t.Errorf("functionOf an unrecorded version's execution: %v, want the newest", fn.Component)
	}
}

// One file deployed under two names is no choice for "auto": the same code runs
// whichever is called, so the import goes to the one declared last (the Contract's two
// [[activity_wasm]] with one location.path, beside workflows that import it).
func TestRouteSameFileTwice(t *testing.T) {
	const ffqn = "testing:fibo/fibo.fibo"
	a, b := witComponent(t, ActivityWasm, "fibo", fiboWIT), witComponent(t, ActivityWasm, "fibo_again", fiboWIT)
	a.ID, b.ID = "activity_wasm:fibo:sha256:abc", "activity_wasm:fibo_again:sha256:abc"
	a.Digest, b.Digest = "sha256:abc", "sha256:abc"
	wf := workflowImportingFibo(t, "wf", nil)
	reg, err := newRegistry([]*Component{a, b, wf}, nil)
	if err != nil {
		t.Fatalf("one file under two names, imported with auto: %v", err)
	}
	if fn, err := reg.route(wf, ffqn, ""); err != nil || fn.Component != b {
		t.Errorf("route = %v, %v; want the one declared last", fn.Component, err)
	}
}

// Exporters of one function must be of one type: a caller's stub and schedule imports
// depend on it.
func TestRouteRefusesMixedTypes(t *testing.T) {
	_, err := newRegistry([]*Component{witComponent(t, ActivityWasm, "fibo", fiboWIT), witComponent(t, ActivityStub, "stub", fiboWIT)}, nil)
	if err == nil || !strings.Contains(err.Error(), `component "stub": function testing:fibo/fibo.fibo is also exported by activity_wasm "fibo"`) {
		t.Fatalf("mixed types: %v", err)
	}
}

// A queue serving several versions of a function runs each execution with the executor
// of the component it is pinned to, a new one (or one of an unrecorded version) with
// the newest deployed one's.
func TestExecutorForPinnedVersion(t *testing.T) {
	e := newTestEngine(t)
	v2, v1 := witComponent(t, ActivityWasm, "fibo", fiboWIT), witComponent(t, ActivityWasm, "fibo", fiboWIT)
	v1.ID, v1.Retired = "activity_wasm:fibo:sha256:01", true
	q := newQueue(e, "fibo", 1)
	x2, x1 := q.serve(v2), q.serve(v1)
	const ffqn = "testing:fibo/fibo.fibo"
	if q.executorFor(ffqn, v1.ID) != x1 || q.executorFor(ffqn, v2.ID) != x2 || q.executorFor(ffqn, "activity_wasm:fibo:sha256:99") != x2 {
		t.Fatal("executorFor does not follow the pinned component")
	}
	if !q.multi[ffqn] || q.byFFQN[ffqn] != x2 {
		t.Fatal("the retired version became the default executor")
	}
}
