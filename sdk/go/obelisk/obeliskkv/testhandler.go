package obeliskkv

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
)

// TestHandler returns an [obelisk.OpHandler] for the kv op of an [obelisk.TestHost]
// that keeps the buckets in memory, so that a guest using this package can be tested
// without an engine:
//
//	host := &obelisk.TestHost{Ops: map[string]obelisk.OpHandler{abi.OpKV: obeliskkv.TestHandler()}}
//
// It answers as the engine does, except that it has no config buckets and checks no
// bounds.
func TestHandler() obelisk.OpHandler {
	var mu sync.Mutex
	buckets := map[string]map[string]string{}
	return func(request json.RawMessage) (any, error) {
		var q abi.KVRequest
		if err := json.Unmarshal(request, &q); err != nil {
			return nil, err
		}
		var args []json.RawMessage
		if err := json.Unmarshal(q.Params, &args); err != nil {
			return nil, fmt.Errorf("kv %s: params: %w", q.Fn, err)
		}
		arg := func(i int, v any) {
			if i < len(args) {
				json.Unmarshal(args[i], v)
			}
		}
		var bucket, key string
		arg(0, &bucket)
		arg(1, &key)
		mu.Lock()
		defer mu.Unlock()
		b := buckets[bucket]
		if b == nil {
			b = map[string]string{}
			buckets[bucket] = b
		}
		ok := func(v any) any { return map[string]any{"ok": v} }
		switch q.Fn {
		case abi.KVGet:
			if v, found := b[key]; found {
				return ok(v), nil
			}
			return ok(nil), nil
		case abi.KVSet:
			var v string
			arg(2, &v)
			b[key] = v
			return ok(nil), nil
		case abi.KVDelete:
			delete(b, key)
			return ok(nil), nil
		case abi.KVCAS:
			var expected *string
			var v string
			arg(2, &expected)
			arg(3, &v)
			cur, found := b[key]
			if (expected == nil) != !found || (expected != nil && *expected != cur) {
				return ok(false), nil
			}
			b[key] = v
			return ok(true), nil
		case abi.KVList:
			var cursor *string
			var limit int
			arg(2, &cursor)
			arg(3, &limit)
			if limit <= 0 {
				limit = 100
			}
			prefix := key // list's second parameter is the prefix
			var keys []string
			for k := range b {
				if strings.HasPrefix(k, prefix) && (cursor == nil || k > *cursor) {
					keys = append(keys, k)
				}
			}
			sort.Strings(keys)
			page := Page{Entries: []Entry{}}
			for i, k := range keys {
				if i == limit {
					last := keys[i-1]
					page.Cursor = &last
					break
				}
				page.Entries = append(page.Entries, Entry{Key: k, Value: b[k]})
			}
			return ok(page), nil
		}
		return nil, fmt.Errorf("kv: unknown function %q", q.Fn)
	}
}
