package actors

import (
	"strings"
	"testing"
)

func TestCheckMemory(t *testing.T) {
	for _, tc := range []struct {
		c    ComponentConfig
		want string
	}{
		{ComponentConfig{Name: "a", Type: ActivityWasm}, ""},
		{ComponentConfig{Name: "a", Type: ActivityWasm, MemoryLimit: 1 << 30}, `component "a": memory limit of 1 GiB is over the guest memory budget of 512 MiB`},
		{ComponentConfig{Name: "w", Type: Workflow, MemoryLimit: 1 << 30}, `component "w": memory limit of 1 GiB is over the guest memory budget of 512 MiB`},
		{ComponentConfig{Name: "h", Type: WebhookEndpoint, MemoryLimit: 1 << 30}, ""}, // a request's wait ends with its timeout
		{ComponentConfig{Name: "a", Type: ActivityWasm, MemoryLimit: 100000}, "not a multiple of 64 KiB"},
		{ComponentConfig{Name: "w", Type: Workflow, MemoryLimit: 8 << 30}, "over the 4 GiB"},
	} {
		err := checkMemory(512<<20, []ComponentConfig{tc.c})
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("checkMemory(%+v) = %v, want %q", tc.c, err, tc.want)
		}
	}
}
