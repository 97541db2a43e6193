package events

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/obelisk-go/obelisk/internal/clip"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// What a commit asks for (Tx), and how the writer folds one Tx against the group's
// working states: expected versions and run IDs checked, events and responses folded
// into new states, a response delivered at most once (its dedupe key), a delay's timer
// keys removed with its first answer. Folding is pure with respect to the group: apply
// returns the writes and the new states, and the writer adopts them only if the whole
// Tx succeeded.

// Append adds events to one execution's stream.
type Append struct {
	ExecutionID string
	// ExpectedVersion is the version the first event gets: 0 creates the stream.
	ExpectedVersion uint32
	// RunID, when set, must be the run that holds (or last held) the execution's lock.
	RunID  string
	Events []*pb.Event
	// Responses are folded between the events, for a history copied with its responses
	// (a fork, which starts as a prefix of another execution's history): each one before
	// the event whose version is its AtVersion, those at or past the end after the last
	// event, in the order given (AtVersion must not decrease). Each gets the next cursor
	// and the version it lands at, is delivered once (a second one with the same child or
	// delay ID is an error) and answers its delay, whose timer is then not kept. Only an
	// Append that creates its execution (ExpectedVersion 0) may carry them: they are
	// checked for duplicates within the Append only.
	Responses []*pb.Response

	// prepared are the Events marshalled and hashed by Commit (prepareEvents).
	prepared []preparedEvent
}

// ResponseAppend delivers a response to an execution. A second delivery with the same
// child or delay ID is ignored, and so is a delivery to an execution that has finished.
type ResponseAppend struct {
	ExecutionID string
	Response    *pb.Response
}

// Tx is applied atomically: all of it or nothing.
type Tx struct {
	Appends   []Append
	Responses []ResponseAppend
	// Logs are guest log lines (logs.go), stored only if the rest of the Tx is.
	Logs []LogAppend
	// KVChecks are checked first, then KV applied in order (kv.go); each sees the KV
	// writes of the Txs before it in its group and the earlier ones of its own. A Tx may
	// hold KV writes alone.
	KVChecks []KVCheck
	KV       []KVWrite
	// Schedules set or delete the records of periodic schedules (schedules.go), in
	// order. A Tx may hold them alone.
	Schedules []ScheduleWrite
	// Cache records ok results in the activity result cache (cache.go).
	Cache []CachePut
	// Snapshots are workflow memory snapshots to store (snapshots.go); a Tx may hold
	// them alone.
	Snapshots []SnapshotPut
}

// groupState is the writer's view while applying one group.
type groupState struct {
	s       *PebbleStore
	orig    map[string]*pb.ExecutionState // as persisted before the group; nil = did not exist
	working map[string]*pb.ExecutionState
	dedupe  map[string]bool
	// delays requested in this group (delay ID -> expiry; -1 once answered), which the
	// database does not show yet.
	delays map[string]int64
	// delayTimes and cacheTimes are the expiries of the delay and cache-expiry keys this
	// group adds (for the floors).
	delayTimes, cacheTimes []int64
	// logs are the log counts this group changed (logs.go).
	logs map[string]LogStats
	// kv holds the KV values this group wrote (kv.go), by key.
	kv map[string]kvValue
	// snaps holds the snapshot index of each execution whose snapshots this group
	// stored (snapshots.go), newest first.
	snaps map[string][]SnapshotEntry
}

