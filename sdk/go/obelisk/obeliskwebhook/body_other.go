//go:build !wasip1

package obeliskwebhook

import (
	"encoding/json"
	"fmt"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
)

// readBody copies the bytes of the request's body from offset into p, and
// returns how many; 0 at the end of the body. p is not empty. Outside a wasm
// host the bytes come from the TestHost, with the operation BodyReadOp.
func readBody(ctx obelisk.Context, offset int64, p []byte) (int, error) {
	p = p[:min(len(p), maxBodyChunk)]
	var raw json.RawMessage
	if err := ctx.HostCall(BodyReadOp, struct {
		Offset int64 `json:"offset"`
		Length int   `json:"length"`
	}{offset, len(p)}, &raw); err != nil {
		return 0, err
	}
	var chunk []byte
	if err := json.Unmarshal(raw, &chunk); err != nil {
		return 0, fmt.Errorf("%s answered %.40q, not a base64 string: %w", BodyReadOp, raw, err)
	}
	if len(chunk) > len(p) {
		return 0, fmt.Errorf("%s answered %d bytes, more than the %d asked", BodyReadOp, len(chunk), len(p))
	}
	return copy(p, chunk), nil
}
