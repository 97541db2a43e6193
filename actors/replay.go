package actors

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"

	"github.com/obelisk-go/obelisk/actors/internal/membudget"
	"github.com/obelisk-go/obelisk/events"
	"github.com/obelisk-go/obelisk/internal/clip"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	"github.com/obelisk-go/obelisk/wasmhost"
	"github.com/obelisk-go/obelisk/wasmhost/wit"
	"github.com/obelisk-go/obelisk/wasmstore"
)

// Shadow replay.
//
// Engine.Replay runs a workflow execution's recorded history against its pinned
// component or another one, on the run path every run takes (workflowRun), in a
// sandbox: the run's engine is a sandbox engine (Engine.sandbox), whose store is a
// read-only view of the real one (events.ReadOnlyView), so that no path of the run can
// write, whatever it tries; and its effects (runEffects) are replayEffects, which
// serve every response from the log as it was read when the replay began and stop
// the run, instead of writing or waiting, where it goes past its history. No activity
// runs (children are never created: their responses are the recorded ones), nothing is
// written, and nothing leaves the process: a workflow has no HTTP of its own.
//
// The report says whether the code reproduced every recorded step, and then what it
// would do next (an unfinished execution) or the result it returns (a finished one,
// compared with the recorded result), or where it first diverged, with the guest's own
// log lines up to there.

// errReplayEnd stops a shadow replay where the workflow goes past its recorded history:
// its next step would write or wait.
var errReplayEnd = errors.New("shadow replay: the workflow went past its recorded history")

// maxReplayDuration bounds one shadow replay: a replay runs no children and waits for
// nothing, so only a workflow that loops without host calls can take this long.
const maxReplayDuration = 2 * time.Minute

// replayBound is how long a shadow replay of st may run: maxReplayDuration, or, for an
// execution that finished timed out (its runs ran past their locks), long enough to
// tell a run that stops from one that spins as those did, and no longer: a replay does
// in a fraction of a lock what a run does in one.
func replayBound(c *Component, st *pb.ExecutionState) time.Duration {
	if !timedOut(st) {
		return maxReplayDuration
	}
	return min(maxReplayDuration, max(10*c.Config.LockExpiry, 5*time.Second))
}

// timedOut reports whether st finished as timed out.
func timedOut(st *pb.ExecutionState) bool {
	return st.Status == pb.Status_STATUS_FINISHED && failureKind(st.Result) == events.FailureTimedOut
}

// failureKind is the kind of an execution failure result ("" for any other result).
func failureKind(result []byte) events.FailureKind {
	res, err := events.ParseResult(result)
	if err != nil || res.Failure == nil {
		return ""
	}
	return res.Failure.Kind
}

// maxReplayLogLines bounds the guest log lines a replay report keeps (the last ones:
// those before the divergence).
const maxReplayLogLines = 1000

// ReplayTarget is the code a shadow replay runs. Component is a component's name or ID,
// deployed or retired; Wasm is a component file, compiled for the replay only (Source
// names it in messages: a path, an OCI reference); neither: the execution's pinned
// component.
type ReplayTarget struct {
	Component string
	Wasm      []byte
	Source    string
}

// ReplayStep is a step of a workflow as a replay reports it: a history event, recorded
// or produced by the code, or what a run does past its history that is not one.
type ReplayStep struct {
	// Kind is the event's kind (join_set_create, submit, delay, join_next,
	// join_next_try, persist, schedule, stub), or wait (on a join set), cancel (a
	// request a closing join set leaves open), return (the workflow's result).
	Kind string `json:"kind"`
	// Function and Params: a child's or a scheduled execution's.
	Function string          `json:"function,omitempty"`
	Params   json.RawMessage `json:"params,omitempty"`
	JoinSet  string          `json:"join_set,omitempty"`
	// ExecutionID is the child, scheduled execution, stub target or delay the step is
	// about.
	ExecutionID string `json:"execution_id,omitempty"`
	// Detail is the step in words.
	Detail string `json:"detail"`
}

// ReplayDivergence is where a replay first differed from the history.
type ReplayDivergence struct {
	// Index is the history event (0-based, counting history events only) where the code
	// diverged; the history's length when the difference is past its end (a different
	// result, or more steps than a finished execution recorded).
	Index int
	// Recorded is the recorded step (nil: past the history's end); Produced the step
	// the code produced instead (nil: it returned).
	Recorded, Produced *ReplayStep
	// Detail says what differed, in words.
	Detail string
	// StepVersion is the stream version where the host call that diverged began: a
	// fork keeping the history before it (Engine.Fork) is at a step boundary.
	StepVersion uint32
}

