// Package kv decides the functions of the built-in KV component, obelisk:kv/store: what
// a get, set, delete, list or cas answers given what the store (or a config bucket)
// holds, and which writes and checks go with that answer. It commits nothing: the
// engine commits a Decision with the outcome of the execution that made it (or alone,
// for the kv host op), and decides again if a check fails (events.KVConflictError).
package kv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/obelisk-go/obelisk/actors/internal/kvconfig"
	"github.com/obelisk-go/obelisk/events"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
)

// Decision is what a KV function decided: its result (the JSON of the function's
// result<_, kv-error>), the writes to commit with it and the checks that the values it
// read are still current, to commit in the same Tx.
type Decision struct {
	Result []byte
	Writes []events.KVWrite
	Checks []events.KVCheck
}

// Store is what Decide reads: the KV part of events.Store.
type Store interface {
	KVGet(ctx context.Context, bucket, key string) (string, bool, error)
	KVList(ctx context.Context, bucket, prefix, cursor string, limit int) ([]events.KVEntry, string, error)
}

// IsFunction reports whether fn (without its interface) is a function of
// obelisk:kv/store.
func IsFunction(fn string) bool {
	switch fn {
	case abi.KVGet, abi.KVSet, abi.KVDelete, abi.KVList, abi.KVCAS:
		return true
	}
	return false
}

// Decide reads what function fn of obelisk:kv/store needs with params (type-checked
// already) from store, or from config for a bucket it names, and decides its result.
// An error is the store's: a kv-error is a result.
func Decide(ctx context.Context, store Store, config map[string]*kvconfig.Bucket, fn string, params []byte) (Decision, error) {
	var args []json.RawMessage
	if err := json.Unmarshal(params, &args); err != nil {
		return Decision{Result: errResult("invalid", "params: "+err.Error())}, nil
	}
	str := func(i int) string {
		var s string
		if i < len(args) {
			json.Unmarshal(args[i], &s)
		}
		return s
	}
	optStr := func(i int) *string {
		var s *string
		if i < len(args) {
			json.Unmarshal(args[i], &s)
		}
		return s
	}
	bucket, key := str(0), str(1)
	cfg, isConfig := config[bucket]
	switch fn {
	case abi.KVGet:
		var v string
		var ok bool
		var err error
		if isConfig {
			v, ok, err = cfg.Get(key)
			if err != nil {
				return Decision{Result: errResult("invalid", err.Error())}, nil
			}
		} else if v, ok, err = store.KVGet(ctx, bucket, key); err != nil {
			return invalid(err)
		}
		if !ok {
			return Decision{Result: []byte(`{"ok":null}`)}, nil
		}
		return Decision{Result: okResult(v)}, nil
	case abi.KVList:
		var limit int
		if len(args) > 3 {
			json.Unmarshal(args[3], &limit)
		}
		cursor := ""
		if c := optStr(2); c != nil {
			cursor = *c
		}
		var entries []events.KVEntry
		var next string
		var err error
		if isConfig {
			if entries, next, err = cfg.List(str(1), cursor, limit); err != nil {
				return Decision{Result: errResult("invalid", err.Error())}, nil
			}
		} else if entries, next, err = store.KVList(ctx, bucket, str(1), cursor, limit); err != nil {
			return invalid(err)
		}
		page := abi.KVPage{Entries: make([]abi.KVEntry, len(entries))}
		for i, en := range entries {
			page.Entries[i] = abi.KVEntry{Key: en.Key, Value: en.Value}
		}
		if next != "" {
			page.Cursor = &next
		}
		return Decision{Result: okResult(page)}, nil
	}
	// A write.
	if isConfig {
		return Decision{Result: errResult("read_only", fmt.Sprintf("bucket %q is read-only: it is read from %s", bucket, cfg.Path()))}, nil
	}
	w := events.KVWrite{Bucket: bucket, Key: key, Delete: fn == abi.KVDelete}
	switch fn {
	case abi.KVSet:
		w.Value = str(2)
	case abi.KVCAS:
		w.Value = str(3)
	}
	if err := events.CheckKVWrite(fn, w); err != nil {
		return Decision{Result: errResult("invalid", err.Error())}, nil
	}
	switch fn {
	case abi.KVSet, abi.KVDelete:
		return Decision{Result: []byte(`{"ok":null}`), Writes: []events.KVWrite{w}}, nil
	case abi.KVCAS:
		expected := optStr(2)
		v, ok, err := store.KVGet(ctx, bucket, key)
		if err != nil {
			return invalid(err)
		}
		check := events.KVCheck{Bucket: bucket, Key: key, ExpectedPresent: ok, Expected: v}
		if (expected == nil) != !ok || (expected != nil && *expected != v) {
			// Not as expected: false, if the value read is still the value then.
			return Decision{Result: []byte(`{"ok":false}`), Checks: []events.KVCheck{check}}, nil
		}
		return Decision{Result: []byte(`{"ok":true}`), Checks: []events.KVCheck{check}, Writes: []events.KVWrite{w}}, nil
	}
	return Decision{Result: errResult("invalid", fmt.Sprintf("unknown function %q", fn))}, nil
}

// invalid turns a refusal of the store's bounds into the invalid kv-error, and
// returns any other error as the store's.
func invalid(err error) (Decision, error) {
	if errors.Is(err, events.ErrInvalidArgument) {
		return Decision{Result: errResult("invalid", err.Error())}, nil
	}
	return Decision{}, err
}

// okResult is the JSON of a function's ok result v.
func okResult(v any) []byte {
	b, _ := json.Marshal(map[string]any{"ok": v})
	return b
}

// errResult is the JSON of a kv-error of kind with message msg.
func errResult(kind, msg string) []byte {
	b, _ := json.Marshal(map[string]any{"err": map[string]string{kind: msg}})
	return b
}
