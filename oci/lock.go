package oci

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"github.com/obelisk-go/obelisk/internal/atomicfile"
	"github.com/obelisk-go/obelisk/wasmstore"
)

// LockVersion is the version of obelisk.lock this package reads and writes.
const LockVersion = 1

// LockPath returns the lock file of a config file: beside it, named after it with the
// extension .lock (obelisk.toml: obelisk.lock), so that two configs in one folder do not
// share one.
func LockPath(configPath string) string {
	base := filepath.Base(configPath)
	return filepath.Join(filepath.Dir(configPath), strings.TrimSuffix(base, filepath.Ext(base))+".lock")
}

// Lock is obelisk.lock: for every OCI reference of a config, the manifest digest it
// first resolved to and the digest of that manifest's wasm.
type Lock struct {
	entries []LockEntry // sorted by Reference
}

// LockEntry is one reference of a Lock.
type LockEntry struct {
	// Reference is the location.oci as written in the config.
	Reference string `toml:"reference"`
	// ManifestDigest is the manifest the reference resolved to when it was locked.
	ManifestDigest string `toml:"manifest_digest"`
	// WasmDigest is the digest of that manifest's wasm layer: the component's content
	// digest, its name in the component store.
	WasmDigest string `toml:"wasm_digest"`
}

type lockFile struct {
	Version int         `toml:"version"`
	OCI     []LockEntry `toml:"oci"`
}

// ReadLock reads the lock file at path; a missing file is an empty lock.
func ReadLock(path string) (*Lock, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Lock{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read lock file %s: %w", path, err)
	}
	var f lockFile
	dec := toml.NewDecoder(bytes.NewReader(b)).DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		var strict *toml.StrictMissingError
		if errors.As(err, &strict) {
			var keys []string
			for _, e := range strict.Errors {
				keys = append(keys, strings.Join(e.Key(), "."))
			}
			return nil, fmt.Errorf("lock file %s: unknown keys %s", path, strings.Join(keys, ", "))
		}
		return nil, fmt.Errorf("lock file %s: %w", path, err)
	}
	if f.Version != LockVersion {
		return nil, fmt.Errorf("lock file %s: version %d, this obelisk reads version %d", path, f.Version, LockVersion)
	}
	l := &Lock{}
	for i, e := range f.OCI {
		if err := e.check(); err != nil {
			return nil, fmt.Errorf("lock file %s: [[oci]] #%d: %w", path, i+1, err)
		}
		if _, dup := l.Get(e.Reference); dup {
			return nil, fmt.Errorf("lock file %s: [[oci]] #%d: reference %s is locked twice", path, i+1, e.Reference)
		}
		l.Set(e)
	}
	return l, nil
}

func (e LockEntry) check() error {
	if _, err := ParseReference(e.Reference); err != nil {
		return err
	}
	if _, err := wasmstore.ParseDigest(e.ManifestDigest); err != nil {
		return fmt.Errorf("%s: manifest_digest: %w", e.Reference, err)
	}
	if _, err := wasmstore.ParseDigest(e.WasmDigest); err != nil {
		return fmt.Errorf("%s: wasm_digest: %w", e.Reference, err)
	}
	return nil
}

// Get returns the entry of a reference (as written in the config).
func (l *Lock) Get(reference string) (LockEntry, bool) {
	i, ok := slices.BinarySearchFunc(l.entries, reference, func(e LockEntry, r string) int { return strings.Compare(e.Reference, r) })
	if !ok {
		return LockEntry{}, false
	}
	return l.entries[i], true
}

// Set adds or replaces the entry of e.Reference.
func (l *Lock) Set(e LockEntry) {
	i, ok := slices.BinarySearchFunc(l.entries, e.Reference, func(e LockEntry, r string) int { return strings.Compare(e.Reference, r) })
	if ok {
		l.entries[i] = e
		return
	}
	l.entries = slices.Insert(l.entries, i, e)
}

// Retain drops the entries of references not in keep: those the config no longer has.
func (l *Lock) Retain(keep []string) {
	l.entries = slices.DeleteFunc(l.entries, func(e LockEntry) bool { return !slices.Contains(keep, e.Reference) })
}

// Entries returns the entries, sorted by reference.
func (l *Lock) Entries() []LockEntry { return slices.Clone(l.entries) }

// Equal reports whether two locks hold the same entries.
func (l *Lock) Equal(o *Lock) bool { return slices.Equal(l.entries, o.entries) }

// Clone returns a copy of l.
func (l *Lock) Clone() *Lock { return &Lock{entries: slices.Clone(l.entries)} }

// Marshal returns the lock file's text: a header comment naming the config, then the
// entries sorted by reference, so that a change of one reference is a change of its
// lines only.
func (l *Lock) Marshal(configName string) ([]byte, error) {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, `# The OCI components of %s, each pinned to the manifest digest its location.oci
# first resolved to (and the digest of its wasm). Written by obelisk: `+"`obelisk server run`"+`
# adds new references, `+"`obelisk component update [NAME]`"+` re-resolves. Keep it with the config.

`, configName)
	entries := l.entries
	if entries == nil {
		entries = []LockEntry{}
	}
	enc := toml.NewEncoder(&buf)
	if err := enc.Encode(lockFile{Version: LockVersion, OCI: entries}); err != nil {
		return nil, fmt.Errorf("encode lock: %w", err)
	}
	return buf.Bytes(), nil
}

// Write writes the lock file at path for the config configName, whole or not at all (a
// temporary file renamed over it).
func (l *Lock) Write(path, configName string) error {
	b, err := l.Marshal(configName)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, b, 0o644); err != nil {
		return fmt.Errorf("write lock file: %w", err)
	}
	return nil
}
