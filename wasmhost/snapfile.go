package wasmhost

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/obelisk-go/obelisk/internal/atomicfile"
)

// Workflow snapshots kept across restarts.
//
// Making a module's workflow snapshot initialises the module two or three times
// (snapshot.go): tens of milliseconds for a Go guest on an idle machine, hundreds under
// load, which the first resume of a parked workflow after a restart waited for (a
// parked image is a diff against the snapshot's memory). So with an on-disk
// compilation cache, a snapshot made is also written into the cache dir's snapshots
// folder, one file per module, and a restarted process reads it back instead of making
// it again.
//
// The file is only used when it was made for the same thing: its header holds a digest
// of what shapes a snapshot (snapshotKey: the module's bytes, the process's build,
// which includes wazero's version and wasmhost's code, the format's version and the
// settings that change what is captured); the whole file is checked with a CRC-32C.
// A file that is corrupt, truncated or made for something else is ignored, with a log
// record, and the snapshot is made afresh and written over it. (The file's name holds a
// digest of the build too, see snapshotFile; the key in the header covers the rest.) Files are written to a
// temporary name and renamed, so a reader sees a whole file or none.
//
// A restored snapshot is the one that was written: its memory digest (what parked
// images record as their base, parked.go) is in the file, covered by the CRC, and
// ResumeParked refuses an image whose base digest differs from the snapshot's, as
// before. Because making a snapshot is deterministic (captureTwice checks it), a
// snapshot made afresh by the same build has the same digest too.

// snapFileMagic starts a snapshot file; the digit is its format's version. A change to
// what snapshots capture changes the build, hence the key, anyway.
const snapFileMagic = "OBKSNAP1"

// snapshotsDir is the folder of the cache dir holding the workflow snapshots.
const snapshotsDir = "snapshots"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// buildIdentity names the running executable's build: the Go build ID where the
// executable has one (ELF), which changes with any change to the code linked in, and
// the module versions it was built from (wazero's among them).
func buildIdentity() string {
	var parts []string
	exe, err := os.Executable()
	if err == nil {
		if f, err := elf.Open(exe); err == nil {
			if sec := f.Section(".note.go.buildid"); sec != nil {
				if d, err := sec.Data(); err == nil {
					parts = append(parts, "go.buildid="+hex.EncodeToString(d))
				}
			}
			f.Close()
		}
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		parts = append(parts, bi.String())
	}
	return strings.Join(parts, "\n")
}

// snapshotKey is the digest of what a snapshot of m depends on.
func (m *Module) snapshotKey() [32]byte {
	// The memory limits decide whether making the snapshot succeeds, and whether an
	// instance can be restored from it.
	return sha256.Sum256(fmt.Appendf(nil, "%s\nbuild=%s\nmodule=%s\nactivities=%t\nlimit_pages=%d/%d\n",
		snapFileMagic, m.rt.build, m.digest, !m.rt.noActivitySnapshots, m.limitPages, m.rt.limitPages))
}

// snapshotFile is where m's snapshot is kept, or "" when it is not kept. The name holds
// the module's digest and a digest of its key (the build and the settings): processes
// sharing a cache dir with different builds or settings (a server and the tests that
// check its store offline, an old and a new version during an upgrade, servers with
// other memory limits) keep one file each rather than overwriting each other's.
func (m *Module) snapshotFile() string {
	if m.rt.cacheDir == "" || m.digest == "" {
		return ""
	}
	key := m.snapshotKey()
	return filepath.Join(m.rt.cacheDir, snapshotsDir, m.digest+"-"+hex.EncodeToString(key[:8])+".snap")
}

// snapshotFileMaxIdle is how long a kept snapshot of another build or settings is kept: a
// file is touched when a process reads it and rewritten when one makes it, so one idle
// for that long belongs to a build or settings no longer started (writeSnapshot removes it).
const snapshotFileMaxIdle = 7 * 24 * time.Hour

// readSnapshot returns the snapshot kept for m, or nil (logged) when there is none that
// can be used.
func (m *Module) readSnapshot() *snapshot {
	path := m.snapshotFile()
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err == nil {
		var s *snapshot
		if s, err = decodeSnapshotFile(b, m.snapshotKey()); err == nil {
			// A file in use is not idle: writeSnapshot prunes by modification time.
			now := time.Now()
			_ = os.Chtimes(path, now, now)
			return s
		}
	}
	m.rt.logger.Warn("wasmhost: ignoring the kept workflow snapshot; making it again", "module", m.name, "file", path, "reason", err)
	return nil
}

