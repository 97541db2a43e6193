// Package snapshot is the home of the snapshots of an execution's state: it rebuilds,
// checks and checkpoints the fold of an execution's stream.
//
// It is used at run time by `obelisk server verify`, which runs [VerifyEach] on the
// store of a stopped server, as well as by the tests (every end-to-end test server's
// store is verified when it stops). The snapshots of a workflow's memory, which let a
// replay start from a checkpoint instead of from its first event, and the verification
// of a component hotfix against the recorded histories will live here too.
//
// An execution is two append-only logs: its events (versions 0, 1, 2, ...) and its
// responses (cursors 0, 1, 2, ...). Its [pb.ExecutionState] is the fold of both with
// [events.Fold] and [events.FoldResponse], which are pure: time comes only from the
// events, and a state depends on nothing but the items folded into it and their order.
//
// The order is the one thing the two logs do not carry by themselves, which is what
// Response.at_version is for: the store stamps each response with the stream's
// next_version at the moment it applies it. A response with at_version v was therefore
// folded after event v-1 and before event v; responses with the same at_version were
// folded in cursor order. Because the store folds every event and response exactly once,
// in that order, and writes the resulting state in the same atomic batch as the items
// themselves, the state it stores always equals [Refold] of the logs it stores. That is
// the invariant [Verify], [VerifyAll] and [VerifyEach] check.
//
// A [Snapshot] is that fold at some point of the interleaved order: the state after the
// first Version events and the first ResponseCursor responses. [FoldFrom] continues from
// it with the rest of the logs, so recovering a long stream does not have to fold it from
// version 0. A snapshot is an optimisation only, never the source of truth: it can always
// be thrown away and rebuilt with Refold, and FoldFrom(snapshot at any point, rest) equals
// Refold(everything).
//
// This file holds the fold and its snapshots; verify.go compares stored states with
// their refold.
package snapshot

import (
	"fmt"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// Snapshot is the fold of an execution's first Version events and first ResponseCursor
// responses. The zero Snapshot is the point before the Created event.
type Snapshot struct {
	// State is the folded state; nil in the zero Snapshot. It must not be modified.
	State *pb.ExecutionState
	// Version is the number of events folded into State: the version of the next event.
	Version uint32
	// ResponseCursor is the number of responses folded into State: the cursor of the
	// next response.
	ResponseCursor uint32
}

// Take returns the snapshot of a state, as folded so far. The state is copied, so the
// caller may go on using st.
func Take(st *pb.ExecutionState) Snapshot {
	if st == nil {
		return Snapshot{}
	}
	return Snapshot{State: events.CloneState(st), Version: st.NextVersion, ResponseCursor: st.ResponseCount}
}

// Refold rebuilds the state of execution id from scratch: it folds events (versions 0,
// 1, ... in order) and responses (cursors 0, 1, ... in order), interleaved by
// Response.AtVersion. It fails if the logs are not contiguous, if a response's
// AtVersion lies beyond the events given, or if the fold rejects an item.
func Refold(id string, evs []*pb.Event, responses []*pb.Response) (*pb.ExecutionState, error) {
	return foldFrom(id, Snapshot{}, evs, responses)
}

// FoldFrom continues the fold from a snapshot: evs are the events from version
// snap.Version on, responses the responses from cursor snap.ResponseCursor on. The
// snapshot is not modified. FoldFrom of the zero Snapshot is Refold, except that it has
// no execution ID to give the Created event: use Refold for that.
func FoldFrom(snap Snapshot, evs []*pb.Event, responses []*pb.Response) (*pb.ExecutionState, error) {
	if snap.State == nil {
		return nil, fmt.Errorf("fold from snapshot: the snapshot has no state (use Refold)")
	}
	return foldFrom(snap.State.ExecutionId, snap, evs, responses)
}

func foldFrom(id string, snap Snapshot, evs []*pb.Event, responses []*pb.Response) (*pb.ExecutionState, error) {
	st := snap.State
	if st != nil && (st.NextVersion != snap.Version || st.ResponseCount != snap.ResponseCursor) {
		return nil, fmt.Errorf("refold %s: snapshot at v%d/r%d holds a state at v%d/r%d",
			id, snap.Version, snap.ResponseCursor, st.NextVersion, st.ResponseCount)
	}
	version, cursor := snap.Version, snap.ResponseCursor
	end := snap.Version + uint32(len(evs))
	foldEventsBefore := func(v uint32) error {
		for ; version < v; version++ {
			next, err := events.Fold(id, st, version, evs[version-snap.Version])
			if err != nil {
				return fmt.Errorf("refold %s: event v%d: %w", id, version, err)
			}
			st = next
		}
		return nil
	}
	for _, r := range responses {
		switch {
		case r.Cursor != cursor:
			return nil, fmt.Errorf("refold %s: response with cursor %d where %d was expected", id, r.Cursor, cursor)
		case r.AtVersion < version:
			return nil, fmt.Errorf("refold %s: response %d is at v%d, but v%d has been folded before it", id, r.Cursor, r.AtVersion, version)
		case r.AtVersion > end:
			return nil, fmt.Errorf("refold %s: response %d is at v%d, beyond the %d events given", id, r.Cursor, r.AtVersion, end)
		}
		if err := foldEventsBefore(r.AtVersion); err != nil {
			return nil, err
		}
		if st == nil {
			return nil, fmt.Errorf("refold %s: response %d comes before the created event", id, r.Cursor)
		}
		next, err := events.FoldResponse(st, r)
		if err != nil {
			return nil, fmt.Errorf("refold %s: response %d: %w", id, r.Cursor, err)
		}
		st = next
		cursor++
	}
	if err := foldEventsBefore(end); err != nil {
		return nil, err
	}
	if st == nil {
		return nil, fmt.Errorf("refold %s: %w", id, events.ErrNotFound)
	}
	return st, nil
}
