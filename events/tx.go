package events

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

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
	// delay ID is an error) and answers its delay, whose timer is then not kept.
	Responses []*pb.Response
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
	for _, a := range tx.Appends {
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
			prev := st.GetEventChain()
			if len(prev) == 0 {
				// The stream's first linked event (chain.go).
				prev = chainSeed(chainEvents, a.ExecutionID)
			}
			b, link, err := marshalLinked(unlinkedEvent(ev), prev)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("append %s v%d: marshal: %w", a.ExecutionID, v, err)
			}
			nst.EventChain = link
			ops = append(ops, kv{k: eventKey(a.ExecutionID, v), v: b})
			if d := ev.GetHistory().GetJoinSetRequest().GetDelay(); d != nil {
				ops = append(ops, kv{k: delayKey(d.ExpiresAt, d.DelayId)}, kv{k: delayAtKey(d.DelayId), v: u64(d.ExpiresAt)})
				newDelays = append(newDelays, d)
			}
			if ev.GetFinished() != nil && nst.ComponentType == pb.ComponentType_COMPONENT_TYPE_WORKFLOW {
				drop, err := g.s.finishedSnapshotOps(a.ExecutionID)
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
		if d := r.Response.GetDelay(); d != nil && !answered[d.DelayId] {
			// The delay's timer goes with its first answer, even one that is dropped.
			delOps, err := g.forgetDelay(d.DelayId, newDelays)
			if err != nil {
				return nil, nil, nil, err
			}
			ops = append(ops, delOps...)
			answered[d.DelayId] = true
		}
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
		resp := proto.CloneOf(r.Response)
		resp.Cursor = st.ResponseCount
		resp.AtVersion = st.NextVersion
		resp.Chain = nil
		nst, err := FoldResponse(st, resp)
		if err != nil {
			return nil, nil, nil, err
		}
		b, err := linkResponse(r.ExecutionID, st, nst, resp)
		if err != nil {
			return nil, nil, nil, err
		}
		ops = append(ops, kv{k: responseKey(r.ExecutionID, resp.Cursor), v: b}, kv{k: []byte(dk), v: u32(resp.Cursor)})
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
	puts, err := g.unfinishedSnapshots(tx.Snapshots, overlay)
	if err != nil {
		return nil, nil, nil, err
	}
	snapOps, err := g.snapshotOps(puts, overlay)
	if err != nil {
		return nil, nil, nil, err
	}
	ops = append(ops, snapOps...)
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
		if d := r.GetDelay(); d != nil && !answered[d.DelayId] {
			delOps, err := g.forgetDelay(d.DelayId, newDelays)
			if err != nil {
				return nil, 0, nil, nil, err
			}
			ops = append(ops, delOps...)
			answered[d.DelayId] = true
		}
		resp := proto.CloneOf(r)
		resp.Cursor, resp.AtVersion = st.ResponseCount, st.NextVersion
		resp.Chain = nil
		nst, err := FoldResponse(st, resp)
		if err != nil {
			return nil, 0, nil, nil, err
		}
		b, err := linkResponse(a.ExecutionID, st, nst, resp)
		if err != nil {
			return nil, 0, nil, nil, err
		}
		ops = append(ops, kv{k: responseKey(a.ExecutionID, resp.Cursor), v: b}, kv{k: []byte(dk), v: u32(resp.Cursor)})
		newDedupe = append(newDedupe, dk)
		st = nst
	}
	return st, ri, ops, newDedupe, nil
}

// linkResponse returns the stored bytes of resp, the response that took execution id
// from state st to nst, linked to the last response of st (chain.go), and records its
// link in nst.
func linkResponse(id string, st, nst *pb.ExecutionState, resp *pb.Response) ([]byte, error) {
	prev := st.ResponseChain
	if len(prev) == 0 {
		prev = chainSeed(chainResponses, id)
	}
	b, link, err := marshalLinked(resp, prev)
	if err != nil {
		return nil, fmt.Errorf("respond to %s: marshal: %w", id, err)
	}
	nst.ResponseChain = link
	return b, nil
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
