// Command http-workflow is a workflow that calls the testing:http activity.
//
// Build it as a WASI reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o http-workflow.wasm ./test/components/http-workflow
package main

import "github.com/obelisk-go/obelisk/sdk/go/obelisk"

func init() {
	obelisk.Export("testing:http-workflow/workflow.get", get)
}

// get implements `get: func(url: string) -> result<string, string>` by
// calling the activity and returning what it returned:
//   - the child's ok(body) is returned as ok(body);
//   - the child's err(message) is an *obelisk.ErrResult, which passes through
//     unchanged as err(message);
//   - any other error, such as an *obelisk.ExecutionFailure when the child
//     timed out or trapped on its last attempt, becomes err(its message).
func get(ctx obelisk.Context, url string) (string, error) {
	return obelisk.Call[string](ctx, "testing:http/http-get.get", url)
}

func main() {}
