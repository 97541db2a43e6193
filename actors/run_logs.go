package actors

import (
	"context"
	"sync"
	"time"

	"github.com/obelisk-go/obelisk/events"
	"github.com/obelisk-go/obelisk/internal/clip"
	"github.com/obelisk-go/obelisk/wasmhost"
)

// Guest log lines (wasi:logging, and the log op of older guests) are stored with their
// execution (events/logs.go). They travel in the Tx of the progress they go with:
//
//   - A workflow's lines go with its next history flush or its result, never alone. A
//     workflow is replayed from the start on every run and logs its lines again; a
//     line is new only if it comes after every line stored so far (the i-th line a run
//     logs is stored iff i >= the log's total, stored or dropped, when the run began:
//     a workflow is deterministic, so it logs the same lines in the same order up to
//     where its last run stopped). A line counted as stored is thus always part of
//     committed progress, and a line of progress that was lost is logged again by the
//     replay that redoes it.
//   - An activity's lines go with the attempt's outcome; a long attempt's lines are
//     also written alone, activityLogFlush after the first unwritten one (or once
//     maxPendingLogLines wait), so that `execution logs --follow` shows them while it
//     runs and a crash loses at most that much. Activities are not replayed, so every
//     line of every attempt is stored, each with its attempt number.
const (
	activityLogFlush   = time.Second
	maxPendingLogLines = 256
	// maxLogMessage and maxLogContext bound what one line stores: a log line is for
	// people to read, not a channel for bulk data.
	maxLogMessage = 16 << 10
	maxLogContext = 256
)

// runLogs is the wasmhost.LogSink of one run: it keeps the lines to store until they
// are taken into a Tx.
type runLogs struct {
	e       *Engine
	id      string
	runID   string
	attempt uint32
	replays bool // a workflow: see the comment above

	// flushing is held while a batch of lines is being taken and committed, so that
	// batches reach the store in the order they were logged.
	flushing sync.Mutex
	mu       sync.Mutex
	lines    []events.LogLine
	timer    *time.Timer
	// Workflows: logged counts the lines this run logged; skip is how many of the
	// first were stored by earlier runs (read at the first line, skipKnown).
	logged, skip uint64
	skipKnown    bool
}

func newRunLogs(e *Engine, id, runID string, attempt uint32, replays bool) *runLogs {
	return &runLogs{e: e, id: id, runID: runID, attempt: attempt, replays: replays}
}

// GuestLog implements wasmhost.LogSink.
func (l *runLogs) GuestLog(ctx context.Context, rec wasmhost.LogRecord) {
	if l.replays {
		l.logged++
		if !l.skipKnown {
			st, err := l.e.store.LogStats(ctx, l.id)
			if err != nil {
				// Storing the line could repeat one: drop it (it is in the server's log).
				l.e.log.Warn("logs: read the log's counts; line not stored", "execution", l.id, "err", err)
				return
			}
			l.skip, l.skipKnown = st.Total(), true
		}
		if l.logged <= l.skip {
			return // a replay of a line already stored
		}
	}
	line := events.LogLine{Time: rec.Time.UnixNano(), Level: rec.Level, Attempt: l.attempt, RunID: l.runID, Context: clip.To(rec.Context, maxLogContext), Message: clip.To(rec.Message, maxLogMessage)}
	l.mu.Lock()
	l.lines = append(l.lines, line)
	// A workflow's lines cannot be written without its progress: they wait for it.
	full := !l.replays && len(l.lines) >= maxPendingLogLines
	if !l.replays && len(l.lines) == 1 && !full {
		l.timer = time.AfterFunc(activityLogFlush, func() { l.flush(context.WithoutCancel(ctx)) })
	}
	l.mu.Unlock()
	if full {
		l.flush(ctx)
	}
}

// take returns the lines not written yet, as a Tx's Logs, and forgets them. It waits
// for a flush in progress.
func (l *runLogs) take() []events.LogAppend {
	if l == nil {
		return nil
	}
	l.flushing.Lock()
	defer l.flushing.Unlock()
	return l.takeLocked()
}

func (l *runLogs) takeLocked() []events.LogAppend {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
	if len(l.lines) == 0 {
		return nil
	}
	lines := l.lines
	l.lines = nil
	return []events.LogAppend{{ExecutionID: l.id, Lines: lines}}
}

// flush writes an activity's waiting lines in a Tx of their own.
func (l *runLogs) flush(ctx context.Context) {
	l.flushing.Lock()
	defer l.flushing.Unlock()
	logs := l.takeLocked()
	if logs == nil {
		return
	}
	if _, err := l.e.store.Commit(ctx, &events.Tx{Logs: logs}); err != nil {
		l.e.log.Warn("logs: store an activity's lines", "execution", l.id, "lines", len(logs[0].Lines), "err", err)
	}
}

// storeRest writes what an activity logged but no outcome carried (the run lost its
// lock, or there was no outcome to record).
func (l *runLogs) storeRest(ctx context.Context) {
	if l != nil {
		l.flush(ctx)
	}
}

// runLogging is where the records of one run of the component go: sink (which may be
// nil), and its standard output and error as configured.
func (c *Component) runLogging(sink *runLogs) wasmhost.RunLogging {
	l := wasmhost.RunLogging{CaptureStdout: c.Config.CaptureStdout, CaptureStderr: c.Config.CaptureStderr}
	if sink != nil {
		l.Sink = sink // not a typed nil in the interface
	}
	return l
}

// storeLogs stores log lines that were taken for a commit that did not happen (the
// change found nothing to record), in a Tx of their own.
func (e *Engine) storeLogs(ctx context.Context, lines []events.LogAppend) {
	if len(lines) == 0 || ctx.Err() != nil {
		return
	}
	if _, err := e.store.Commit(ctx, &events.Tx{Logs: lines}); err != nil {
		e.log.Warn("store log lines", "execution", lines[0].ExecutionID, "err", err)
	}
}
