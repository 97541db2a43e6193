package events

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// The activity result cache: for an activity with exec.cache_ttl, the newest ok result
// of each (component version, function, parameters), so that a later execution with the
// same ones is finished with it instead of being run (package actors decides; this file
// only keeps the entries).
//
//	h\0<component-id>\0<ffqn>\0<sha256(params):32>  -> <expires:8><execution id>
//	H\0<expires:8>\0<h key>                          expiry order, for SweepCache
//
// The h value names the execution that holds the result, not the result itself: the
// result is that execution's, read from its state, so the cache is never a second copy
// that could disagree with the history. An entry outlives its execution only until it
// is read (the execution is gone: a miss) or swept.
//
// Invariant: every h key has an H key of the expiry in its value. A put over an existing
// h key leaves the old H key, which the sweep recognises as stale (the h value's expiry
// differs) and deletes alone.
const (
	tagCache       = 'h'
	tagCacheExpiry = 'H'
)

// CachePut records, with the Tx, that ExecutionID finished ok and its result serves
// calls of FFQN with Params on ComponentID until ExpiresAt (Unix nanoseconds).
type CachePut struct {
	ComponentID, FFQN string
	Params            []byte
	ExecutionID       string
	ExpiresAt         int64
}

func cacheKey(componentID, ffqn string, params []byte) []byte {
	sum := sha256.Sum256(params)
	return key(tagCache, []byte(componentID), []byte(ffqn), sum[:])
}

func cacheExpiryKey(expires int64, hkey []byte) []byte {
	return key(tagCacheExpiry, u64(expires), hkey)
}

func cacheOps(puts []CachePut) []kv {
	ops := make([]kv, 0, 2*len(puts))
	for _, p := range puts {
		hk := cacheKey(p.ComponentID, p.FFQN, p.Params)
		ops = append(ops, kv{k: hk, v: append(u64(p.ExpiresAt), p.ExecutionID...)}, kv{k: cacheExpiryKey(p.ExpiresAt, hk)})
	}
	return ops
}

// CacheGet returns the execution whose ok result serves calls of ffqn with params on
// componentID at now, if there is one (the execution may have been deleted since: the
// caller reads it).
func (s *PebbleStore) CacheGet(ctx context.Context, componentID, ffqn string, params []byte, now time.Time) (string, bool, error) {
	if err := s.Err(); err != nil {
		return "", false, err
	}
	v, closer, err := s.db.Get(cacheKey(componentID, ffqn, params))
	if errors.Is(err, pebble.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("cache get %s: %w", ffqn, err)
	}
	defer closer.Close()
	if len(v) < 8 {
		return "", false, fmt.Errorf("cache get %s: a value of %d bytes", ffqn, len(v))
	}
	if int64(binary.BigEndian.Uint64(v)) <= now.UnixNano() {
		return "", false, nil
	}
	return string(v[8:]), true, nil
}

// HasCacheEntries reports whether the cache holds any entry, expired or not: a store
// whose config no longer has a result cache still has its entries swept.
func (s *PebbleStore) HasCacheEntries() (bool, error) {
	if err := s.Err(); err != nil {
		return false, err
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagCacheExpiry, 0}, UpperBound: []byte{tagCacheExpiry, 1}})
	if err != nil {
		return false, err
	}
	defer it.Close()
	return it.First(), it.Error()
}

// SweepCache deletes the cache entries that expired at now, at most limit of them, and
// reports how many it deleted (fewer than limit: none is left). It finds them outside the
// writer, from the index's floor (so that a long backlog is not rescanned from its start,
// tombstones and all, at each step), and the writer deletes each h key only if it still
// holds that expiry (a put may have renewed it meanwhile).
func (s *PebbleStore) SweepCache(ctx context.Context, now time.Time, limit int) (int, error) {
	prefix := []byte{tagCacheExpiry, 0}
	var due [][]byte // expiry keys
	var next time.Time
	err := s.scanTimeIndex(cacheIndex, prefix, now, func(hk string, at time.Time, _ []byte) (bool, error) {
		due = append(due, cacheExpiryKey(at.UnixNano(), []byte(hk)))
		return len(due) < limit, nil
	}, &next)
	if err != nil || len(due) == 0 {
		return 0, err
	}
	err = s.runStep(ctx, false, func(b *pebble.Batch) (func(), error) {
		for _, k := range due {
			expires, hk := k[len(prefix):len(prefix)+8], k[len(prefix)+9:]
			v, closer, err := s.db.Get(hk)
			switch {
			case err == nil:
				current := len(v) >= 8 && bytes.Equal(v[:8], expires)
				closer.Close()
				if current {
					if err := b.Delete(hk, nil); err != nil {
						return nil, err
					}
				}
			case !errors.Is(err, pebble.ErrNotFound):
				return nil, err
			}
			if err := b.Delete(k, nil); err != nil {
				return nil, err
			}
		}
		return nil, nil
	})
	if err != nil {
		return 0, fmt.Errorf("sweep %d cache entries: %w", len(due), err)
	}
	return len(due), nil
}
