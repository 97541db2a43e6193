package events

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/obelisk-go/obelisk/internal/clip"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
)

// Guest log lines. Each execution has its own key space under tag o:
//
//	o\0<id>                  log meta: how many lines are stored and how many were dropped
//	o\0<id>\0<seq:8>         line seq (0, 1, ...), in the order the guest logged them
//
// Everything an execution logged lies in [o\0<id>, o\0<id>\x01) (LogKeyRange), which
// holds no key of another execution (IDs never contain a 0 byte): retention deletes an
// execution's lines with one range deletion.
//
// Lines are written through Commit, in the Tx of the run that logged them (Tx.Logs), so
// that they are exactly as durable as the progress they go with; see LogAppend.
const tagLog = 'o'

// DefaultMaxLogsPerExecution is the number of log lines kept per execution when
// Options.MaxLogsPerExecution is 0.
const DefaultMaxLogsPerExecution = 1000

// LogLine is one line a guest logged.
type LogLine struct {
	// Seq is the line's position in its execution's log, from 0; set by the store.
	Seq uint64
	// Time the guest logged it, Unix nanoseconds.
	Time  int64
	Level abi.LogLevel
	// Attempt is the activity attempt (1 for the first) or 1 for a workflow.
	Attempt uint32
	// RunID is the run that logged the line.
	RunID string
	// Context is wasi:logging's context argument (often empty).
	Context string
	Message string
}

// LogAppend adds lines to an execution's log, in a Tx. Once the execution has
// Options.MaxLogsPerExecution lines, further lines are counted as dropped instead
// (oldest kept). The execution must exist.
type LogAppend struct {
	ExecutionID string
	Lines       []LogLine
}

// LogStats are the counts of an execution's log.
type LogStats struct {
	// Stored lines have the sequence numbers 0 to Stored-1.
	Stored uint64
	// Dropped lines came after the bound was reached.
	Dropped uint64
}

// Total is every line ever appended, stored or dropped.
func (s LogStats) Total() uint64 { return s.Stored + s.Dropped }

// LogPage is a page of an execution's log.
type LogPage struct {
	Lines []LogLine
	LogStats
}

func logMetaKey(id string) []byte { return key(tagLog, []byte(id)) }
func logLineKey(id string, seq uint64) []byte {
	return key(tagLog, []byte(id), binary.BigEndian.AppendUint64(nil, seq))
}

// LogKeyRange returns the bounds [start, end) of every key of an execution's log.
func LogKeyRange(id string) (start, end []byte) {
	start = logMetaKey(id)
	return start, prefixEnd(append(append([]byte(nil), start...), 0))
}

const logFormat = 1 // the first byte of every stored meta and line value

func encodeLogStats(s LogStats) []byte {
	b := []byte{logFormat}
	b = binary.AppendUvarint(b, s.Stored)
	return binary.AppendUvarint(b, s.Dropped)
}

func decodeLogStats(b []byte) (LogStats, error) {
	if len(b) == 0 || b[0] != logFormat {
		return LogStats{}, errors.New("unknown log meta format")
	}
	r := logReader{b: b[1:]}
	s := LogStats{Stored: r.uvarint(), Dropped: r.uvarint()}
	return s, r.done()
}

func encodeLogLine(l *LogLine) []byte {
	b := make([]byte, 0, 16+len(l.RunID)+len(l.Context)+len(l.Message))
	b = append(b, logFormat, byte(l.Level))
	b = binary.AppendUvarint(b, uint64(l.Time))
	b = binary.AppendUvarint(b, uint64(l.Attempt))
	for _, s := range []string{l.RunID, l.Context, l.Message} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

func decodeLogLine(seq uint64, b []byte) (LogLine, error) {
	if len(b) < 2 || b[0] != logFormat {
		return LogLine{}, errors.New("unknown log line format")
	}
	r := logReader{b: b[2:]}
	l := LogLine{Seq: seq, Level: abi.LogLevel(b[1])}
	l.Time = int64(r.uvarint())
	l.Attempt = uint32(r.uvarint())
	l.RunID, l.Context, l.Message = r.str(), r.str(), r.str()
	return l, r.done()
}

// logReader decodes the varints and strings of a stored value, remembering the first
// problem.
type logReader struct {
	b   []byte
	bad bool
}

func (r *logReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.bad, r.b = true, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *logReader) str() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.bad, r.b = true, nil
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *logReader) done() error {
	if r.bad || len(r.b) != 0 {
		return errors.New("truncated or overlong value")
	}
	return nil
}

