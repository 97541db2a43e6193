package events_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/obelisk-go/obelisk/events"
)

// crashCopy copies a store's directory while the store is open, as a SIGKILL would
// leave it: the memtable not flushed, the WAL not closed.
func crashCopy(t *testing.T, dir string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if errors.Is(err, os.ErrNotExist) {
			continue // deleted by the store since the listing (an obsolete WAL)
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// walFiles returns the .log files of dir, oldest first.
func walFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(m)
	return m
}

// storeWithCommits opens a synced store in a new directory and commits n executions.
func storeWithCommits(t *testing.T, n int) (*events.PebbleStore, string) {
	t.Helper()
	dir := t.TempDir()
	s := openStore(t, dir, events.Options{})
	for i := range n {
		mustCommit(t, s, appendTx(fmt.Sprintf("E_%03d", i), 0, "", createdEv("testing:fibo/fibo.fibo", "q", int64(i+1), int64(i+1))))
	}
	return s, dir
}

func TestStoreCrashCopyReopens(t *testing.T) {
	s, dir := storeWithCommits(t, 50)
	crashed := crashCopy(t, dir)
	_ = s.Close()
	r := openStore(t, crashed, events.Options{})
	for i := range 50 {
		mustState(t, r, fmt.Sprintf("E_%03d", i))
	}
}

func TestStoreMissingNewestWAL(t *testing.T) {
	s, dir := storeWithCommits(t, 50)
	crashed := crashCopy(t, dir)
	_ = s.Close()
	wals := walFiles(t, crashed)
	if len(wals) == 0 {
		t.Fatal("no WAL in the store")
	}
	newest := wals[len(wals)-1]
	aside := filepath.Join(t.TempDir(), "aside.log")
	if err := os.Rename(newest, aside); err != nil {
		t.Fatal(err)
	}
	_, err := events.Open(crashed, events.Options{Logger: quiet()})
	var mw *events.MissingWALError
	if !errors.As(err, &mw) {
		t.Fatalf("open without the newest WAL: got %v, want a MissingWALError", err)
	}
	if !strings.Contains(err.Error(), filepath.Base(newest)) || !strings.Contains(err.Error(), crashed) {
		t.Fatalf("the error does not name %s in %s: %v", filepath.Base(newest), crashed, err)
	}
	// Refusing changed nothing: with the file back, every commit is there.
	if err := os.Rename(aside, newest); err != nil {
		t.Fatal(err)
	}
	r := openStore(t, crashed, events.Options{})
	for i := range 50 {
		mustState(t, r, fmt.Sprintf("E_%03d", i))
	}
}

func TestStoreWALRecordFollowsReopens(t *testing.T) {
	// Opens and closes rotate, recycle and delete WALs; the record follows, and no WAL
	// is ever reported missing.
	dir := t.TempDir()
	for round := range 6 {
		s, err := events.Open(dir, events.Options{Logger: quiet()})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		for i := range 300 {
			mustCommit(t, s, appendTx(fmt.Sprintf("E_%d_%03d", round, i), 0, "", createdEv("testing:fibo/fibo.fibo", "q", 1, 1)))
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	s := openStore(t, dir, events.Options{})
	for round := range 6 {
		mustState(t, s, fmt.Sprintf("E_%d_299", round))
	}
}

func TestStoreWithoutWALRecord(t *testing.T) {
	// A store written before the record existed opens, with a warning, and is checked
	// from then on.
	s, dir := storeWithCommits(t, 10)
	_ = s.Close()
	if err := os.Remove(filepath.Join(dir, "OBELISK-WALS")); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	r, err := events.Open(dir, events.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	mustState(t, r, "E_009")
	if !strings.Contains(logs.String(), "no record of its WAL files") {
		t.Fatalf("no warning about the missing record: %s", logs.String())
	}
	crashed := crashCopy(t, dir)
	_ = r.Close()
	wals := walFiles(t, crashed)
	if err := os.Remove(wals[len(wals)-1]); err != nil {
		t.Fatal(err)
	}
	var mw *events.MissingWALError
	if _, err := events.Open(crashed, events.Options{Logger: quiet()}); !errors.As(err, &mw) {
		t.Fatalf("open without the newest WAL: got %v, want a MissingWALError", err)
	}
}

func TestStoreCorruptWALNamed(t *testing.T) {
	s, dir := storeWithCommits(t, 2000)
	crashed := crashCopy(t, dir)
	_ = s.Close()
	// The largest WAL spans several blocks: Pebble tells corruption in its middle from a
	// torn tail by the valid chunks after it.
	var target string
	var size int64
	for _, w := range walFiles(t, crashed) {
		if fi, err := os.Stat(w); err == nil && fi.Size() > size {
			target, size = w, fi.Size()
		}
	}
	if size < 3<<15 {
		t.Fatalf("the largest WAL has %d bytes, want several 32 KiB blocks", size)
	}
	b, err := os.ReadFile(target)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(b)/2 - 32; i < len(b)/2+32; i++ {
		b[i] ^= 0xff
	}
	if err := os.WriteFile(target, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = events.Open(crashed, events.Options{Logger: quiet()})
	if err == nil {
		t.Fatalf("a store whose WAL %s is corrupt in the middle opened", target)
	}
	if !errors.Is(err, pebble.ErrCorruption) || !strings.Contains(err.Error(), target) {
		t.Fatalf("want a corruption error naming %s, got: %v", target, err)
	}
}

func TestStoreTornTailWarns(t *testing.T) {
	s, dir := storeWithCommits(t, 20)
	crashed := crashCopy(t, dir)
	_ = s.Close()
	wals := walFiles(t, crashed)
	newest := wals[len(wals)-1]
	b, err := os.ReadFile(newest)
	if err != nil {
		t.Fatal(err)
	}
	// A crash in the middle of writing the last record.
	end := len(bytes.TrimRight(b, "\x00"))
	if err := os.WriteFile(newest, b[:end-10], 0o644); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	r := openStore(t, crashed, events.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), newest) {
		t.Fatalf("no warning naming %s about its torn tail: %s", newest, logs.String())
	}
	for i := range 19 {
		mustState(t, r, fmt.Sprintf("E_%03d", i))
	}
}
