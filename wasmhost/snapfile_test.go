package wasmhost

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// restarted compiles the test guest in a runtime of its own on cacheDir, as a process
// started again on the same cache dir would; edit, if set, changes the runtime before
// the module is compiled.
func restarted(t *testing.T, cacheDir string, logs *captureHandler, edit func(*Runtime)) *Module {
	t.Helper()
	ctx := context.Background()
	rt, err := NewRuntime(ctx, Config{CacheDir: cacheDir, Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(ctx) })
	if edit != nil {
		edit(rt)
	}
	m, err := rt.Compile(ctx, "guest", guestWasm)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// snapshotOf waits for m's workflow snapshot and, when it was made rather than read,
// for the file keeping it (written after the snapshot is published).
func snapshotOf(t *testing.T, m *Module) *snapshot {
	t.Helper()
	s, err := m.waitSnapshot(context.Background())
	if err != nil || s == nil {
		t.Fatalf("no snapshot: %v", err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		if b, err := os.ReadFile(m.snapshotFile()); err == nil {
			if _, err := decodeSnapshotFile(b, m.snapshotKey()); err == nil {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no valid snapshot file %s", m.snapshotFile())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// wasRead reports whether m's snapshot was read from its file (not made), by the log
// record publishing it (logged just after the snapshot is published: waited for).
func wasRead(t *testing.T, logs *captureHandler) bool {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if kept, ok := publishedKept(logs); ok {
			return kept
		}
	}
	t.Fatal("no snapshot published")
	return false
}

func publishedKept(logs *captureHandler) (kept, ok bool) {
	logs.mu.Lock()
	defer logs.mu.Unlock()
	for _, r := range logs.records {
		if r.Message != "wasmhost: instances are now restored from a snapshot" {
			continue
		}
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "kept" {
				kept = a.Value.Bool()
			}
			return true
		})
		return kept, true
	}
	return false, false
}

// logged returns the messages and attributes of the warnings logged, one line each.
func logged(logs *captureHandler) string {
	logs.mu.Lock()
	defer logs.mu.Unlock()
	var lines []string
	for _, r := range logs.records {
		if r.Level >= slog.LevelWarn {
			line := r.Message
			r.Attrs(func(a slog.Attr) bool { line += " " + a.String(); return true })
			lines = append(lines, line)
		}
	}
	return strings.Join(lines, "\n")
}

// memoryOf is the whole memory of a snapshot.
func memoryOf(s *snapshot) []byte {
	mem, free := s.baseline()
	defer free()
	return slices.Clone(mem)
}

// echoes checks that a workflow instance of m runs.
func echoes(t *testing.T, m *Module) {
	t.Helper()
	ctx := context.Background()
	inst, err := m.Instantiate(ctx, wfConfig(3))
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close(ctx)
	out, err := inst.Run(ctx, RunInput{FFQN: "test:guest/api.echo", Params: []byte(`[5]`), ExecutionID: "E_TEST", Attempt: 1})
	if err != nil || string(out) != `{"ok":5}` {
		t.Fatalf("echo: %s %v", out, err)
	}
}

// TestKeptSnapshotRoundTrip: a snapshot made by one runtime is written into the cache
// dir; a runtime started again on it reads it instead of making it, and it is the same
// snapshot to the byte (memory, whose digest it carries, globals and host state).
func TestKeptSnapshotRoundTrip(t *testing.T) {
	dir := t.TempDir()
	logs1, logs2 := &captureHandler{}, &captureHandler{}
	m1 := restarted(t, dir, logs1, nil)
	s1 := snapshotOf(t, m1)
	if wasRead(t, logs1) {
		t.Fatal("the first runtime read a snapshot from an empty cache dir")
	}
	m2 := restarted(t, dir, logs2, nil)
	s2 := snapshotOf(t, m2)
	if !wasRead(t, logs2) {
		t.Fatalf("the restarted runtime made its snapshot instead of reading it; warnings:\n%s", logged(logs2))
	}
	if s2.init != 0 || s2.load != 0 {
		t.Errorf("a snapshot read from its file initialised instances (load %v, init %v)", s2.load, s2.init)
	}
	mem1, mem2 := memoryOf(s1), memoryOf(s2)
	if !bytes.Equal(mem1, mem2) {
		t.Error("the memory read differs from the memory made")
	}
	if sha256.Sum256(mem2) != s2.digest || s2.digest != s1.digest {
		t.Error("the digest read is not that of the memory read")
	}
	if s1.pages != s2.pages || !slices.Equal(s1.globals, s2.globals) || s1.clock != s2.clock || !bytes.Equal(s1.rand, s2.rand) ||
		!bytes.Equal(s1.stderr, s2.stderr) || !bytes.Equal(s1.kept, s2.kept) ||
		s1.activityOK != s2.activityOK || !slices.Equal(s1.generators, s2.generators) {
		t.Errorf("the snapshot read differs from the one made:\n%+v\n%+v", *s1, *s2)
	}
	echoes(t, m2)
}

// TestKeptSnapshotCorruptIgnored: a snapshot file with a flipped byte, or cut short, is
// ignored with a warning; the snapshot is made again and the file replaced.
func TestKeptSnapshotCorruptIgnored(t *testing.T) {
	dir := t.TempDir()
	m := restarted(t, dir, &captureHandler{}, nil)
	snapshotOf(t, m)
	good, err := os.ReadFile(m.snapshotFile())
	if err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string][]byte{
		"flipped":   func() []byte { b := slices.Clone(good); b[len(b)/2] ^= 1; return b }(),
		"truncated": good[:len(good)-100],
		"empty":     nil,
	} {
		t.Run(name, func(t *testing.T) {
			if err := os.WriteFile(m.snapshotFile(), bad, 0o644); err != nil {
				t.Fatal(err)
			}
			logs := &captureHandler{}
			m2 := restarted(t, dir, logs, nil)
			snapshotOf(t, m2) // waits for the file to be valid again
			if wasRead(t, logs) {
				t.Fatal("a corrupt snapshot file was used")
			}
			if w := logged(logs); !strings.Contains(w, "ignoring the kept workflow snapshot") {
				t.Errorf("no warning about the corrupt file; warnings:\n%s", w)
			}
			echoes(t, m2)
		})
	}
}

// TestKeptSnapshotStaleIgnored: a snapshot file made with other settings is not used:
// a process with other settings keeps its own file beside it, and one found under its
// own name but made with other settings (a collision of the name's digest, a file
// copied over it) is refused as stale and replaced.
func TestKeptSnapshotStaleIgnored(t *testing.T) {
	dir := t.TempDir()
	m := restarted(t, dir, &captureHandler{}, nil)
	snapshotOf(t, m)
	good, err := os.ReadFile(m.snapshotFile())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		edit func(*Runtime)
	}{
		{"activities", func(rt *Runtime) { rt.noActivitySnapshots = true }},
		{"memory limit", func(rt *Runtime) { rt.limitPages = 4096 }},
	} {
		name, edit := c.name, c.edit
		t.Run(name, func(t *testing.T) {
			logs := &captureHandler{}
			other := restarted(t, dir, logs, edit)
			snapshotOf(t, other)
			if wasRead(t, logs) {
				t.Fatal("a snapshot file made with other settings was used")
			}
			if other.snapshotFile() == m.snapshotFile() {
				t.Fatal("other settings keep their snapshot under the same name")
			}
			if b, err := os.ReadFile(m.snapshotFile()); err != nil || !bytes.Equal(b, good) {
				t.Fatalf("the first settings' file was changed: %v", err)
			}
			// The first settings' bytes under the other settings' name: stale.
			if err := os.WriteFile(other.snapshotFile(), good, 0o644); err != nil {
				t.Fatal(err)
			}
			logs = &captureHandler{}
			again := restarted(t, dir, logs, edit)
			snapshotOf(t, again)
			if wasRead(t, logs) {
				t.Fatal("a stale snapshot file was used")
			}
			if w := logged(logs); !strings.Contains(w, "stale") {
				t.Errorf("no warning about the stale file; warnings:\n%s", w)
			}
		})
	}
}

// TestKeptSnapshotOfAnotherBuild: a process of another build does not read the snapshot
// kept by this one, and keeps its own beside it rather than over it (a server and the
// tests checking its store offline share a cache dir).
func TestKeptSnapshotOfAnotherBuild(t *testing.T) {
	dir := t.TempDir()
	m := restarted(t, dir, &captureHandler{}, nil)
	snapshotOf(t, m)
	logs := &captureHandler{}
	other := restarted(t, dir, logs, func(rt *Runtime) { rt.build += " (another)" })
	snapshotOf(t, other)
	if wasRead(t, logs) {
		t.Fatal("a snapshot kept by another build was used")
	}
	if m.snapshotFile() == other.snapshotFile() {
		t.Fatal("two builds keep their snapshots in the same file")
	}
	logs = &captureHandler{}
	snapshotOf(t, restarted(t, dir, logs, nil))
	if !wasRead(t, logs) {
		t.Errorf("this build's snapshot was not read after another build kept its own; warnings:\n%s", logged(logs))
	}
}

// TestParkedResumesOverKeptSnapshot: a workflow parked (captured) before a restart
// resumes after it over the snapshot read from the cache dir and returns what a run
// through returns; a snapshot file whose memory digest is not the one the parked image
// was taken over is refused by ResumeParked.
func TestParkedResumesOverKeptSnapshot(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	const n, k = 6, 3
	in := RunInput{FFQN: "test:guest/api.steps", Params: []byte(fmt.Sprintf("[%d]", n)), ExecutionID: "E_TEST", Attempt: 1}
	through := func(m *Module) []byte {
		cfg := wfConfig(7)
		cfg.Handler = HostHandlerFunc(func(ctx context.Context, op string, req []byte) ([]byte, error) {
			return stepAnswer(stepOf(t, req)), nil
		})
		inst, err := m.Instantiate(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		out, err := inst.Run(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}

	m1 := restarted(t, dir, &captureHandler{}, nil)
	snapshotOf(t, m1)
	want := through(m1)
	image := parkAt(t, ctx, m1, k, in)
	if err := m1.rt.Close(ctx); err != nil { // the "restart"
		t.Fatal(err)
	}

	resume := func(m *Module) ([]byte, error) {
		cfg := wfConfig(99)
		cfg.Handler = HostHandlerFunc(func(ctx context.Context, op string, req []byte) ([]byte, error) {
			return stepAnswer(stepOf(t, req)), nil
		})
		inst, err := m.ResumeParked(ctx, cfg, image, func(context.Context) ([]byte, error) { return stepAnswer(k), nil })
		if err != nil {
			return nil, err
		}
		return inst.Run(ctx, in)
	}
	logs := &captureHandler{}
	m2 := restarted(t, dir, logs, nil)
	got, err := resume(m2)
	if err != nil {
		t.Fatal(err)
	}
	if !wasRead(t, logs) {
		t.Fatalf("the restarted runtime made its snapshot instead of reading it; warnings:\n%s", logged(logs))
	}
	if !bytes.Equal(got, want) {
		t.Errorf("resumed after the restart:\n got %s\nwant %s", got, want)
	}

	// A kept snapshot that is not the parked image's base (here: its digest changed,
	// with a valid CRC) is not resumed over.
	b, err := os.ReadFile(m2.snapshotFile())
	if err != nil {
		t.Fatal(err)
	}
	s, err := decodeSnapshotFile(b, m2.snapshotKey())
	if err != nil {
		t.Fatal(err)
	}
	s.digest[0] ^= 1
	if err := os.WriteFile(m2.snapshotFile(), encodeSnapshotFile(s, m2.snapshotKey()), 0o644); err != nil {
		t.Fatal(err)
	}
	logs = &captureHandler{}
	m3 := restarted(t, dir, logs, nil)
	if _, err := resume(m3); err == nil || !strings.Contains(err.Error(), "another workflow snapshot") {
		t.Errorf("resumed over a snapshot with another digest: %v", err)
	}
	if !wasRead(t, logs) {
		t.Error("the edited snapshot file was not read")
	}
}

// TestPreloadKeepsCodeAndReadsSnapshot: a module compiled with Preload keeps its code
// loaded and has its workflow snapshot read from the cache dir before anything asks for
// an instance.
func TestPreloadKeepsCodeAndReadsSnapshot(t *testing.T) {
	dir := t.TempDir()
	snapshotOf(t, restarted(t, dir, &captureHandler{}, nil))
	ctx := context.Background()
	logs := &captureHandler{}
	rt, err := NewRuntime(ctx, Config{CacheDir: dir, Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	m, err := rt.Compile(ctx, "guest", guestWasm, Preload())
	if err != nil {
		t.Fatal(err)
	}
	if !m.CodeLoaded() {
		t.Error("the code of a preloaded module is not loaded after Compile")
	}
	if !wasRead(t, logs) { // fails unless the snapshot is published without being asked for
		t.Errorf("the preloaded module made its snapshot instead of reading it; warnings:\n%s", logged(logs))
	}
	echoes(t, m)
}
