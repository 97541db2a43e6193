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
	obelisk.Export("testing:kv-workflow/workflow.set-get", func(ctx obelisk.Context, bucket string, n uint32) (uint32, error) {
		for i := range n {
			k := strconv.FormatUint(uint64(i), 10)
			if err := obeliskkv.Set(ctx, bucket, k, "v"+k); err != nil {
				return 0, err
			}
		}
		var same uint32
		for i := range n {
			k := strconv.FormatUint(uint64(i), 10)
			v, found, err := obeliskkv.Get(ctx, bucket, k)
			if err != nil {
				return 0, err
			}
			if found && v == "v"+k {
				same++
			}
		}
		return same, nil
	})
}

func main() {}
