package obelisk

import (
	"fmt"
	"os"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
)

// Context is the first parameter of every exported function. It describes
// the execution being run and gives access to the host: logging, child calls
// for workflows ([Call]), HTTP for activities (package obeliskhttp) and any
// other host operation ([Context.HostCall]).
//
// A Context is only valid during the run of the function it was passed to.
// It is not a context.Context.
type Context struct {
	r *runState
}

// runState is what a Context knows about the current run.
type runState struct {
	ffqn        string
	executionID string
	attempt     int
	host        hostFunc
}

// host returns the function performing host operations for this run.
func (c Context) host() hostFunc {
	if c.r == nil || c.r.host == nil {
		return hostCall
	}
	return c.r.host
}

// ExecutionID returns the ID of the execution being run, e.g. "E_01J...".
func (c Context) ExecutionID() string {
	if c.r == nil {
		return ""
	}
	return c.r.executionID
}

// Attempt returns the attempt number of an activity's execution: 1 for the
// first attempt, incremented on every retry. Workflows always see 1: they
// are replayed, not retried.
func (c Context) Attempt() int {
	if c.r == nil {
		return 0
	}
	return c.r.attempt
}

// Level is the severity of a log message.
type Level string

// Log levels.
const (
	LevelTrace Level = abi.LevelTrace
	LevelDebug Level = abi.LevelDebug
	LevelInfo  Level = abi.LevelInfo
	LevelWarn  Level = abi.LevelWarn
	LevelError Level = abi.LevelError
)

// Log sends a message to the server's log, where it is attributed to the
// execution. Outside an Obelisk host it is written to standard error.
// Standard output and standard error of a component also reach the server's
// log, without the level and the execution. For a structured logger, see
// package obeliskslog.
func (c Context) Log(level Level, msg string) {
	// What encodeRequest would make of a struct with the level and message.
	req := make([]byte, 0, 40+len(level)+len(msg))
	req = append(req, `{"op":"`+abi.OpLog+`","level":`...)
	req = appendString(req, string(level))
	req = append(req, `,"message":`...)
	req = appendString(req, msg)
	req = append(req, '}')
	if _, err := send(c.host(), abi.OpLog, req); err != nil {
		fmt.Fprintf(os.Stderr, "%s %s\n", level, msg)
	}
}
