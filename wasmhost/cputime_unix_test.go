//go:build unix

package wasmhost

import (
	"syscall"
	"time"
)

// usage is what the process has used so far: CPU time (all threads; on a
// shared machine it says more about a benchmark's cost than wall time) and
// minor page faults.
type usage struct {
	user, sys time.Duration
	faults    int64
}

func getUsage() usage {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return usage{}
	}
	return usage{time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano()), int64(ru.Minflt)}
}
