// Package verify checks a whole event store: every execution's stored state against the
// refold of its logs (package snapshot), every hash chain of its events and responses
// (events/chain.go), and every workflow execution against its pinned component by a
// shadow replay, when a [Replayer] is given. `obelisk verify` runs it on the store of a
// stopped server, the API's Verify on a server's live store; both read an
// [events.View], each execution as it was at one moment (the view moves on between
// executions, so as not to pin a big store's files for the whole run).
//
// A damaged execution is reported and the check goes on with the next one; a store that
// cannot be read ends the check with an error (and is not "verified").
package verify

import (
	"context"
	"errors"
	"fmt"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	"github.com/obelisk-go/obelisk/snapshot"
)

// The checks a Failure can come from.
const (
	CheckRefold = "refold"
	CheckChain  = "chain"
	CheckReplay = "replay"
)

// Replayer replays a workflow execution, whose state is st, against its pinned
// component in a sandbox that writes nothing. It returns nil when the component
// reproduces the recorded history, a *DivergenceError when it does not, and any other
// error when the execution could not be replayed (its component cannot be loaded, say),
// which is reported as a failure of the execution too.
type Replayer func(ctx context.Context, st *pb.ExecutionState) error

// ErrNotReplayable, wrapped in what a Replayer returns, says that the execution cannot
// be replayed and that this is no failure: it finished on a component version that is
// no longer kept. Run counts it neither replayed nor failed.
var ErrNotReplayable = errors.New("not replayable")

// DivergenceError is a replay that did not reproduce the recorded history.
type DivergenceError struct {
	// Detail says where and how the code diverged.
	Detail string
}

// Error returns the detail.
func (e *DivergenceError) Error() string { return "replay diverged: " + e.Detail }

// Options say what Run checks beyond refolds and chains.
type Options struct {
	// Replay, if set, replays every workflow execution; if nil, none is replayed and
	// Report.ReplayAvailable is false.
	Replay Replayer
}

// Failure is one execution that does not check.
type Failure struct {
	ExecutionID string `json:"execution_id"`
	// Check is CheckRefold, CheckChain or CheckReplay.
	Check string `json:"check"`
	// Field, Stored and Refolded: the first field of the state that differs from its
	// refold, and its two values (a refold failure; Field is empty when the logs do not
	// even fold).
	Field    string `json:"field,omitempty"`
	Stored   string `json:"stored,omitempty"`
	Refolded string `json:"refolded,omitempty"`
	// Log and Index: the first broken link, "event" and its version or "response" and
	// its cursor (a chain failure).
	Log   string  `json:"log,omitempty"`
	Index *uint32 `json:"index,omitempty"`
	// Error says it all in words.
	Error string `json:"error"`
}

// Report counts what a Run checked.
type Report struct {
	// Executions is the number of executions refolded and compared with their state,
	// and whose chains were checked.
	Executions int `json:"executions"`
	// EventsLinked and ResponsesLinked are the links checked; EventsUnchained and
	// ResponsesUnchained the items stored before hash chains existed, which have none.
	EventsLinked       int `json:"events_linked"`
	ResponsesLinked    int `json:"responses_linked"`
	EventsUnchained    int `json:"events_unchained"`
	ResponsesUnchained int `json:"responses_unchained"`
	// Workflows is the number of workflow executions, Replayed those replayed (when
	// ReplayAvailable, all but those the Replayer found not replayable).
	Workflows       int  `json:"workflows"`
	Replayed        int  `json:"workflows_replayed"`
	ReplayAvailable bool `json:"replay_available"`
	// Failures is the number of failures found (an execution may fail several checks).
	Failures int `json:"failure_count"`
}

// Source is what Run reads: an *events.View.
type Source interface {
	snapshot.Reader
	CheckChains(ctx context.Context, st *pb.ExecutionState) (evs, responses events.ChainCounts, err error)
}

// Run checks every execution of src and calls failed with each failure, in execution
// ID order. It returns the counts; an error from failed or a failure to read src ends it
// and is returned.
func Run(ctx context.Context, src Source, opts Options, failed func(Failure) error) (Report, error) {
	rep := Report{ReplayAvailable: opts.Replay != nil}
	report := func(f Failure) error {
		rep.Failures++
		return failed(f)
	}
	err := src.AllStates(ctx, func(st *pb.ExecutionState) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		id := st.ExecutionId
		rep.Executions++
		failure, err := snapshot.Check(ctx, src, st)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// Logs that cannot be read or decoded are this execution's damage (the
			// chain check says where): the check goes on with the next one.
			failure = err
		}
		if failure != nil {
			if err := report(refoldFailure(id, failure)); err != nil {
				return err
			}
		}
		evs, responses, err := src.CheckChains(ctx, st)
		rep.EventsLinked += evs.Linked
		rep.EventsUnchained += evs.Unchained
		rep.ResponsesLinked += responses.Linked
		rep.ResponsesUnchained += responses.Unchained
		var cb *events.ChainBreakError
		switch {
		case errors.As(err, &cb):
			index := cb.Index
			if err := report(Failure{ExecutionID: id, Check: CheckChain, Log: cb.Log, Index: &index, Error: cb.Error()}); err != nil {
				return err
			}
		case err != nil:
			return err
		}
		if st.ComponentType != pb.ComponentType_COMPONENT_TYPE_WORKFLOW {
			return nil
		}
		rep.Workflows++
		if opts.Replay == nil {
			return nil
		}
		err = opts.Replay(ctx, st)
		if errors.Is(err, ErrNotReplayable) {
			return nil
		}
		rep.Replayed++
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return report(Failure{ExecutionID: id, Check: CheckReplay, Error: fmt.Sprintf("execution %s: %v", id, err)})
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("verify the store: %w", err)
	}
	return rep, nil
}

func refoldFailure(id string, failure error) Failure {
	f := Failure{ExecutionID: id, Check: CheckRefold}
	var me *snapshot.MismatchError
	if errors.As(failure, &me) {
		f.Field, f.Stored, f.Refolded = me.Field, me.Stored, me.Refolded
		f.Error = me.Error()
	} else {
		f.Error = fmt.Sprintf("execution %s: its logs do not refold: %v", id, failure)
	}
	return f
}
