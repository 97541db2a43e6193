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
	// log sends a record through wasi:logging; nil (TestHost, a build that is not
	// a wasip1 module) sends the log op through host instead.
	log logFunc
}

// logFunc logs one record at a wasi:logging level index (0 trace ... 5 critical).
type logFunc func(level uint8, context, message string)

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
	// LevelCritical is wasi:logging's most severe level.
	LevelCritical Level = abi.LevelCritical
)

// wasiLevel returns the index of level in wasi:logging's enum level.
func wasiLevel(level Level) (uint8, bool) {
	for i, l := range abi.LoggingLevels {
		if l == string(level) {
			return uint8(i), true
		}
	}
	return 0, false
}

// Log sends a message to the execution's log, which the server stores with the
// execution (obelisk client execution logs ID) and also writes to its own log
// at debug level.
// A workflow's messages are stored once, not again on every replay. Outside an
// Obelisk host it is written to standard error. What a component writes to
// standard output and standard error is discarded unless its configuration
// says stdout = "log" / stderr = "log". For a structured logger, see package
// obeliskslog.
func (c Context) Log(level Level, msg string) {
	c.LogWithContext(level, "", msg)
}

// LogWithContext is Log with wasi:logging's context: a string that groups
// messages, such as the name of a logger or a subsystem.
func (c Context) LogWithContext(level Level, context, msg string) {
	if c.r != nil && c.r.log != nil {
		if l, ok := wasiLevel(level); ok {
			c.r.log(l, context, msg)
			return
		}
	}
	// What encodeRequest would make of a struct with the level, message and context.
	req := make([]byte, 0, 52+len(level)+len(context)+len(msg))
	req = append(req, `{"op":"`+abi.OpLog+`","level":`...)
	req = appendString(req, string(level))
	req = append(req, `,"message":`...)
	req = appendString(req, msg)
	if context != "" {
		req = append(req, `,"context":`...)
		req = appendString(req, context)
	}
	req = append(req, '}')
	if _, err := send(c.host(), abi.OpLog, req); err != nil {
		fmt.Fprintf(os.Stderr, "%s %s\n", level, msg)
	}
}
