package events

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	crerrors "github.com/cockroachdb/errors"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/record"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/wal"
)

// Pebble replays the WAL files it finds, starting from the oldest one its MANIFEST says
// is unflushed; it has no list of the WAL files it created after that. A WAL that has
// disappeared (the newest one, above all) therefore goes unnoticed, and with it every
// commit acknowledged since the last flush.
//
// The store keeps that list itself, in walRecordName next to Pebble's files, through a
// vfs.FS that sees every WAL Pebble creates, recycles and deletes. A WAL is added to
// the record after its file exists and before Pebble writes to it, and removed before
// its file goes away, each time with a synced rewrite of the record. So at every moment
// each WAL in the record exists on disk unless something outside the store removed it,
// and Open refuses a store whose record names a WAL that is not there. The record
// changes only when Pebble rotates its WAL (once per memtable, DefaultMemTableSize of
// writes) or deletes an old one: commits pay nothing for it.
//
// An obsolete WAL that Pebble keeps for recycling is also in the record (it exists);
// deleting it by hand makes Open refuse the store although it held nothing unflushed.

// walRecordName is the file, in the store's directory, listing the WAL files the store
// needs.
const walRecordName = "OBELISK-WALS"

// walRecord is the list of WAL files (base names) of one store directory.
type walRecord struct {
	fs  vfs.FS
	dir string

	mu   sync.Mutex
	wals []string // sorted
	err  error    // the first failure to rewrite the record
}

// isWAL reports whether path names a WAL file of the record's directory.
func (r *walRecord) isWAL(path string) bool {
	dir, name := r.fs.PathDir(path), r.fs.PathBase(path)
	return dir == r.dir && strings.HasSuffix(name, ".log")
}

// readWALRecord reads the record of dir; ok is false if there is none.
func readWALRecord(fs vfs.FS, dir string) (r *walRecord, ok bool, err error) {
	// Pebble names its files fs.PathJoin(dir, name), which cleans dir: so must isWAL.
	r = &walRecord{fs: fs, dir: fs.PathJoin(dir)}
	f, err := fs.Open(fs.PathJoin(dir, walRecordName))
	if errors.Is(err, os.ErrNotExist) {
		return r, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", walRecordName, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name := strings.TrimSpace(sc.Text())
		if name == "" {
			continue
		}
		if !strings.HasSuffix(name, ".log") || strings.ContainsAny(name, "/\\") {
			return nil, false, fmt.Errorf("read %s: malformed entry %q", walRecordName, name)
		}
		r.wals = append(r.wals, name)
	}
	if err := sc.Err(); err != nil {
		return nil, false, fmt.Errorf("read %s: %w", walRecordName, err)
	}
	slices.Sort(r.wals)
	return r, true, nil
}

// change adds (add) or removes a WAL and rewrites the record durably.
func (r *walRecord) change(name string, add bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	i, found := slices.BinarySearch(r.wals, name)
	switch {
	case add && !found:
		r.wals = slices.Insert(r.wals, i, name)
	case !add && found:
		r.wals = slices.Delete(r.wals, i, i+1)
	default:
		return nil
	}
	if err := r.writeLocked(); err != nil {
		if r.err == nil {
			r.err = err
		}
		return err
	}
	return nil
}

// write rewrites the record durably: a synced temporary file renamed over it, and the
// directory synced.
func (r *walRecord) write() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.writeLocked()
}

func (r *walRecord) writeLocked() error {
	var buf bytes.Buffer
	for _, w := range r.wals {
		buf.WriteString(w)
		buf.WriteByte('\n')
	}
	path := r.fs.PathJoin(r.dir, walRecordName)
	tmp := path + ".tmp"
	f, err := r.fs.Create(tmp, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("write %s: %w", walRecordName, err)
	}
	_, err = f.Write(buf.Bytes())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = r.fs.Rename(tmp, path)
	}
	if err == nil {
		var d vfs.File
		if d, err = r.fs.OpenDir(r.dir); err == nil {
			err = d.Sync()
			if cerr := d.Close(); err == nil {
				err = cerr
			}
		}
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", walRecordName, err)
	}
	return nil
}

