// Command alloc-activity is a test-only activity that uses guest memory: alloc(mib,
// hold-ms) allocates mib MiB in 1 MiB blocks, writes every byte (so that the memory is
// resident), and holds it for hold-ms milliseconds before returning.
package main

import (
	"time"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
)

func init() {
	obelisk.Export("testing:alloc-activity/alloc.alloc", alloc)
}

func alloc(ctx obelisk.Context, mib, holdMS uint32) (uint32, error) {
	held := make([][]byte, 0, mib)
	for range mib {
		b := make([]byte, 1<<20)
		for i := range b {
			b[i] = byte(i)
		}
		held = append(held, b)
	}
	time.Sleep(time.Duration(holdMS) * time.Millisecond)
	return uint32(len(held)), nil
}

func main() {}
