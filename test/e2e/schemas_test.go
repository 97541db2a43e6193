package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/obelisk-go/obelisk/test/harness"
)

// schemasDir holds the published JSON Schemas (make schemas).
const schemasDir = "../../docs/schemas"

// schemaSet compiles the schemas of docs/schemas on demand, asserting formats
// (date-time) and the content of the *_json strings (contentSchema).
type schemaSet struct {
	c     *jsonschema.Compiler
	cache map[string]*jsonschema.Schema
}

func loadSchemas(t *testing.T) *schemaSet {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	c.AssertContent()
	return &schemaSet{c: c, cache: map[string]*jsonschema.Schema{}}
}

// schema compiles (once) the schema at path, relative to docs/schemas.
func (s *schemaSet) schema(t *testing.T, path string) *jsonschema.Schema {
	t.Helper()
	if sch, ok := s.cache[path]; ok {
		return sch
	}
	abs, err := filepath.Abs(filepath.Join(schemasDir, filepath.FromSlash(path)))
	if err != nil {
		t.Fatal(err)
	}
	sch, err := s.c.Compile(abs)
	if err != nil {
		t.Fatalf("schema %s: %v", path, err)
	}
	s.cache[path] = sch
	return sch
}

// validate checks a JSON document against the schema at path.
func (s *schemaSet) validate(t *testing.T, path string, doc []byte) {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		t.Fatalf("%s: not JSON: %v: %s", path, err, doc)
	}
	if err := s.schema(t, path).Validate(inst); err != nil {
		t.Errorf("%s does not accept %s:\n%v", path, truncate(doc, 2000), err)
	}
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// accepts reports whether the schema at path accepts doc.
func (s *schemaSet) accepts(t *testing.T, path string, doc []byte) bool {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	return err == nil && s.schema(t, path).Validate(inst) == nil
}

// call calls an RPC as plain JSON over HTTP, the way any HTTP client would, checking
// the response (or the Connect error) against its schema, and that the request schema
// accepts the request, or rejects it if validRequest is false. It returns the HTTP
// status and the body.
func (s *schemaSet) call(t *testing.T, srv *harness.Server, service, method, body string, validRequest bool) (int, []byte) {
	t.Helper()
	base := "api/obelisk.v1." + service + "/" + method
	if validRequest {
		s.validate(t, base+".request.schema.json", []byte(body))
	} else if s.accepts(t, base+".request.schema.json", []byte(body)) {
		t.Errorf("%s.request.schema.json accepts the invalid request %s", base, body)
	}
	resp, err := http.Post(srv.URL+"/obelisk.v1."+service+"/"+method, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode == http.StatusOK {
		s.validate(t, base+".response.schema.json", b)
	} else {
		s.validate(t, "api/connect-error.schema.json", b)
	}
	return resp.StatusCode, b
}

// mustCall is call for a request that must succeed.
func (s *schemaSet) mustCall(t *testing.T, srv *harness.Server, service, method, body string, out any) {
	t.Helper()
	code, b := s.call(t, srv, service, method, body, true)
	if code != http.StatusOK {
		t.Fatalf("%s %s: HTTP %d %s", method, body, code, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s: %v", method, err)
		}
	}
}

// stream calls a server-streaming RPC in the Connect protocol with JSON
// (application/connect+json: messages in envelopes of a flag byte and a big-endian
// length) and checks every message and the end of the stream against their schemas.
// It reads until the stream ends or max messages arrived.
func (s *schemaSet) stream(t *testing.T, srv *harness.Server, service, method, body string, max int) [][]byte {
	t.Helper()
	base := "api/obelisk.v1." + service + "/" + method
	s.validate(t, base+".request.schema.json", []byte(body))
	var env bytes.Buffer
	env.WriteByte(0)
	binary.Write(&env, binary.BigEndian, uint32(len(body)))
	env.WriteString(body)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/obelisk.v1."+service+"/"+method, &env)
	req.Header.Set("Content-Type", "application/connect+json")
	req.Header.Set("Connect-Protocol-Version", "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s: HTTP %d %s", method, resp.StatusCode, b)
	}
	r := bufio.NewReader(resp.Body)
	var msgs [][]byte
	for len(msgs) < max {
		var head [5]byte
		if _, err := io.ReadFull(r, head[:]); err != nil {
			t.Fatalf("%s: the stream ended without an end-of-stream message: %v", method, err)
		}
		msg := make([]byte, binary.BigEndian.Uint32(head[1:]))
		if _, err := io.ReadFull(r, msg); err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		if head[0]&0x02 != 0 {
			s.validate(t, "api/connect-end-stream.schema.json", msg)
			var end struct {
				Error *struct{ Code, Message string }
			}
			if json.Unmarshal(msg, &end) == nil && end.Error != nil {
				t.Fatalf("%s ended with %s: %s", method, end.Error.Code, end.Error.Message)
			}
			return msgs
		}
		s.validate(t, base+".response.schema.json", msg)
		msgs = append(msgs, msg)
	}
	return msgs
}

