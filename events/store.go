package events

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// Options configure a PebbleStore.
type Options struct {
	// OnCommit, if set, is called after each durable group commit with the new states of
	// every execution it changed. It runs on the writer goroutine: it must not block and
	// must not call Commit.
	OnCommit func(states []*pb.ExecutionState)
	// OnGroupCommit, if set, is told of every durable group commit: how many
	// transactions and key writes it held and how long the write (and sync) took
	// (metrics). Same rules as OnCommit.
	OnGroupCommit func(txs, writes int, took time.Duration)
	// BeforeCommit, if set, is called by the writer for each transaction it is about to
	// commit, once it is validated, with the new states it writes. An error refuses it
	// and every transaction after it: the transactions of its group before it are
	// committed, then the store fails with the error as its cause, as if the disk had
	// failed (every later commit fails too), except that Pebble, never asked to write
	// what was refused, is intact, and Close closes it. `obelisk test crash-sim` stops
	// a store right after a chosen commit this way: a crash, as the engine sees it.
	// Same rules as OnCommit.
	BeforeCommit func(states []*pb.ExecutionState) error
	// NoSync turns off syncing commits (tests and benchmarks of other layers only).
	NoSync bool
	// CacheSize is the size of Pebble's block cache (0: DefaultCacheSize), MemTableSize
	// that of a memtable (0: DefaultMemTableSize).
	CacheSize, MemTableSize int64
	Logger                  *slog.Logger
	// FS is the file system the store lives on (nil: the operating system's); tests
	// give an in-memory or fault-injecting one.
	FS vfs.FS
	// MaxLogsPerExecution bounds the log lines kept per execution (0:
	// DefaultMaxLogsPerExecution, negative: none is kept, all are counted); see LogAppend.
	MaxLogsPerExecution int
	// ReadOnly opens an existing store for reading only (`obelisk server verify`):
	// nothing is created or written in dir, not even what Open does for an older store
	// (the record of its WALs, the index of finished executions), and every write
	// (Commit, DeleteTrees) fails with ErrReadOnly. Pebble replays the WAL into memory
	// instead of flushing it, so the reads see every acknowledged commit.
	ReadOnly bool
}

// Pebble's defaults (8 MiB of cache, 4 MiB memtables) are sized for a library, not a
// server: under a load of a few thousand executions, the events and responses that runs
// read back right after writing them had been flushed from the memtable and evicted from
// the cache, and reading them again (block reads, decompression) was ~13% of the
// engine's CPU. With a bigger memtable most such reads are served from memory.
//
// Both are resident memory, outside Go's heap (with cgo Pebble mallocs them): a memtable
// fills as commits arrive, and after its flush Pebble keeps its buffer to reuse for the
// next one, so once two have filled, two memtables' worth stays resident for good (128
// MiB at 64 MiB: docs/benchmarks.md, "Peak memory (session 11)"); the cache, once full,
// stays full. A 128 MiB cache was a fifth of the server's
// peak on a small machine and served nothing in the benchmarks: the runs read back what
// was written moments before, which a memtable serves. Memtables are flushed more often
// the smaller they are, and that costs CPU: at 32 MiB the server spent ~8% more CPU per
// workflow than at 64 MiB, for ~16 MiB less peak memory (docs/benchmarks.md, "End of
// session 6"). [store] in obelisk.toml sets them.
const (
	DefaultCacheSize    = 32 << 20
	DefaultMemTableSize = 64 << 20
)

// PebbleStore is the event store of one node, on an embedded Pebble database.
//
// All writes go through one writer goroutine which applies every waiting Tx against the
// latest states, then commits them in one synced Pebble batch: concurrent committers share
// the sync. Version checks and folds happen there, so they need no locks.
//
// This file opens and closes it and holds its failure; writer.go is the group-commit
// writer, tx.go folds one Tx, indexes.go maintains and scans the indexes, reads.go
// answers reads, global.go numbers events, retention.go deletes finished trees, wals.go guards
// the WALs, kv.go holds the entries of the KV store.
type PebbleStore struct {
	db   *pebble.DB
	lock *pebble.Lock // the directory's lock, released after db is closed
	dir  string
	opts Options
	reqs chan *commitReq
	done chan struct{}

	failed   chan struct{} // closed when the store fails; failErr is set before
	failErr  error
	failOnce sync.Once
	// refusedErr is the failure BeforeCommit caused, if it caused the store's: Pebble
	// wrote nothing of the refused group and can be closed. Set by the writer only.
	refusedErr error

	mu    sync.RWMutex
	cache map[string]*pb.ExecutionState // live (unfinished) states; the writer owns writes
	// deleting holds the roots of the trees being deleted (retention.go): hidden from
	// reads. The writer owns writes.
	deleting map[string]bool
	compact  compactSpans // what deletions emptied, for CompactDeleted

	floors scanFloors
	global globalLog // positions of the global event log (global.go)
	// pending counts the pending index by queue (pending.go); the writer owns writes.
	pending pendingCounts
	// applied is the last replicated log entry applied (applied.go); the writer owns it.
	applied uint64

	closeOnce sync.Once
}