// missing returns the recorded WALs that are not in dir.
func (r *walRecord) missing() ([]string, error) {
	ls, err := r.fs.List(r.dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", r.dir, err)
	}
	var out []string
	for _, w := range r.wals {
		if !slices.Contains(ls, w) {
			out = append(out, w)
		}
	}
	return out, nil
}

// storeFS is the store's file system: the one it was given, with the WAL files Pebble
// creates, recycles and deletes kept in the record, and every failed write or sync
// reported to fail. Pebble retries some failed writes and panics on others, and its
// state after a failed sync is unknown; the store stops at the first one (see
// FailedError), and learns of it here before Pebble does anything about it.
type storeFS struct {
	vfs.FS
	rec  *walRecord
	fail func(error) error
}

// Create records a new WAL once its file exists: Pebble writes to it only after Create
// returns, so no commit goes to a WAL the record does not name.
func (fs *storeFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	if err != nil {
		return nil, fs.failed("create", name, err)
	}
	if fs.rec.isWAL(name) {
		fs.record(name, true)
	}
	return &storeFile{File: f, fs: fs, name: name}, nil
}

// ReuseForWrite renames an obsolete WAL to a new one: the old name leaves the record
// before its file does, and the new one joins it after its file exists.
func (fs *storeFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	if fs.rec.isWAL(oldname) {
		fs.record(oldname, false)
	}
	f, err := fs.FS.ReuseForWrite(oldname, newname, category)
	if err != nil {
		return nil, fs.failed("reuse "+oldname+" as", newname, err)
	}
	if fs.rec.isWAL(newname) {
		fs.record(newname, true)
	}
	return &storeFile{File: f, fs: fs, name: newname}, nil
}

// OpenReadWrite wraps the file like Create.
func (fs *storeFS) OpenReadWrite(name string, category vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, category, opts...)
	if err != nil {
		return nil, err
	}
	return &storeFile{File: f, fs: fs, name: name}, nil
}

// Remove drops a WAL from the record before deleting its file.
func (fs *storeFS) Remove(name string) error {
	if fs.rec.isWAL(name) {
		fs.record(name, false)
	}
	return fs.FS.Remove(name)
}

// record changes the record. A failure to write it fails the store but not the
// operation: Pebble panics when it cannot create a WAL, and the failed store commits
// nothing more anyway.
func (fs *storeFS) record(path string, add bool) {
	if err := fs.rec.change(fs.PathBase(path), add); err != nil {
		fs.fail(err)
	}
}

// failed reports a failed write operation on path, unless it is only that the file did
// not exist.
func (fs *storeFS) failed(op, path string, err error) error {
	if err == nil || errors.Is(err, os.ErrNotExist) {
		return err
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		fs.fail(err) // it names the operation and the file already
	} else {
		fs.fail(fmt.Errorf("%s %s: %w", op, path, err))
	}
	return err
}

// storeFile is a file of the store opened for writing: its failed writes and syncs fail
// the store. (Not Preallocate: it is advisory, and Pebble ignores its errors.)
type storeFile struct {
	vfs.File
	fs   *storeFS
	name string
}

func (f *storeFile) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	return n, f.fs.failed("write", f.name, err)
}

func (f *storeFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := f.File.WriteAt(p, off)
	return n, f.fs.failed("write", f.name, err)
}

func (f *storeFile) Sync() error { return f.fs.failed("sync", f.name, f.File.Sync()) }

func (f *storeFile) SyncData() error { return f.fs.failed("sync", f.name, f.File.SyncData()) }

func (f *storeFile) SyncTo(length int64) (bool, error) {
	full, err := f.File.SyncTo(length)
	return full, f.fs.failed("sync", f.name, err)
}

