// Package obeliskkv is the Go client of the engine's built-in key-value store,
// obelisk:kv/store: durable buckets of string keys and values kept in the engine's
// store, and read-only buckets of config read from TOML files ([[kv_config]]).
//
// The same functions work in every kind of component. In a workflow each one is a
// child execution of obelisk:kv/store, recorded in the workflow's history: a replay
// gets the recorded answer, and a write is made once however often the workflow is
// replayed. In an activity or a webhook endpoint each one runs at once; a retried
// activity runs it again, so make its writes idempotent or guard them with [CAS].
package obeliskkv

import (
	"encoding/json"
	"fmt"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
)

// Error is a kv-error of obelisk:kv/store: Kind "read_only" (a write to a config
// bucket) or "invalid" (a bucket, key or value out of bounds, or a config file that
// cannot be read).
type Error struct {
	Kind, Message string
}

func (e *Error) Error() string { return "obelisk:kv/store: " + e.Kind + ": " + e.Message }

// Entry is one entry of a bucket.
type Entry = abi.KVEntry

// Page is a page of [List]: entries in key order, and the cursor of the next page
// (nil when there is none).
type Page = abi.KVPage

// Get returns the value of key in bucket, and whether it is set.
func Get(ctx obelisk.Context, bucket, key string) (string, bool, error) {
	var v *string
	if err := do(ctx, abi.KVGet, &v, bucket, key); err != nil || v == nil {
		return "", false, err
	}
	return *v, true, nil
}

// Set sets key in bucket to value.
func Set(ctx obelisk.Context, bucket, key, value string) error {
	return do(ctx, abi.KVSet, nil, bucket, key, value)
}

// Delete deletes key from bucket; deleting a key that is not set is no error.
func Delete(ctx obelisk.Context, bucket, key string) error {
	return do(ctx, abi.KVDelete, nil, bucket, key)
}

// List returns up to limit entries of bucket (0: 100; at most 1000) whose keys start
// with prefix, after cursor (the previous page's Cursor; nil: from the first).
func List(ctx obelisk.Context, bucket, prefix string, cursor *string, limit uint32) (Page, error) {
	var p Page
	err := do(ctx, abi.KVList, &p, bucket, prefix, cursor, limit)
	return p, err
}

// CAS sets key in bucket to value if its value is *expected (expected nil: if it is
// not set), and reports whether it did.
func CAS(ctx obelisk.Context, bucket, key string, expected *string, value string) (bool, error) {
	var swapped bool
	err := do(ctx, abi.KVCAS, &swapped, bucket, key, expected, value)
	return swapped, err
}

// do runs function fn with params and decodes its ok value into ok (nil: none).
func do(ctx obelisk.Context, fn string, ok any, params ...any) error {
	raw, err := json.Marshal(params)
	if err != nil {
		return fmt.Errorf("obelisk:kv/store.%s: %w", fn, err)
	}
	var result struct {
		Ok  json.RawMessage   `json:"ok"`
		Err map[string]string `json:"err"`
	}
	if err := ctx.HostCall(abi.OpKV, abi.KVRequest{Fn: fn, Params: raw}, &result); err != nil {
		return err
	}
	if result.Err != nil {
		for kind, msg := range result.Err {
			return &Error{Kind: kind, Message: msg}
		}
	}
	if ok != nil && len(result.Ok) > 0 {
		if err := json.Unmarshal(result.Ok, ok); err != nil {
			return fmt.Errorf("obelisk:kv/store.%s: decoding %s: %w", fn, result.Ok, err)
		}
	}
	return nil
}
