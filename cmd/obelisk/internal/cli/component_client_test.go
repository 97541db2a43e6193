package cli

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/obelisk-go/obelisk/actors"
	"github.com/obelisk-go/obelisk/api"
)

const inspectWIT = `package testing:approval;

interface approval {
    record request { id: string, amount: u64, note: option<string> }
    approve: func(req: request, urgent: bool) -> result<bool, string>;
}

world any {
    export approval;
}
`

// realAPI serves the API of an engine with one inline activity stub.
func realAPI(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e, err := actors.New(ctx, actors.Config{
		DataDir:    t.TempDir(),
		Components: []actors.ComponentConfig{{Name: "approval", Type: actors.ActivityStub, WIT: inspectWIT}},
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- api.Serve(ctx, ln, e, api.Options{}) }()
	t.Cleanup(func() {
		cancel()
		<-done
		e.Close(context.Background())
	})
	return "http://" + ln.Addr().String()
}

func TestComponentWIT(t *testing.T) {
	url := realAPI(t)
	out, err := runCLI(t, "client", "--api-url", url, "component", "wit", "approval")
	if err != nil || out != inspectWIT {
		t.Fatalf("component wit: %v\n%s", err, out)
	}
	out, err = runCLI(t, "client", "--api-url", url, "--json", "component", "wit", "approval")
	var doc struct {
		ComponentID string `json:"component_id"`
		Files       []struct{ Path, Text string }
	}
	if err != nil || json.Unmarshal([]byte(out), &doc) != nil || len(doc.Files) != 1 || doc.Files[0].Text != inspectWIT ||
		!strings.HasPrefix(doc.ComponentID, "activity_stub:approval:sha256:") {
		t.Fatalf("component wit --json: %v\n%s", err, out)
	}
	// By ID, into a folder.
	dir := t.TempDir()
	out, err = runCLI(t, "client", "--api-url", url, "component", "wit", doc.ComponentID, "--out", dir)
	if err != nil || !strings.Contains(out, "approval.wit") {
		t.Fatalf("component wit --out: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "approval.wit")); err != nil || string(b) != inspectWIT {
		t.Fatalf("written WIT: %v %q", err, b)
	}
}

func TestComponentInspect(t *testing.T) {
	url := realAPI(t)
	out, err := runCLI(t, "client", "--api-url", url, "component", "inspect", "approval")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"activity_stub activity_stub:approval:sha256:",
		"exports:\n  testing:approval/approval.approve: func(req: request, urgent: bool) -> result<bool, string>",
		"    param 0 req: request\n    param 1 urgent: bool\n    result: result<bool, string>\n",
		`    params schema: {"$schema":"https://json-schema.org/draft/2020-12/schema"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("component inspect: no %q in\n%s", want, out)
		}
	}
	out, err = runCLI(t, "client", "--api-url", url, "--json", "component", "inspect", "approval")
	var doc struct {
		Name    string `json:"name"`
		Type    string `json:"type"`
		Exports []struct {
			FFQN         string `json:"ffqn"`
			Submittable  bool   `json:"submittable"`
			Params       []struct{ Name, Type string }
			ParamsSchema map[string]any `json:"params_schema"`
			ResultSchema map[string]any `json:"result_schema"`
		} `json:"exports"`
		Imports []any `json:"imports"`
	}
	if err != nil || json.Unmarshal([]byte(out), &doc) != nil {
		t.Fatalf("component inspect --json: %v\n%s", err, out)
	}
	if doc.Name != "approval" || doc.Type != "activity_stub" || len(doc.Exports) != 1 || doc.Imports == nil || len(doc.Imports) != 0 {
		t.Fatalf("component inspect --json: %s", out)
	}
	f := doc.Exports[0]
	if f.FFQN != "testing:approval/approval.approve" || f.Submittable || len(f.Params) != 2 || f.Params[0].Type != "request" {
		t.Fatalf("function: %+v", f)
	}
	items, _ := f.ParamsSchema["prefixItems"].([]any)
	if len(items) != 2 {
		t.Fatalf("params schema: %v", f.ParamsSchema)
	}
	req := items[0].(map[string]any)
	if req["title"] != "request" || req["type"] != "object" || len(req["required"].([]any)) != 2 {
		t.Fatalf("the record's schema: %v", req)
	}
	if f.ResultSchema["anyOf"] == nil {
		t.Fatalf("result schema: %v", f.ResultSchema)
	}
}

// TestComponentUnknown: an unknown component is a usage error (exit status 2) that
// says so, for both commands; so is an unreachable API.
func TestComponentUnknown(t *testing.T) {
	url := realAPI(t)
	for _, sub := range []string{"wit", "inspect"} {
		_, err := runCLI(t, "client", "--api-url", url, "component", sub, "nope")
		if exitCode(err) != 2 || !strings.Contains(err.Error(), `component "nope" not found`) || !strings.Contains(err.Error(), "approval") {
			t.Errorf("%s nope: exit %d, %v", sub, exitCode(err), err)
		}
		if _, err := runCLI(t, "client", "--api-url", url, "component", sub); exitCode(err) != 2 {
			t.Errorf("%s without COMPONENT: exit %d, %v", sub, exitCode(err), err)
		}
		if _, err := runCLI(t, "client", "--api-url", "http://127.0.0.1:1", "component", sub, "approval"); exitCode(err) != 2 {
			t.Errorf("%s with no API: exit %d, %v", sub, exitCode(err), err)
		}
	}
}