// checkWALs compares the WAL files of dir with its record before Pebble opens it, and
// returns the record to keep up to date (fresh is true if there was none). A store
// whose record names a missing WAL is refused: starting it would silently lose the
// commits that WAL held.
func checkWALs(fs vfs.FS, dir string, log *slog.Logger) (rec *walRecord, fresh bool, err error) {
	rec, ok, err := readWALRecord(fs, dir)
	if err != nil {
		return nil, false, err
	}
	logs, err := wal.Scan(wal.Dir{FS: fs, Dirname: dir})
	if err != nil {
		return nil, false, fmt.Errorf("list WAL files: %w", err)
	}
	if !ok {
		// A new store, or one written before the record existed: start the record from
		// what is there (nothing can be checked against it this time).
		for _, l := range logs {
			_, path := l.SegmentLocation(0)
			rec.wals = append(rec.wals, fs.PathBase(path))
		}
		slices.Sort(rec.wals)
		if len(rec.wals) > 0 {
			log.Warn("event store has no record of its WAL files; starting one (a missing WAL cannot be detected this time)", "dir", dir, "record", walRecordName)
		}
		return rec, true, nil
	}
	missing, err := rec.missing()
	if err != nil {
		return nil, false, err
	}
	if len(missing) > 0 {
		return nil, false, &MissingWALError{Dir: dir, Missing: missing}
	}
	if len(logs) > 0 {
		warnTornTail(logs[len(logs)-1], log)
	}
	return rec, false, nil
}

// MissingWALError is returned by Open for a store that has lost WAL files it needs.
type MissingWALError struct {
	Dir     string
	Missing []string // base names
}

func (e *MissingWALError) Error() string {
	return fmt.Sprintf("WAL file(s) %s missing from %s: the store created them and still needs them (%s lists them), "+
		"so commits acknowledged before the last shutdown or crash would be lost; refusing to start. "+
		"Restore the file(s) from a backup of the whole directory, or remove %s to accept the loss",
		strings.Join(e.Missing, ", "), e.Dir, walRecordName, walRecordName)
}

// warnTornTail logs when the newest WAL does not end in a whole record: after a crash
// in the middle of a write (a torn write), or after any crash once WALs are recycled
// (the file goes on with the records of its previous life). Pebble drops such a tail
// silently, which is right (a torn record was never acknowledged), but a torn write is
// worth knowing about. A clean shutdown ends the WAL with an EOF trailer: no warning.
func warnTornTail(l wal.LogicalLog, log *slog.Logger) {
	_, path := l.SegmentLocation(0)
	rr := l.OpenForRead()
	defer rr.Close()
	var last wal.Offset
	for {
		r, off, err := rr.NextRecord()
		if err == nil {
			_, err = io.Copy(io.Discard, r)
		}
		if err == nil {
			last = off
			continue
		}
		if errors.Is(err, record.ErrUnexpectedEOF) {
			log.Warn("event store: the newest WAL does not end cleanly (a crash or kill, and a write it tore or the old contents of a recycled WAL after the last record); recovering up to its last complete record, which is all that was acknowledged",
				"wal", path, "last_complete_record_offset", last.Physical)
		}
		return
	}
}

// nameWAL names the WAL file in an error Pebble returns while replaying one ("pebble/
// record: unexpected EOF" alone does not say which file): Pebble keeps the WAL's number
// in the error's details, which its message leaves out. Pebble marks corruption with
// cockroachdb/errors marks, which the standard errors.Is does not see: the result
// wraps pebble.ErrCorruption plainly too.
func nameWAL(dir string, err error) error {
	for _, d := range crerrors.GetAllDetails(err) {
		var num uint64
		if _, serr := fmt.Sscanf(d, "replaying wal %d,", &num); serr != nil {
			continue
		}
		path := filepath.Join(dir, fmt.Sprintf("%06d.log", num))
		if crerrors.Is(err, pebble.ErrCorruption) {
			return fmt.Errorf("WAL %s is corrupt (%s); restore the directory from a backup: %w: %w", path, d, pebble.ErrCorruption, err)
		}
		return fmt.Errorf("WAL %s (%s): %w", path, d, err)
	}
	return err
}
