// Package schemas generates the JSON Schemas (draft 2020-12) published under
// docs/schemas: the JSON of every request and response of the web API, the JSON view
// of every kind of stored event, and an execution's state as the API shows it.
//
// Everything is derived from the code, so nothing is written twice:
//
//   - the API schemas walk the protobuf descriptors of the services (protoreflect) and
//     follow protojson, the codec connect-go uses for JSON (lowerCamelCase names, zero
//     values left out, 64-bit integers as strings); descriptions are the comments of
//     the .proto files, embedded in the obeliskv1 package;
//   - the event schemas reflect (github.com/invopop/jsonschema) the Go types that
//     render each kind's details_json, listed in api.EventDetails;
//   - enumerations (statuses, event kinds, outcomes, component types, failure kinds)
//     come from the engine's constants.
//
// It lives under api because everything it describes is the API's JSON, the event views
// of package api among it. It is used by `obelisk generate schemas` (make schemas), and
// its test fails when the committed docs/schemas differ from what the code generates.
package schemas

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/obelisk-go/obelisk/actors"
	"github.com/obelisk-go/obelisk/api"
	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	apiv1 "github.com/obelisk-go/obelisk/proto/obelisk/v1"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
)

// Dialect is the JSON Schema dialect of every generated schema.
const Dialect = "https://json-schema.org/draft/2020-12/schema"

// File is one generated file, its path relative to the output folder.
type File struct {
	Path  string
	Title string
	Text  []byte
}

// Services are the API services whose RPCs get schemas.
var Services = []protoreflect.ServiceDescriptor{
	apiv1.File_obelisk_v1_api_proto.Services().ByName("ExecutionService"),
	apiv1.File_obelisk_v1_api_proto.Services().ByName("ComponentService"),
	apiv1.File_obelisk_v1_api_proto.Services().ByName("ScheduleService"),
	apiv1.File_obelisk_v1_api_proto.Services().ByName("WorkerService"),
}

// RPCPath is the path of an RPC's files under api/, without the suffix:
// "api/obelisk.v1.ExecutionService/Submit" (the RPC's URL path).
func RPCPath(md protoreflect.MethodDescriptor) string {
	return "api/" + string(md.Parent().FullName()) + "/" + string(md.Name())
}

// Generate returns every file of docs/schemas, sorted by path.
func Generate() ([]File, error) {
	comments, err := protoComments(apiv1.Source)
	if err != nil {
		return nil, err
	}
	g := &generator{comments: comments}
	var files []File
	add := func(path string, doc *object) error {
		text, err := encodeFile(doc)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		title, _ := doc.get("title").(string)
		files = append(files, File{Path: path, Title: title, Text: text})
		return nil
	}
	for _, sd := range Services {
		for i := 0; i < sd.Methods().Len(); i++ {
			md := sd.Methods().Get(i)
			rpc := string(sd.Name()) + "/" + string(md.Name())
			desc := comments[string(md.FullName())]
			streaming := ""
			if md.IsStreamingServer() {
				streaming = " A server-streaming RPC: this is one message of the stream (Connect streaming: enveloped messages, then an end-of-stream message, see connect-end-stream.schema.json)."
			}
			req := g.protoDoc(md.Input(), request, rpc+" request", strings.TrimSpace(desc+" POST /"+string(sd.FullName())+"/"+string(md.Name())+" with this JSON body."))
			resp := g.protoDoc(md.Output(), response, rpc+" response", strings.TrimSpace(desc+streaming))
			if err := add(RPCPath(md)+".request.schema.json", req); err != nil {
				return nil, err
			}
			if err := add(RPCPath(md)+".response.schema.json", resp); err != nil {
				return nil, err
			}
		}
	}
	if err := add("api/connect-error.schema.json", connectErrorSchema(true)); err != nil {
		return nil, err
	}
	if err := add("api/connect-end-stream.schema.json", connectEndStreamSchema()); err != nil {
		return nil, err
	}
	summary := (&apiv1.ExecutionSummary{}).ProtoReflect().Descriptor()
	if err := add("state/execution-summary.schema.json", g.protoDoc(summary, response, "Execution state",
		"An execution's state as the API shows it (ExecutionSummary in GetStatus and ListExecutions responses).")); err != nil {
		return nil, err
	}
	if err := add("values/result.schema.json", withHeader(resultSchema(), "Execution result",
		"The result of a finished execution (result_json, the result of finished events): the function's return value {\"ok\": v} or {\"err\": v}, or an execution failure.")); err != nil {
		return nil, err
	}
	for _, k := range api.EventDetails {
		doc, err := eventDetailsSchema(k)
		if err != nil {
			return nil, err
		}
		if err := add(EventPath(k.Kind), doc); err != nil {
			return nil, err
		}
	}
	ev, err := eventSchema()
	if err != nil {
		return nil, err
	}
	if err := add("events/event.schema.json", ev); err != nil {
		return nil, err
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	files = append(files, File{Path: "README.md", Text: readme(files)})
	return files, nil
}

// EventPath is the path of the details schema of an event kind.
func EventPath(kind string) string { return "events/" + kind + ".schema.json" }

// Write writes the generated files under dir and removes the schema files there
// (*.schema.json) that are no longer generated. It returns the paths written.
func Write(dir string) ([]string, error) {
	files, err := Generate()
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	var written []string
	for _, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(f.Path))
		want[p] = true
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, err
		}
		if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, f.Text) {
			continue
		}
		if err := os.WriteFile(p, f.Text, 0o644); err != nil {
			return nil, err
		}
		written = append(written, p)
	}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".schema.json") || want[p] {
			return err
		}
		return os.Remove(p)
	})
	return written, err
}

