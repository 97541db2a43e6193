package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/obelisk-go/obelisk/test/harness"
)

// TestStoreSettings: [store] sizes reach the event store, as obelisk_store_memory_bytes
// shows, and the store runs with them (a memtable of 1MiB is filled and flushed many
// times over by a few hundred executions).
func TestStoreSettings(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{Deployment: "[store]\ncache_size = \"3MiB\"\nmemtable_size = \"1MiB\"\n"})
	ids := make([]string, 50)
	for i := range ids {
		ids[i] = s.Submit("testing:fibo-workflow/workflow.fiboa", "[10, 3]")
	}
	for _, id := range ids {
		harness.JSONEq(t, s.Result(id, 2*time.Minute), `{"ok":165}`)
	}
	resp, err := http.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	got := map[string]float64{}
	for _, m := range families["obelisk_store_memory_bytes"].GetMetric() {
		for _, l := range m.Label {
			if l.GetName() == "kind" {
				got[l.GetValue()] = m.Gauge.GetValue()
			}
		}
	}
	if got["cache_capacity"] != 3<<20 || got["memtable_size"] != 1<<20 {
		t.Errorf("obelisk_store_memory_bytes = %v, want cache_capacity 3MiB and memtable_size 1MiB", got)
	}
	if got["memtables"] <= 0 {
		t.Errorf("memtables = %v: the store holds no memtable", got["memtables"])
	}
}

// A [store] size below its minimum stops the server at start-up, naming the key.
func TestStoreSettingsRefused(t *testing.T) {
	t.Parallel()
	code, stderr := runServerExpectingFailure(t, "data_dir = \""+t.TempDir()+"\"\n[store]\nmemtable_size = \"64KiB\"\n")
	if code == 0 || !strings.Contains(stderr, `store.memtable_size = "64KiB": must be at least 1MiB`) {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
}