// ReplayLog is a line the guest logged during the replay.
type ReplayLog struct {
	Time    time.Time
	Level   string
	Message string
}

// ReplayReport is what a shadow replay found.
type ReplayReport struct {
	ExecutionID string
	// ComponentID is the component replayed against; Pinned the execution's.
	ComponentID, Pinned string
	// HistoryEvents is the recorded history's length, Replayed how many of its events
	// the code reproduced.
	HistoryEvents, Replayed int
	// Version is the stream version replayed (the state's NextVersion when it was read).
	Version uint32
	// Finished: the execution has finished; RecordedResult is its result.
	Finished       bool
	RecordedResult []byte
	// OK: the code reproduced every recorded step (and the recorded result, for a
	// finished execution); Divergence is set otherwise.
	OK         bool
	Divergence *ReplayDivergence
	// Next is what the code does past the history (OK, unfinished, or finished as
	// nondeterministic): the events it would write, then what it would wait for.
	Next []ReplayStep
	// Result is what the code returned, if it returned.
	Result []byte
	// Logs are the guest's lines, the last maxReplayLogLines of them; LogsDropped
	// counts those before.
	Logs        []ReplayLog
	LogsDropped int
	Took        time.Duration
}

// Replay replays execution id against target in a sandbox (see above).
func (e *Engine) Replay(ctx context.Context, id string, target ReplayTarget) (*ReplayReport, error) {
	started := time.Now()
	st, evs, resps, err := e.workflowHistory(ctx, id, "replayed")
	if err != nil {
		return nil, fmt.Errorf("replay %s: %w", id, err)
	}
	c, done, err := e.replayComponent(ctx, st, target)
	if err != nil {
		return nil, err
	}
	defer done()
	rep, err := e.sandbox().replay(ctx, c, st, evs, resps)
	if err != nil {
		return nil, fmt.Errorf("replay %s against %s: %w", id, c.ID, err)
	}
	rep.Took = time.Since(started)
	return rep, nil
}

// workflowHistory reads what a replay or a fork of execution id starts from: its state,
// its events, then its response log (read after the events, so that every response they
// took is in it). An execution that is not a workflow's is refused: only workflow
// executions can be verb ("replayed", "forked").
func (e *Engine) workflowHistory(ctx context.Context, id, verb string) (*pb.ExecutionState, []*pb.Event, []*pb.Response, error) {
	st, err := e.store.State(ctx, id)
	if err != nil {
		return nil, nil, nil, err
	}
	if st.ComponentType != pb.ComponentType_COMPONENT_TYPE_WORKFLOW {
		return nil, nil, nil, &InvalidArgumentError{fmt.Errorf("only workflow executions can be %s; %s is an execution of %s, a %s", verb, id, st.Ffqn, componentTypeName(st.ComponentType))}
	}
	evs, err := e.store.Events(ctx, id, 0, 0)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read events: %w", err)
	}
	resps, err := e.store.Responses(ctx, id, 0)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read responses: %w", err)
	}
	if len(evs) == 0 || evs[0].GetCreated() == nil {
		return nil, nil, nil, fmt.Errorf("the stream of %s does not begin with its creation", id)
	}
	return st, evs, resps, nil
}

// sandbox returns an engine for shadow replays: it shares e's components, runtime and
// limits (its instances count in e's guest memory budget), and reads e's store through
// a view that cannot write. It has no executors,
// timers, services or resident instances: a run on it reaches none (replayEffects).
func (e *Engine) sandbox() *Engine {
	return &Engine{cfg: e.cfg, log: e.log, store: events.ReadOnlyView(e.store), rt: e.rt, reg: e.reg,
		executor: e.executor, instantiating: e.instantiating, memory: e.memory, failed: make(chan struct{})}
}

