//go:build !unix

package wasmhost

import "time"

type usage struct {
	user, sys time.Duration
	faults    int64
}

func getUsage() usage { return usage{} }
