package schemas

import (
	"io/fs"
	"path"
	"regexp"
	"strings"
)

// protoComments reads the comments of the .proto files in fsys: a map from the full
// name of a message, field, service, RPC, enum or enum value ("obelisk.v1.SubmitRequest",
// "obelisk.v1.SubmitRequest.params_json", "obelisk.v1.ExecutionService.Submit") to its
// leading comment and trailing comment, joined. It understands the subset of the
// language the files use: `//` comments, one declaration a line.
func protoComments(fsys fs.FS) (map[string]string, error) {
	out := map[string]string{}
	files, err := fs.Glob(fsys, "*.proto")
	if err != nil {
		return nil, err
	}
	for _, name := range files {
		b, err := fs.ReadFile(fsys, path.Clean(name))
		if err != nil {
			return nil, err
		}
		parseProtoComments(string(b), out)
	}
	return out, nil
}

var (
	rePackage = regexp.MustCompile(`^package\s+([\w.]+)\s*;`)
	reBlock   = regexp.MustCompile(`^(message|service|enum|oneof)\s+(\w+)\s*\{\s*(\})?`)
	reRPC     = regexp.MustCompile(`^rpc\s+(\w+)\s*\(`)
	reField   = regexp.MustCompile(`^(?:repeated\s+|optional\s+)?(?:map\s*<[^>]*>|[\w.]+)\s+(\w+)\s*=\s*\d+[^;]*;`)
	reValue   = regexp.MustCompile(`^(\w+)\s*=\s*-?\d+\s*;`)
)

func parseProtoComments(src string, out map[string]string) {
	pkg := ""
	type scope struct{ kind, name string }
	var stack []scope
	var leading []string
	prefix := func() string {
		parts := []string{pkg}
		for _, s := range stack {
			if s.kind != "oneof" { // oneof members belong to the message
				parts = append(parts, s.name)
			}
		}
		return strings.Join(parts, ".")
	}
	record := func(name, code, line string) {
		text := strings.Join(leading, " ")
		if i := strings.Index(line, "//"); i >= 0 && strings.TrimSpace(line[:i]) == strings.TrimSpace(code) {
			if trailing := strings.TrimSpace(line[i+2:]); trailing != "" {
				text = strings.TrimSpace(text + " " + trailing)
			}
		}
		if text != "" {
			out[prefix()+"."+name] = text
		}
	}
	for _, line := range strings.Split(src, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "//") {
			leading = append(leading, strings.TrimSpace(strings.TrimPrefix(trimmed, "//")))
			continue
		}
		code := trimmed
		if i := strings.Index(code, "//"); i >= 0 {
			code = strings.TrimSpace(code[:i])
		}
		switch {
		case code == "":
			leading = nil
			continue
		case rePackage.MatchString(code):
			pkg = rePackage.FindStringSubmatch(code)[1]
		case reBlock.MatchString(code):
			m := reBlock.FindStringSubmatch(code)
			if m[1] != "oneof" {
				record(m[2], code, trimmed)
			}
			if m[3] == "" {
				stack = append(stack, scope{m[1], m[2]})
			}
		case code == "}":
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		case reRPC.MatchString(code):
			record(reRPC.FindStringSubmatch(code)[1], code, trimmed)
		case len(stack) > 0 && stack[len(stack)-1].kind == "enum" && reValue.MatchString(code):
			record(reValue.FindStringSubmatch(code)[1], code, trimmed)
		case reField.MatchString(code):
			record(reField.FindStringSubmatch(code)[1], code, trimmed)
		}
		leading = nil
	}
}