func (g *groupState) get(id string) (*pb.ExecutionState, error) {
	if st, ok := g.working[id]; ok {
		return st, nil
	}
	if g.s.hidden(id) {
		// Neither a write to it nor a new execution under its ID may land in the
		// middle of a deletion.
		return nil, fmt.Errorf("%s: its tree is being deleted: %w", id, ErrNotFound)
	}
	st, err := g.s.loadState(id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	g.orig[id] = st
	g.working[id] = st
	return st, nil
}

// kv is one write of a batch: a set, or a delete.
type kv struct {
	k, v []byte
	del  bool
}

// apply validates and folds one tx against the group's working states, its log lines
// included, and returns the writes, the new states and the log counts. It records
// nothing in the group before the whole tx passed: a failed tx leaves no trace.
func (g *groupState) apply(tx *Tx) ([]kv, map[string]*pb.ExecutionState, map[string]LogStats, error) {
	overlay := map[string]*pb.ExecutionState{}
	get := func(id string) (*pb.ExecutionState, error) {
		if st, ok := overlay[id]; ok {
			return st, nil
		}
		return g.get(id)
	}
	var ops []kv
	var newDedupe []string
	var newDelays []*pb.DelayRequest
	answered := map[string]bool{}
	if err := prepareEvents(tx, false); err != nil { // a no-op for a Tx from Commit or ApplyLogged
		return nil, nil, nil, err
	}
	for _, a := range tx.Appends {
		if len(a.Responses) > 0 && a.ExpectedVersion != 0 {
			// Only a new execution's copied history comes with its responses: one
			// delivered to an existing execution goes through Tx.Responses, which
			// checks it against every response it was given before.
			return nil, nil, nil, fmt.Errorf("append %s v%d: responses with the events of an existing execution (only its creation may carry them): %w", a.ExecutionID, a.ExpectedVersion, ErrInvalidArgument)
		}
		st, err := get(a.ExecutionID)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("append %s: %w", a.ExecutionID, err)
		}
		next := uint32(0)
		if st != nil {
			next = st.NextVersion
		} else if a.ExpectedVersion != 0 {
			return nil, nil, nil, fmt.Errorf("append %s v%d: %w", a.ExecutionID, a.ExpectedVersion, ErrNotFound)
		}
		if a.ExpectedVersion != next {
			return nil, nil, nil, &ConflictError{ExecutionID: a.ExecutionID, Expected: a.ExpectedVersion, Actual: next}
		}
		if a.RunID != "" && (st == nil || st.RunId != a.RunID) {
			holder := ""
			if st != nil {
				holder = st.RunId
			}
			return nil, nil, nil, &ConflictError{ExecutionID: a.ExecutionID, Expected: a.ExpectedVersion, Actual: next,
				Reason: fmt.Sprintf("run %s does not hold the lock (held by %q)", a.RunID, holder)}
		}
		ri := 0 // a.Responses folded so far
		for i, ev := range a.Events {
			v := a.ExpectedVersion + uint32(i)
			if ri < len(a.Responses) {
				if st, ri, ops, newDedupe, err = g.foldCopied(a, st, ri, v, ops, newDedupe, newDelays, answered); err != nil {
					return nil, nil, nil, err
				}
			}
			nst, err := Fold(a.ExecutionID, st, v, ev)
			if err != nil {
				return nil, nil, nil, err
			}
			if v == 0 && nst.ForkedFrom != "" {
				// The fork is listed under its original (b key, indexes.go): an original
				// that is gone, or whose tree retention is deleting (the mark is in the
				// writer's order, before or after this), must not get a listing that
				// outlives it.
				if o, err := get(nst.ForkedFrom); err != nil || o == nil {
					if err == nil {
						err = ErrNotFound
					}
					return nil, nil, nil, fmt.Errorf("create fork %s of %s: the original: %w", a.ExecutionID, clip.String(nst.ForkedFrom), err)
				}
			}
			prev := st.GetEventChain()
			if len(prev) == 0 {
				// The stream's first linked event (chain.go).
				prev = chainSeed(chainEvents, a.ExecutionID)
			}
			b, link := linkPrepared(a.prepared[i], prev)
			nst.EventChain = link
			ops = append(ops, kv{k: eventKey(a.ExecutionID, v), v: b})
			if d := ev.GetHistory().GetJoinSetRequest().GetDelay(); d != nil {
				ops = append(ops, kv{k: delayKey(d.ExpiresAt, d.DelayId)}, kv{k: delayAtKey(d.DelayId), v: u64(d.ExpiresAt)})
				newDelays = append(newDelays, d)
			}
			if ev.GetFinished() != nil && nst.ComponentType == pb.ComponentType_COMPONENT_TYPE_WORKFLOW {
				drop, err := g.finishedSnapshotOps(a.ExecutionID)
				if err != nil {
					return nil, nil, nil, err
				}
				ops = append(ops, drop...)
			}
			st = nst
		}
		if ri < len(a.Responses) {
			var err error
			if st, _, ops, newDedupe, err = g.foldCopied(a, st, ri, math.MaxUint32, ops, newDedupe, newDelays, answered); err != nil {
				return nil, nil, nil, err
			}
		}
		overlay[a.ExecutionID] = st
	}
	for _, r := range tx.Responses {
		respID := responseID(r.Response)
		// The delay's timer goes with its first answer, even one that is dropped.
		delOps, err := g.answerDelay(r.Response, newDelays, answered)
		if err != nil {
			return nil, nil, nil, err
		}
		ops = append(ops, delOps...)
		dk := string(dedupeKey(r.ExecutionID, respID))
		if g.dedupe[dk] || slicesContains(newDedupe, dk) {
			continue
		}
		if _, closer, err := g.s.db.Get([]byte(dk)); err == nil {
			closer.Close()
			continue
		} else if !errors.Is(err, pebble.ErrNotFound) {
			return nil, nil, nil, readFailed(fmt.Errorf("respond to %s: %w", r.ExecutionID, err))
		}
		st, err := get(r.ExecutionID)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("respond to %s: %w", r.ExecutionID, err)
		}
		if st == nil {
			return nil, nil, nil, fmt.Errorf("respond to %s: %w", r.ExecutionID, ErrNotFound)
		}
		if st.Status == pb.Status_STATUS_FINISHED {
			// Nothing can consume it any more; refusing it would refuse the sender's own
			// events in the same Tx (a child's Finished) forever.
			continue
		}
		nst, respOps, err := deliver(r.ExecutionID, st, r.Response, dk)
		if err != nil {
			return nil, nil, nil, err
		}
		ops = append(ops, respOps...)
		newDedupe = append(newDedupe, dk)
		overlay[r.ExecutionID] = nst
	}
	// The log lines last, and before anything is recorded in the group: a Tx refused for
	// its logs must leave no delivered response or delay behind.
	logOps, logStats, err := g.logOps(tx.Logs, overlay)
	if err != nil {
		return nil, nil, nil, err
	}
	ops = append(ops, logOps...)
	ops = append(ops, cacheOps(tx.Cache)...)
	for _, p := range tx.Cache {
		g.cacheTimes = append(g.cacheTimes, p.ExpiresAt)
	}
	prepareSnapshots(tx, false) // a no-op for a Tx that came through Commit or ApplyLogged
	snapOps, snaps, err := g.snapshotOps(tx.Snapshots, overlay)
	if err != nil {
		return nil, nil, nil, err
	}
	ops = append(ops, snapOps...)
	for id, es := range snaps {
		g.snaps[id] = es
	}
	for _, dk := range newDedupe {
		g.dedupe[dk] = true
	}
	for _, d := range newDelays {
		g.delays[d.DelayId] = d.ExpiresAt
		g.delayTimes = append(g.delayTimes, d.ExpiresAt)
	}
	for id := range answered {
		g.delays[id] = -1
	}
	return ops, overlay, logStats, nil
}

