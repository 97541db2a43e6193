package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/actors"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	"github.com/obelisk-go/obelisk/wasmhost/wit"
)

const paramsWIT = `package testing:params;

interface fns {
    record point { x: s32, y: s32 }
    enum color { red, dark-green }
    variant shape { circle(u32), empty }

    all: func(n: u8, name: string, leaf-millis: u64, opt: option<u32>, flag: bool, pt: point,
        tags: list<string>, c: color, s: shape, maybe-name: option<string>, ch: char) -> result<u64, string>;
    fibo: func(n: u8) -> result<u64>;
    none: func();
}

world w { export fns; }
`

func witFunctions(t *testing.T) map[string]*wit.Function {
	t.Helper()
	r, err := wit.Parse([]wit.File{{Path: "params.wit", Text: paramsWIT}})
	if err != nil {
		t.Fatal(err)
	}
	fns := map[string]*wit.Function{}
	for _, f := range r.Exports() {
		fns[f.FFQN()] = f
	}
	return fns
}

// TestWebhookFunctionParams: a request's route parameters, query and JSON body map to
// the function's parameters by WIT name, in that order of precedence, with text
// converted by the parameter's type.
func TestWebhookFunctionParams(t *testing.T) {
	all := witFunctions(t)["testing:params/fns.all"]
	// What the optional and the remaining parameters are, unless a case gives them.
	const rest = `"tags":[],"c":"red","s":"empty","ch":"x"`
	cases := []struct {
		name  string
		route []Param
		query string
		body  string
		want  string // the params array, or "error: <part of the message>"
		check string // "" if the array type-checks, else part of CheckParams' error
	}{
		{name: "all from the body",
			body: `{"n":10,"name":"a","leaf_millis":5,"flag":true,"pt":{"x":1,"y":-2},` + rest + `}`,
			want: `[10,"a",5,null,true,{"x":1,"y":-2},[],"red","empty",null,"x"]`},
		{name: "route and query text converted by type",
			route: []Param{{"n", "10"}, {"name", "10"}},
			query: `leaf-millis=5&opt=7&flag=false&pt={"x":1,"y":2}&tags=["a","b"]&c=dark_green&s={"circle":3}&maybe-name=null&ch=%C3%A9`,
			want:  `[10,"10",5,7,false,{"x":1,"y":2},["a","b"],"dark_green",{"circle":3},"null","é"]`},
		{name: "a variant case without payload as bare text",
			query: "n=1&name=x&leaf_millis=0&flag=true&pt={\"x\":0,\"y\":0}&tags=[]&c=red&s=empty&ch=x",
			want:  `[1,"x",0,null,true,{"x":0,"y":0},[],"red","empty",null,"x"]`},
		{name: "route wins over query, query over body",
			route: []Param{{"n", "1"}},
			query: "n=2&name=q&flag=true",
			body:  `{"n":3,"name":"b","leaf-millis":9,"pt":{"x":0,"y":0},` + rest + `}`,
			want:  `[1,"q",9,null,true,{"x":0,"y":0},[],"red","empty",null,"x"]`},
		{name: "ill-typed text reaches the type check as a string",
			query: "n=abc&name=x&leaf-millis=1&flag=yes&pt={}&tags=[]&c=red&s=empty&ch=x",
			want:  `[` + `"abc","x",1,null,"yes",{},[],"red","empty",null,"x"]`,
			check: `parameter 0 "n": expected u8, got "abc"`},
		{name: "out of range",
			body:  `{"n":300,"name":"a","leaf_millis":5,"flag":true,"pt":{"x":1,"y":-2},` + rest + `}`,
			want:  `[300,"a",5,null,true,{"x":1,"y":-2},[],"red","empty",null,"x"]`,
			check: `parameter 0 "n": expected u8, got 300`},
		{name: "missing", query: "name=x", want: `error: missing parameter "n" (u8) of testing:params/fns.all`},
		{name: "unknown query parameter", query: "n=1&debug=1", want: `error: query parameter "debug": testing:params/fns.all has no such parameter (its parameters: n, name, leaf-millis,`},
		{name: "query parameter twice", query: "n=1&n=2", want: `error: query parameter "n" is given 2 times`},
		{name: "two spellings in the query", query: "leaf-millis=1&leaf_millis=2", want: `error: parameter "leaf-millis" is given twice in the query`},
		{name: "malformed query", query: "n=%zz", want: `error: query: invalid URL escape "%zz"`},
		{name: "unknown body member", body: `{"n":1,"nn":2}`, want: `error: body member "nn": testing:params/fns.all has no such parameter`},
		{name: "body member twice", body: `{"n":1,"n":2}`, want: `error: body: member "n" is given twice`},
		{name: "body not an object", body: `[1,2]`, want: `error: body: want a JSON object of parameters, got [1,2]`},
		{name: "body not JSON", body: `n=1`, want: `error: body: want a JSON object of parameters: invalid character`},
		{name: "body with trailing data", body: `{"n":1} {}`, want: `error: body: data after the JSON object`},
		{name: "unknown route parameter", route: []Param{{"m", "1"}}, want: `error: route parameter "m": testing:params/fns.all has no such parameter`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := requestParams(all, c.route, c.query, []byte(c.body))
			if want, ok := strings.CutPrefix(c.want, "error: "); ok {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("params %s, error %v; want an error containing %q", got, err, want)
				}
				return
			}
			if err != nil || string(got) != c.want {
				t.Fatalf("params %s, error %v; want %s", got, err, c.want)
			}
			err = wit.CheckParams(all, got)
			switch {
			case c.check == "" && err != nil:
				t.Fatalf("type check: %v", err)
			case c.check != "" && (err == nil || !strings.Contains(err.Error(), c.check)):
				t.Fatalf("type check: %v, want an error containing %q", err, c.check)
			}
		})
	}
	none := witFunctions(t)["testing:params/fns.none"]
	if got, err := requestParams(none, nil, "", []byte(" \n")); err != nil || string(got) != "[]" {
		t.Fatalf("no parameters, blank body: %s, %v", got, err)
	}
}

