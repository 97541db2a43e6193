package actors

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/obelisk-go/obelisk/wasmstore"
)

// The record of versions: every deployed file is stored and recorded; a version the
// configuration no longer deploys is retired while live executions need it (its file
// stays, its configuration is the recorded one) and dropped, record and file, once
// nothing does. A file the store holds that was never a version is not touched.
func TestVersionsRecordRetireDrop(t *testing.T) {
	data := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	v1 := ComponentConfig{Name: "wf", Type: Workflow, Path: write("v1.wasm", "version one"), MaxRetries: 7, Queue: "q1"}
	v2 := ComponentConfig{Name: "wf", Type: Workflow, Path: write("v2.wasm", "version two")}
	d1, d2 := wasmstore.Digest([]byte("version one")), wasmstore.Digest([]byte("version two"))
	id1, id2 := componentID(Workflow, "wf", d1), componentID(Workflow, "wf", d2)

	start := func(deployed []ComponentConfig, live map[string]int) ([]ComponentConfig, *versions) {
		t.Helper()
		v, err := openVersions(data)
		if err != nil {
			t.Fatal(err)
		}
		before := v.digests()
		ids, err := v.deploy(deployed)
		if err != nil {
			t.Fatal(err)
		}
		retired, _, err := v.retire(ids, live)
		if err != nil {
			t.Fatal(err)
		}
		dropped := map[string]bool{}
		for d := range before {
			if !v.digests()[d] {
				dropped[d] = true
			}
		}
		if err := v.save(dropped); err != nil {
			t.Fatal(err)
		}
		return retired, v
	}
	if retired, v := start([]ComponentConfig{v1}, nil); len(retired) != 0 || !v.files.Has(d1) {
		t.Fatalf("first start: retired %v, v1 stored %v", retired, v.files.Has(d1))
	}
	foreign, _ := wasmstore.Open(filepath.Join(data, wasmstore.DirName))
	dx, _ := foreign.Put([]byte("pulled, not deployed"))

	retired, v := start([]ComponentConfig{v2}, map[string]int{id1: 3, id2: 1})
	if len(retired) != 1 || retired[0].Name != "wf" || retired[0].MaxRetries != 7 || retired[0].Queue != "q1" {
		t.Fatalf("v1 with live executions: retired %+v, want v1 with its recorded config", retired)
	}
	if v.doc.Versions[id1].Deployed || !v.doc.Versions[id2].Deployed {
		t.Errorf("records %+v: want v1 retired, v2 deployed", v.doc.Versions)
	}
	if p, _ := v.files.Path(d1); retired[0].Path != p || !v.files.Has(d1) || !v.files.Has(d2) {
		t.Fatalf("retired path %s, want %s in the store", retired[0].Path, p)
	}
	if retired, v := start([]ComponentConfig{v2}, map[string]int{id2: 1}); len(retired) != 0 || v.files.Has(d1) || !v.files.Has(d2) {
		t.Fatalf("nothing needs v1: retired %v, v1 still stored %v", retired, v.files.Has(d1))
	}
	if !foreign.Has(dx) {
		t.Fatal("a file that was never a version was dropped")
	}

	// A needed version whose file is corrupt stops the start, naming it.
	start([]ComponentConfig{v1}, nil)
	p, _ := foreign.Path(d1)
	if err := os.WriteFile(p, []byte("version 0ne"), 0o644); err != nil {
		t.Fatal(err)
	}
	v, err := openVersions(data)
	if err != nil {
		t.Fatal(err)
	}
	ids, _ := v.deploy([]ComponentConfig{v2})
	if _, _, err := v.retire(ids, map[string]int{id1: 1}); err == nil || !strings.Contains(err.Error(), "corrupt") || !strings.Contains(err.Error(), `component "wf"`) {
		t.Fatalf("corrupt retired version: %v", err)
	}
}
