package webhook

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Route is a parsed route of a webhook endpoint (see ParseRoute).
type Route struct {
	// Text is the route as configured.
	Text string
	// Methods the route accepts; nil accepts any.
	Methods []string
	segs    []segment
	// names of the parameters, in path order (the wildcard's last).
	names []string
}

type segKind int

const (
	segStatic segKind = iota
	segParam
	segWildcard
)

type segment struct {
	kind segKind
	text string // static text, or the parameter's name
}

// ParseRoute parses a route: an optional method list, a space, and a path pattern.
//
//	/fibo/:n/:iterations      any method; :n and :iterations match one non-empty segment each
//	GET /fibo/:n/:iterations  GET only
//	GET,POST /items           GET or POST
//	/status/*                 /status, /status/ and everything under it; the rest of the
//	                          path is the parameter "*" (/status/* name it: /status/*rest)
//	""                        every path (the same as "/*")
//
// A pattern starts with '/'. Static segments match exactly (after percent-decoding);
// a wildcard may only end a pattern. Method names are upper case.
func ParseRoute(s string) (Route, error) {
	r := Route{Text: s}
	pattern := strings.TrimSpace(s)
	if methods, rest, ok := strings.Cut(pattern, " "); ok && !strings.HasPrefix(pattern, "/") {
		for _, m := range strings.Split(methods, ",") {
			if m == "" || strings.IndexFunc(m, func(c rune) bool { return c < 'A' || c > 'Z' }) >= 0 {
				return r, fmt.Errorf("route %q: method %q: want upper-case names separated by ',' (e.g. \"GET,POST /path\")", s, m)
			}
			if !slices.Contains(r.Methods, m) {
				r.Methods = append(r.Methods, m)
			}
		}
		pattern = strings.TrimSpace(rest)
	}
	if pattern == "" {
		if r.Methods != nil {
			return r, fmt.Errorf("route %q: the path is missing after the methods", s)
		}
		pattern = "/*"
	}
	if !strings.HasPrefix(pattern, "/") {
		return r, fmt.Errorf("route %q: a path starts with '/' (optionally after methods: \"GET /path\")", s)
	}
	if strings.ContainsAny(pattern, "?# \t") {
		return r, fmt.Errorf("route %q: a path pattern has no query, fragment or spaces", s)
	}
	seen := map[string]bool{}
	parts := splitPath(pattern)
	for i, p := range parts {
		switch {
		case strings.HasPrefix(p, ":"):
			name := p[1:]
			if !validName(name) {
				return r, fmt.Errorf("route %q: parameter %q: want ':' and a name of letters, digits, '_' or '-'", s, p)
			}
			if seen[name] {
				return r, fmt.Errorf("route %q: parameter %q appears twice", s, name)
			}
			seen[name] = true
			r.segs = append(r.segs, segment{segParam, name})
			r.names = append(r.names, name)
		case strings.HasPrefix(p, "*"):
			name := p[1:]
			if name == "" {
				name = "*"
			} else if !validName(name) {
				return r, fmt.Errorf("route %q: wildcard %q: want '*' or '*' and a name of letters, digits, '_' or '-'", s, p)
			}
			if i != len(parts)-1 {
				return r, fmt.Errorf("route %q: a wildcard may only be the last segment", s)
			}
			if seen[name] {
				return r, fmt.Errorf("route %q: parameter %q appears twice", s, name)
			}
			r.segs = append(r.segs, segment{segWildcard, name})
			r.names = append(r.names, name)
		default:
			if strings.ContainsAny(p, ":*") {
				return r, fmt.Errorf("route %q: segment %q: ':' and '*' may only start a segment", s, p)
			}
			text, err := url.PathUnescape(p)
			if err != nil {
				return r, fmt.Errorf("route %q: segment %q: %v", s, p, err)
			}
			r.segs = append(r.segs, segment{segStatic, text})
		}
	}
	return r, nil
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// splitPath splits a path ("/a/b") into its segments (["a", "b"]); "/" has none, and a
// trailing slash makes an empty last segment ("/a/" is ["a", ""]).
func splitPath(p string) []string {
	p = strings.TrimPrefix(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// Param is a route parameter of a matched request.
type Param struct {
	Name, Value string
}

// Router maps (method, path) to targets, by their routes. The most specific route wins:
// at every segment a static match is preferred to a parameter, a parameter to a
// wildcard; among routes of the same path, one naming the method is preferred to one
// accepting any method.
type Router[T any] struct {
	root node[T]
}

type entry[T any] struct {
	target T
	route  *Route
}

type node[T any] struct {
	static map[string]*node[T]
	param  *node[T]
	end    map[string]entry[T] // by method; "" = any method
	wild   map[string]entry[T] // a wildcard ending here, by method
}

// Add adds a route. A route of the same path shape (parameter names aside) and an
// overlapping method list is a conflict.
func (rt *Router[T]) Add(r Route, target T) error {
	n := &rt.root
	var ends *map[string]entry[T]
	for _, s := range r.segs {
		switch s.kind {
		case segStatic:
			if n.static == nil {
				n.static = map[string]*node[T]{}
			}
			if n.static[s.text] == nil {
				n.static[s.text] = &node[T]{}
			}
			n = n.static[s.text]
		case segParam:
			if n.param == nil {
				n.param = &node[T]{}
			}
			n = n.param
		case segWildcard:
			ends = &n.wild
		}
	}
	if ends == nil {
		ends = &n.end
	}
	if *ends == nil {
		*ends = map[string]entry[T]{}
	}
	methods := r.Methods
	if methods == nil {
		methods = []string{""}
	}
	for _, m := range methods {
		if other, ok := (*ends)[m]; ok {
			return fmt.Errorf("route %q conflicts with route %q", r.Text, other.route.Text)
		}
	}
	rc := r
	for _, m := range methods {
		(*ends)[m] = entry[T]{target: target, route: &rc}
	}
	return nil
}

// Match is the outcome of Router.Lookup.
type Match[T any] struct {
	Target T
	Route  *Route
	Params []Param
}

// Lookup finds the route of a request. escapedPath is the request's path as sent
// (url.URL.EscapedPath): segments are split before they are percent-decoded, so an
// encoded '/' stays inside a parameter. When no route matches it returns ok=false,
// with the methods of the routes that match the path but not the method (for a 405).
func (rt *Router[T]) Lookup(method, escapedPath string) (m Match[T], allowed []string, ok bool) {
	segs := splitPath(escapedPath)
	var values []string
	var found *entry[T]
	var wildValue string
	allowedSet := map[string]bool{}
	var walk func(n *node[T], i int) bool
	pick := func(ends map[string]entry[T]) *entry[T] {
		if e, ok := ends[method]; ok {
			return &e
		}
		if e, ok := ends[""]; ok {
			return &e
		}
		for k := range ends {
			allowedSet[k] = true
		}
		return nil
	}
	walk = func(n *node[T], i int) bool {
		if i == len(segs) {
			if e := pick(n.end); e != nil {
				found = e
				return true
			}
		} else {
			if c := n.static[unescape(segs[i])]; c != nil && walk(c, i+1) {
				return true
			}
			if n.param != nil && segs[i] != "" {
				values = append(values, unescape(segs[i]))
				if walk(n.param, i+1) {
					return true
				}
				values = values[:len(values)-1]
			}
		}
		if n.wild != nil {
			if e := pick(n.wild); e != nil {
				found = e
				wildValue = unescape(strings.Join(segs[i:], "/"))
				values = append(values, wildValue)
				return true
			}
		}
		return false
	}
	if !walk(&rt.root, 0) {
		for k := range allowedSet {
			allowed = append(allowed, k)
		}
		slices.Sort(allowed)
		return m, allowed, false
	}
	m.Target, m.Route = found.target, found.route
	for i, name := range found.route.names {
		m.Params = append(m.Params, Param{Name: name, Value: values[i]})
	}
	return m, nil, true
}

func unescape(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}
