package api

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"connectrpc.com/connect"

	"github.com/obelisk-go/obelisk/actors"
	"github.com/obelisk-go/obelisk/internal/clip"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
	"github.com/obelisk-go/obelisk/wasmhost/wit"
)

// GetComponent describes one component, found by name or ID: its WIT files and its
// functions with their types and the JSON Schemas of their parameters and results.
func (h *components) GetComponent(ctx context.Context, req *connect.Request[pb.GetComponentRequest]) (*connect.Response[pb.GetComponentResponse], error) {
	want := strings.TrimSpace(req.Msg.Component)
	if want == "" {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("component is required: a component's name or ID"))
	}
	var c *actors.Component
	var names []string
	for _, x := range h.e.Components() {
		names = append(names, x.Config.Name)
		if x.Config.Name == want || x.ID == want {
			c = x
		}
	}
	for _, x := range h.e.RetiredComponents() {
		if c == nil && x.ID == want {
			c = x
		}
	}
	if c == nil {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("component %s not found (deployed: %s)", clip.Quote(want), strings.Join(names, ", ")))
	}
	return connect.NewResponse(ComponentDetail(c)), nil
}

// ComponentDetail renders a component for GetComponent.
func ComponentDetail(c *actors.Component) *pb.GetComponentResponse {
	// An activity stub's executions are created by workflows only.
	submittable := c.Config.Type != actors.ActivityStub && !c.Retired
	return componentDetail(c.ID, c.Config.Name, string(c.Config.Type), c.WITFiles, c.Exports, c.Imports, submittable)
}

func componentDetail(id, name, typ string, files []wit.File, exports, imports []*wit.Function, submittable bool) *pb.GetComponentResponse {
	resp := &pb.GetComponentResponse{ComponentId: id, Name: name, Type: typ}
	for _, f := range files {
		resp.WitFiles = append(resp.WitFiles, &pb.WitFile{Path: f.Path, Text: f.Text})
	}
	for _, fn := range exports {
		resp.Exports = append(resp.Exports, functionDetail(fn, submittable))
	}
	for _, fn := range imports {
		resp.Imports = append(resp.Imports, functionDetail(fn, false))
	}
	return resp
}

func functionDetail(fn *wit.Function, submittable bool) *pb.FunctionDetail {
	d := &pb.FunctionDetail{Ffqn: fn.FFQN(), Signature: fn.Signature(), Submittable: submittable}
	for _, p := range fn.Params {
		d.Params = append(d.Params, &pb.FunctionParam{Name: p.Name, Type: p.Type.String()})
	}
	if fn.Result != nil {
		d.Result = fn.Result.String()
	}
	params, _ := json.Marshal(wit.ParamsJSONSchema(fn))
	result, _ := json.Marshal(wit.ResultJSONSchema(fn))
	d.ParamsSchemaJson, d.ResultSchemaJson = string(params), string(result)
	return d
}

// WasmDetail describes a component file that is not (or not known to be) deployed, as
// GetComponent describes a deployed one: `obelisk component inspect` of a file, of a
// version in the component store or of an OCI artifact. id is its component ID (or its
// content digest), name and typ what is known of a deployment ("" if nothing); its
// exports are not submittable, as nothing serves them.
func WasmDetail(id, name, typ string, files []wit.File) (*pb.GetComponentResponse, error) {
	resolve, err := wit.Parse(files)
	if err != nil {
		return nil, fmt.Errorf("parse WIT: %w", err)
	}
	return componentDetail(id, name, typ, files, resolve.Exports(), resolve.Imports(), false), nil
}
