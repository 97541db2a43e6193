// Package wasmstore is the content-addressed store of component files (.wasm) in the
// data directory. It holds every version of a component that an execution is pinned
// to, and what OCI pulls fetch, so that a restart with a changed config (or with the
// registry unreachable) still finds the code its unfinished executions need.
//
// A file is named by the SHA-256 digest of its bytes, and is written whole (a temporary
// file, synced, then renamed) before its name exists: a name in the store always holds
// exactly the bytes it names. Get checks the digest again on every read, so a file
// corrupted on disk is reported, never run.
package wasmstore

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/obelisk-go/obelisk/internal/atomicfile"
)

// DirName is the store's folder in a data directory.
const DirName = "components"

// ErrNotFound is returned for a digest the store does not hold.
var ErrNotFound = errors.New("not in the component store")

const (
	digestPrefix = "sha256:"
	fileSuffix   = ".wasm"
)

// Digest returns the digest naming wasm in the store: "sha256:" and 64 hex digits.
func Digest(wasm []byte) string {
	sum := sha256.Sum256(wasm)
	return digestPrefix + hex.EncodeToString(sum[:])
}

// ParseDigest checks that s is a digest as Digest writes it and returns its hex part.
func ParseDigest(s string) (string, error) {
	h, ok := strings.CutPrefix(s, digestPrefix)
	if !ok || len(h) != 2*sha256.Size {
		return "", fmt.Errorf("digest %q: want sha256: and %d hex digits", s, 2*sha256.Size)
	}
	if _, err := hex.DecodeString(h); err != nil || strings.ToLower(h) != h {
		return "", fmt.Errorf("digest %q: want sha256: and %d lower-case hex digits", s, 2*sha256.Size)
	}
	return h, nil
}

// Store is a folder of component files named by their digests. Its methods may be
// called concurrently, also by several processes on one folder: writes are atomic
// renames of identical content.
type Store struct {
	dir string
}

// Open returns the store in dir, creating the folder if needed.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open component store %s: %w", dir, err)
	}
	return &Store{dir: dir}, nil
}

// OpenReadOnly returns the store in dir for reading only (Path, Get, Has, List), without
// creating the folder: an offline check of a stopped server's data directory must leave
// it as it found it. A folder that does not exist holds nothing (ErrNotFound).
func OpenReadOnly(dir string) *Store { return &Store{dir: dir} }

// Dir returns the store's folder.
func (s *Store) Dir() string { return s.dir }

// Path returns the file that holds digest, whether or not the store has it.
func (s *Store) Path(digest string) (string, error) {
	h, err := ParseDigest(digest)
	if err != nil {
		return "", err
	}
	return filepath.Join(s.dir, "sha256-"+h+fileSuffix), nil
}

// Has reports whether the store holds digest intact. It reads the file and checks its
// bytes, because its callers skip a download or a copy when it says yes: a file
// corrupted on disk must be fetched again, not loaded by its path.
func (s *Store) Has(digest string) bool {
	_, err := s.Get(digest)
	return err == nil
}

// Put stores wasm and returns its digest. Storing bytes the store already holds intact
// writes nothing; a corrupt file of that digest is replaced.
func (s *Store) Put(wasm []byte) (string, error) {
	digest := Digest(wasm)
	p, _ := s.Path(digest)
	if s.Has(digest) {
		return digest, nil
	}
	if err := atomicfile.Write(p, wasm, 0o644); err != nil {
		return "", fmt.Errorf("store component %s: %w", digest, err)
	}
	return digest, nil
}

// Get returns the bytes of digest, checked against it. A digest the store does not hold
// is ErrNotFound; a file whose bytes no longer match is an error naming both digests.
func (s *Store) Get(digest string) ([]byte, error) {
	p, err := s.Path(digest)
	if err != nil {
		return nil, err
	}
	wasm, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("component %s: %w", digest, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read component %s: %w", digest, err)
	}
	if got := Digest(wasm); got != digest {
		return nil, fmt.Errorf("component file %s is corrupt: it holds %s", p, got)
	}
	return wasm, nil
}

// Remove deletes digest from the store; removing what it does not hold is not an error.
func (s *Store) Remove(digest string) error {
	p, err := s.Path(digest)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove component %s: %w", digest, err)
	}
	return nil
}

// List returns the digests the store holds, sorted.
func (s *Store) List() ([]string, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list component store %s: %w", s.dir, err)
	}
	var out []string
	for _, e := range entries {
		h, ok := strings.CutPrefix(e.Name(), "sha256-")
		if !ok || !strings.HasSuffix(h, fileSuffix) {
			continue // temporary files of a Put in progress, or foreign files
		}
		digest := digestPrefix + strings.TrimSuffix(h, fileSuffix)
		if _, err := ParseDigest(digest); err == nil {
			out = append(out, digest)
		}
	}
	sort.Strings(out)
	return out, nil
}
