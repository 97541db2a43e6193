// Package histories caches the histories (event streams and response logs) of
// unfinished workflows, so that a replay reads from the store only what was appended
// since the last time.
package histories

import (
	"container/list"
	"context"
	"sync"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// Cache keeps the recently read histories of unfinished workflows, so that a
// replay (interrupt strategy, eviction, a new lock) reads only what was appended since:
// streams and response logs are append-only, so a cached prefix never goes stale.
type Cache struct {
	mu   sync.Mutex
	max  int
	lru  *list.List // of *entry, least recently used first
	byID map[string]*list.Element
}

// entry is one execution's cached history.
type entry struct {
	id    string
	evs   []*pb.Event
	resps []*pb.Response
}

// New returns a cache of the histories of up to max executions.
func New(max int) *Cache {
	return &Cache{max: max, lru: list.New(), byID: map[string]*list.Element{}}
}

// Read returns the whole event stream and response log of an execution.
func (h *Cache) Read(ctx context.Context, store events.Store, id string) ([]*pb.Event, []*pb.Response, error) {
	h.mu.Lock()
	var c entry
	if e, ok := h.byID[id]; ok {
		c = *e.Value.(*entry)
	}
	h.mu.Unlock()
	evs, err := store.Events(ctx, id, uint32(len(c.evs)), 0)
	if err != nil {
		return nil, nil, err
	}
	resps, err := store.Responses(ctx, id, uint32(len(c.resps)))
	if err != nil {
		return nil, nil, err
	}
	// Copy-on-append: the slices handed out earlier must not change under their readers.
	c.evs = append(c.evs[:len(c.evs):len(c.evs)], evs...)
	c.resps = append(c.resps[:len(c.resps):len(c.resps)], resps...)
	h.put(&entry{id: id, evs: c.evs, resps: c.resps})
	return c.evs, c.resps, nil
}

// put stores c unless a longer history of the same execution is cached already, and
// drops the least recently used beyond max.
func (h *Cache) put(c *entry) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e, ok := h.byID[c.id]; ok {
		if len(e.Value.(*entry).evs) <= len(c.evs) {
			e.Value = c
		}
		h.lru.MoveToBack(e)
		return
	}
	h.byID[c.id] = h.lru.PushBack(c)
	for h.lru.Len() > h.max {
		oldest := h.lru.Remove(h.lru.Front()).(*entry)
		delete(h.byID, oldest.id)
	}
}

// Forget drops a finished execution's history.
func (h *Cache) Forget(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e, ok := h.byID[id]; ok {
		h.lru.Remove(e)
		delete(h.byID, id)
	}
}