// replayComponent returns the component a replay of st runs (see ReplayTarget) and what
// to call when the replay is over (a component compiled for it is closed).
func (e *Engine) replayComponent(ctx context.Context, st *pb.ExecutionState, target ReplayTarget) (*Component, func(), error) {
	nothing := func() {}
	pinned, havePinned := e.reg.functionOf(st.ComponentId, st.Ffqn)
	switch {
	case target.Component == "" && len(target.Wasm) == 0:
		if err := e.unavailable[st.ComponentId]; err != nil {
			return nil, nil, fmt.Errorf("replay %s: %w", st.ExecutionId, err)
		}
		if !havePinned {
			return nil, nil, &InvalidArgumentError{fmt.Errorf("replay %s: no component of this server exports %s (pinned to %s)", st.ExecutionId, st.Ffqn, st.ComponentId)}
		}
		return pinned.Component, nothing, nil
	case len(target.Wasm) == 0:
		c, err := e.reg.lookup(target.Component)
		if err != nil {
			return nil, nil, err
		}
		if err := e.checkRunsOn(st, c, target.Component); err != nil {
			return nil, nil, err
		}
		if c.module == nil {
			return nil, nil, &FailedPreconditionError{fmt.Sprintf("component %s is not compiled here: an offline engine (OpenOffline) compiles only the versions its workflow executions are pinned to", target.Component)}
		}
		return c, nothing, nil
	}
	digest := wasmstore.Digest(target.Wasm)
	for _, c := range append(append([]*Component(nil), e.reg.components...), e.reg.retired...) {
		if c.Digest == digest && c.Config.Type == Workflow {
			return c, nothing, e.checkRunsOn(st, c, target.Source)
		}
	}
	files, err := wit.ExtractFromWasm(target.Wasm)
	if err != nil {
		return nil, nil, &InvalidArgumentError{fmt.Errorf("component %s: %w", target.Source, err)}
	}
	cfg := ComponentConfig{Name: "replay", Type: Workflow, LockExpiry: time.Minute}
	if havePinned {
		cfg = pinned.Component.Config // its limits and routing, under its name
		cfg.Path = ""
	}
	c, err := compileComponent(ctx, runtimeCompiler{e.rt}, cfg, target.Wasm, files)
	if err != nil {
		return nil, nil, &InvalidArgumentError{fmt.Errorf("component %s: %w", target.Source, err)}
	}
	done := func() { _ = c.module.Close(context.WithoutCancel(ctx)) }
	if err := e.checkRunsOn(st, c, target.Source); err != nil {
		done()
		return nil, nil, err
	}
	// Its imports go where the deployed components' do; strict=false: one that does
	// not resolve fails when it is called, as a retired version's would.
	_ = e.reg.routeImports(c, false)
	return c, done, nil
}

