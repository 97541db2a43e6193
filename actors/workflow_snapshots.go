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

	"github.com/obelisk-go/obelisk/actors/internal/membudget"
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
func (r *workflowRun) snapshotBeforeLeaving(ctx context.Context) { r.snapshot(ctx, false) }

// snapshotBeforeEviction is snapshotBeforeLeaving for an instance evicted from memory:
// the memory budget waits for it to close, so only the capture is done before; the
// commit (and its sync) goes on in the background. A snapshot is a hint: a run that
// starts before it is stored replays, and one lost with a crash or a closing store is
// as if it had not been taken.
func (r *workflowRun) snapshotBeforeEviction(ctx context.Context) { r.snapshot(ctx, true) }

// snapshot captures the run's instance and stores the snapshot, waiting for the commit
// unless background.
func (r *workflowRun) snapshot(ctx context.Context, background bool) {
	every := r.e.cfg.SnapshotEvery
	// Everything the run recorded is written (nothing pending, nothing left to replay):
	// the stream's first r.version events hold exactly the history up to r.pos, which a
	// resume then need not read.
	if every <= 0 || !r.waiting || r.pos-r.snapshotAt < every || len(r.pending) > 0 || r.pos != len(r.history) {
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
		Position: uint32(r.pos), Version: r.version, ComponentID: r.c.ID}}}}
	e, id, pos := r.e, r.id, r.pos
	commit := func(ctx context.Context) bool {
		e.hook("snapshots", "commit")
		if _, err := e.store.Commit(ctx, tx); err != nil {
			e.log.Warn("workflow: store snapshot", "execution", id, "err", err)
			return false
		}
		e.log.Debug("workflow: snapshot stored", "execution", id, "position", pos, "bytes", len(blob))
		return true
	}
	if background {
		r.snapshotAt = r.pos                                    // not again for as long, stored or not
		e.goLoop(func() { commit(context.WithoutCancel(ctx)) }) // Close waits for it, before the store closes
		return
	}
	if commit(context.WithoutCancel(ctx)) {
		r.snapshotAt = r.pos
	}
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

// resumeFromSnapshot returns the run runID of the workflow locked by st and, if one of
// its snapshots fits, an instance resumed from the newest that does, the run's state set
// to the snapshot's. With no instance (nil), the run has its whole history read and its
// state untouched: it replays from the start. The error is a failure to read the
// history.
//
// A snapshot with a Version (checked by its Link) needs only the events from its version
// on: the run resumed from it does not read the history before it (the history holds nil
// there), which after a restart is most of a resume's time for a long history. One
// without (stored before Version existed) is checked against the whole history's
// digest, as before.
func (e *Engine) resumeFromSnapshot(ctx context.Context, c *Component, st *pb.ExecutionState, runID string, memory *membudget.Account) (*workflowRun, *wasmhost.Instance, error) {
	var full *workflowRun // with the whole history: read once, when needed
	replay := func() (*workflowRun, error) {
		if full != nil {
			return full, nil
		}
		return e.newWorkflowRun(ctx, c, st, runID, memory)
	}
	// The stream is at least as long as the history: a snapshot needs a history of at
	// least every events.
	if every := e.cfg.SnapshotEvery; every <= 0 || int(st.NextVersion) < every {
		r, err := replay()
		return r, nil, err
	}
	id := st.ExecutionId
	entries, err := e.store.Snapshots(ctx, id)
	if err != nil {
		e.log.Warn("workflow: list snapshots", "execution", id, "err", err)
		r, err := replay()
		return r, nil, err
	}
	for _, en := range entries {
		skip := func(msg string, args ...any) {
			e.log.Warn("workflow: snapshot not used: "+msg, append([]any{"execution", id, "position", en.Position}, args...)...)
		}
		if en.ComponentID != c.ID {
			e.log.Info("workflow: snapshot not used: taken on another component", "execution", id, "position", en.Position,
				"snapshot_component", en.ComponentID, "component", c.ID)
			continue
		}
		var r *workflowRun
		switch {
		case en.Version > 0 && !en.Current:
			skip("the history up to it changed")
			continue
		case en.Version > 0:
			if r, err = e.runFromVersion(ctx, c, st, runID, memory, en); err != nil {
				skip("read the history after it", "err", err)
				continue
			}
		default:
			if full == nil {
				if full, err = e.newWorkflowRun(ctx, c, st, runID, memory); err != nil {
					return nil, nil, err
				}
			}
			r = full
			if int(en.Position) > len(r.history) {
				skip("beyond the stored history", "history", len(r.history))
				continue
			}
			if !bytes.Equal(historyDigest(r.history[:en.Position]), en.Prefix) {
				skip("the history up to it changed")
				continue
			}
		}
		if inst := r.resume(ctx, en, skip); inst != nil {
			return r, inst, nil
		}
	}
	// None fits: the run replays, and snapshots at its first chance (snapshotAt 0),
	// an unusable snapshot (of another component, say) holding nothing back.
	r, err := replay()
	return r, nil, err
}

// runFromVersion returns the run runID of the workflow locked by st with the events
// from snapshot en's version on read (and the Created event, and every response), to be
// resumed from en.
func (e *Engine) runFromVersion(ctx context.Context, c *Component, st *pb.ExecutionState, runID string, memory *membudget.Account, en events.SnapshotEntry) (*workflowRun, error) {
	id := st.ExecutionId
	evs, err := e.store.Events(ctx, id, 0, 1)
	if err != nil {
		return nil, err
	}
	tail, err := e.store.Events(ctx, id, en.Version, 0)
	if err != nil {
		return nil, err
	}
	resps, err := e.store.Responses(ctx, id, 0)
	if err != nil {
		return nil, err
	}
	return e.makeWorkflowRun(c, st, runID, memory, append(evs, tail...), resps, int(en.Position))
}

// resume returns an instance resumed from snapshot en, whose history up to it is the
// run's, with the run's state set to the snapshot's; or nil, the run's state untouched,
// if the snapshot cannot be used (said with skip).
func (r *workflowRun) resume(ctx context.Context, en events.SnapshotEntry, skip func(msg string, args ...any)) *wasmhost.Instance {
	blob, err := r.e.store.SnapshotBlob(ctx, r.id, en)
	if err != nil {
		skip("read", "err", err)
		return nil
	}
	s, image, err := decodeRunSnapshot(blob)
	if err == nil && s.Pos != int(en.Position) {
		err = fmt.Errorf("taken at position %d, indexed at %d", s.Pos, en.Position)
	}
	if err != nil {
		skip("decode", "err", err)
		return nil
	}
	if id, ok := r.unarrived(s); !ok {
		skip("more responses taken than the response log holds", "join_set", id)
		return nil
	}
	wait := s.Wait
	answer := func(ctx context.Context) ([]byte, error) { return r.await(ctx, wait) }
	inst, err := r.e.instantiateWith(ctx, r.c, wasmhost.KindWorkflow, r.memory, r.lockExpires, func() (*wasmhost.Instance, error) {
		return r.c.module.ResumeParked(ctx, r.instanceConfig(), image, answer)
	})
	if err != nil {
		if ctx.Err() == nil {
			skip("resume", "err", err)
		}
		return nil
	}
	r.adopt(s)
	r.snapshotAt = s.Pos
	r.e.log.Debug("workflow: resumed from a snapshot", "execution", r.id, "position", s.Pos, "history", len(r.history))
	return inst
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
