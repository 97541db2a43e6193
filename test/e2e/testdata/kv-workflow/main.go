// Command kv-workflow is a test-only workflow that counts in the built-in KV store by
// compare-and-set: each get and cas is a child execution, recorded and replayed.
package main

import (
	"strconv"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/obeliskkv"
)

func init() {
	obelisk.Export("testing:kv-workflow/workflow.increment", func(ctx obelisk.Context, bucket, key string, times uint32) (uint32, error) {
		var last uint32
		for range times {
			for {
				cur, found, err := obeliskkv.Get(ctx, bucket, key)
				if err != nil {
					return 0, err
				}
				var expected *string
				n := uint64(0)
				if found {
					expected = &cur
					if n, err = strconv.ParseUint(cur, 10, 32); err != nil {
						return 0, obelisk.Err("counter " + cur + " is not a number")
					}
				}
				swapped, err := obeliskkv.CAS(ctx, bucket, key, expected, strconv.FormatUint(n+1, 10))
				if err != nil {
					return 0, err
				}
				if swapped {
					last = uint32(n + 1)
					break
				}
			}
		}
		return last, nil
	})
}

func main() {}