// logStats reads the counts of an execution's log from the database.
func (s *PebbleStore) logStats(id string) (LogStats, error) {
	v, closer, err := s.db.Get(logMetaKey(id))
	if errors.Is(err, pebble.ErrNotFound) {
		return LogStats{}, nil
	}
	if err != nil {
		return LogStats{}, readFailed(fmt.Errorf("read log meta of %s: %w", id, err))
	}
	defer closer.Close()
	st, err := decodeLogStats(v)
	if err != nil {
		return LogStats{}, fmt.Errorf("decode log meta of %s: %w", id, err)
	}
	return st, nil
}

// logOps returns the writes that append tx's lines, and the new counts of each
// execution's log, without changing the group (a tx refused later leaves no trace).
// overlay holds the states tx itself creates.
func (g *groupState) logOps(appends []LogAppend, overlay map[string]*pb.ExecutionState) ([]kv, map[string]LogStats, error) {
	if len(appends) == 0 {
		return nil, nil, nil
	}
	var max uint64
	switch n := g.s.opts.MaxLogsPerExecution; {
	case n == 0:
		max = DefaultMaxLogsPerExecution
	case n > 0:
		max = uint64(n)
	}
	var ops []kv
	stats := map[string]LogStats{}
	for _, a := range appends {
		if overlay[a.ExecutionID] == nil {
			st, err := g.get(a.ExecutionID)
			if err != nil {
				return nil, nil, fmt.Errorf("append logs of %s: %w", clip.String(a.ExecutionID), err)
			}
			if st == nil {
				return nil, nil, fmt.Errorf("append logs of %s: %w", clip.String(a.ExecutionID), ErrNotFound)
			}
		}
		cur, ok := stats[a.ExecutionID]
		if !ok {
			if cur, ok = g.logs[a.ExecutionID]; !ok {
				var err error
				if cur, err = g.s.logStats(a.ExecutionID); err != nil {
					return nil, nil, err
				}
			}
		}
		for i := range a.Lines {
			if cur.Stored >= max {
				cur.Dropped++
				continue
			}
			ops = append(ops, kv{k: logLineKey(a.ExecutionID, cur.Stored), v: encodeLogLine(&a.Lines[i])})
			cur.Stored++
		}
		stats[a.ExecutionID] = cur
	}
	for id, st := range stats {
		ops = append(ops, kv{k: logMetaKey(id), v: encodeLogStats(st)})
	}
	return ops, stats, nil
}

// LogStats returns the counts of an execution's log (zero when it logged nothing).
func (s *PebbleStore) LogStats(ctx context.Context, id string) (LogStats, error) {
	if err := s.Err(); err != nil {
		return LogStats{}, err
	}
	if s.hidden(id) { // its tree is being deleted (retention.go)
		return LogStats{}, nil
	}
	return s.logStats(id)
}

// Logs returns an execution's log lines from sequence number from, at most limit of
// them (0 = all), with the log's counts. Lines are appended in commit order and never
// change: a reader resumes with from = the last Seq it got + 1.
func (s *PebbleStore) Logs(ctx context.Context, id string, from uint64, limit int) (LogPage, error) {
	if err := s.Err(); err != nil {
		return LogPage{}, err
	}
	if s.hidden(id) { // its tree is being deleted (retention.go)
		return LogPage{}, nil
	}
	// One snapshot, so that the counts and the lines agree.
	snap := s.db.NewSnapshot()
	defer snap.Close()
	var page LogPage
	v, closer, err := snap.Get(logMetaKey(id))
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		return page, nil
	case err != nil:
		return page, fmt.Errorf("read log meta of %s: %w", clip.String(id), err)
	}
	page.LogStats, err = decodeLogStats(v)
	closer.Close()
	if err != nil {
		return page, fmt.Errorf("decode log meta of %s: %w", clip.String(id), err)
	}
	_, end := LogKeyRange(id)
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: logLineKey(id, from), UpperBound: end})
	if err != nil {
		return page, fmt.Errorf("read logs of %s: %w", clip.String(id), err)
	}
	defer it.Close()
	for it.First(); it.Valid() && (limit <= 0 || len(page.Lines) < limit); it.Next() {
		k := it.Key()
		seq := binary.BigEndian.Uint64(k[len(k)-8:])
		l, err := decodeLogLine(seq, it.Value())
		if err != nil {
			return page, fmt.Errorf("decode log line %d of %s: %w", seq, clip.String(id), err)
		}
		page.Lines = append(page.Lines, l)
	}
	return page, it.Error()
}
