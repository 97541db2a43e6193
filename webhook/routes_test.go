package webhook

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestWebhookParseRoute(t *testing.T) {
	good := []struct {
		in      string
		methods []string
		names   []string
	}{
		{"/fibo/:n/:iterations", nil, []string{"n", "iterations"}},
		{"GET /fibo/:n/:iterations", []string{"GET"}, []string{"n", "iterations"}},
		{"GET,POST /items", []string{"GET", "POST"}, nil},
		{"/status/*", nil, []string{"*"}},
		{"/files/*path", nil, []string{"path"}},
		{"", nil, []string{"*"}},
		{"/", nil, nil},
		{"  PUT   /x  ", []string{"PUT"}, nil},
	}
	for _, c := range good {
		r, err := ParseRoute(c.in)
		if err != nil {
			t.Errorf("ParseRoute(%q): %v", c.in, err)
			continue
		}
		if !slices.Equal(r.Methods, c.methods) || !slices.Equal(r.names, c.names) {
			t.Errorf("ParseRoute(%q): methods %v names %v, want %v %v", c.in, r.Methods, r.names, c.methods, c.names)
		}
	}
	bad := map[string]string{
		"fibo":            "starts with '/'",
		"get /x":          "upper-case",
		"GET":             "starts with '/'",
		"GET,,POST /x":    "upper-case",
		"/a/*/b":          "last segment",
		"/a/:":            "parameter",
		"/a/:x/:x":        "twice",
		"/a/b:c":          "may only start a segment",
		"/a?x=1":          "no query",
		"/a/:n.json":      "parameter",
		"/a/%zz":          "invalid URL escape",
		"/a/:x/*x":        "twice",
		"GET,POST /a b/c": "spaces",
	}
	for in, want := range bad {
		_, err := ParseRoute(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseRoute(%q): error %v, want one containing %q", in, err, want)
		}
	}
}

func mustRouter(t *testing.T, routes ...string) *Router[string] {
	t.Helper()
	var rt Router[string]
	for _, s := range routes {
		r, err := ParseRoute(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := rt.Add(r, s); err != nil {
			t.Fatal(err)
		}
	}
	return &rt
}

func TestWebhookRouterLookup(t *testing.T) {
	rt := mustRouter(t,
		"GET /fibo/:n/:iterations",
		"/fibo/special/:iterations",
		"POST /fibo/:n/:iterations",
		"/status/*",
		"/status/health",
		"DELETE /items/:id",
		"/items/:id/*rest",
		"/",
		"/trailing/",
	)
	cases := []struct {
		method, path string
		want         string // the route, "404" or "405 <allowed>"
		params       string
	}{
		{"GET", "/fibo/10/3", "GET /fibo/:n/:iterations", "n=10 iterations=3"},
		{"POST", "/fibo/10/3", "POST /fibo/:n/:iterations", "n=10 iterations=3"},
		{"PUT", "/fibo/10/3", "405 GET,POST", ""},
		{"GET", "/fibo/special/3", "/fibo/special/:iterations", "iterations=3"},
		// A static segment wins, but a dead end falls back to the parameter.
		{"GET", "/fibo/special", "404", ""},
		{"GET", "/fibo/10", "404", ""},
		{"GET", "/fibo/10/3/", "404", ""},
		{"GET", "/fibo//3", "404", ""}, // parameters are not empty
		{"GET", "/status", "/status/*", "*="},
		{"GET", "/status/", "/status/*", "*="},
		{"GET", "/status/a/b", "/status/*", "*=a/b"},
		{"GET", "/status/health", "/status/health", ""},
		{"GET", "/status/health/x", "/status/*", "*=health/x"},
		{"DELETE", "/items/7", "DELETE /items/:id", "id=7"},
		// A wildcard matches the empty rest too, and a match beats a wrong method.
		{"GET", "/items/7", "/items/:id/*rest", "id=7 rest="},
		{"GET", "/items/7/a/b", "/items/:id/*rest", "id=7 rest=a/b"},
		{"GET", "/items/7/", "/items/:id/*rest", "id=7 rest="},
		{"GET", "/", "/", ""},
		{"GET", "/trailing/", "/trailing/", ""},
		{"GET", "/trailing", "404", ""},
		{"GET", "/nothing", "404", ""},
		// Segments are split before they are decoded.
		{"GET", "/fibo/a%2Fb/3", "GET /fibo/:n/:iterations", "n=a/b iterations=3"},
		{"GET", "/status/%41", "/status/*", "*=A"},
	}
	for _, c := range cases {
		m, allowed, ok := rt.Lookup(c.method, c.path)
		var got, params string
		switch {
		case ok:
			got = m.Target
			var ps []string
			for _, p := range m.Params {
				ps = append(ps, p.Name+"="+p.Value)
			}
			params = strings.Join(ps, " ")
		case len(allowed) > 0:
			got = "405 " + strings.Join(allowed, ",")
		default:
			got = "404"
		}
		if got != c.want || params != c.params {
			t.Errorf("%s %s: %s [%s], want %s [%s]", c.method, c.path, got, params, c.want, c.params)
		}
	}
}

func TestWebhookRouterCatchAllAndConflicts(t *testing.T) {
	rt := mustRouter(t, "", "GET /x")
	if m, _, ok := rt.Lookup("POST", "/a/b"); !ok || m.Target != "" || fmt.Sprint(m.Params) != "[{* a/b}]" {
		t.Fatalf("catch-all: %v %v", m, ok)
	}
	if m, _, ok := rt.Lookup("POST", "/x"); !ok || m.Target != "" {
		t.Fatalf("POST /x goes to the catch-all: %v %v", m, ok)
	}
	if m, _, ok := rt.Lookup("GET", "/x"); !ok || m.Target != "GET /x" {
		t.Fatalf("GET /x: %v %v", m, ok)
	}
	conflicts := [][2]string{
		{"/a/:x", "/a/:y"},
		{"GET /a", "GET,POST /a"},
		{"/s/*", "/s/*rest"},
		{"", "/*"},
	}
	for _, c := range conflicts {
		var rt Router[string]
		r1, _ := ParseRoute(c[0])
		r2, _ := ParseRoute(c[1])
		if err := rt.Add(r1, "1"); err != nil {
			t.Fatal(err)
		}
		if err := rt.Add(r2, "2"); err == nil || !strings.Contains(err.Error(), "conflicts") {
			t.Errorf("%q then %q: %v, want a conflict", c[0], c[1], err)
		}
	}
	// Different methods, or a method and any method, do not conflict.
	mustRouter(t, "GET /a", "POST /a", "/a", "/a/:x", "/a/:x/b")
}
