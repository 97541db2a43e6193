package obeliskkv_test

import (
	"encoding/json"
	"testing"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/obeliskkv"
)

func init() {
	// counter increments key by compare-and-set, times times, and returns the count.
	obelisk.Export("test:obeliskkv/fns.counter", func(ctx obelisk.Context, key string, times uint32) (int, error) {
		n := 0
		for range times {
			for {
				cur, found, err := obeliskkv.Get(ctx, "b", key)
				if err != nil {
					return 0, err
				}
				var expected *string
				if found {
					expected = &cur
				}
				n = len(cur) + 1
				swapped, err := obeliskkv.CAS(ctx, "b", key, expected, string(make([]byte, n)))
				if err != nil {
					return 0, err
				}
				if swapped {
					break
				}
			}
		}
		page, err := obeliskkv.List(ctx, "b", "", nil, 0)
		if err != nil {
			return 0, err
		}
		if len(page.Entries) != 1 || page.Cursor != nil {
			return 0, obelisk.Err("list: not one entry")
		}
		if err := obeliskkv.Delete(ctx, "b", key); err != nil {
			return 0, err
		}
		if _, found, _ := obeliskkv.Get(ctx, "b", key); found {
			return 0, obelisk.Err("deleted key found")
		}
		return n, nil
	})
	obelisk.Export("test:obeliskkv/fns.refused", func(ctx obelisk.Context) (string, error) {
		err := obeliskkv.Set(ctx, "settings", "k", "v")
		if e, ok := err.(*obeliskkv.Error); ok {
			return e.Kind + ": " + e.Message, nil
		}
		return "", obelisk.Err("not refused")
	})
}

// TestWithTestHandler: the functions round-trip through the kv op, as answered by
// TestHandler's in-memory buckets.
func TestWithTestHandler(t *testing.T) {
	host := &obelisk.TestHost{Ops: map[string]obelisk.OpHandler{abi.OpKV: obeliskkv.TestHandler()}}
	if out := host.Run("test:obeliskkv/fns.counter", "k", 5); string(out) != `{"ok":5}` {
		t.Errorf("counter = %s", out)
	}
}

// TestKVError: a kv-error result is returned as an *Error with its kind.
func TestKVError(t *testing.T) {
	host := &obelisk.TestHost{Ops: map[string]obelisk.OpHandler{abi.OpKV: func(json.RawMessage) (any, error) {
		return map[string]any{"err": map[string]string{"read_only": "bucket \"settings\" is read-only"}}, nil
	}}}
	if out := host.Run("test:obeliskkv/fns.refused"); string(out) != `{"ok":"read_only: bucket \"settings\" is read-only"}` {
		t.Errorf("refused = %s", out)
	}
}
