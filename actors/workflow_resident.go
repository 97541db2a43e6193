package actors

import (
	"container/list"
	"sync"
	"time"

	"github.com/obelisk-go/obelisk/actors/internal/membudget"
)

// resident bounds the workflow instances kept in memory while they wait for a response
// ("await" strategy). When it is full the least recently parked waiter is evicted: its
// instance is dropped and the workflow will be replayed when its response arrives.
// Executors also evict a long-parked waiter of their own queue when every one of its
// slots is held and children are due in it (see queue.makeRoom), and the guest memory
// budget evicts the least recently parked waiters when reservations wait (run_memory.go).
type resident struct {
	mu   sync.Mutex
	max  int
	lru  *list.List // of *waiter, oldest first
	byID map[string]*waiter
}

// waiter is one parked workflow instance.
type waiter struct {
	id       string
	queue    string
	parkedAt time.Time
	signal   chan struct{}      // a commit touched the execution (maybe a response)
	evicted  chan struct{}      // closed when the waiter must give up its place
	memory   *membudget.Account // the instance's guest memory (run_memory.go); nil: none
	elem     *list.Element
}

func newResident(max int) *resident {
	return &resident{max: max, lru: list.New(), byID: map[string]*waiter{}}
}

// park registers a waiter for execution id, whose instance holds memory, evicting the
// oldest one if full. It returns nil if no instance may stay resident at all (max <= 0).
func (r *resident) park(id, queue string, memory *membudget.Account) *waiter {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.max <= 0 {
		return nil
	}
	for r.lru.Len() >= r.max {
		oldest := r.lru.Remove(r.lru.Front()).(*waiter)
		delete(r.byID, oldest.id)
		close(oldest.evicted)
	}
	w := &waiter{id: id, queue: queue, parkedAt: time.Now(), signal: make(chan struct{}, 1), evicted: make(chan struct{}), memory: memory}
	w.elem = r.lru.PushBack(w)
	r.byID[id] = w
	return w
}

// leave unregisters a waiter that stopped waiting on its own, and reports false if it
// had been evicted meanwhile (its instance must then be closed all the same).
func (r *resident) leave(w *waiter) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byID[w.id] != w {
		return false
	}
	r.lru.Remove(w.elem)
	delete(r.byID, w.id)
	return true
}

func (r *resident) notify(id string) {
	r.mu.Lock()
	w := r.byID[id]
	r.mu.Unlock()
	if w != nil {
		select {
		case w.signal <- struct{}{}:
		default:
		}
	}
}

// evictIdle evicts the least recently parked waiter of a queue that has waited at least
// minParked, and reports whether there was one.
func (r *resident) evictIdle(queue string, minParked time.Duration) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	cutoff := time.Now().Add(-minParked)
	for e := r.lru.Front(); e != nil; e = e.Next() {
		w := e.Value.(*waiter)
		if w.parkedAt.After(cutoff) {
			return false
		}
		if w.queue == queue {
			r.lru.Remove(e)
			delete(r.byID, w.id)
			close(w.evicted)
			return true
		}
	}
	return false
}

// reclaim evicts the least recently parked waiters holding memory until what they hold
// adds up to need bytes or there are none left, marks it reclaimed, and returns its sum.
// It is the budget's reclaim function (membudget.New), called with the budget's lock held (which guards the
// accounts): the resident's lock is taken after it.
func (r *resident) reclaim(need uint64) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var got uint64
	for e := r.lru.Front(); e != nil && got < need; {
		next := e.Next()
		if w := e.Value.(*waiter); w.memory != nil {
			if n := w.memory.Reclaim(); n > 0 {
				r.lru.Remove(e)
				delete(r.byID, w.id)
				close(w.evicted)
				got += n
			}
		}
		e = next
	}
	return got
}

// count is the number of parked instances.
func (r *resident) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lru.Len()
}