// Open opens (or creates) the store in dir. A directory that another process (or
// another PebbleStore) has open is refused with an error matching ErrLocked.
func Open(dir string, opts Options) (*PebbleStore, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.CacheSize == 0 {
		opts.CacheSize = DefaultCacheSize
	}
	if opts.MemTableSize == 0 {
		opts.MemTableSize = DefaultMemTableSize
	}
	if opts.FS == nil {
		opts.FS = vfs.Default
	}
	if opts.ReadOnly {
		if err := checkExists(opts.FS, dir); err != nil {
			return nil, fmt.Errorf("open event store %s: %w", dir, err)
		}
	} else if err := opts.FS.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open event store %s: %w", dir, err)
	}
	lock, err := lockDir(opts.FS, dir)
	if err != nil {
		return nil, fmt.Errorf("open event store %s: %w", dir, err)
	}
	s, err := open(dir, opts, lock)
	if err != nil {
		lock.Close()
		return nil, err
	}
	return s, nil
}

// open opens the store in dir, whose lock the caller holds.
func open(dir string, opts Options, lock *pebble.Lock) (*PebbleStore, error) {
	rec, fresh, err := checkWALs(opts.FS, dir, opts.Logger)
	if err != nil {
		return nil, fmt.Errorf("open event store %s: %w", dir, err)
	}
	if fresh && !opts.ReadOnly {
		if err := rec.write(); err != nil {
			return nil, fmt.Errorf("open event store %s: %w", dir, err)
		}
	}
	s := &PebbleStore{dir: dir, lock: lock, opts: opts, reqs: make(chan *commitReq, 1024), done: make(chan struct{}), failed: make(chan struct{}), cache: map[string]*pb.ExecutionState{}}
	s.floors.m = map[string]*floor{}
	cache := pebble.NewCache(opts.CacheSize)
	defer cache.Unref() // the DB holds its own reference
	var fs vfs.FS = &storeFS{FS: opts.FS, rec: rec, fail: s.fail}
	if opts.ReadOnly {
		fs = readOnlyFS{opts.FS}
	}
	db, err := pebble.Open(dir, &pebble.Options{
		FS: fs, Logger: pebbleLogger{l: opts.Logger, fatal: s.fail}, Cache: cache, MemTableSize: uint64(opts.MemTableSize),
		Lock: lock, ReadOnly: opts.ReadOnly,
	})
	if err != nil {
		return nil, fmt.Errorf("open event store %s: %w", dir, nameWAL(dir, err))
	}
	s.db = db
	if err := s.Err(); err != nil { // the disk failed while Pebble opened
		return nil, err
	}
	if err := s.initGlobal(); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.initApplied(); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.initDeleting(); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.initPending(); err != nil {
		db.Close()
		return nil, err
	}
	if !opts.ReadOnly {
		if err := s.initFinished(); err != nil {
			db.Close()
			return nil, err
		}
		if err := s.initChained(); err != nil {
			db.Close()
			return nil, err
		}
	}
	go s.writer()
	return s, nil
}

// Close stops the writer and closes Pebble. Commits after Close fail with ErrClosed.
// A failed store leaves Pebble as the failure left it (its files stay open until the
// process exits): closing it could hang or panic on that state, and would write to a
// disk that has failed. A store failed by Options.BeforeCommit is the exception: Pebble
// was never asked to write what was refused, and is closed.
func (s *PebbleStore) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.reqs)
		<-s.done
		if failed := s.Err(); failed == nil || failed == s.refusedErr {
			err = errors.Join(s.db.Close(), s.lock.Close())
		}
	})
	return err
}

// Failed is closed when the store has failed (see FailedError); Err then returns why.
func (s *PebbleStore) Failed() <-chan struct{} { return s.failed }

// Err returns the store's *FailedError once it has failed, nil before.
func (s *PebbleStore) Err() error {
	select {
	case <-s.failed:
		return s.failErr
	default:
		return nil
	}
}

// fail puts the store in its failed state (once: the first cause is kept) and returns
// its FailedError.
func (s *PebbleStore) fail(err error) error {
	s.failOnce.Do(func() {
		s.failErr = &FailedError{Dir: s.dir, Err: err}
		s.opts.Logger.Error("event store failed: refusing every further commit", "dir", s.dir, "err", err)
		close(s.failed)
	})
	return s.failErr
}

// Memory is what the store holds in memory outside Go's heap (Pebble allocates its block
// cache and memtables with malloc when built with cgo), in bytes.
type Memory struct {
	// CacheCapacity is the block cache's size (Options.CacheSize), CacheUsed what it
	// holds now.
	CacheCapacity, CacheUsed int64
	// MemTableSize is a memtable's size (Options.MemTableSize); MemTables the bytes
	// allocated by the memtables now, the mutable one and those waiting to be flushed.
	MemTableSize, MemTables int64
}

// Memory returns the store's memory use now. It asks Pebble for its metrics, which takes
// its locks: for monitoring, not for a hot path.
func (s *PebbleStore) Memory() Memory {
	m := s.db.Metrics()
	return Memory{
		CacheCapacity: s.opts.CacheSize, CacheUsed: m.BlockCache.Size,
		MemTableSize: s.opts.MemTableSize, MemTables: int64(m.MemTable.Size),
	}
}

// pebbleLogger logs Pebble's messages; a fatal one fails the store (Pebble gives up on
// its state) before Pebble's goroutine panics.
type pebbleLogger struct {
	l     *slog.Logger
	fatal func(error) error
}

func (p pebbleLogger) Infof(format string, args ...any)  { p.l.Debug(fmt.Sprintf(format, args...)) }
func (p pebbleLogger) Errorf(format string, args ...any) { p.l.Error(fmt.Sprintf(format, args...)) }
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.fatal(errors.New(msg))
	panic(msg)
}