type generator struct {
	comments map[string]string
}

// protoDoc is the schema document of a message in one direction.
func (g *generator) protoDoc(md protoreflect.MessageDescriptor, dir direction, title, desc string) *object {
	pg := &protoGen{dir: dir, comments: g.comments, field: fieldExtras}
	body := pg.document(md)
	body.delete("title")
	desc = strings.TrimSpace(desc + " The message: " + string(md.FullName()) + ".")
	if d, _ := body.get("description").(string); d != "" {
		desc += " " + d
	}
	body.delete("description")
	return withHeader(body, title, desc)
}

// withHeader puts $schema, title and description first.
func withHeader(s *object, title, desc string) *object {
	out := obj("$schema", Dialect, "title", title)
	if desc != "" {
		out.set("description", desc)
	}
	for _, k := range s.keys {
		if k != "$schema" && k != "title" && k != "description" {
			out.set(k, s.vals[k])
		}
	}
	return out
}

func strings2any(ss ...string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// statusNames are the statuses as the API names them.
func statusNames() []any {
	var out []any
	for i := 1; i < len(pb.Status_name); i++ {
		out = append(out, events.StatusName(pb.Status(i)))
	}
	return out
}

func eventKinds() []any {
	var out []any
	for _, k := range api.EventDetails {
		out = append(out, k.Kind)
	}
	return out
}

// componentTypes are the names of the ComponentType enum of events.proto, as
// actors.ComponentType spells them: activity_wasm, workflow, ...
func componentTypes() []any {
	var out []any
	values := pb.ComponentType(0).Descriptor().Values()
	for i := 0; i < values.Len(); i++ {
		if n := values.Get(i).Number(); n != 0 {
			out = append(out, strings.ToLower(strings.TrimPrefix(string(values.Get(i).Name()), "COMPONENT_TYPE_")))
		}
	}
	return out
}

// fieldExtras adds what the descriptors do not say: which values a string takes, and
// the schema of the JSON text in *_json fields.
func fieldExtras(fd protoreflect.FieldDescriptor, dir direction) *object {
	name := string(fd.Name())
	full := string(fd.FullName())
	jsonText := func(schema *object) *object {
		return obj("contentMediaType", "application/json", "contentSchema", schema)
	}
	switch {
	case full == "obelisk.v1.ExecutionSummary.status":
		return obj("enum", statusNames())
	case full == "obelisk.v1.ListExecutionsRequest.status":
		return obj("enum", append([]any{""}, statusNames()...))
	case full == "obelisk.v1.EventView.kind":
		return obj("enum", eventKinds())
	case full == "obelisk.v1.WatchEventsRequest.kinds":
		// "history" stands for every history.* kind.
		return obj("items", obj("enum", append(eventKinds(), "history")))
	case full == "obelisk.v1.CancelResponse.outcome":
		return obj("enum", strings2any(string(actors.Cancelled), string(actors.CancelRequested), string(actors.AlreadyCancelling), string(actors.AlreadyFinished)))
	case full == "obelisk.v1.StubResponse.outcome":
		return obj("enum", strings2any(string(actors.Stubbed), string(actors.AlreadyStubbed)))
	case name == "type" && (full == "obelisk.v1.ComponentInfo.type" || full == "obelisk.v1.GetComponentResponse.type"):
		return obj("enum", componentTypes())
	case name == "params_json":
		return jsonText(obj("type", "array", "description", "the parameters: a positional JSON array typed by the function's WIT"))
	case name == "result_json" && full == "obelisk.v1.StubRequest.result_json":
		return jsonText(obj("description", `{"ok": v} or {"err": v}`, "type", "object", "minProperties", 1, "maxProperties", 1))
	case name == "result_json":
		return jsonText(resultSchema())
	case name == "details_json":
		return jsonText(obj("type", "object", "description", "the details of the event's kind: see events/<kind>.schema.json"))
	case strings.HasSuffix(name, "_schema_json"):
		return jsonText(obj("$ref", Dialect))
	case fd.Kind() == protoreflect.StringKind && strings.HasSuffix(name, "_at") && dir == response:
		return obj("format", "date-time")
	}
	return nil
}

// resultSchema is the schema of a finished execution's result.
func resultSchema() *object {
	failure := reflectType(reflect.TypeFor[events.ExecutionFailure]())
	if props, ok := failure.get("properties").(*object); ok {
		if kind, ok := props.get("kind").(*object); ok {
			kind.set("enum", strings2any(abi.FailureKinds()...))
		}
	}
	one := func(key, desc string, s *object) *object {
		return obj("type", "object", "description", desc, "properties", obj(key, s), "required", []any{key}, "additionalProperties", false)
	}
	return obj("oneOf", []any{
		one("ok", "the function returned ok (null: no payload)", obj()),
		one("err", "the function returned err (null: no payload)", obj()),
		one("execution_failure", "the execution failed without a return value", failure),
	})
}

// connectErrorSchema is the JSON of an error in the Connect protocol.
func connectErrorSchema(top bool) *object {
	var codes []any
	for c := connect.CodeCanceled; c <= connect.CodeUnauthenticated; c++ {
		codes = append(codes, c.String())
	}
	s := obj("type", "object", "properties", obj(
		"code", obj("enum", codes),
		"message", obj("type", "string"),
		"details", obj("type", "array", "items", obj("type", "object", "properties", obj(
			"type", obj("type", "string", "description", "the fully qualified protobuf message name"),
			"value", obj("type", "string", "contentEncoding", "base64", "description", "the binary protobuf message (base64, unpadded)"),
			"debug", obj("description", "the message as JSON, for people reading it"),
		), "required", []any{"type", "value"}, "additionalProperties", false)),
	), "required", []any{"code"}, "additionalProperties", false)
	if !top {
		return s
	}
	return withHeader(s, "Connect error",
		"The body of every failed unary RPC (HTTP status 4xx/5xx): a Connect error. NOT_FOUND is not_found, INVALID_ARGUMENT invalid_argument, and so on.")
}

func connectEndStreamSchema() *object {
	s := obj("type", "object", "properties", obj(
		"error", connectErrorSchema(false),
		"metadata", obj("type", "object", "additionalProperties", obj("type", "array", "items", obj("type", "string"))),
	), "additionalProperties", false)
	return withHeader(s, "Connect end of stream",
		"The last message of a server-streaming RPC (GetStatus) in the Connect protocol (Content-Type application/connect+json): the enveloped message with flag 0x02, carrying the error that ended the stream, if any.")
}