// summary is what the tests read of an ExecutionSummary (protojson names).
type summary struct {
	ExecutionID string `json:"executionId"`
	Status      string `json:"status"`
	ResultJSON  string `json:"resultJson"`
}

// TestSchemasOfTheAPI calls every RPC of the JSON API over plain HTTP and validates the
// requests, the responses and the errors against docs/schemas; then it validates every
// event of finished executions of many kinds (fiboa, race, fiboa-concurrent, retried
// and timed-out activities, random values, schedules, join_next_try, stubs,
// cancellation, pause) against the schema of its kind.
func TestSchemasOfTheAPI(t *testing.T) {
	t.Parallel()
	o := stubOptions(t, false)
	o.ExtraWorkflows["random_workflow"] = "test/e2e/testdata/random-workflow"
	o.ExtraWorkflows["schedule_workflow"] = "test/e2e/testdata/schedule-workflow"
	// fibo_workflow's file under a second name (the newest exporter of its functions),
	// so that a fork onto fibo_workflow records a moved event.
	o.Deployment += fmt.Sprintf("\n[[workflow]]\nname = \"fibo_workflow_copy\"\nlocation.path = %q\n", filepath.Join(harness.ComponentsDir(), "fibo-workflow.wasm"))
	srv := harness.Start(t, o)
	v := loadSchemas(t)
	const es, cs = "ExecutionService", "ComponentService"

	submit := func(ffqn, params string) string {
		t.Helper()
		body, _ := json.Marshal(map[string]string{"ffqn": ffqn, "paramsJson": params})
		var out struct {
			ExecutionID string `json:"executionId"`
		}
		v.mustCall(t, srv, es, "Submit", string(body), &out)
		return out.ExecutionID
	}
	// follow reads GetStatus with follow until the execution finishes.
	follow := func(id string) summary {
		t.Helper()
		msgs := v.stream(t, srv, es, "GetStatus", fmt.Sprintf(`{"executionId":%q,"follow":true}`, id), 1000)
		var last struct{ Summary summary }
		if len(msgs) == 0 || json.Unmarshal(msgs[len(msgs)-1], &last) != nil || last.Summary.Status != "finished" {
			t.Fatalf("GetStatus of %s: %q", id, msgs)
		}
		return last.Summary
	}

	// Executions whose events cover every kind.
	fiboa := submit("testing:fibo-workflow/workflow.fiboa", "[10, 3]")
	race := submit("testing:sleep-workflow/workflow.race", "[100, 5000]")
	concurrent := submit("testing:fibo-workflow/workflow.fiboa-concurrent", "[10, 3]")
	flaky := submit("testing:flaky/flaky.fail-until", "[2]")
	permanent := submit("testing:flaky/flaky.fail-permanently", "[]")
	timedOut := submit("testing:sleep/sleep.sleep", "[3000]") // lock_expiry 1s, max_retries 1
	random := submit("testing:random-workflow/workflow.values", "[]")
	schedule := submit("testing:schedule-workflow/workflow.schedule-fibo", "[10, 100]")
	try := submit("testing:joinset-workflow/workflow.try-then-next", "[10]")
	stubSelf := submit("testing:joinset-workflow/workflow.stub-self", "[7]")
	delayAndChild := submit("testing:joinset-workflow/workflow.delay-and-child", "[200, 10]")
	// The snake_case proto names are accepted in requests too.
	v.mustCall(t, srv, es, "Submit", `{"ffqn":"testing:fibo/fibo.fibo","params_json":"[5]"}`, nil)

	// Submit errors.
	if code, _ := v.call(t, srv, es, "Submit", `{"ffqn":"testing:nope/nope.nope","paramsJson":"[]"}`, true); code != http.StatusNotFound {
		t.Errorf("submitting an unknown function: HTTP %d", code)
	}
	if code, _ := v.call(t, srv, es, "Submit", `{"ffqn":"testing:fibo/fibo.fibo","paramsJson":"[\"x\"]"}`, true); code != http.StatusBadRequest {
		t.Errorf("submitting mistyped parameters: HTTP %d", code)
	}

	// GetStatus without follow: one message.
	if msgs := v.stream(t, srv, es, "GetStatus", fmt.Sprintf(`{"executionId":%q}`, fiboa), 10); len(msgs) != 1 {
		t.Errorf("GetStatus without follow sent %d messages", len(msgs))
	}
	for _, id := range []string{fiboa, race, concurrent, flaky, permanent, timedOut, random, schedule, try, stubSelf, delayAndChild} {
		follow(id)
	}
	if got := follow(race).ResultJSON; !strings.Contains(got, "activity") {
		t.Errorf("race: %s", got)
	}

	// Fork (a moved event: onto the other copy of fibo_workflow), and its refusal.
	var forked struct {
		ExecutionID string `json:"executionId"`
	}
	v.mustCall(t, srv, es, "Fork", fmt.Sprintf(`{"executionId":%q,"atVersion":1,"component":"fibo_workflow"}`, fiboa), &forked)
	if got := follow(forked.ExecutionID).ResultJSON; got != follow(fiboa).ResultJSON {
		t.Errorf("the fork of %s: %s", fiboa, got)
	}
	if code, b := v.call(t, srv, es, "Fork", fmt.Sprintf(`{"executionId":%q,"atVersion":999}`, fiboa), true); code != http.StatusBadRequest || !strings.Contains(string(b), "beyond the history") {
		t.Errorf("a fork beyond the history: HTTP %d %s", code, b)
	}

	// Stub: the success path through a workflow awaiting a stub, then the error paths.
	awaitStub := submit("testing:joinset-workflow/workflow.await-stub", `["six times seven"]`)
	child := awaitStub + ".g:1_1"
	waitUntil(t, 30*time.Second, func() bool { _, err := srv.State(child); return err == nil })
	var outcome struct{ Outcome string }
	v.mustCall(t, srv, es, "Stub", fmt.Sprintf(`{"executionId":%q,"resultJson":"{\"ok\":42}"}`, child), &outcome)
	if outcome.Outcome != "stubbed" {
		t.Errorf("stub: %+v", outcome)
	}
	v.mustCall(t, srv, es, "Stub", fmt.Sprintf(`{"executionId":%q,"resultJson":"{\"ok\":42}"}`, child), &outcome)
	if outcome.Outcome != "already_stubbed" {
		t.Errorf("the same stub again: %+v", outcome)
	}
	for _, body := range []string{
		fmt.Sprintf(`{"executionId":%q,"resultJson":"{\"ok\":43}"}`, child), // conflict
		fmt.Sprintf(`{"executionId":%q,"resultJson":"{\"ok\":1}"}`, fiboa),  // not a stub
		`{"executionId":"E_01J0000000000000000000000Z","resultJson":"{\"ok\":1}"}`,
		fmt.Sprintf(`{"executionId":%q}`, child),
	} {
		if code, b := v.call(t, srv, es, "Stub", body, true); code == http.StatusOK {
			t.Errorf("Stub %s: HTTP 200 %s", body, b)
		}
	}
	follow(awaitStub)

	// Pause and unpause a workflow sleeping durably; cancel another one.
	sleeper := submit("testing:sleep-workflow/workflow.sleep-durable", "[1500]")
	waitUntil(t, 30*time.Second, func() bool { st, err := srv.State(sleeper); return err == nil && st.Status == "blocked_by_join_set" })
	v.mustCall(t, srv, es, "Pause", fmt.Sprintf(`{"executionId":%q}`, sleeper), nil)
	var paused struct{ Summary struct{ Paused bool } }
	if msgs := v.stream(t, srv, es, "GetStatus", fmt.Sprintf(`{"executionId":%q}`, sleeper), 1); len(msgs) != 1 || json.Unmarshal(msgs[0], &paused) != nil || !paused.Summary.Paused {
		t.Errorf("GetStatus of a paused execution: %q", msgs)
	}
	v.mustCall(t, srv, es, "Unpause", fmt.Sprintf(`{"executionId":%q}`, sleeper), nil)
	follow(sleeper)
	if code, _ := v.call(t, srv, es, "Pause", `{"executionId":"E_01J0000000000000000000000Z"}`, true); code != http.StatusNotFound {
		t.Errorf("pausing an unknown execution: HTTP %d", code)
	}
	cancelled := submit("testing:sleep-workflow/workflow.sleep-activity", "[600000]")
	waitUntil(t, 30*time.Second, func() bool { st, err := srv.State(cancelled); return err == nil && st.Status == "blocked_by_join_set" })
	v.mustCall(t, srv, es, "Cancel", fmt.Sprintf(`{"executionId":%q}`, cancelled), &outcome)
	if outcome.Outcome != "cancel_requested" && outcome.Outcome != "cancelled" {
		t.Errorf("cancel: %+v", outcome)
	}
	if got := follow(cancelled).ResultJSON; !strings.Contains(got, "cancelled") {
		t.Errorf("the cancelled workflow: %s", got)
	}
	v.mustCall(t, srv, es, "Cancel", fmt.Sprintf(`{"executionId":%q}`, cancelled), &outcome)
	if outcome.Outcome != "already_finished" {
		t.Errorf("cancel again: %+v", outcome)
	}
	if code, _ := v.call(t, srv, es, "Cancel", `{}`, true); code != http.StatusBadRequest {
		t.Errorf("cancel without ID: HTTP %d", code)
	}

	// ListExecutions, page by page, with filters; collect every execution (children too).
	var ids []string
	cursor := ""
	for {
		var page struct {
			Executions []summary
			NextCursor string `json:"nextCursor"`
		}
		v.mustCall(t, srv, es, "ListExecutions", fmt.Sprintf(`{"limit":7,"cursor":%q}`, cursor), &page)
		for _, e := range page.Executions {
			ids = append(ids, e.ExecutionID)
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	if len(ids) < 20 {
		t.Fatalf("ListExecutions listed %d executions", len(ids))
	}
	v.mustCall(t, srv, es, "ListExecutions", `{"status":"finished","topLevelOnly":true,"ffqnPrefix":"testing:fibo"}`, nil)
	if code, _ := v.call(t, srv, es, "ListExecutions", `{"status":"sleeping"}`, false); code != http.StatusBadRequest {
		t.Errorf("listing by an unknown status: HTTP %d", code)
	}

	// ListResponses of workflows with children and delays.
	for _, id := range []string{concurrent, race, delayAndChild, fiboa} {
		var rs struct{ Responses []json.RawMessage }
		v.mustCall(t, srv, es, "ListResponses", fmt.Sprintf(`{"executionId":%q}`, id), &rs)
		if len(rs.Responses) == 0 {
			t.Errorf("no responses for %s", id)
		}
	}
	if code, _ := v.call(t, srv, es, "ListResponses", `{"executionId":"E_01J0000000000000000000000Z"}`, true); code != http.StatusNotFound {
		t.Errorf("responses of an unknown execution: HTTP %d", code)
	}

	// ListEvents of every execution; every event's details against its kind's schema,
	// and the CLI's events --json against the event schema.
	seen := map[string]int{}
	for _, id := range ids {
		var evs struct {
			Events []struct {
				Version     uint32
				CreatedAt   string `json:"createdAt"`
				Kind        string
				DetailsJSON string `json:"detailsJson"`
			}
		}
		v.mustCall(t, srv, es, "ListEvents", fmt.Sprintf(`{"executionId":%q}`, id), &evs)
		for _, e := range evs.Events {
			seen[e.Kind]++
			v.validate(t, "events/"+e.Kind+".schema.json", []byte(e.DetailsJSON))
			doc, _ := json.Marshal(map[string]any{"version": e.Version, "created_at": e.CreatedAt, "kind": e.Kind, "details": json.RawMessage(e.DetailsJSON)})
			v.validate(t, "events/event.schema.json", doc)
		}
	}
	v.mustCall(t, srv, es, "ListEvents", fmt.Sprintf(`{"executionId":%q,"fromVersion":2,"limit":3}`, fiboa), nil)
	for _, id := range []string{fiboa, stubSelf} {
		out, errOut, code := srv.CLI("--json", "execution", "events", id)
		var doc struct{ Events []json.RawMessage }
		if code != 0 || json.Unmarshal([]byte(out), &doc) != nil || len(doc.Events) == 0 {
			t.Fatalf("events --json: exit %d, %s %s", code, out, errOut)
		}
		for _, e := range doc.Events {
			v.validate(t, "events/event.schema.json", e)
		}
	}
	var kinds []string
	for k, n := range seen {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(kinds)
	t.Logf("events validated by kind: %s", strings.Join(kinds, " "))
	files, _ := filepath.Glob(filepath.Join(schemasDir, "events", "*.schema.json"))
	for _, f := range files {
		kind := strings.TrimSuffix(filepath.Base(f), ".schema.json")
		// unlocked: only when a run gives its lock back (shutdown, eviction).
		if kind != "event" && kind != "unlocked" && seen[kind] == 0 {
			t.Errorf("no event of kind %s was validated", kind)
		}
	}

	// ComponentService.
	var comps struct{ Components []struct{ Name string } }
	v.mustCall(t, srv, cs, "ListComponents", `{}`, &comps)
	if len(comps.Components) < 8 {
		t.Errorf("ListComponents: %d components", len(comps.Components))
	}
	for _, c := range comps.Components {
		var detail struct {
			WitFiles []json.RawMessage `json:"witFiles"`
			Exports  []struct {
				ParamsSchemaJSON string `json:"paramsSchemaJson"`
			}
		}
		v.mustCall(t, srv, cs, "GetComponent", fmt.Sprintf(`{"component":%q}`, c.Name), &detail)
		if len(detail.WitFiles) == 0 {
			t.Errorf("GetComponent %s: %+v", c.Name, detail)
		}
		// Each parameter schema is a valid JSON Schema: contentSchema checked it.
	}
	if code, b := v.call(t, srv, cs, "GetComponent", `{"component":"nope"}`, true); code != http.StatusNotFound || !strings.Contains(string(b), "not_found") {
		t.Errorf("GetComponent of an unknown component: HTTP %d %s", code, b)
	}
	out, errOut, code := srv.CLI("component", "inspect", "nope")
	if code != 2 || !strings.Contains(errOut, `component "nope" not found`) {
		t.Errorf("component inspect nope: exit %d, %q %q", code, out, errOut)
	}
	if out, errOut, code := srv.CLI("component", "wit", "fibo_workflow"); code != 0 || !strings.Contains(out, "package testing:fibo-workflow;") || !strings.Contains(out, "// ==> deps/") {
		t.Errorf("component wit fibo_workflow: exit %d, %q %q", code, out, errOut)
	}

	// WatchEvents (server streaming, endless): the first messages of the global log.
	watchEvents(t, v, srv)
}

// watchEvents reads a few messages of WatchEvents and validates them, and their events'
// details.
func watchEvents(t *testing.T, v *schemaSet, srv *harness.Server) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(schemasDir, "api/obelisk.v1.ExecutionService/WatchEvents.response.schema.json")); errors.Is(err, os.ErrNotExist) {
		t.Log("no WatchEvents RPC")
		return
	}
	msgs := v.stream(t, srv, "ExecutionService", "WatchEvents", `{"fromPosition":"0"}`, 50)
	if len(msgs) != 50 {
		t.Fatalf("WatchEvents sent %d messages", len(msgs))
	}
	t.Logf("WatchEvents: %d messages validated", len(msgs))
	for _, m := range msgs {
		var w struct {
			Event struct {
				Kind        string
				DetailsJSON string `json:"detailsJson"`
			}
		}
		if err := json.Unmarshal(m, &w); err != nil {
			t.Fatal(err)
		}
		v.validate(t, "events/"+w.Event.Kind+".schema.json", []byte(w.Event.DetailsJSON))
	}
}
