package abi

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

// TestTablesHaveNoDuplicates: an op or a kind is listed once.
func TestTablesHaveNoDuplicates(t *testing.T) {
	seen := map[string]bool{}
	for _, op := range Ops() {
		if seen[op] {
			t.Errorf("op %q listed twice", op)
		}
		seen[op] = true
	}
	seen = map[string]bool{}
	for _, k := range Kinds() {
		if seen[k.Kind] {
			t.Errorf("kind %q listed twice", k.Kind)
		}
		seen[k.Kind] = true
		if k.Meaning == "" {
			t.Errorf("kind %q has no meaning", k.Kind)
		}
		for _, op := range k.Ops {
			if !contains(Ops(), op) {
				t.Errorf("kind %q names the unknown op %q", k.Kind, op)
			}
		}
	}
	if _, ok := LookupKind(KindPending); !ok {
		t.Error("LookupKind(pending) found nothing")
	}
	if _, ok := LookupKind("no_such_kind"); ok {
		t.Error("LookupKind found a kind that does not exist")
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestDocumented: docs/abi.md, the prose, names every op, every error kind and every
// failure kind of this package, so that neither can drift silently.
func TestDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../../../docs/abi.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	for _, op := range Ops() {
		if !strings.Contains(text, "| `"+op+"` |") {
			t.Errorf("docs/abi.md has no table row for op %q", op)
		}
	}
	for _, k := range Kinds() {
		if !strings.Contains(text, "`"+k.Kind+"`") {
			t.Errorf("docs/abi.md does not mention error kind %q", k.Kind)
		}
	}
	for _, k := range FailureKinds() {
		if !strings.Contains(text, "`"+k+"`") {
			t.Errorf("docs/abi.md does not mention failure kind %q", k)
		}
	}
}

// TestWireFormat pins the JSON of every shape, member names and order: already-built
// guests and recorded histories depend on them.
func TestWireFormat(t *testing.T) {
	name := "jobs"
	for _, tc := range []struct {
		v    any
		want string
	}{
		{Head{OpLog}, `{"op":"log"}`},
		{RunInput{FFQN: "a:b/c.d", Params: json.RawMessage(`[1]`), ExecutionID: "E_1", Attempt: 2}, `{"ffqn":"a:b/c.d","params":[1],"execution_id":"E_1","attempt":2}`},
		{LogRequest{Level: LevelInfo, Message: "hi"}, `{"level":"info","message":"hi"}`},
		{LogRequest{Level: LevelCritical, Message: "hi", Context: "c"}, `{"level":"critical","message":"hi","context":"c"}`},
		{HTTPRequest{Method: "GET", URL: "http://x/", Headers: map[string][]string{"A": {"b"}}, Body: "eA==", TimeoutMS: 5}, `{"method":"GET","url":"http://x/","headers":{"A":["b"]},"body":"eA==","timeout_ms":5}`},
		{HTTPRequest{URL: "http://x/"}, `{"method":"","url":"http://x/","headers":null}`},
		{HTTPResponse{Status: 200, Headers: map[string][]string{}, Body: ""}, `{"status":200,"headers":{},"body":""}`},
		{CallRequest{FFQN: "a:b/c.d", Params: json.RawMessage(`[]`)}, `{"ffqn":"a:b/c.d","params":[]}`},
		{SubmitRequest{JoinSet: "g:1", FFQN: "a:b/c.d", Params: json.RawMessage(`[1]`)}, `{"join_set":"g:1","ffqn":"a:b/c.d","params":[1]}`},
		{SubmitRequest{JoinSet: "g:1", FFQN: "a:b/c.d", Params: json.RawMessage(`[1]`), Queue: "q"}, `{"join_set":"g:1","ffqn":"a:b/c.d","params":[1],"queue":"q"}`},
		{ScheduleRequest{FFQN: "a:b/c.d", Params: json.RawMessage(`[]`), ScheduleAt: json.RawMessage(`"now"`)}, `{"ffqn":"a:b/c.d","params":[],"schedule_at":"now"}`},
		{ScheduleRequest{FFQN: "a:b/c.d", Params: json.RawMessage(`[]`), ExecutionID: "E_1"}, `{"ffqn":"a:b/c.d","params":[],"execution_id":"E_1"}`},
		{ScheduleAt{At: &Time{Seconds: 1, Nanoseconds: 2}}, `{"at":{"seconds":1,"nanoseconds":2}}`},
		{ScheduleAt{In: map[string]uint64{"seconds": 3}}, `{"in":{"seconds":3}}`},
		{Woke{Seconds: 1, Nanoseconds: 2}, `{"nanoseconds":2,"seconds":1}`},
		{RandomU64Request{1, 10}, `{"min":1,"max_exclusive":10}`},
		{RandomStringRequest{1, 10}, `{"min_length":1,"max_length_exclusive":10}`},
		{JoinSetCreateRequest{}, `{}`},
		{JoinSetCreateRequest{Name: &name}, `{"name":"jobs"}`},
		{SubmitDelayRequest{JoinSet: "g:1", ScheduleAt: json.RawMessage(`"now"`)}, `{"join_set":"g:1","schedule_at":"now"}`},
		{JoinNextRequest{JoinSet: "g:1"}, `{"join_set":"g:1"}`},
		{JoinNextRequest{JoinSet: "g:1", FFQN: "a:b/c.d"}, `{"join_set":"g:1","ffqn":"a:b/c.d"}`},
		{JoinNextTryRequest{JoinSet: "g:1"}, `{"join_set":"g:1"}`},
		{JoinSetCloseRequest{JoinSet: "g:1"}, `{"join_set":"g:1"}`},
		{GetRequest{ExecutionID: "E_1"}, `{"execution_id":"E_1"}`},
		{SleepRequest{ScheduleAt: json.RawMessage(`"now"`)}, `{"schedule_at":"now"}`},
		{StubRequest{ExecutionID: "E_1", Result: json.RawMessage(`{"ok":1}`)}, `{"execution_id":"E_1","result":{"ok":1}}`},
		{GetStatusRequest{ExecutionID: "E_1"}, `{"execution_id":"E_1"}`},
		{Status{Status: "finished", Result: json.RawMessage(`{"ok":1}`), Paused: true, CancelRequested: true}, `{"status":"finished","result":{"ok":1},"paused":true,"cancel_requested":true}`},
		{Status{Status: "locked"}, `{"status":"locked"}`},
		{ExecutionResponse("E_1.g:1_1", "a:b/c.d", json.RawMessage(`{"ok":55}`)), `{"ffqn":"a:b/c.d","id":"E_1.g:1_1","kind":"execution","result":{"ok":55}}`},
		{DelayResponse("Delay_1.g:1_2", false), `{"cancelled":false,"id":"Delay_1.g:1_2","kind":"delay"}`},
		{ErrorAnswer{Error{KindPending, "not yet"}}, `{"error":{"kind":"pending","message":"not yet"}}`},
	} {
		got, err := json.Marshal(tc.v)
		if err != nil {
			t.Fatalf("%T: %v", tc.v, err)
		}
		if string(got) != tc.want {
			t.Errorf("%T:\n got %s\nwant %s", tc.v, got, tc.want)
		}
	}
}

func TestValidJoinSetName(t *testing.T) {
	for name, want := range map[string]bool{
		"jobs": true, "a/b-c9": true, strings.Repeat("x", 64): true,
		"": false, strings.Repeat("x", 65): false, "no_underscores": false, "a.b": false, "é": false,
	} {
		if got := ValidJoinSetName(name); got != want {
			t.Errorf("ValidJoinSetName(%q) = %v", name, got)
		}
	}
}

func TestValidQueueName(t *testing.T) {
	for name, want := range map[string]bool{
		"fibo": true, "fibo-workflow": true, "gpu/eu-1": true, "a_b.c:d": true, strings.Repeat("q", 255): true,
		"": false, strings.Repeat("q", 256): false, "a b": false, "a\x00b": false, "é": false, "a,b": false,
	} {
		if got := ValidQueueName(name); got != want {
			t.Errorf("ValidQueueName(%q) = %v", name, got)
		}
	}
}

func TestResolveScheduleAt(t *testing.T) {
	now := time.Unix(1000, 0)
	for raw, want := range map[string]time.Time{
		``:                                     now,
		`"now"`:                                now,
		`{"at":{"seconds":5,"nanoseconds":7}}`: time.Unix(5, 7),
		`{"in":{"milliseconds":1500}}`:         now.Add(1500 * time.Millisecond),
		`{"in":{"days":2}}`:                    now.Add(48 * time.Hour),
		`{"in": {"minutes": 3}}`:               now.Add(3 * time.Minute),
	} {
		got, err := ResolveScheduleAt(json.RawMessage(raw), now)
		if err != nil || !got.Equal(want) {
			t.Errorf("ResolveScheduleAt(%s) = %v, %v; want %v", raw, got, err, want)
		}
	}
	for _, raw := range []string{`"later"`, `{"in":{"weeks":1}}`, `{"in":{"seconds":1,"minutes":1}}`, `{"in":{"seconds":-1}}`, `{}`, `{"at":{"seconds":1},"in":{"seconds":1}}`, `[`} {
		if got, err := ResolveScheduleAt(json.RawMessage(raw), now); err == nil {
			t.Errorf("ResolveScheduleAt(%s) = %v, want an error", raw, got)
		}
	}
}