// fnEngine is an engine with the functions of paramsWIT: fibo answers by n (0: err,
// 1: an execution failure, 2: never finishes, else ok n*10), type-checking as
// actors.Engine.Submit does.
type fnEngine struct {
	fakeEngine
	fns   map[string]*wit.Function
	stub  bool
	mu    sync.Mutex
	subs  []string // the params of each submission
	byID  map[string]string
	count int
}

func (e *fnEngine) Function(ffqn string) (actors.Function, bool) {
	fn, ok := e.fns[ffqn]
	if !ok {
		return actors.Function{}, false
	}
	typ := actors.ActivityWasm
	if e.stub {
		typ = actors.ActivityStub
	}
	return actors.Function{Component: &actors.Component{Config: actors.ComponentConfig{Name: "params", Type: typ}}, Fn: fn}, true
}

func (e *fnEngine) Submit(ctx context.Context, id, ffqn string, params json.RawMessage, _ ...actors.SubmitOption) (string, bool, error) {
	if err := wit.CheckParams(e.fns[ffqn], params); err != nil {
		return "", false, &actors.InvalidArgumentError{Err: fmt.Errorf("%s: %w", ffqn, err)}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.count++
	id = fmt.Sprintf("E_%d", e.count)
	e.subs = append(e.subs, string(params))
	if e.byID == nil {
		e.byID = map[string]string{}
	}
	e.byID[id] = string(params)
	return id, false, nil
}

func (e *fnEngine) WaitFinished(ctx context.Context, id string) (*pb.ExecutionState, error) {
	e.mu.Lock()
	params := e.byID[id]
	e.mu.Unlock()
	var n []int
	if err := json.Unmarshal([]byte(params), &n); err != nil {
		return nil, err
	}
	st := &pb.ExecutionState{ExecutionId: id, Status: pb.Status_STATUS_FINISHED}
	switch n[0] {
	case 0:
		st.Result = []byte(`{"err":"zero"}`)
	case 1:
		st.Result = []byte(`{"execution_failure":{"kind":"timed_out","reason":"attempt 1 timed out"}}`)
	case 2:
		<-ctx.Done()
		return &pb.ExecutionState{ExecutionId: id, Status: pb.Status_STATUS_LOCKED}, ctx.Err()
	default:
		st.Result = []byte(fmt.Sprintf(`{"ok":%d}`, n[0]*10))
	}
	return st, nil
}

// TestWebhookFunctionEndpoint: a function endpoint submits one execution per request
// and answers with its result by the documented rule; a request whose parameters do
// not map or type-check creates nothing.
func TestWebhookFunctionEndpoint(t *testing.T) {
	e := &fnEngine{fns: witFunctions(t)}
	ss, err := Listen(Config{
		Servers: []ServerConfig{{Name: "external", ListeningAddr: "127.0.0.1:0"}},
		Endpoints: []EndpointConfig{{Name: "fibo", Server: "external", Routes: routes(t, "GET /fibo/:n", "POST /fibo"),
			MaxInflightRequests: 10, RequestTimeout: time.Second, Function: "testing:params/fns.fibo"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := ss.Serve(e, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	base := "http://" + ss.Addrs()["external"].String()
	cases := []struct {
		method, path, body string
		status             int
		want               string // the body
		id                 bool   // an execution was submitted (its ID in the header)
	}{
		{"GET", "/fibo/5", "", 200, "50\n", true},
		{"POST", "/fibo", `{"n": 7}`, 200, "70\n", true},
		{"POST", "/fibo?n=8", ``, 200, "80\n", true},
		{"GET", "/fibo/0", "", 422, `{"err":"zero"}` + "\n", true},
		{"GET", "/fibo/1", "", 500, `{"execution_failure":{"kind":"timed_out","reason":"attempt 1 timed out"}}` + "\n", true},
		{"GET", "/fibo/2", "", 202, `{"execution_id":"ID","status":"locked"}` + "\n", true},
		{"GET", "/fibo/300", "", 400, `bad request: testing:params/fns.fibo: parameter 0 "n": expected u8, got 300` + "\n", false},
		{"GET", "/fibo/x", "", 400, `bad request: testing:params/fns.fibo: parameter 0 "n": expected u8, got "x"` + "\n", false},
		{"POST", "/fibo", "", 400, `bad request: missing parameter "n" (u8) of testing:params/fns.fibo: give it as a route parameter, a query parameter or a member of a JSON object body` + "\n", false},
		{"POST", "/fibo", `{"m": 1}`, 400, `bad request: body member "m": testing:params/fns.fibo has no such parameter (its parameters: n)` + "\n", false},
	}
	for _, c := range cases {
		e.mu.Lock()
		before := len(e.subs)
		e.mu.Unlock()
		req, _ := http.NewRequest(c.method, base+c.path, strings.NewReader(c.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		id := resp.Header.Get(ExecutionIDHeader)
		want := strings.ReplaceAll(c.want, "ID", id)
		if resp.StatusCode != c.status || string(b) != want {
			t.Errorf("%s %s %s: %d %q, want %d %q", c.method, c.path, c.body, resp.StatusCode, b, c.status, want)
		}
		e.mu.Lock()
		submitted := len(e.subs) - before
		e.mu.Unlock()
		if c.id && (id == "" || submitted != 1) || !c.id && (id != "" || submitted != 0) {
			t.Errorf("%s %s %s: execution ID %q, %d submitted", c.method, c.path, c.body, id, submitted)
		}
	}
}

// TestWebhookFunctionBindErrors: a function endpoint whose function is not deployed,
// not submittable, or whose route names no parameter of it, is refused by Serve before
// anything is served.
func TestWebhookFunctionBindErrors(t *testing.T) {
	cases := []struct {
		ffqn, route string
		stub        bool
		want        string
	}{
		{"testing:params/fns.nope", "/x", false, `webhook_endpoint "fn": function "testing:params/fns.nope" is not exported by any deployed component`},
		{"testing:params/fns.fibo", "/x/:m", false, `webhook_endpoint "fn": route "/x/:m": testing:params/fns.fibo has no parameter "m" (its parameters: n)`},
		{"testing:params/fns.fibo", "/x/*", false, `webhook_endpoint "fn": route "/x/*": testing:params/fns.fibo has no parameter "*" (its parameters: n)`},
		{"testing:params/fns.fibo", "/x/:n", true, `webhook_endpoint "fn": function "testing:params/fns.fibo" is a function of activity stub "params", which cannot be submitted`},
	}
	for _, c := range cases {
		ss, err := Listen(Config{
			Servers:   []ServerConfig{{Name: "external", ListeningAddr: "127.0.0.1:0"}},
			Endpoints: []EndpointConfig{{Name: "fn", Server: "external", Routes: routes(t, c.route), Function: c.ffqn}},
		})
		if err != nil {
			t.Fatal(err)
		}
		err = ss.Serve(&fnEngine{fns: witFunctions(t), stub: c.stub}, slog.New(slog.DiscardHandler))
		if err == nil || err.Error() != c.want {
			t.Errorf("%s %s: %v, want %q", c.ffqn, c.route, err, c.want)
		}
		ss.Close()
	}
}