// replay runs the workflow of st with component c on e, a sandbox engine, from the
// history evs and the response log resps.
func (e *Engine) replay(ctx context.Context, c *Component, st *pb.ExecutionState, evs []*pb.Event, resps []*pb.Response) (*ReplayReport, error) {
	outer := ctx
	ctx, cancel := context.WithTimeout(ctx, replayBound(c, st))
	defer cancel()
	fx := &replayEffects{}
	r := &workflowRun{
		e: e, c: c, id: st.ExecutionId, runID: "replay", created: evs[0].GetCreated(), version: st.NextVersion,
		// Never half gone: the run never renews a lock (a write).
		lockExpires: time.Now().Add(100 * 365 * 24 * time.Hour),
		responses:   map[string]*pb.Response{}, sets: map[string]*runJoinSet{}, arrived: map[string][]*pb.Response{},
		processed: map[string]*pb.Response{}, fx: fx,
	}
	r.load(evs, resps)
	recorded := len(r.history)
	var memory *membudget.Account
	var err error
	if e.memory != nil { // an offline engine (OpenOffline) has no budget: nothing else runs
		// A replay's instance holds guest memory as a run's does, and waits for room as
		// a run does (until the replay's bound).
		if memory, err = e.admitRun(ctx, c); err != nil {
			return nil, fmt.Errorf("reserve guest memory: %w", err)
		}
		defer memory.Close() // after the instance is closed (deferred below)
	}
	inst, err := e.instantiate(ctx, c, r.instanceConfig(), memory, time.Time{})
	if err != nil {
		return nil, fmt.Errorf("instantiate: %w", err)
	}
	defer inst.Close(context.WithoutCancel(ctx))
	logs := &replayLogs{}
	inst.SetLogging(wasmhost.RunLogging{Sink: logs, CaptureStdout: c.Config.CaptureStdout, CaptureStderr: c.Config.CaptureStderr})
	_, runErr := r.play(ctx, inst)

	rep := &ReplayReport{ExecutionID: st.ExecutionId, ComponentID: c.ID, Pinned: st.ComponentId, HistoryEvents: recorded, Version: uint32(len(evs)),
		Finished: st.Status == pb.Status_STATUS_FINISHED}
	if rep.Finished {
		rep.RecordedResult = st.Result
	}
	rep.Logs, rep.LogsDropped = logs.lines()
	// A finished execution's history is complete unless it finished because a run
	// diverged (nondeterminism_detected) or it was cancelled: then the code may go on.
	complete := rep.Finished && !endedEarly(st.Result)
	var trap *wasmhost.TrapError
	var nd *NondeterminismError
	switch {
	case runErr == nil || errors.As(runErr, &trap):
		result := r.returned
		rep.Result, rep.Replayed, rep.OK = result, min(r.pos, recorded), true
		switch {
		case r.pos < recorded:
			// It ended (a trap: a return would be nondeterminism already) before it
			// reproduced the whole history: the live run would fail where the recording
			// went on.
			rep.OK = false
			rep.Divergence = &ReplayDivergence{Index: r.pos, Recorded: stepOf(r.history[r.pos]), StepVersion: historyVersion(evs, r.pos),
				Produced: &ReplayStep{Kind: "return", Detail: "return " + clip.String(string(result))},
				Detail:   fmt.Sprintf("at history event %d: recorded %s, the workflow now ends with %s", r.pos, describe(r.history[r.pos]), clip.String(string(result)))}
		case complete && !sameJSON(result, st.Result):
			rep.OK = false
			rep.Divergence = &ReplayDivergence{Index: recorded, Detail: fmt.Sprintf("the recorded result is %s, the workflow now returns %s", clip.String(string(st.Result)), clip.String(string(result)))}
		case !complete:
			rep.Next = append(fx.steps(r), ReplayStep{Kind: "return", Detail: "return " + clip.String(string(result))})
		}
	case errors.As(runErr, &nd):
		rep.Replayed = min(nd.Index, recorded)
		rep.Divergence = &ReplayDivergence{Index: nd.Index, Recorded: stepOf(nd.Recorded), Produced: stepOf(nd.Produced), Detail: nd.Detail,
			StepVersion: historyVersion(evs, nd.Step)}
	case errors.Is(runErr, errReplayEnd):
		rep.Replayed, rep.OK, rep.Next = recorded, true, fx.next
		if r.returned != nil {
			// It returned, and what it did before (past the history) was flushed: the
			// return comes after those steps.
			rep.Result = r.returned
			rep.Next = append(rep.Next, ReplayStep{Kind: "return", Detail: "return " + clip.String(string(r.returned))})
		}
		if complete {
			rep.OK = false
			produced := &ReplayStep{Kind: "wait", Detail: "(nothing)"}
			if len(fx.next) > 0 {
				produced = &fx.next[0]
			}
			rep.Divergence = &ReplayDivergence{Index: recorded, Produced: produced,
				Detail: fmt.Sprintf("the history ends with the result %s, the workflow now goes on: %s", clip.String(string(st.Result)), produced.Detail)}
		}
	case ctx.Err() != nil && outer.Err() == nil && r.pos >= recorded && timedOut(st):
		// It runs on past its whole history without a host call, as the recorded runs
		// did until their locks expired: the same outcome.
		rep.Replayed, rep.OK = recorded, true
	case ctx.Err() != nil:
		return nil, fmt.Errorf("stopped after %s at history event %d of %d: %w", replayBound(c, st), r.pos, recorded, ctx.Err())
	default:
		return nil, runErr
	}
	return rep, nil
}

// historyVersion is the stream version of the n-th history event of evs (past the
// last: the version after it).
func historyVersion(evs []*pb.Event, n int) uint32 {
	seen := 0
	for i, ev := range evs {
		if ev.GetHistory() != nil {
			if seen == n {
				return uint32(i)
			}
			seen++
		}
	}
	return uint32(len(evs))
}

// endedEarly: result is a failure recorded without the workflow returning: a
// divergence of its last run, a cancellation, or its deadline.
func endedEarly(result []byte) bool {
	switch failureKind(result) {
	case events.FailureNondeterminismDetected, events.FailureCancelled, events.FailureDeadlineExceeded:
		return true
	}
	return false
}