// foldCopied folds the responses of a (a copied history: Append.Responses) from the
// ri-th on whose at_version is at most upTo into st, and returns the new state, the
// index of the next one, and ops and newDedupe with their writes added. A delay they
// answer loses its timer (requested in this tx: newDelays) and is marked answered.
// a creates its execution (apply checks it), so no response can have been delivered to
// it before this tx: a duplicate is one within a.
func (g *groupState) foldCopied(a Append, st *pb.ExecutionState, ri int, upTo uint32, ops []kv, newDedupe []string, newDelays []*pb.DelayRequest, answered map[string]bool) (*pb.ExecutionState, int, []kv, []string, error) {
	for ; ri < len(a.Responses) && a.Responses[ri].AtVersion <= upTo; ri++ {
		r := a.Responses[ri]
		switch {
		case ri > 0 && r.AtVersion < a.Responses[ri-1].AtVersion:
			return nil, 0, nil, nil, fmt.Errorf("append %s: responses out of order (at_version %d after %d)", a.ExecutionID, r.AtVersion, a.Responses[ri-1].AtVersion)
		case st == nil:
			return nil, 0, nil, nil, fmt.Errorf("append %s: a response before its Created event", a.ExecutionID)
		}
		respID := responseID(r)
		dk := string(dedupeKey(a.ExecutionID, respID))
		if slicesContains(newDedupe, dk) {
			return nil, 0, nil, nil, fmt.Errorf("append %s: %s answered twice", a.ExecutionID, respID)
		}
		delOps, err := g.answerDelay(r, newDelays, answered)
		if err != nil {
			return nil, 0, nil, nil, err
		}
		ops = append(ops, delOps...)
		nst, respOps, err := deliver(a.ExecutionID, st, r, dk)
		if err != nil {
			return nil, 0, nil, nil, err
		}
		ops = append(ops, respOps...)
		newDedupe = append(newDedupe, dk)
		st = nst
	}
	return st, ri, ops, newDedupe, nil
}

