package actors

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	"github.com/obelisk-go/obelisk/wasmhost"
)

// Workflow memory snapshots: a workflow instance that must leave memory while it waits
// (interrupted, evicted) is captured first, when its history has grown by at least
// Config.SnapshotEvery events since its last snapshot, and a later run resumes from the
// newest snapshot that still fits the stored history instead of replaying it all.
//
// A snapshot is the instance's state (wasmhost.CaptureParked: memory, globals, clock,
// random source, the host call it is parked in) and the run's, at the wait: the history
// position, the join sets as the workflow sees them there, the one-off and generated
// join set counters, the log lines logged, and the wait itself (parkedWait). What a
// replay rebuilds from the store anyway (responses arrived, lock, version) is not in it.
// The wait is the tail of the host call the guest is parked in, after everything it
// recorded: resuming answers the call by doing that tail (finishCall, finishJoinNext,
// finishSleep), which is what the replay would do once it had matched the call against
// the recorded history. Only those three waits are snapshotted; a wait elsewhere
// (closing a join set) replays.
//
// A snapshot is used only if its component is the execution's (an execution moved onto
// another component must not resume in the old one's memory), its position is within the
// stored history and the digest of the history up to it is the one it was taken with.
// One that does not fit, does not decode or that the module refuses is logged and
// skipped; the run then tries the older one, and replays from the start if none fits.

// DefaultSnapshotEvery is Config.SnapshotEvery's default.
const DefaultSnapshotEvery = 1000

// The waits a snapshot can resume.
const (
	waitCall     = "call"
	waitJoinNext = "join_next"
	waitSleep    = "sleep"
)

// parkedWait is the rest of the host call the workflow waits in.
type parkedWait struct {
	Op        string `json:"op"`
	JoinSet   string `json:"join_set"`
	FFQN      string `json:"ffqn,omitempty"`
	DelayID   string `json:"delay_id,omitempty"`
	ExpiresAt int64  `json:"expires_at,omitempty"`
}

// await finishes a host call with w, during which the instance may be snapshotted.
func (r *workflowRun) await(ctx context.Context, w parkedWait) ([]byte, error) {
	r.wait, r.waiting = w, true
	resp, err := w.finish(ctx, r)
	r.waiting = false
	return resp, err
}

func (w parkedWait) finish(ctx context.Context, r *workflowRun) ([]byte, error) {
	switch w.Op {
	case waitCall:
		return r.finishCall(ctx, w.JoinSet)
	case waitJoinNext:
		return r.finishJoinNext(ctx, w.JoinSet, w.FFQN)
	case waitSleep:
		return r.finishSleep(ctx, w.JoinSet, w.DelayID, w.ExpiresAt)
	}
	return nil, fmt.Errorf("snapshot: unknown wait %q", w.Op)
}

// runSnapshot is the run's side of a snapshot.
type runSnapshot struct {
	Pos       int           `json:"pos"`
	OneOff    int           `json:"one_off"`
	Generated int           `json:"generated"`
	Logged    uint64        `json:"logged"`
	Sets      []snapshotSet `json:"sets"` // in creation order
	Wait      parkedWait    `json:"wait"`
}

type snapshotSet struct {
	ID       string            `json:"id"`
	Requests []snapshotRequest `json:"requests"`
	Taken    int               `json:"taken"`
	Closed   bool              `json:"closed"`
}

type snapshotRequest struct {
	ID      string `json:"id"`
	FFQN    string `json:"ffqn,omitempty"`
	Delay   bool   `json:"delay,omitempty"`
	Expires int64  `json:"expires,omitempty"`
}

