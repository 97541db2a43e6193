package events

import (
	"math"
	"sync"
)

// scanFloors keep, per time-ordered index (the pending keys of one queue, the lock
// timers), a lower bound of the times of its live keys, so that scans can start there
// instead of at the beginning of the index. The keys before it were deleted, but their
// tombstones stay until a compaction, and skipping tens of thousands of them on every
// scan made scans the engine's hottest Pebble path.
//
// Invariant: every live key of an index has a time >= its floor. The writer lowers the
// floor after each commit that adds a key (after: so that a scan that misses the key,
// because it was not visible yet, is guaranteed to see the lowering). A scan raises the
// floor to the first live key it found, but never above a key added while it ran: those
// are collected in low, which the scan resets when it starts.
type scanFloors struct {
	mu sync.Mutex
	m  map[string]*floor
}

type floor struct {
	floor int64 // live keys are >= floor
	low   int64 // smallest time added since the running scan started
}

func (f *scanFloors) get(index string) *floor {
	fl, ok := f.m[index]
	if !ok {
		fl = &floor{floor: 0, low: math.MaxInt64}
		f.m[index] = fl
	}
	return fl
}

// added records that a key with time t was committed to index.
func (f *scanFloors) added(index string, t int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fl := f.get(index)
	fl.floor = min(fl.floor, t)
	fl.low = min(fl.low, t)
}

// startScan returns where a scan of index may start.
func (f *scanFloors) startScan(index string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	fl := f.get(index)
	fl.low = math.MaxInt64
	return fl.floor
}

// endScan raises the floor to first, the time of the first live key the scan saw
// (math.MaxInt64 if it saw none), unless a key was added meanwhile below it.
func (f *scanFloors) endScan(index string, first int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fl := f.get(index)
	fl.floor = max(fl.floor, min(first, fl.low))
}
