package actors

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

// KVConfigBucket is a read-only bucket of the built-in KV component whose entries are
// the keys of a TOML file (Config.KVConfig).
type KVConfigBucket struct {
	Bucket string
	// Path of the TOML file. Its keys are the bucket's keys: a nested table's keys are
	// joined with dots ("db.host"), strings are their own value, anything else its
	// JSON ("5432", "true", "[1,2]"). The file is read again when it changes.
	Path string
}

// kvConfigBucket serves one KVConfigBucket.
type kvConfigBucket struct {
	path string

	mu      sync.Mutex
	modTime time.Time
	size    int64
	keys    []string // sorted
	values  map[string]string
}

func newKVConfigBucket(cfg KVConfigBucket) (*kvConfigBucket, error) {
	b := &kvConfigBucket{path: cfg.Path}
	if _, _, err := b.load(); err != nil {
		return nil, fmt.Errorf("kv_config bucket %q: %w", cfg.Bucket, err)
	}
	return b, nil
}

// load returns the sorted keys and the values, reading the file again if it changed
// since it was read. What it returns is never modified.
func (b *kvConfigBucket) load() ([]string, map[string]string, error) {
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

func (b *kvConfigBucket) get(key string) (string, bool, error) {
	_, values, err := b.load()
	if err != nil {
		return "", false, err
	}
	v, ok := values[key]
	return v, ok, nil
}

// list pages through the keys as events.Store.KVList does.
func (b *kvConfigBucket) list(prefix, cursor string, limit int) ([]events.KVEntry, string, error) {
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
