package kv

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/obelisk-go/obelisk/actors/internal/kvconfig"
	"github.com/obelisk-go/obelisk/events"
)

// mapStore is a Store over a map of "bucket/key" to values.
type mapStore map[string]string

func (m mapStore) KVGet(_ context.Context, bucket, key string) (string, bool, error) {
	if bucket == "" {
		return "", false, events.ErrInvalidArgument
	}
	v, ok := m[bucket+"/"+key]
	return v, ok, nil
}

func (m mapStore) KVList(_ context.Context, bucket, prefix, cursor string, limit int) ([]events.KVEntry, string, error) {
	var keys []string
	for k := range m {
		if key, ok := strings.CutPrefix(k, bucket+"/"); ok && strings.HasPrefix(key, prefix) && key > cursor {
			keys = append(keys, key)
		}
	}
	sort.Strings(keys)
	var page []events.KVEntry
	for _, k := range keys {
		if len(page) == limit {
			return page, page[len(page)-1].Key, nil
		}
		page = append(page, events.KVEntry{Key: k, Value: m[bucket+"/"+k]})
	}
	return page, "", nil
}

// TestDecide: each function's result, and the writes and checks that go with it.
func TestDecide(t *testing.T) {
	store := mapStore{"b/k": "v", "b/k2": "w"}
	cfgPath := filepath.Join(t.TempDir(), "c.toml")
	if err := os.WriteFile(cfgPath, []byte("x = \"1\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := kvconfig.Open("cfg", cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	config := map[string]*kvconfig.Bucket{"cfg": cfg}
	set := events.KVWrite{Bucket: "b", Key: "k", Value: "n"}
	present := events.KVCheck{Bucket: "b", Key: "k", ExpectedPresent: true, Expected: "v"}
	absent := events.KVCheck{Bucket: "b", Key: "new"}
	for _, tc := range []struct {
		fn, params string
		want       Decision
	}{
		{"get", `["b","k"]`, Decision{Result: []byte(`{"ok":"v"}`)}},
		{"get", `["b","nope"]`, Decision{Result: []byte(`{"ok":null}`)}},
		{"get", `["cfg","x"]`, Decision{Result: []byte(`{"ok":"1"}`)}},
		{"get", `["","k"]`, Decision{Result: []byte(`{"err":{"invalid":"invalid argument"}}`)}},
		{"list", `["b","k",null,1]`, Decision{Result: []byte(`{"ok":{"entries":[{"key":"k","value":"v"}],"cursor":"k"}}`)}},
		{"set", `["b","k","n"]`, Decision{Result: []byte(`{"ok":null}`), Writes: []events.KVWrite{set}}},
		{"delete", `["b","k"]`, Decision{Result: []byte(`{"ok":null}`), Writes: []events.KVWrite{{Bucket: "b", Key: "k", Delete: true}}}},
		{"cas", `["b","k","v","n"]`, Decision{Result: []byte(`{"ok":true}`), Writes: []events.KVWrite{set}, Checks: []events.KVCheck{present}}},
		{"cas", `["b","k","other","n"]`, Decision{Result: []byte(`{"ok":false}`), Checks: []events.KVCheck{present}}},
		{"cas", `["b","new",null,"n"]`, Decision{Result: []byte(`{"ok":true}`), Writes: []events.KVWrite{{Bucket: "b", Key: "new", Value: "n"}}, Checks: []events.KVCheck{absent}}},
		{"set", `["cfg","x","2"]`, Decision{Result: []byte(`{"err":{"read_only":"bucket \"cfg\" is read-only: it is read from ` + cfgPath + `"}}`)}},
		{"frob", `["b","k"]`, Decision{Result: []byte(`{"err":{"invalid":"unknown function \"frob\""}}`)}},
		{"get", `{`, Decision{Result: []byte(`{"err":{"invalid":"params: unexpected end of JSON input"}}`)}},
	} {
		got, err := Decide(context.Background(), store, config, tc.fn, []byte(tc.params))
		if err != nil {
			t.Errorf("%s %s: %v", tc.fn, tc.params, err)
			continue
		}
		if string(got.Result) != string(tc.want.Result) || !reflect.DeepEqual(got.Writes, tc.want.Writes) || !reflect.DeepEqual(got.Checks, tc.want.Checks) {
			t.Errorf("%s %s = {%s %v %v}, want {%s %v %v}", tc.fn, tc.params, got.Result, got.Writes, got.Checks, tc.want.Result, tc.want.Writes, tc.want.Checks)
		}
	}
	if len(store) != 2 || store["b/k"] != "v" {
		t.Errorf("Decide changed the store: %v", store)
	}
}

// TestDecideStoreError: an error of the store other than a refusal of bad input is
// returned, not made a kv-error, so that the run is retried.
func TestDecideStoreError(t *testing.T) {
	boom := errors.New("disk on fire")
	if _, err := Decide(context.Background(), failingStore{boom}, nil, "get", []byte(`["b","k"]`)); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want %v", err, boom)
	}
}

type failingStore struct{ err error }

func (f failingStore) KVGet(context.Context, string, string) (string, bool, error) {
	return "", false, f.err
}

func (f failingStore) KVList(context.Context, string, string, string, int) ([]events.KVEntry, string, error) {
	return nil, "", f.err
}

func TestIsFunction(t *testing.T) {
	for fn, want := range map[string]bool{"get": true, "set": true, "delete": true, "list": true, "cas": true, "frob": false, "": false} {
		if IsFunction(fn) != want {
			t.Errorf("IsFunction(%q) = %v", fn, !want)
		}
	}
}