// snapshotBeforeLeaving stores a snapshot of the run's instance, which is about to leave
// memory while it waits, if the policy asks for one. ctx is the host call's. A failure
// is logged: the run will replay instead.
func (r *workflowRun) snapshotBeforeLeaving(ctx context.Context) {
	every := r.e.cfg.SnapshotEvery
	if every <= 0 || !r.waiting || r.pos-r.snapshotAt < every || len(r.pending) > 0 {
		return
	}
	image, err := wasmhost.CaptureParked(ctx)
	if err != nil {
		lvl := r.e.log.Warn
		if errors.Is(err, wasmhost.ErrNotResumable) {
			lvl = r.e.log.Debug
		}
		lvl("workflow: no snapshot", "execution", r.id, "err", err)
		r.snapshotAt = r.pos // not again for as long
		return
	}
	s := runSnapshot{Pos: r.pos, OneOff: r.oneOff, Generated: r.generated, Logged: r.logs.logged, Wait: r.wait}
	for _, id := range r.setOrder {
		set := r.sets[id]
		ss := snapshotSet{ID: id, Taken: set.taken, Closed: set.closed}
		for _, q := range set.requests {
			ss.Requests = append(ss.Requests, snapshotRequest{ID: q.id, FFQN: q.ffqn, Delay: q.delay, Expires: q.expires})
		}
		s.Sets = append(s.Sets, ss)
	}
	head, err := json.Marshal(s)
	if err != nil {
		r.e.log.Warn("workflow: no snapshot", "execution", r.id, "err", err)
		return
	}
	blob := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(head)+len(image)), uint32(len(head)))
	blob = append(append(blob, head...), image...)
	tx := &events.Tx{Snapshots: []events.SnapshotPut{{ExecutionID: r.id, Blob: blob, Entry: events.SnapshotEntry{
		Position: uint32(r.pos), Prefix: historyDigest(r.history[:r.pos]), ComponentID: r.c.ID}}}}
	if _, err := r.e.store.Commit(context.WithoutCancel(ctx), tx); err != nil {
		r.e.log.Warn("workflow: store snapshot", "execution", r.id, "err", err)
		return
	}
	r.snapshotAt = r.pos
	r.e.log.Debug("workflow: snapshot stored", "execution", r.id, "position", r.pos, "bytes", len(blob))
}

// historyDigest is the digest of a history prefix a snapshot records and checks.
func historyDigest(h []*pb.HistoryEvent) []byte {
	sum := sha256.New()
	var buf []byte
	opts := proto.MarshalOptions{Deterministic: true}
	for _, ev := range h {
		var err error
		buf, err = opts.MarshalAppend(binary.BigEndian.AppendUint32(buf[:0], uint32(opts.Size(ev))), ev)
		if err != nil {
			return nil // matches nothing: the snapshot is not used
		}
		sum.Write(buf)
	}
	return sum.Sum(nil)
}

// resumeFromSnapshot returns an instance resumed from the newest snapshot that fits the
// run's history, with the run's state set to the snapshot's, or nil (the run's state
// untouched) when there is none: the run then replays from the start. make makes the
// instance from a snapshot's image (bounded and counted like any instantiation).
func (r *workflowRun) resumeFromSnapshot(ctx context.Context, cfg wasmhost.InstanceConfig, make func(wasmhost.InstanceConfig, []byte, wasmhost.Answer) (*wasmhost.Instance, error)) *wasmhost.Instance {
	if every := r.e.cfg.SnapshotEvery; every <= 0 || len(r.history) < every {
		return nil // none taken: a snapshot needs a history of at least every events
	}
	entries, err := r.e.store.Snapshots(ctx, r.id)
	if err != nil {
		r.e.log.Warn("workflow: list snapshots", "execution", r.id, "err", err)
		return nil
	}
	if len(entries) > 0 {
		r.snapshotAt = int(entries[0].Position)
	}
	var digests map[uint32][]byte
	for _, e := range entries {
		skip := func(msg string, args ...any) {
			r.e.log.Warn("workflow: snapshot not used: "+msg, append([]any{"execution", r.id, "position", e.Position}, args...)...)
		}
		if e.ComponentID != r.c.ID {
			r.e.log.Info("workflow: snapshot not used: taken on another component", "execution", r.id, "position", e.Position,
				"snapshot_component", e.ComponentID, "component", r.c.ID)
			continue
		}
		if int(e.Position) > len(r.history) {
			skip("beyond the stored history", "history", len(r.history))
			continue
		}
		if digests == nil {
			digests = map[uint32][]byte{}
		}
		if _, ok := digests[e.Position]; !ok {
			digests[e.Position] = historyDigest(r.history[:e.Position])
		}
		if !bytes.Equal(digests[e.Position], e.Prefix) {
			skip("the history up to it changed")
			continue
		}
		blob, err := r.e.store.SnapshotBlob(ctx, r.id, e)
		if err != nil {
			skip("read", "err", err)
			continue
		}
		s, image, err := decodeRunSnapshot(blob)
		if err == nil && s.Pos != int(e.Position) {
			err = fmt.Errorf("taken at position %d, indexed at %d", s.Pos, e.Position)
		}
		if err != nil {
			skip("decode", "err", err)
			continue
		}
		if id, ok := r.unarrived(s); !ok {
			skip("more responses taken than the response log holds", "join_set", id)
			continue
		}
		wait := s.Wait
		inst, err := make(cfg, image, func(ctx context.Context) ([]byte, error) { return r.await(ctx, wait) })
		if err != nil {
			if ctx.Err() == nil {
				skip("resume", "err", err)
			}
			continue
		}
		r.adopt(s)
		r.snapshotAt = s.Pos
		r.e.log.Debug("workflow: resumed from a snapshot", "execution", r.id, "position", s.Pos, "history", len(r.history))
		return inst
	}
	return nil
}

