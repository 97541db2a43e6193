// Command c-caller-workflow is a test-only Go workflow whose children are executions of
// the activity written in C (examples/c-activity): the two languages meet only through
// the host, as JSON typed by the WIT.
package main

import (
	"errors"
	"strconv"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
)

func init() {
	obelisk.Export("testing:c-caller-workflow/workflow.fibo-reversed", func(ctx obelisk.Context, n uint8) (string, error) {
		v, err := obelisk.Call[uint64](ctx, "examples:c-activity/text.fibo", n)
		if err != nil {
			// Not wrapped: the err value is the message, as the WIT's string says,
			// rather than the child's failure variant.
			return "", errors.New(err.Error())
		}
		return obelisk.Call[string](ctx, "examples:c-activity/text.reverse", strconv.FormatUint(v, 10))
	})
}

func main() {}
