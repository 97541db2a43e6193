// Package eventstest generates random valid histories of one execution, for property
// tests of the fold ([events.Fold], [events.FoldResponse]), of [events.PebbleStore] and of
// snapshots.
//
// The generator is a small model of an execution, written from the rules of the event
// model rather than from the fold's code: in each state it only emits what is allowed
// there (an executor locks a due execution, a workflow run records calls and waits, a
// child answers, a run fails, times out, unlocks or finishes), and it predicts the main
// fields of the state after every step, so a test can compare the fold against it.
package eventstest

import (
	"fmt"
	"sort"
	"strings"

	"google.golang.org/protobuf/encoding/prototext"

	"pgregory.net/rapid"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// Step is one item of a history: an event or a response.
type Step struct {
	// Event is the event, to be folded at Version; nil for a response.
	Event   *pb.Event
	Version uint32
	// RunID is the run that writes the event, when it is the run holding the lock (an
	// extension, history, a failure): the Append.RunID a real writer would give. Empty
	// for a new lock and for writers other than the run.
	RunID string
	// Response is the response, with Cursor and AtVersion set as the store sets them
	// (the response count and the stream's next version when it arrives); nil for an
	// event.
	Response *pb.Response
	// Action names what the model did, for failure messages.
	Action string
	// Want is what the model expects of the state after this step.
	Want Expect
}

// History is a valid history of one execution.
type History struct {
	ID       string
	Workflow bool
	Steps    []Step
}

// Events returns the history's events, in version order.
func (h History) Events() []*pb.Event {
	var out []*pb.Event
	for _, s := range h.Steps {
		if s.Event != nil {
			out = append(out, s.Event)
		}
	}
	return out
}

// Responses returns the history's responses, in cursor order.
func (h History) Responses() []*pb.Response {
	var out []*pb.Response
	for _, s := range h.Steps {
		if s.Response != nil {
			out = append(out, s.Response)
		}
	}
	return out
}

// Finished reports whether the history ends with a Finished event.
func (h History) Finished() bool {
	return len(h.Steps) > 0 && h.Steps[len(h.Steps)-1].Want.Status == pb.Status_STATUS_FINISHED
}

// Counters are the model's join set counters.
type Counters struct{ Requests, Responses, JoinNexts uint32 }

// Expect is the model's prediction of a state after a step.
type Expect struct {
	NextVersion, ResponseCount uint32
	Status                     pb.Status
	PendingAt                  int64
	RunID                      string
	LockExpiresAt              int64
	IntermittentFailures       uint32
	BlockedJoinSetID           string // checked only when Status is blocked
	JoinSets                   map[string]Counters
	CancelRequested, Paused    bool
}

// Check compares a folded state with the prediction and describes the first difference.
func (e Expect) Check(st *pb.ExecutionState) error {
	type field struct {
		name      string
		got, want any
	}
	fields := []field{
		{"next_version", st.NextVersion, e.NextVersion},
		{"response_count", st.ResponseCount, e.ResponseCount},
		{"status", events.StatusName(st.Status), events.StatusName(e.Status)},
		{"pending_at", st.PendingAt, e.PendingAt},
		{"run_id", st.RunId, e.RunID},
		{"lock_expires_at", st.LockExpiresAt, e.LockExpiresAt},
		{"intermittent_failures", st.IntermittentFailures, e.IntermittentFailures},
		{"cancel_requested", st.CancelRequested, e.CancelRequested},
		{"paused", st.Paused, e.Paused},
	}
	if e.Status == pb.Status_STATUS_BLOCKED_BY_JOIN_SET {
		fields = append(fields, field{"blocked_join_set_id", st.BlockedJoinSetId, e.BlockedJoinSetID})
	}
	got := map[string]Counters{}
	for id, js := range st.JoinSets {
		got[id] = Counters{js.Requests, js.Responses, js.JoinNexts}
	}
	fields = append(fields, field{"join_sets", fmt.Sprint(got), fmt.Sprint(e.JoinSets)})
	for _, f := range fields {
		if f.got != f.want {
			return fmt.Errorf("%s: fold has %v, the model expects %v", f.name, f.got, f.want)
		}
	}
	return nil
}

// Options shape the generated histories.
type Options struct {
	// MaxSteps bounds the number of steps before the final Finished, if any (default 60).
	MaxSteps int
}

// Histories returns a generator of valid histories of execution id.
func Histories(id string, opts Options) *rapid.Generator[History] {
	if opts.MaxSteps <= 0 {
		opts.MaxSteps = 60
	}
	return rapid.Custom(func(t *rapid.T) History {
		workflow := rapid.Bool().Draw(t, "workflow")
		m := &model{t: t, h: History{ID: id, Workflow: workflow}, sets: map[string]*set{}}
		m.create()
		n := rapid.IntRange(opts.MaxSteps/4, opts.MaxSteps).Draw(t, "steps")
		for len(m.h.Steps) < n {
			m.step()
		}
		// Finishing ends the history, so it is drawn once, at the end, from whatever
		// state the execution is in (a run returns, or the execution is cancelled).
		if rapid.Bool().Draw(t, "finish") {
			m.finish()
		}
		return m.h
	})
}

type set struct {
	Counters
	oneOff bool
}

type request struct {
	js, id string
	delay  bool
}

// model is the execution as the generator sees it. Its fields mirror the state the fold
// keeps; lease is the fold's lock_expires_at (the lock, or a warm run's lease).
type model struct {
	t *rapid.T
	h History

	now               int64
	events, responses uint32
	status            pb.Status
	pendingAt         int64
	paused, cancelled bool
	run               string
	runs              int
	lease             int64
	failures          uint32
	blockedOn         string
	sets              map[string]*set
	createdSets       int
	outstanding       []request
}

type action struct {
	name   string
	weight int
	ok     func() bool
	do     func()
}

func (m *model) actions() []action {
	alive := func() bool { return m.status != pb.Status_STATUS_FINISHED }
	pending := func() bool { return m.status == pb.Status_STATUS_PENDING_AT && !m.paused && !m.cancelled }
	locked := func() bool { return m.status == pb.Status_STATUS_LOCKED }
	warm := func() bool {
		return (m.status == pb.Status_STATUS_PENDING_AT || m.status == pb.Status_STATUS_BLOCKED_BY_JOIN_SET) && m.run != "" && m.lease > m.now
	}
	history := func() bool { return m.h.Workflow && (locked() || warm()) && !m.paused && !m.cancelled }
	// Rapid favours small draws: the actions that need a setup come first.
	return []action{
		{"relock_warm", 4, func() bool { return pending() && m.run != "" && m.lease > m.now }, m.relockWarm},
		{"respond", 6, func() bool { return alive() && len(m.outstanding) > 0 }, m.respond},
		{"join_next", 8, func() bool { return history() && len(m.joinableSets()) > 0 }, m.joinNext},
		{"call", 4, history, m.call},
		{"join_next_try", 2, func() bool { return history() && len(m.joinableSets()) > 0 }, m.joinNextTry},
		{"request", 4, func() bool { return history() && len(m.openSets()) > 0 }, m.request},
		{"fail", 2, func() bool { return locked() || warm() }, m.fail},
		{"unlock", 2, locked, m.unlock},
		{"release_lease", 1, func() bool {
			return m.status == pb.Status_STATUS_PENDING_AT || m.status == pb.Status_STATUS_BLOCKED_BY_JOIN_SET
		}, m.releaseLease},
		{"time_out", 1, locked, m.timeOut},
		{"create_join_set", 2, history, m.createJoinSet},
		{"persist", 2, history, func() { m.history("persist", persist()) }},
		{"extend", 2, func() bool { return locked() && !m.paused && !m.cancelled }, m.extend},
		{"unpause", 4, func() bool { return alive() && m.paused }, m.unpause},

		{"lock", 8, pending, m.lock},
		{"cancel_requested", 1, func() bool { return alive() && !m.cancelled }, m.cancel},
		{"pause", 1, func() bool { return alive() && !m.paused && !locked() }, m.pause},
	}
}

// step draws one of the actions allowed now, with the actions' weights, and does it.
func (m *model) step() {
	var enabled []action
	total := 0
	for _, a := range m.actions() {
		if a.ok() {
			enabled = append(enabled, a)
			total += a.weight
		}
	}
	r := rapid.IntRange(0, total-1).Draw(m.t, "action")
	for _, a := range enabled {
		if r < a.weight {
			a.do()
			return
		}
		r -= a.weight
	}
}

// at draws the time of the next step: now or later, at most now+max.
func (m *model) at(max int64) int64 {
	return m.now + rapid.Int64Range(0, max).Draw(m.t, "dt")
}

// atUnderLock draws a time at which the run holds the lock: any time while locked, and
// before the lease ends for a warm run.
func (m *model) atUnderLock() int64 {
	if m.status == pb.Status_STATUS_LOCKED {
		return m.at(50)
	}
	return m.now + rapid.Int64Range(0, m.lease-1-m.now).Draw(m.t, "dt")
}

func (m *model) emit(action, runID string, at int64, ev *pb.Event) {
	ev.CreatedAt = at
	m.now = at
	m.h.Steps = append(m.h.Steps, Step{Event: ev, Version: m.events, RunID: runID, Action: action})
	m.events++
	m.h.Steps[len(m.h.Steps)-1].Want = m.expect()
}

func (m *model) expect() Expect {
	e := Expect{
		NextVersion: m.events, ResponseCount: m.responses, Status: m.status, PendingAt: m.pendingAt,
		RunID: m.run, LockExpiresAt: m.lease, IntermittentFailures: m.failures, BlockedJoinSetID: m.blockedOn,
		JoinSets: map[string]Counters{}, CancelRequested: m.cancelled, Paused: m.paused,
	}
	for id, s := range m.sets {
		e.JoinSets[id] = s.Counters
	}
	return e
}

func (m *model) create() {
	ct := pb.ComponentType_COMPONENT_TYPE_ACTIVITY_WASM
	if m.h.Workflow {
		ct = pb.ComponentType_COMPONENT_TYPE_WORKFLOW
	}
	at := rapid.Int64Range(1, 100).Draw(m.t, "created_at")
	scheduled := at + rapid.Int64Range(0, 100).Draw(m.t, "delay")
	m.status, m.pendingAt = pb.Status_STATUS_PENDING_AT, scheduled
	m.emit("created", "", at, &pb.Event{Kind: &pb.Event_Created{Created: &pb.Created{
		Ffqn: "testing:model/ifc.fn", Params: []byte("[]"), ScheduledAt: scheduled, ComponentType: ct,
		ComponentId: "component:model:sha256:00", Queue: "model",
	}}})
}

func (m *model) newLock(action, runID string, at int64) {
	expires := at + 1 + rapid.Int64Range(0, 300).Draw(m.t, "lock_for")
	m.status, m.pendingAt, m.lease = pb.Status_STATUS_LOCKED, 0, expires
	m.emit(action, runID, at, &pb.Event{Kind: &pb.Event_Locked{Locked: &pb.Locked{
		ExecutorId: "Exr_model", RunId: m.run, LockExpiresAt: expires,
		Retry: &pb.RetryConfig{MaxRetries: 3, RetryExpBackoff: 10, UnlimitedRetries: m.h.Workflow},
	}}})
}

// lock: an executor locks the due execution with a new run.
func (m *model) lock() {
	at := max(m.now, m.pendingAt) + rapid.Int64Range(0, 50).Draw(m.t, "dt")
	m.runs++
	m.run = fmt.Sprintf("Run_%d", m.runs)
	m.newLock("lock", "", at)
}

// relockWarm: the warm run locks again within its lease, after its response came.
func (m *model) relockWarm() { m.newLock("relock_warm", m.run, m.atUnderLock()) }

// extend: the run extends its lock.
func (m *model) extend() { m.newLock("extend", m.run, m.at(50)) }

func persist() *pb.HistoryEvent {
	return &pb.HistoryEvent{Kind: &pb.HistoryEvent_Persist{Persist: &pb.Persist{Kind: "random_u64", Value: []byte("4")}}}
}

// history records a history event; a warm run re-takes its lock implicitly.
func (m *model) history(action string, h *pb.HistoryEvent) {
	m.historyAt(action, m.atUnderLock(), h)
}

func (m *model) historyAt(action string, at int64, h *pb.HistoryEvent) {
	if m.status != pb.Status_STATUS_LOCKED {
		m.status, m.pendingAt = pb.Status_STATUS_LOCKED, 0
	}
	m.emit(action, m.run, at, &pb.Event{Kind: &pb.Event_History{History: h}})
}

func (m *model) openSets() []string {
	var out []string
	for id, s := range m.sets {
		if !s.oneOff {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// joinableSets are the sets with a request not yet waited for.
func (m *model) joinableSets() []string {
	var out []string
	for id, s := range m.sets {
		if s.JoinNexts < s.Requests {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

func (m *model) createJoinSet() {
	m.createdSets++
	id := fmt.Sprintf("g:%d", m.createdSets)
	if rapid.Bool().Draw(m.t, "named") {
		id = fmt.Sprintf("n:set%d", m.createdSets)
	}
	m.sets[id] = &set{}
	m.history("create_join_set", &pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinSetCreate{JoinSetCreate: &pb.JoinSetCreate{JoinSetId: id}}})
}

func (m *model) requestInto(action, js string, at int64) {
	s := m.sets[js]
	s.Requests++
	r := &pb.JoinSetRequest{JoinSetId: js}
	id := events.ChildExecutionID(m.h.ID, js, int(s.Requests))
	delay := rapid.Bool().Draw(m.t, "delay")
	if delay {
		id = "Delay_" + id
		r.Request = &pb.JoinSetRequest_Delay{Delay: &pb.DelayRequest{DelayId: id, ExpiresAt: at + 100}}
	} else {
		r.Request = &pb.JoinSetRequest_Child{Child: &pb.ChildExecutionRequest{ChildExecutionId: id, Ffqn: "testing:model/ifc.child", Params: []byte("[]")}}
	}
	m.outstanding = append(m.outstanding, request{js: js, id: id, delay: delay})
	m.historyAt(action, at, &pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinSetRequest{JoinSetRequest: r}})
}

// request submits a child or a delay into a generated or named join set.
func (m *model) request() {
	js := rapid.SampledFrom(m.openSets()).Draw(m.t, "join_set")
	m.requestInto("request", js, m.atUnderLock())
}

// call starts a direct call or sleep: a one-off join set and its one request, written
// together.
func (m *model) call() {
	m.createdSets++
	js := events.OneOffJoinSetID(m.createdSets, rapid.SampledFrom([]string{"fibo", "sleep"}).Draw(m.t, "fn"))
	m.sets[js] = &set{oneOff: true}
	at := m.atUnderLock()
	m.historyAt("call", at, &pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinSetCreate{JoinSetCreate: &pb.JoinSetCreate{JoinSetId: js}}})
	m.requestInto("call", js, at)
}

// joinNext waits for the next response of a set: it blocks unless one is there, keeping
// the instance until its lease (await) or not at all (interrupt).
func (m *model) joinNext() {
	js := rapid.SampledFrom(m.joinableSets()).Draw(m.t, "join_set")
	at := m.atUnderLock()
	lease := at
	if rapid.Bool().Draw(m.t, "await") {
		lease = at + 1 + rapid.Int64Range(0, 300).Draw(m.t, "lease_for")
	}
	s := m.sets[js]
	s.JoinNexts++
	if m.status != pb.Status_STATUS_LOCKED {
		m.status, m.pendingAt = pb.Status_STATUS_LOCKED, 0
	}
	if s.Responses < s.JoinNexts {
		m.status, m.blockedOn, m.lease = pb.Status_STATUS_BLOCKED_BY_JOIN_SET, js, lease
	}
	m.prune(js)
	m.emit("join_next", m.run, at, &pb.Event{Kind: &pb.Event_History{History: &pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinNext{JoinNext: &pb.JoinNext{
		JoinSetId: js, RunExpiresAt: lease, Closing: rapid.Bool().Draw(m.t, "closing"),
	}}}}})
}

// joinNextTry takes the next response of a set if there is one, without blocking.
func (m *model) joinNextTry() {
	js := rapid.SampledFrom(m.joinableSets()).Draw(m.t, "join_set")
	at := m.atUnderLock()
	s := m.sets[js]
	outcome := "pending"
	if s.Responses > s.JoinNexts {
		outcome = "found"
		s.JoinNexts++
	}
	if m.status != pb.Status_STATUS_LOCKED {
		m.status, m.pendingAt = pb.Status_STATUS_LOCKED, 0
	}
	m.prune(js)
	m.emit("join_next_try", m.run, at, &pb.Event{Kind: &pb.Event_History{History: &pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinNextTry{JoinNextTry: &pb.JoinNextTry{
		JoinSetId: js, Outcome: outcome,
	}}}}})
}

// prune forgets a one-off set once it has been answered and joined.
func (m *model) prune(js string) {
	if s := m.sets[js]; s.oneOff && s.Requests == s.Responses && s.Responses == s.JoinNexts {
		delete(m.sets, js)
	}
}

// respond delivers the response of an outstanding request (a child finished, a delay
// expired), in any order.
func (m *model) respond() {
	i := rapid.IntRange(0, len(m.outstanding)-1).Draw(m.t, "request")
	req := m.outstanding[i]
	m.outstanding = append(m.outstanding[:i:i], m.outstanding[i+1:]...)
	at := m.at(100)
	r := &pb.Response{CreatedAt: at, JoinSetId: req.js, Cursor: m.responses, AtVersion: m.events}
	if req.delay {
		r.Kind = &pb.Response_Delay{Delay: &pb.DelayFinished{DelayId: req.id, Cancelled: rapid.Bool().Draw(m.t, "cancelled")}}
	} else {
		r.Kind = &pb.Response_Child{Child: &pb.ChildFinished{ChildExecutionId: req.id, Result: []byte(`{"ok":1}`)}}
	}
	s := m.sets[req.js]
	s.Responses++
	if m.status == pb.Status_STATUS_BLOCKED_BY_JOIN_SET && m.blockedOn == req.js && s.Responses >= s.JoinNexts {
		m.status, m.pendingAt, m.blockedOn = pb.Status_STATUS_PENDING_AT, max(at, m.lease), ""
	}
	// The wait may have been recorded before, by a run that then stopped.
	m.prune(req.js)
	m.now = at
	m.responses++
	m.h.Steps = append(m.h.Steps, Step{Response: r, Action: "respond", Want: m.expect()})
}

// unlock: the run gives the execution back; if a wait it recorded is unanswered the
// execution is blocked on it (the smallest such set), otherwise pending.
func (m *model) unlock() {
	at := m.at(50)
	until := at + rapid.Int64Range(0, 50).Draw(m.t, "unlock_delay")
	m.status, m.pendingAt, m.lease = pb.Status_STATUS_PENDING_AT, until, 0
	var waiting []string
	for id, s := range m.sets {
		if s.JoinNexts > s.Responses {
			waiting = append(waiting, id)
		}
	}
	if len(waiting) > 0 {
		sort.Strings(waiting)
		m.status, m.pendingAt, m.blockedOn = pb.Status_STATUS_BLOCKED_BY_JOIN_SET, 0, waiting[0]
	}
	m.emit("unlock", m.run, at, &pb.Event{Kind: &pb.Event_Unlocked{Unlocked: &pb.Unlocked{UnlockedAt: until, Reason: "model"}}})
}

// releaseLease: a warm run's instance is gone; a response makes the workflow due at once.
func (m *model) releaseLease() {
	at := m.at(50)
	m.lease = 0
	if m.status == pb.Status_STATUS_PENDING_AT {
		m.pendingAt = at
	}
	m.emit("release_lease", "", at, &pb.Event{Kind: &pb.Event_Unlocked{Unlocked: &pb.Unlocked{UnlockedAt: at, Reason: "evicted"}}})
}

// fail: the run (or a warm run within its lease) failed temporarily.
func (m *model) fail() {
	at := m.atUnderLock()
	until := at + rapid.Int64Range(0, 100).Draw(m.t, "backoff")
	m.status, m.pendingAt, m.lease = pb.Status_STATUS_PENDING_AT, until, 0
	m.failures++
	m.emit("fail", m.run, at, &pb.Event{Kind: &pb.Event_TemporarilyFailed{TemporarilyFailed: &pb.TemporarilyFailed{
		BackoffExpiresAt: until, Reason: "model", Detail: []byte(`"boom"`),
	}}})
}

// timeOut: the lock expired; the timer records a timeout with a backoff (possibly already
// over).
func (m *model) timeOut() {
	at := max(m.now, m.lease) + rapid.Int64Range(0, 50).Draw(m.t, "dt")
	until := at + rapid.Int64Range(-20, 100).Draw(m.t, "backoff")
	m.status, m.pendingAt, m.lease = pb.Status_STATUS_PENDING_AT, until, 0
	m.failures++
	m.emit("time_out", "", at, &pb.Event{Kind: &pb.Event_TemporarilyTimedOut{TemporarilyTimedOut: &pb.TemporarilyTimedOut{BackoffExpiresAt: until}}})
}

func (m *model) cancel() {
	m.cancelled = true
	m.emit("cancel_requested", "", m.at(50), &pb.Event{Kind: &pb.Event_CancelRequested{CancelRequested: &pb.CancelRequested{}}})
}

func (m *model) pause() {
	m.paused = true
	m.emit("pause", "", m.at(50), &pb.Event{Kind: &pb.Event_Paused{Paused: &pb.Paused{}}})
}

func (m *model) unpause() {
	m.paused = false
	m.emit("unpause", "", m.at(50), &pb.Event{Kind: &pb.Event_Unpaused{Unpaused: &pb.Unpaused{}}})
}

// finish ends the execution, from any state (a run returns, or it is cancelled).
func (m *model) finish() {
	result := rapid.SampledFrom([]string{`{"ok":1}`, `{"err":"no"}`, `{"ok":null}`, string(events.FailureResult(events.FailureCancelled, "model"))}).Draw(m.t, "result")
	m.status, m.pendingAt, m.lease, m.blockedOn = pb.Status_STATUS_FINISHED, 0, 0, ""
	m.sets = map[string]*set{}
	m.outstanding = nil
	m.emit("finish", "", m.at(50), &pb.Event{Kind: &pb.Event_Finished{Finished: &pb.Finished{Result: []byte(result)}}})
}

// GoString lists the steps compactly; rapid prints it for a failing history.
func (h History) GoString() string {
	var b strings.Builder
	fmt.Fprintf(&b, "history of %s (workflow=%t):", h.ID, h.Workflow)
	for i, s := range h.Steps {
		if s.Event != nil {
			fmt.Fprintf(&b, "\n  %2d v%d %s %s", i, s.Version, s.Action, prototext.MarshalOptions{}.Format(s.Event))
		} else {
			fmt.Fprintf(&b, "\n  %2d r%d %s %s", i, s.Response.Cursor, s.Action, prototext.MarshalOptions{}.Format(s.Response))
		}
	}
	return b.String()
}
