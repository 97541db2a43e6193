package actors

import (
	"container/list"
	"context"
	"sync"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// historyCache keeps the recently read histories of unfinished workflows, so that a
// replay (interrupt strategy, eviction, a new lock) reads only what was appended since:
// streams and response logs are append-only, so a cached prefix never goes stale.
type historyCache struct {
	mu   sync.Mutex
	max  int
	lru  *list.List // of *cachedHistory, least recently used first
	byID map[string]*list.Element
}

type cachedHistory struct {
	id    string
	evs   []*pb.Event
	resps []*pb.Response
}

func newHistoryCache(max int) *historyCache {
	return &historyCache{max: max, lru: list.New(), byID: map[string]*list.Element{}}
}

// read returns the whole event stream and response log of an execution.
func (h *historyCache) read(ctx context.Context, store events.Store, id string) ([]*pb.Event, []*pb.Response, error) {
	h.mu.Lock()
	var c cachedHistory
	if e, ok := h.byID[id]; ok {
		c = *e.Value.(*cachedHistory)
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
	h.put(&cachedHistory{id: id, evs: c.evs, resps: c.resps})
	return c.evs, c.resps, nil
}

func (h *historyCache) put(c *cachedHistory) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e, ok := h.byID[c.id]; ok {
		if len(e.Value.(*cachedHistory).evs) <= len(c.evs) {
			e.Value = c
		}
		h.lru.MoveToBack(e)
		return
	}
	h.byID[c.id] = h.lru.PushBack(c)
	for h.lru.Len() > h.max {
		oldest := h.lru.Remove(h.lru.Front()).(*cachedHistory)
		delete(h.byID, oldest.id)
	}
}

// forget drops a finished execution's history.
func (h *historyCache) forget(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e, ok := h.byID[id]; ok {
		h.lru.Remove(e)
		delete(h.byID, id)
	}
}
