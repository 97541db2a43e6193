package api

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"connectrpc.com/connect"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
)

func TestGetComponent(t *testing.T) {
	e, _ := serve(t)
	h := &components{e: e}
	ctx := context.Background()
	for _, name := range []string{"approval", e.Components()[0].ID} {
		resp, err := h.GetComponent(ctx, connect.NewRequest(&pb.GetComponentRequest{Component: name}))
		if err != nil {
			t.Fatal(err)
		}
		c := resp.Msg
		if c.Name != "approval" || c.Type != "activity_stub" || len(c.WitFiles) != 1 || !strings.Contains(c.WitFiles[0].Text, "approve: func") {
			t.Fatalf("GetComponent(%s) = %v", name, c)
		}
		if len(c.Exports) != 1 || len(c.Imports) != 0 {
			t.Fatalf("functions: %v", c)
		}
		fn := c.Exports[0]
		if fn.Ffqn != approveFFQN || fn.Submittable || fn.Result != "result<bool, string>" ||
			len(fn.Params) != 1 || fn.Params[0].Name != "id" || fn.Params[0].Type != "string" {
			t.Fatalf("function: %v", fn)
		}
		var params, result map[string]any
		if json.Unmarshal([]byte(fn.ParamsSchemaJson), &params) != nil || params["type"] != "array" || params["maxItems"] != 1.0 {
			t.Fatalf("params schema: %s", fn.ParamsSchemaJson)
		}
		if json.Unmarshal([]byte(fn.ResultSchemaJson), &result) != nil || result["anyOf"] == nil {
			t.Fatalf("result schema: %s", fn.ResultSchemaJson)
		}
	}
	for _, tc := range []struct {
		name string
		code connect.Code
	}{{"nope", connect.CodeNotFound}, {" ", connect.CodeInvalidArgument}} {
		_, err := h.GetComponent(ctx, connect.NewRequest(&pb.GetComponentRequest{Component: tc.name}))
		if connect.CodeOf(err) != tc.code {
			t.Errorf("GetComponent(%q): %v, want %v", tc.name, err, tc.code)
		}
	}
}