func decodeRunSnapshot(blob []byte) (runSnapshot, []byte, error) {
	var s runSnapshot
	if len(blob) < 4 || uint64(binary.BigEndian.Uint32(blob))+4 > uint64(len(blob)) {
		return s, nil, errors.New("truncated blob")
	}
	n := binary.BigEndian.Uint32(blob)
	dec := json.NewDecoder(bytes.NewReader(blob[4 : 4+n]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return s, nil, fmt.Errorf("run state: %w", err)
	}
	switch s.Wait.Op {
	case waitCall, waitJoinNext, waitSleep:
	default:
		return s, nil, fmt.Errorf("unknown wait %q", s.Wait.Op)
	}
	seen := map[string]bool{}
	for _, set := range s.Sets {
		if seen[set.ID] || set.Taken < 0 || set.Taken > len(set.Requests) {
			return s, nil, fmt.Errorf("join set %q: duplicate or taken %d of %d", set.ID, set.Taken, len(set.Requests))
		}
		seen[set.ID] = true
	}
	if !seen[s.Wait.JoinSet] || s.Pos < 0 {
		return s, nil, fmt.Errorf("the wait's join set %q is not among the sets", s.Wait.JoinSet)
	}
	return s, blob[4+n:], nil
}

// unarrived checks that every response a snapshot's join sets took has arrived, and
// returns the first join set for which not.
func (r *workflowRun) unarrived(s runSnapshot) (string, bool) {
	for _, ss := range s.Sets {
		if ss.Taken > len(r.arrived[ss.ID]) {
			return ss.ID, false
		}
	}
	return "", true
}

// adopt sets the run's state to a snapshot's (whose position is within r.history and
// whose responses have been added).
func (r *workflowRun) adopt(s runSnapshot) {
	r.pos, r.oneOff, r.generated = s.Pos, s.OneOff, s.Generated
	r.logs.logged = s.Logged // the lines its instance logged up to the snapshot
	for _, ss := range s.Sets {
		set := &runJoinSet{taken: ss.Taken, closed: ss.Closed}
		for _, q := range ss.Requests {
			req := runRequest{id: q.ID, ffqn: q.FFQN, delay: q.Delay, expires: q.Expires}
			if q.FFQN != "" {
				// As a replay finds it (callable): a route that no longer resolves leaves
				// the function unknown.
				if fn, err := r.e.reg.route(r.c, q.FFQN, ""); err == nil {
					req.fn = fn
				}
			}
			set.requests = append(set.requests, req)
		}
		r.sets[ss.ID] = set
		r.setOrder = append(r.setOrder, ss.ID)
		for _, resp := range r.arrived[ss.ID][:ss.Taken] { // unarrived: all there
			if c := resp.GetChild(); c != nil {
				r.processed[c.ChildExecutionId] = resp
			}
		}
	}
}
