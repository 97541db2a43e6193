package events

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/cockroachdb/pebble/v2"

	"github.com/obelisk-go/obelisk/internal/clip"
)

// The key-value store under obelisk:kv/store. An entry is one key:
//
//	v\0<bucket>\0<key>  -> the value, as given
//
// Buckets never contain a 0 byte, so v\0<bucket>\0 begins the keys of that bucket only
// ("a" and "ab" do not overlap) and a prefix scan stays inside it. Keys follow the last
// separator and may hold any bytes of valid UTF-8, a 0 included.
//
// Entries belong to no execution: retention does not delete them (tagKV is not one of
// treeTags), and writing one adds nothing to the global event log or to the indexes. KV
// is not an event stream; a workflow's reads and writes are recorded as the events of
// its calls to the KV component, not here.
//
// Writes go through Commit (Tx.KV, Tx.KVChecks), atomically with the rest of the Tx, so
// that an activity's write and its result, or a workflow's answer and the value it read,
// are stored together or not at all.

// Bounds of KV entries; Commit refuses a Tx beyond them (ErrInvalidArgument wrapped),
// and writes nothing of it.
const (
	// MaxKVBucketBytes bounds a bucket name (and a bucket must not be empty).
	MaxKVBucketBytes = 128
	// MaxKVKeyBytes bounds a key (and a key must not be empty).
	MaxKVKeyBytes = 1024
	// MaxKVValueBytes bounds a value: 1 MiB, the default bound of an execution's
	// parameters (api.max_params_bytes), which carry a value to set.
	MaxKVValueBytes = 1 << 20
)

// KVList's page sizes: a limit of 0 or less asks for DefaultKVListLimit entries, and no
// page holds more than MaxKVListLimit.
const (
	DefaultKVListLimit = 100
	MaxKVListLimit     = 1000
)

// KVWrite sets or deletes one key, optionally only if its current value is as expected.
type KVWrite struct {
	Bucket, Key string
	// Value is the value to set; ignored by a delete.
	Value  string
	Delete bool
	// Check, when true, makes the whole Tx fail with a *KVConflictError unless the key's
	// current value is Expected (ExpectedPresent false: the key must be absent).
	Check           bool
	ExpectedPresent bool
	Expected        string
}

// KVCheck makes the whole Tx fail with a *KVConflictError unless the key's current
// value is Expected (ExpectedPresent false: the key must be absent), and writes
// nothing: a compare-and-set that answers false records its answer only while the
// value it read is still current.
type KVCheck struct {
	Bucket, Key     string
	ExpectedPresent bool
	Expected        string
}

// KVEntry is one entry of a bucket.
type KVEntry struct{ Key, Value string }

// kvValue is a key's value as a group sees it; ok false: absent (or deleted).
type kvValue struct {
	v  string
	ok bool
}

func kvPrefix(bucket string) []byte { return key(tagKV, []byte(bucket), nil) }
func kvKey(bucket, k string) []byte { return key(tagKV, []byte(bucket), []byte(k)) }

func checkKVBucket(bucket string) error {
	switch {
	case bucket == "":
		return errors.New("bucket is empty")
	case len(bucket) > MaxKVBucketBytes:
		return fmt.Errorf("bucket is %d bytes, more than the limit of %d", len(bucket), MaxKVBucketBytes)
	case strings.IndexByte(bucket, 0) >= 0:
		return errors.New("bucket contains a NUL byte")
	case !utf8.ValidString(bucket):
		return errors.New("bucket is not valid UTF-8")
	}
	return nil
}

// checkKVKeyBytes checks what may be a key, or a prefix or cursor of one (empty allowed).
func checkKVKeyBytes(what, k string) error {
	if len(k) > MaxKVKeyBytes {
		return fmt.Errorf("%s is %d bytes, more than the limit of %d", what, len(k), MaxKVKeyBytes)
	}
	if !utf8.ValidString(k) {
		return fmt.Errorf("%s is not valid UTF-8", what)
	}
	return nil
}

func checkKVKey(bucket, k string) error {
	if err := checkKVBucket(bucket); err != nil {
		return err
	}
	if k == "" {
		return errors.New("key is empty")
	}
	return checkKVKeyBytes("key", k)
}

// CheckKVWrite returns the error Commit would refuse w with for its bounds (nil if
// none), so that a caller can answer bad input before it commits anything.
func CheckKVWrite(op string, w KVWrite) error {
	if err := checkKVKey(w.Bucket, w.Key); err != nil {
		return kvInvalid(op, w.Bucket, w.Key, err)
	}
	if !w.Delete && len(w.Value) > MaxKVValueBytes {
		return kvInvalid(op, w.Bucket, w.Key, fmt.Errorf("value is %d bytes, more than the limit of %d", len(w.Value), MaxKVValueBytes))
	}
	return nil
}

func kvInvalid(op, bucket, k string, err error) error {
	return fmt.Errorf("kv %s %s/%s: %v: %w", op, clip.Quote(bucket), clip.Quote(k), err, ErrInvalidArgument)
}

// kvCurrent returns a key's value as the group sees it: the writes of earlier Txs of
// the group first, then the database.
func (g *groupState) kvCurrent(k []byte) (kvValue, error) {
	if v, ok := g.kv[string(k)]; ok {
		return v, nil
	}
	v, closer, err := g.s.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return kvValue{}, nil
	}
	if err != nil {
		return kvValue{}, readFailed(err)
	}
	defer closer.Close()
	return kvValue{v: string(v), ok: true}, nil
}

