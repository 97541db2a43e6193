// Package kvconfig serves the read-only buckets of the built-in KV component that are
// read from TOML files ([[kv_config]]): a file's keys are the bucket's keys, and the file
// is read again when it changes. What the KV functions do with them is package kv's.
package kvconfig

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/obelisk-go/obelisk/events"
)

// Bucket is one config bucket. Its keys are its file's keys: a nested table's keys are
// joined with dots ("db.host"), strings are their own value, anything else its JSON
// ("5432", "true", "[1,2]").
type Bucket struct {
	path string

	mu      sync.Mutex
	modTime time.Time
	size    int64
	keys    []string // sorted
	values  map[string]string
}

// Open returns bucket name, read from the TOML file at path; it fails if the file
// cannot be read or parsed.
func Open(name, path string) (*Bucket, error) {
	b := &Bucket{path: path}
	if _, _, err := b.load(); err != nil {
		return nil, fmt.Errorf("kv_config bucket %q: %w", name, err)
	}
	return b, nil
}

// Path returns the path of the bucket's file.
func (b *Bucket) Path() string { return b.path }

// load returns the sorted keys and the values, reading the file again if it changed
// since it was read. What it returns is never modified.
func (b *Bucket) load() ([]string, map[string]string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	fi, err := os.Stat(b.path)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", b.path, err)
	}
	if b.values != nil && fi.ModTime().Equal(b.modTime) && fi.Size() == b.size {
		return b.keys, b.values, nil
	}
	raw, err := os.ReadFile(b.path)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", b.path, err)
	}
	var doc map[string]any
	if err := toml.Unmarshal(raw, &doc); err != nil {
		return nil, nil, fmt.Errorf("parse %s: %w", b.path, err)
	}
	values := map[string]string{}
	if err := flattenConfig("", doc, values); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", b.path, err)
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b.keys, b.values, b.modTime, b.size = keys, values, fi.ModTime(), fi.Size()
	return keys, values, nil
}

// flattenConfig adds the keys of doc, under prefix, to out.
func flattenConfig(prefix string, doc map[string]any, out map[string]string) error {
	for k, v := range doc {
		if prefix != "" {
			k = prefix + "." + k
		}
		switch v := v.(type) {
		case map[string]any:
			if err := flattenConfig(k, v, out); err != nil {
				return err
			}
		case string:
			out[k] = v
		default:
			j, err := json.Marshal(v)
			if err != nil {
				return fmt.Errorf("key %s: %w", k, err)
			}
			out[k] = string(j)
		}
	}
	return nil
}

// Get returns the value of key and whether it is set; an error says the file cannot be
// read or parsed.
func (b *Bucket) Get(key string) (string, bool, error) {
	_, values, err := b.load()
	if err != nil {
		return "", false, err
	}
	v, ok := values[key]
	return v, ok, nil
}

// List pages through the keys as events.Store.KVList does.
func (b *Bucket) List(prefix, cursor string, limit int) ([]events.KVEntry, string, error) {
	keys, values, err := b.load()
	if err != nil {
		return nil, "", err
	}
	if limit <= 0 {
		limit = events.DefaultKVListLimit
	}
	limit = min(limit, events.MaxKVListLimit)
	i := sort.SearchStrings(keys, prefix)
	if cursor != "" {
		i = max(i, sort.Search(len(keys), func(j int) bool { return keys[j] > cursor }))
	}
	var page []events.KVEntry
	for ; i < len(keys) && strings.HasPrefix(keys[i], prefix); i++ {
		if len(page) == limit {
			return page, page[len(page)-1].Key, nil
		}
		page = append(page, events.KVEntry{Key: keys[i], Value: values[keys[i]]})
	}
	return page, "", nil
}