// deliver folds r into st, the state of execution id, as its next response, and returns
// the new state and the writes: the response, linked to the one before it (chain.go),
// and its dedupe key dk. The caller has checked that r was not delivered before.
func deliver(id string, st *pb.ExecutionState, r *pb.Response, dk string) (*pb.ExecutionState, []kv, error) {
	resp := proto.CloneOf(r)
	resp.Cursor, resp.AtVersion = st.ResponseCount, st.NextVersion
	resp.Chain = nil
	nst, err := FoldResponse(st, resp)
	if err != nil {
		return nil, nil, err
	}
	prev := st.ResponseChain
	if len(prev) == 0 {
		prev = chainSeed(chainResponses, id)
	}
	b, link, err := marshalLinked(resp, prev)
	if err != nil {
		return nil, nil, fmt.Errorf("respond to %s: marshal: %w", id, err)
	}
	nst.ResponseChain = link
	return nst, []kv{{k: responseKey(id, resp.Cursor), v: b}, {k: []byte(dk), v: u32(resp.Cursor)}}, nil
}

// answerDelay returns the deletes of the timer of the delay r answers, if r is a delay's
// first answer in the tx (answered, which it updates).
func (g *groupState) answerDelay(r *pb.Response, newDelays []*pb.DelayRequest, answered map[string]bool) ([]kv, error) {
	d := r.GetDelay()
	if d == nil || answered[d.DelayId] {
		return nil, nil
	}
	ops, err := g.forgetDelay(d.DelayId, newDelays)
	if err != nil {
		return nil, err
	}
	answered[d.DelayId] = true
	return ops, nil
}

// forgetDelay returns the deletes of a delay's timer keys, wherever the delay was
// requested: in this tx (requested), earlier in the group, or in the database.
func (g *groupState) forgetDelay(id string, requested []*pb.DelayRequest) ([]kv, error) {
	for _, d := range requested {
		if d.DelayId == id {
			return []kv{{delayKey(d.ExpiresAt, id), nil, true}, {delayAtKey(id), nil, true}}, nil
		}
	}
	if at, ok := g.delays[id]; ok {
		if at < 0 {
			return nil, nil
		}
		return []kv{{delayKey(at, id), nil, true}, {delayAtKey(id), nil, true}}, nil
	}
	v, closer, err := g.s.db.Get(delayAtKey(id))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, readFailed(fmt.Errorf("read delay %s: %w", id, err))
	}
	at := int64(binary.BigEndian.Uint64(v))
	closer.Close()
	return []kv{{delayKey(at, id), nil, true}, {delayAtKey(id), nil, true}}, nil
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func responseID(r *pb.Response) string {
	switch k := r.Kind.(type) {
	case *pb.Response_Child:
		return k.Child.ChildExecutionId
	case *pb.Response_Delay:
		return k.Delay.DelayId
	}
	return ""
}
