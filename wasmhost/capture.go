package wasmhost

import (
	"bytes"
	"context"
	"io"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
)

// maxCaptureLine is the longest line of captured standard output or error: a longer
// one is logged in pieces of this size.
const maxCaptureLine = 4 << 10

// lineCapture turns what a guest writes to standard output or error during a run into
// log records (RunLogging.CaptureStdout, CaptureStderr), one per line, with the stream's
// name as their context.
type lineCapture struct {
	inst  *Instance
	ctx   context.Context
	name  string
	level abi.LogLevel
	line  []byte
}

func (c *lineCapture) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		part, rest, complete := bytes.Cut(p, []byte("\n"))
		for len(c.line)+len(part) > maxCaptureLine {
			take := maxCaptureLine - len(c.line)
			c.line = append(c.line, part[:take]...)
			c.emit()
			part = part[take:]
		}
		c.line = append(c.line, part...)
		if !complete {
			break
		}
		c.emit()
		p = rest
	}
	return n, nil
}

// flush logs an unfinished last line.
func (c *lineCapture) flush() {
	if len(c.line) > 0 {
		c.emit()
	}
}

func (c *lineCapture) emit() {
	line := string(bytes.TrimSuffix(c.line, []byte("\r")))
	c.line = c.line[:0]
	c.inst.emitLog(c.ctx, c.level, c.name, line)
}

// captureOutput sends the run's standard output and error, as l asks, to the
// instance's log records as well as to where they went; the returned function logs
// what is left of a last unterminated line.
func (i *Instance) captureOutput(ctx context.Context, l RunLogging) (flush func()) {
	var caps []*lineCapture
	if l.CaptureStdout {
		c := &lineCapture{inst: i, ctx: ctx, name: "stdout", level: abi.LogInfo}
		i.stdout.set(tee(i.stdout.w, c))
		caps = append(caps, c)
	}
	if l.CaptureStderr {
		c := &lineCapture{inst: i, ctx: ctx, name: "stderr", level: abi.LogWarn}
		i.stderr.mu.Lock()
		i.stderr.w = tee(i.stderr.w, c)
		i.stderr.mu.Unlock()
		caps = append(caps, c)
	}
	return func() {
		for _, c := range caps {
			c.flush()
		}
	}
}

func tee(w io.Writer, c *lineCapture) io.Writer {
	if w == nil {
		return c
	}
	return io.MultiWriter(w, c)
}