// kvOps validates tx's KV checks (first) and writes (in order, each seeing the ones
// before it), and returns their writes and the values they leave, without changing the
// group (a tx refused later leaves no trace).
func (g *groupState) kvOps(tx *Tx) ([]kv, map[string]kvValue, error) {
	if len(tx.KV) == 0 && len(tx.KVChecks) == 0 {
		return nil, nil, nil
	}
	overlay := map[string]kvValue{}
	current := func(k []byte) (kvValue, error) {
		if v, ok := overlay[string(k)]; ok {
			return v, nil
		}
		return g.kvCurrent(k)
	}
	expect := func(op, bucket, k string, present bool, want string) error {
		cur, err := current(kvKey(bucket, k))
		if err != nil {
			return fmt.Errorf("kv %s %s/%s: read: %w", op, clip.Quote(bucket), clip.Quote(k), err)
		}
		if cur.ok != present || (present && cur.v != want) {
			return &KVConflictError{Bucket: bucket, Key: k, ExpectedPresent: present, Expected: want, Present: cur.ok, Actual: cur.v}
		}
		return nil
	}
	for _, c := range tx.KVChecks {
		if err := checkKVKey(c.Bucket, c.Key); err != nil {
			return nil, nil, kvInvalid("check", c.Bucket, c.Key, err)
		}
		if err := expect("check", c.Bucket, c.Key, c.ExpectedPresent, c.Expected); err != nil {
			return nil, nil, err
		}
	}
	ops := make([]kv, 0, len(tx.KV))
	for _, w := range tx.KV {
		op := "set"
		if w.Delete {
			op = "delete"
		}
		if err := checkKVKey(w.Bucket, w.Key); err != nil {
			return nil, nil, kvInvalid(op, w.Bucket, w.Key, err)
		}
		if !w.Delete && len(w.Value) > MaxKVValueBytes {
			return nil, nil, kvInvalid(op, w.Bucket, w.Key, fmt.Errorf("value is %d bytes, more than the limit of %d", len(w.Value), MaxKVValueBytes))
		}
		if w.Check {
			if err := expect(op, w.Bucket, w.Key, w.ExpectedPresent, w.Expected); err != nil {
				return nil, nil, err
			}
		}
		k := kvKey(w.Bucket, w.Key)
		if w.Delete {
			ops = append(ops, kv{k: k, del: true})
			overlay[string(k)] = kvValue{}
		} else {
			ops = append(ops, kv{k: k, v: []byte(w.Value)})
			overlay[string(k)] = kvValue{v: w.Value, ok: true}
		}
	}
	return ops, overlay, nil
}

// KVGet returns the value of bucket/key and whether it exists.
func (s *PebbleStore) KVGet(ctx context.Context, bucket, k string) (string, bool, error) {
	if err := checkKVKey(bucket, k); err != nil {
		return "", false, kvInvalid("get", bucket, k, err)
	}
	// Pebble may show a write whose sync failed: a failed store shows nothing.
	if err := s.Err(); err != nil {
		return "", false, err
	}
	v, closer, err := s.db.Get(kvKey(bucket, k))
	if errors.Is(err, pebble.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("kv get %s/%s: %w", clip.Quote(bucket), clip.Quote(k), err)
	}
	defer closer.Close()
	return string(v), true, nil
}

// KVList returns up to limit entries of bucket whose keys start with prefix and sort
// after cursor ("" = from the start), in key order (of their bytes), and the cursor of
// the next page ("" = end: a page that ends the bucket says so, it is not followed by an
// empty one). limit <= 0 means DefaultKVListLimit; it is capped at MaxKVListLimit.
func (s *PebbleStore) KVList(ctx context.Context, bucket, prefix, cursor string, limit int) ([]KVEntry, string, error) {
	err := checkKVBucket(bucket)
	if err == nil {
		err = checkKVKeyBytes("prefix", prefix)
	}
	if err == nil {
		err = checkKVKeyBytes("cursor", cursor)
	}
	if err != nil {
		return nil, "", fmt.Errorf("kv list %s prefix %s: %v: %w", clip.Quote(bucket), clip.Quote(prefix), err, ErrInvalidArgument)
	}
	if limit <= 0 {
		limit = DefaultKVListLimit
	}
	limit = min(limit, MaxKVListLimit)
	if err := s.Err(); err != nil {
		return nil, "", err
	}
	base := kvPrefix(bucket)
	lower := kvKey(bucket, prefix)
	if cursor != "" {
		// The smallest key after the cursor's is the cursor's followed by a 0 byte.
		if after := append(kvKey(bucket, cursor), 0); bytes.Compare(after, lower) > 0 {
			lower = after
		}
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(kvKey(bucket, prefix))})
	if err != nil {
		return nil, "", fmt.Errorf("kv list %s: %w", clip.Quote(bucket), err)
	}
	defer it.Close()
	var out []KVEntry
	next := ""
	for it.First(); it.Valid(); it.Next() {
		if len(out) == limit {
			// One more entry exists: the next page starts after the last one returned.
			next = out[len(out)-1].Key
			break
		}
		out = append(out, KVEntry{Key: string(it.Key()[len(base):]), Value: string(it.Value())})
	}
	if err := it.Error(); err != nil {
		return nil, "", fmt.Errorf("kv list %s: %w", clip.Quote(bucket), err)
	}
	return out, next, nil
}
