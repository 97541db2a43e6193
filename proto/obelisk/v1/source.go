package obeliskv1

import "embed"

// Source holds the .proto files of this package, for tools that read their comments:
// the JSON Schema generator (obelisk generate schemas) turns them into descriptions.
//
//go:embed *.proto
var Source embed.FS
