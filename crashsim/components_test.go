package crashsim

import (
	"cmp"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/obelisk-go/obelisk/actors"
)

// neededComponents keeps the exporter of the function and what it may call, transitively,
// and says when nothing exports it. It reads the built example components (OBELISK_COMPONENTS,
// or build/components); the test is skipped without them.
func TestNeededComponents(t *testing.T) {
	dir := cmp.Or(os.Getenv("OBELISK_COMPONENTS"), filepath.Join("..", "build", "components"))
	path := func(name string) string {
		p := filepath.Join(dir, name+".wasm")
		if _, err := os.Stat(p); err != nil {
			t.Skipf("no built component %s (make build): %v", p, err)
		}
		return p
	}
	cfgs := []actors.ComponentConfig{
		{Name: "fibo", Type: actors.ActivityWasm, Path: path("fibo")},
		{Name: "sleep", Type: actors.ActivityWasm, Path: path("sleep")},
		{Name: "fibo_workflow", Type: actors.Workflow, Path: path("fibo-workflow")},
		{Name: "tree", Type: actors.Workflow, Path: path("tree")},
	}
	names := func(cs []actors.ComponentConfig) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.Name)
		}
		return out
	}
	for ffqn, want := range map[string][]string{
		"testing:fibo-workflow/workflow.fiboa": {"fibo", "fibo_workflow"},
		"testing:fibo/fibo.fibo":               {"fibo"},
		"testing:tree/tree.spawn":              {"sleep", "tree"},
	} {
		got, exported := neededComponents(cfgs, ffqn)
		if !exported || !slices.Equal(names(got), want) {
			t.Errorf("%s: %v (exported %v), want %v", ffqn, names(got), exported, want)
		}
	}
	if got, exported := neededComponents(cfgs, "testing:nothing/here.fn"); exported || len(got) != len(cfgs) {
		t.Errorf("an unknown function: %v, exported %v; want all, not exported", names(got), exported)
	}
	if _, exported := neededComponents(cfgs, "obelisk:kv/store.get"); !exported {
		t.Error("a built-in function is left to the engine, not refused")
	}
}
