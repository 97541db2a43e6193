package events

import (
	"encoding/binary"
	"strings"
)

// Key layout. Every key starts with a one-byte table tag and a 0 separator; IDs never
// contain a 0 byte. Integers are big-endian so that byte order is numeric order; times
// are Unix nanoseconds (positive, so they order as unsigned).
//
//	e\0<id>\0<version:4>         event
//	r\0<id>\0<cursor:4>          response
//	d\0<id>\0<child-or-delay-id> response dedupe -> cursor
//	s\0<id>                      ExecutionState (read model)
//	p\0<queue>\0<due:8>\0<id>    pending, due at (only status pending_at, not paused)
//	t\0<expires:8>\0<id>         lock expiry timer (only status locked)
//	c\0<created:8>\0<id>         every execution by creation time
//	k\0<parent>\0<child>         children by parent
//	l\0<id>                      live (not finished) executions
//	w\0<expires:8>\0<delay-id>   delay timer (delays requested, not answered yet)
//	u\0<deadline:8>\0<id>        deadline timer (a deadline, not finished, no cancellation requested)
//	y\0<delay-id>                 the delay's expiry (to find its w key)
//	g\0<position:8>              global event log -> <version:4><id> (see global.go)
//	o\0<id>[\0<seq:8>]           guest log lines and their counts (see logs.go)
//	q\0<id>\0<version:4>         the event's global position -> <position:8> (to delete it)
//	f\0<component>\0<finished:8>\0<id>  finished top-level executions (retention.go)
//	x\0<id>                      a top-level execution's tree is being deleted (retention.go)
//	b\0<original>\0<fork>         forks of an execution (Engine.Fork), by the original
//	v\0<bucket>\0<key>           a KV entry -> its value (kv.go); of no execution
//	j\0<name>                    a periodic schedule's record (schedules.go); of no execution
//	h\0<component>\0<ffqn>\0<params-sha256:32> -> <expires:8><id>  activity result cache (cache.go)
//	H\0<expires:8>\0<h key>         its expiry order
//	n\0<id>\0b|i\0...           workflow memory snapshots: blobs and index (snapshots.go)
//	m\0global-last               the last position ever given (kept when its g key is deleted)
//	m\0finished-indexed          the f index is complete (built at Open for older stores)
//	m\0chained                   the store was created with hash chains (view.go)
//	m\0chained-since -> <position:8>  the store was upgraded to hash chains after that position (view.go)
//
// The keys of one execution tree (a top-level E_<ULID> and its descendants, whose IDs
// extend it with ".<join-set>_<n>") in the tables e, r, d, s, k, l, q, o, b, n are <tag>\0<root>,
// <tag>\0<root>\0... and <tag>\0<root>.... : deleting a tree is two ranges per table
// (treeTags and treeSpans in retention.go). Its delays' y keys start with
// y\0Delay_<ULID>. (the delay ID is the root's ULID and the rest of a child ID).
//
// Written once: every key of the tables e, q, g, r, d, c, k and every log line
// o\0<id>\0<seq> is Set at most once in the store's life and never overwritten (a
// version, position, response cursor, delivered response, creation, child or log line
// is never given twice). Retention deletes them with SingleDelete (writtenOnce in
// retention.go), which is only correct for such keys: a key Set twice and then
// SingleDeleted comes back with its first value. A change that writes one of these keys
// again (a rewrite, a repair, a copy into an existing store) must take its table out of
// writtenOnce; TestWrittenOnce checks the invariant through the WAL.
const (
	tagEvent    = 'e'
	tagResponse = 'r'
	tagDedupe   = 'd'
	tagState    = 's'
	tagPending  = 'p'
	tagTimer    = 't'
	tagCreated  = 'c'
	tagChild    = 'k'
	tagLive     = 'l'
	tagDelay    = 'w'
	tagDelayAt  = 'y'
	tagGlobal   = 'g'
	tagPosition = 'q'
	tagFinished = 'f'
	tagDeleting = 'x'
	tagMeta     = 'm'
	tagKV       = 'v'
	tagFork     = 'b'
	tagSchedule = 'j'
	tagDeadline = 'u'
)

func key(tag byte, parts ...[]byte) []byte {
	n := 1
	for _, p := range parts {
		n += 1 + len(p)
	}
	k := make([]byte, 0, n)
	k = append(k, tag)
	for _, p := range parts {
		k = append(k, 0)
		k = append(k, p...)
	}
	return k
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func u64(v int64) []byte  { return binary.BigEndian.AppendUint64(nil, uint64(v)) }

func eventKey(id string, v uint32) []byte    { return key(tagEvent, []byte(id), u32(v)) }
func responseKey(id string, c uint32) []byte { return key(tagResponse, []byte(id), u32(c)) }
func dedupeKey(id, respID string) []byte     { return key(tagDedupe, []byte(id), []byte(respID)) }
func stateKey(id string) []byte              { return key(tagState, []byte(id)) }
func pendingKey(q string, at int64, id string) []byte {
	return key(tagPending, []byte(q), u64(at), []byte(id))
}
func timerKey(at int64, id string) []byte    { return key(tagTimer, u64(at), []byte(id)) }
func createdKey(at int64, id string) []byte  { return key(tagCreated, u64(at), []byte(id)) }
func liveKey(id string) []byte               { return key(tagLive, []byte(id)) }
func childKey(parent, child string) []byte   { return key(tagChild, []byte(parent), []byte(child)) }
func delayKey(at int64, id string) []byte    { return key(tagDelay, u64(at), []byte(id)) }
func deadlineKey(at int64, id string) []byte { return key(tagDeadline, u64(at), []byte(id)) }
func delayAtKey(id string) []byte            { return key(tagDelayAt, []byte(id)) }
func globalKey(pos uint64) []byte            { return key(tagGlobal, binary.BigEndian.AppendUint64(nil, pos)) }
func positionKey(id string, v uint32) []byte { return key(tagPosition, []byte(id), u32(v)) }
func finishedKey(component string, at int64, id string) []byte {
	return key(tagFinished, []byte(component), u64(at), []byte(id))
}
func deletingKey(root string) []byte { return key(tagDeleting, []byte(root)) }
func forkKey(original, fork string) []byte {
	return key(tagFork, []byte(original), []byte(fork))
}

// globalLastKey holds the last position given, once retention deleted the last g key:
// positions are never reused.
var globalLastKey = key(tagMeta, []byte("global-last"))

// prefixEnd returns the smallest key greater than every key with the given prefix.
func prefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}

// lastPart returns what follows the last 0 separator of a key: the ID in pending, timer,
// created and child keys.
func lastPart(k []byte) string {
	s := string(k)
	return s[strings.LastIndexByte(s, 0)+1:]
}
