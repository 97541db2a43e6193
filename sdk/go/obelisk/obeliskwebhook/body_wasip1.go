//go:build wasip1

package obeliskwebhook

import (
	"errors"
	"math"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
)

// The body is copied into the guest's memory as it is (docs/abi.md,
// "Webhook endpoints"): decoding it from a JSON response would cost the guest
// far more than the copy.
//
//go:wasmimport obelisk_v1 request_body_read
func wasmRequestBodyRead(offset int64, outPtr *byte, outCap uint32) int32

// readBody copies the bytes of the request's body from offset into p, and
// returns how many; 0 at the end of the body. p is not empty.
func readBody(_ obelisk.Context, offset int64, p []byte) (int, error) {
	n := wasmRequestBodyRead(offset, &p[0], uint32(min(len(p), math.MaxInt32)))
	if n < 0 {
		return 0, errors.New("the host answered that the offset is outside the body")
	}
	return int(n), nil
}
