package wasmhost

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/tetratelabs/wazero/api"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
)

// The wasi:logging interface (WIT package wasi:logging@0.1.0-draft), lowered to one core
// function: log(level: i32, context_ptr: i32, context_len: i32, message_ptr: i32,
// message_len: i32). The strings are UTF-8 in the guest's memory; level is the WIT
// enum's index.
const (
	// LoggingModuleName is the import module of wasi:logging's log function.
	LoggingModuleName = abi.LoggingModule
	importLog         = abi.LoggingLog
)

// TraceLevel is the slog level of the guest log level "trace".
const TraceLevel = slog.LevelDebug - 4

// CriticalLevel is the slog level of the guest log level "critical".
const CriticalLevel = slog.LevelError + 4

// slogLevels maps a abi.LogLevel to the server log's level.
var slogLevels = [...]slog.Level{TraceLevel, slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError, CriticalLevel}

// LogRecord is one record a guest logged during a run.
type LogRecord struct {
	Time    time.Time
	Level   abi.LogLevel
	Context string
	Message string
}

// RunLogging says where the log records of an instance's run go besides the server's
// log. It is given to [Instance.SetLogging] rather than in [RunInput], which is the
// guest's input, and after Instantiate, since an instance is usually made before it is
// known which execution it will run.
type RunLogging struct {
	// Sink receives the guest's records (wasi:logging and the log op); nil: none.
	Sink LogSink
	// CaptureStdout and CaptureStderr make every line the guest writes to standard
	// output (level info) or standard error (level warn) a record too, with context
	// "stdout" or "stderr".
	CaptureStdout, CaptureStderr bool
}

// SetLogging sets where the records of the instance's run go; call it before Run.
func (i *Instance) SetLogging(l RunLogging) { i.logging = l }

// LogSink receives the records a guest logs during [Instance.Run], through wasi:logging
// or the log op alike, on the goroutine running the guest. Records logged during
// _initialize belong to no execution and go to the server's log only.
type LogSink interface {
	GuestLog(ctx context.Context, rec LogRecord)
}

// wasiLog implements wasi:logging's log.
func (r *Runtime) wasiLog(ctx context.Context, mod api.Module, stack []uint64) {
	inst := instanceFrom(ctx)
	if inst == nil {
		panic(&guestFault{msg: "wasi:logging log: called outside a wasmhost instance"})
	}
	level := uint32(stack[0])
	if level > uint32(abi.LogCritical) {
		panic(&guestFault{msg: fmt.Sprintf("wasi:logging log: level %d is not one of trace (0) to critical (5)", level)})
	}
	str := func(what string, ptr, n uint32) string {
		b, ok := mod.Memory().Read(ptr, n)
		if !ok {
			panic(&guestFault{msg: fmt.Sprintf("wasi:logging log: %s [%#x, +%d) is outside memory", what, ptr, n)})
		}
		// A canonical ABI string is UTF-8; a log line is not worth trapping a run
		// over, so invalid bytes become U+FFFD.
		return strings.ToValidUTF8(string(b), "\uFFFD")
	}
	lc := str("context", uint32(stack[1]), uint32(stack[2]))
	msg := str("message", uint32(stack[3]), uint32(stack[4]))
	inst.emitLog(ctx, abi.LogLevel(level), lc, msg)
}

// emitLog sends a guest record to the instance's sink during a run, and to the
// server's log: at its own level when there is no sink, at debug level when the sink
// has it (it is stored with its execution; writing every line of every execution to
// the server's log too would cost a busy server more than storing them).
func (i *Instance) emitLog(ctx context.Context, level abi.LogLevel, logContext, msg string) {
	sink := i.logs != nil && !i.initializing
	sl := slogLevels[level]
	if sink {
		sl = min(sl, slog.LevelDebug)
	}
	if i.logger.Enabled(ctx, sl) {
		var attrs []slog.Attr
		if i.executionID != "" { // a trigger's, or during _initialize: no execution
			attrs = append(attrs, slog.String("execution_id", i.executionID))
		}
		if logContext != "" {
			attrs = append(attrs, slog.String("context", logContext))
		}
		i.logger.LogAttrs(ctx, sl, msg, attrs...)
	}
	if sink {
		i.logs.GuestLog(ctx, LogRecord{Time: time.Now(), Level: level, Context: logContext, Message: msg})
	}
}