// writeSnapshot keeps s for m: written to a temporary file, then renamed over the old
// one. Failing to keep it costs the next process the time to make it; it is logged.
func (m *Module) writeSnapshot(s *snapshot) {
	path := m.snapshotFile()
	if path == "" {
		return
	}
	if err := atomicfile.Write(path, encodeSnapshotFile(s, m.snapshotKey()), 0o644); err != nil {
		m.rt.logger.Warn("wasmhost: could not keep the workflow snapshot for the next start", "module", m.name, "err", err)
		return
	}
	others, _ := filepath.Glob(filepath.Join(filepath.Dir(path), m.digest+"-*.snap"))
	for _, o := range others {
		if fi, err := os.Stat(o); err == nil && o != path && time.Since(fi.ModTime()) > snapshotFileMaxIdle {
			_ = os.Remove(o) // another process may have removed it first
		}
	}
}

// encodeSnapshotFile encodes what a snapshot holds (its memory as chunks) for key.
func encodeSnapshotFile(s *snapshot, key [32]byte) []byte {
	size := len(snapFileMagic) + 32 + 64 + len(s.rand) + len(s.stderr) + len(s.kept) + 4*len(s.generators) + 32 + 4
	for _, g := range s.globals {
		size += 12 + len(g.export)
	}
	for _, c := range s.chunks {
		size += 8 + len(c.data)
	}
	b := make([]byte, 0, size)
	b = append(b, snapFileMagic...)
	b = append(b, key[:]...)
	b = binary.LittleEndian.AppendUint32(b, s.pages)
	b = binary.LittleEndian.AppendUint64(b, uint64(s.clock))
	b = appendBytes(b, s.rand)
	b = appendBytes(b, s.stderr)
	b = appendBytes(b, s.kept)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(s.globals)))
	for _, g := range s.globals {
		b = appendBytes(b, []byte(g.export))
		b = binary.LittleEndian.AppendUint64(b, g.value)
	}
	activityOK := uint32(0)
	if s.activityOK {
		activityOK = 1
	}
	b = binary.LittleEndian.AppendUint32(b, activityOK)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(s.generators)))
	for _, g := range s.generators {
		b = binary.LittleEndian.AppendUint32(b, g)
	}
	b = append(b, s.digest[:]...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(s.chunks)))
	for _, c := range s.chunks {
		b = binary.LittleEndian.AppendUint32(b, c.offset)
		b = appendBytes(b, c.data)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// decodeSnapshotFile decodes a snapshot file made for key, checking its CRC first.
func decodeSnapshotFile(b []byte, key [32]byte) (*snapshot, error) {
	if !bytes.HasPrefix(b, []byte(snapFileMagic)) || len(b) < len(snapFileMagic)+32+4 {
		return nil, errors.New("not a workflow snapshot file (bad magic)")
	}
	body := b[:len(b)-4]
	if sum, want := crc32.Checksum(body, castagnoli), binary.LittleEndian.Uint32(b[len(body):]); sum != want {
		return nil, fmt.Errorf("CRC-32C %08x, the file says %08x (corrupt or torn)", sum, want)
	}
	if !bytes.Equal(body[len(snapFileMagic):len(snapFileMagic)+32], key[:]) {
		return nil, errors.New("made for another module, build or settings (stale)")
	}
	d := decoder{b: body, pos: len(snapFileMagic) + 32}
	s := &snapshot{pages: d.u32(), clock: int64(d.u64())}
	s.rand, s.stderr, s.kept = d.bytes(), d.bytes(), d.bytes()
	n := d.u32()
	if uint64(n)*12 > uint64(len(body)) {
		return nil, fmt.Errorf("the file claims %d globals", n)
	}
	for i := uint32(0); i < n && d.err == nil; i++ {
		s.globals = append(s.globals, globalValue{export: string(d.bytes()), value: d.u64()})
	}
	s.activityOK = d.u32() == 1
	if n = d.u32(); uint64(n)*4 > uint64(len(body)) {
		return nil, fmt.Errorf("the file claims %d random generators", n)
	}
	for i := uint32(0); i < n && d.err == nil; i++ {
		s.generators = append(s.generators, d.u32())
	}
	if d.need(32) {
		copy(s.digest[:], body[d.pos:])
		d.pos += 32
	}
	size := uint64(s.pages) * wasmPage
	n = d.u32()
	for i := uint32(0); i < n && d.err == nil; i++ {
		c := memoryChunk{offset: d.u32(), data: d.bytes()}
		if uint64(c.offset)+uint64(len(c.data)) > size {
			return nil, fmt.Errorf("chunk %d [%#x, +%d) is outside the snapshot's %d pages", i, c.offset, len(c.data), s.pages)
		}
		s.chunks = append(s.chunks, c)
		s.size += len(c.data)
	}
	if d.err != nil {
		return nil, d.err
	}
	if d.pos != len(body) {
		return nil, fmt.Errorf("%d bytes after the snapshot", len(body)-d.pos)
	}
	return s, nil
}