// sameJSON: a and b are the same JSON value.
func sameJSON(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}

// replayEffects are a shadow replay's effects: the responses are those read when it
// began, and where the run would write (past its history) or wait for a response the
// log does not have, the replay notes what it would do and stops (errReplayEnd).
type replayEffects struct {
	next []ReplayStep
}

// steps moves what r buffered past its history to the steps the run would take.
func (fx *replayEffects) steps(r *workflowRun) []ReplayStep {
	for _, h := range r.pending {
		fx.next = append(fx.next, *stepOf(h))
	}
	r.pending, r.pendingAppends = nil, nil
	return fx.next
}

func (fx *replayEffects) commit(_ context.Context, r *workflowRun, tx *events.Tx, _ time.Time) error {
	for _, ev := range tx.Appends[0].Events {
		if h := ev.GetHistory(); h != nil {
			fx.next = append(fx.next, *stepOf(h))
		}
	}
	r.pending, r.pendingAppends = nil, nil
	return errReplayEnd
}

func (fx *replayEffects) await(_ context.Context, r *workflowRun, js string, _ int) (*pb.Response, error) {
	fx.steps(r)
	fx.next = append(fx.next, ReplayStep{Kind: "wait", JoinSet: js, Detail: "wait for the next response in join set " + js})
	return nil, errReplayEnd
}

// refresh finds nothing new: the replay serves the log as it was read.
func (*replayEffects) refresh(context.Context, *workflowRun) error { return nil }

func (fx *replayEffects) cancel(_ context.Context, r *workflowRun, id string) error {
	fx.steps(r)
	fx.next = append(fx.next, ReplayStep{Kind: "cancel", ExecutionID: id, Detail: "cancel " + id})
	return nil
}

// stepOf describes a history event as a replay step (nil for nil).
func stepOf(h *pb.HistoryEvent) *ReplayStep {
	if h == nil {
		return nil
	}
	s := &ReplayStep{Detail: describe(h)}
	switch k := h.Kind.(type) {
	case *pb.HistoryEvent_JoinSetCreate:
		s.Kind, s.JoinSet = "join_set_create", k.JoinSetCreate.JoinSetId
	case *pb.HistoryEvent_JoinSetRequest:
		s.Kind, s.JoinSet = "submit", k.JoinSetRequest.JoinSetId
		if c := k.JoinSetRequest.GetChild(); c != nil {
			s.Function, s.Params, s.ExecutionID = c.Ffqn, json.RawMessage(c.Params), c.ChildExecutionId
		} else if d := k.JoinSetRequest.GetDelay(); d != nil {
			s.Kind, s.ExecutionID = "delay", d.DelayId
		}
	case *pb.HistoryEvent_JoinNext:
		s.Kind, s.JoinSet, s.Function = "join_next", k.JoinNext.JoinSetId, k.JoinNext.RequestedFfqn
	case *pb.HistoryEvent_JoinNextTry:
		s.Kind, s.JoinSet = "join_next_try", k.JoinNextTry.JoinSetId
	case *pb.HistoryEvent_Persist:
		s.Kind = "persist"
	case *pb.HistoryEvent_Schedule:
		s.Kind, s.Function, s.Params, s.ExecutionID = "schedule", k.Schedule.Ffqn, json.RawMessage(k.Schedule.Params), k.Schedule.ExecutionId
	case *pb.HistoryEvent_Stub:
		s.Kind, s.ExecutionID = "stub", k.Stub.TargetExecutionId
	default:
		s.Kind = s.Detail
	}
	if len(s.Params) > 0 && !json.Valid(s.Params) {
		s.Params = nil
	}
	return s
}

// replayLogs keeps the guest's log lines of a replay, the last maxReplayLogLines.
type replayLogs struct {
	mu      sync.Mutex
	buf     []ReplayLog
	dropped int
}

// GuestLog implements wasmhost.LogSink.
func (l *replayLogs) GuestLog(_ context.Context, rec wasmhost.LogRecord) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) == maxReplayLogLines {
		l.buf = append(l.buf[:0], l.buf[1:]...)
		l.dropped++
	}
	l.buf = append(l.buf, ReplayLog{Time: rec.Time, Level: rec.Level.String(), Message: clip.To(rec.Message, maxLogMessage)})
}

func (l *replayLogs) lines() ([]ReplayLog, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]ReplayLog(nil), l.buf...), l.dropped
}
