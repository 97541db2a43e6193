package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/obelisk-go/obelisk/actors/cronspec"
	"github.com/obelisk-go/obelisk/events"
	"github.com/obelisk-go/obelisk/internal/clip"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi/derivedid"
)

// Periodic schedules. A schedule's record (events/schedules.go) says what it fires and
// the time of its last firing; the supervised service "schedules" fires what is due and
// sleeps until the next firing. A firing is a top-level execution whose ID is derived
// from the schedule's definition and the firing's time, created in the same commit as
// the record's new last firing: after a crash the record says whether a firing was
// made, and were it made again its ID would find the first (Submit is idempotent for
// the same ID, function and parameters). So no firing is made twice.
//
// Firings missed while the server was down, or the schedule paused, obey its catch_up
// (cronspec.Due): skip drops them, once fires the latest. While the service runs, every
// firing fires, late if the node is busy.
//
// Config schedules (obelisk.toml) are applied at every start: their records are
// created or updated, keeping their progress and pause, and the records of config
// schedules no longer in the config are deleted. API schedules live in the store only.

// Schedule sources.
const (
	ScheduleFromConfig = "config"
	ScheduleFromAPI    = "api"
)

// ScheduleConfig defines a schedule ([[schedule]] in obelisk.toml, or the API).
type ScheduleConfig struct {
	Name string
	// Cron has five fields, or six with seconds first; TimeZone is an IANA name ("" is
	// UTC).
	Cron, TimeZone string
	FFQN           string
	// Params is the JSON array of the function's parameters ("" or nil: []).
	Params json.RawMessage
	// CatchUp is "skip" or "once" ("": cronspec.DefaultCatchUp).
	CatchUp string
	// Component names the exporter to submit to, "" for the newest.
	Component string
}

// ScheduleInfo is a schedule as listed.
type ScheduleInfo struct {
	Record *pb.CronSchedule
	// NextFiring is when it fires next; zero while it is paused.
	NextFiring time.Time
}

// ScheduleExistsError: a schedule of that name exists.
type ScheduleExistsError struct{ Name, Source string }

func (e *ScheduleExistsError) Error() string {
	return fmt.Sprintf("schedule %s already exists (source %s): delete it first, or choose another name", clip.Quote(e.Name), e.Source)
}

// ScheduleNotFoundError: no schedule has that name.
type ScheduleNotFoundError struct{ Name string }

func (e *ScheduleNotFoundError) Error() string {
	return fmt.Sprintf("schedule %s not found", clip.Quote(e.Name))
}

// scheduler is the "schedules" service and the one writer of schedule records: mu
// orders the API's changes and the firings, so that a record is never written from a
// stale copy. A firing is a synced submit, made without mu so that listing waits for
// none: while one is in flight its schedule is busy, and an API change of that schedule
// waits for it (idle, on mu); the pass makes no further firing of a schedule changed
// since it read it (changes), but reads it again in its next pass.
type scheduler struct {
	e    *Engine
	wake wakeup
	mu   sync.Mutex
	idle *sync.Cond // on mu: a firing ended (busy)
	// busy: the schedules whose firing is in flight, written with their records.
	busy map[string]bool
	// changes counts, per schedule, the API's changes of its record in this process.
	changes map[string]uint64
	// started: firings before it were missed while the server was down.
	started time.Time
	// handled: per schedule, the time up to which its firings are done (fired or
	// skipped) in this process; absent, it is read from the record.
	handled map[string]time.Time
	specs   map[string]*cronspec.Spec // by cron and time zone
}

// firingsPerPass bounds the firings of one schedule in a pass; the rest follow in the
// next pass, at once.
const firingsPerPass = 64

func newScheduler(e *Engine) *scheduler {
	s := &scheduler{e: e, handled: map[string]time.Time{}, specs: map[string]*cronspec.Spec{},
		busy: map[string]bool{}, changes: map[string]uint64{}}
	s.idle = sync.NewCond(&s.mu)
	return s
}

// change waits, holding mu, until no firing of schedule name is in flight, and counts an
// API change of its record, which the caller then writes under mu.
func (s *scheduler) change(name string) {
	for s.busy[name] {
		s.idle.Wait()
	}
	s.changes[name]++
}

func (s *scheduler) spec(rec *pb.CronSchedule) (*cronspec.Spec, error) {
	k := rec.Cron + "\x00" + rec.TimeZone
	if sp := s.specs[k]; sp != nil {
		return sp, nil
	}
	sp, err := cronspec.Parse(rec.Cron, rec.TimeZone)
	if err != nil {
		return nil, err
	}
	s.specs[k] = sp
	return sp, nil
}

// record checks a schedule's definition against the deployed functions and returns its
// record (without progress).
func (e *Engine) scheduleRecord(c ScheduleConfig, source string) (*pb.CronSchedule, error) {
	// %v, not %w: the cause (a function not found, say) is the schedule's invalid
	// argument, not an error of its own kind.
	invalid := func(err error) error {
		return &InvalidArgumentError{fmt.Errorf("schedule %s: %v", clip.Quote(c.Name), err)}
	}
	if err := events.CheckScheduleName(c.Name); err != nil {
		return nil, &InvalidArgumentError{err}
	}
	if _, err := cronspec.Parse(c.Cron, c.TimeZone); err != nil {
		return nil, invalid(err)
	}
	catchUp, err := cronspec.ParseCatchUp(c.CatchUp)
	if err != nil {
		return nil, invalid(err)
	}
	params := c.Params
	if strings.TrimSpace(string(params)) == "" {
		params = json.RawMessage("[]")
	}
	if err := e.checkParamsSize(params); err != nil {
		return nil, invalid(err)
	}
	fn, compact, err := e.checkSubmission(c.FFQN, params, strings.TrimSpace(c.Component))
	if err != nil {
		var ia *InvalidArgumentError
		if errors.As(err, &ia) {
			err = ia.Err
		}
		return nil, invalid(err)
	}
	return &pb.CronSchedule{
		Name: c.Name, Cron: strings.TrimSpace(c.Cron), TimeZone: c.TimeZone, Ffqn: fn.Fn.FFQN(), Params: compact,
		CatchUp: string(catchUp), Component: strings.TrimSpace(c.Component), Source: source,
	}, nil
}

// applyConfigSchedules creates or updates the config's schedules and deletes the
// records of config schedules it no longer has, before the service starts.
func (e *Engine) applyConfigSchedules(ctx context.Context, cfgs []ScheduleConfig) error {
	s := e.schedules
	s.started = time.Now()
	recs := map[string]*pb.CronSchedule{}
	for _, c := range cfgs {
		if recs[c.Name] != nil {
			return fmt.Errorf("schedule %s is declared twice", clip.Quote(c.Name))
		}
		rec, err := e.scheduleRecord(c, ScheduleFromConfig)
		if err != nil {
			return err
		}
		recs[c.Name] = rec
	}
	stored, err := e.store.Schedules(ctx)
	if err != nil {
		return fmt.Errorf("apply schedules: %w", err)
	}
	var tx events.Tx
	for _, old := range stored {
		rec := recs[old.Name]
		if rec == nil {
			if old.Source == ScheduleFromConfig {
				e.log.Info("schedules: deleting a config schedule no longer in the config", "schedule", old.Name)
				tx.Schedules = append(tx.Schedules, events.ScheduleWrite{Name: old.Name, Delete: true})
			}
			continue
		}
		if old.Source != ScheduleFromConfig {
			e.log.Warn("schedules: the config's schedule replaces one created over the API", "schedule", old.Name)
		}
		// Progress and pause survive a restart, and a change of the definition.
		rec.Paused, rec.CreatedAt, rec.LastFiredAt, rec.LastExecutionId, rec.ResumedAt = old.Paused, old.CreatedAt, old.LastFiredAt, old.LastExecutionId, old.ResumedAt
	}
	names := make([]string, 0, len(recs))
	for name, rec := range recs {
		if rec.CreatedAt == 0 {
			rec.CreatedAt = s.started.UnixNano()
		}
		tx.Schedules = append(tx.Schedules, events.ScheduleWrite{Name: name, Schedule: rec})
		names = append(names, name)
	}
	slices.Sort(names)
	if len(tx.Schedules) > 0 {
		if _, err := e.store.Commit(ctx, &tx); err != nil {
			return fmt.Errorf("apply schedules: %w", err)
		}
	}
	all, err := e.store.Schedules(ctx)
	if err != nil {
		return fmt.Errorf("apply schedules: %w", err)
	}
	for _, rec := range all {
		e.cfg.Metrics.Schedules(rec.Name)
	}
	if len(names) > 0 {
		e.log.Info("schedules applied", "config", names, "total", len(all))
	}
	return nil
}

// CreateSchedule creates a schedule over the API: it fires from now on.
func (e *Engine) CreateSchedule(ctx context.Context, c ScheduleConfig) (*pb.CronSchedule, error) {
	s := e.schedules
	s.mu.Lock()
	defer s.mu.Unlock()
	s.change(c.Name)
	if old, err := s.get(ctx, c.Name); err == nil {
		return nil, &InvalidArgumentError{&ScheduleExistsError{Name: c.Name, Source: old.Source}}
	} else if !errors.As(err, new(*ScheduleNotFoundError)) {
		return nil, err
	}
	rec, err := e.scheduleRecord(c, ScheduleFromAPI)
	if err != nil {
		return nil, err
	}
	rec.CreatedAt = time.Now().UnixNano()
	if _, err := e.store.Commit(ctx, &events.Tx{Schedules: []events.ScheduleWrite{{Name: rec.Name, Schedule: rec}}}); err != nil {
		return nil, fmt.Errorf("create schedule %s: %w", clip.Quote(rec.Name), err)
	}
	delete(s.handled, rec.Name)
	e.cfg.Metrics.Schedules(rec.Name)
	s.wake.poke()
	return rec, nil
}

// DeleteSchedule deletes a schedule created over the API; a config schedule is
// deleted by removing it from the config.
func (e *Engine) DeleteSchedule(ctx context.Context, name string) error {
	s := e.schedules
	s.mu.Lock()
	defer s.mu.Unlock()
	s.change(name)
	rec, err := s.get(ctx, name)
	if err != nil {
		return err
	}
	if rec.Source == ScheduleFromConfig {
		return &FailedPreconditionError{fmt.Sprintf("schedule %s is defined in the config: remove its [[schedule]] table and restart (or pause it)", clip.Quote(name))}
	}
	if _, err := e.store.Commit(ctx, &events.Tx{Schedules: []events.ScheduleWrite{{Name: name, Delete: true}}}); err != nil {
		return fmt.Errorf("delete schedule %s: %w", clip.Quote(name), err)
	}
	delete(s.handled, name)
	return nil
}

// PauseSchedule pauses (paused) or resumes a schedule. A paused schedule fires
// nothing; on resume, the firings missed meanwhile obey its catch_up.
func (e *Engine) PauseSchedule(ctx context.Context, name string, paused bool) (*pb.CronSchedule, error) {
	s := e.schedules
	s.mu.Lock()
	defer s.mu.Unlock()
	s.change(name)
	rec, err := s.get(ctx, name)
	if err != nil {
		return nil, err
	}
	if rec.Paused == paused {
		return rec, nil
	}
	rec = proto.CloneOf(rec)
	rec.Paused = paused
	if !paused {
		rec.ResumedAt = time.Now().UnixNano()
	}
	if _, err := e.store.Commit(ctx, &events.Tx{Schedules: []events.ScheduleWrite{{Name: name, Schedule: rec}}}); err != nil {
		return nil, fmt.Errorf("pause schedule %s: %w", clip.Quote(name), err)
	}
	delete(s.handled, name)
	s.wake.poke()
	return rec, nil
}

// Schedules lists the schedules, by name.
func (e *Engine) Schedules(ctx context.Context) ([]ScheduleInfo, error) {
	s := e.schedules
	s.mu.Lock()
	defer s.mu.Unlock()
	recs, err := e.store.Schedules(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]ScheduleInfo, 0, len(recs))
	for _, rec := range recs {
		info := ScheduleInfo{Record: rec}
		if sp, err := s.spec(rec); err == nil && !rec.Paused {
			info.NextFiring = sp.Next(s.handledAt(rec))
		}
		out = append(out, info)
	}
	return out, nil
}

func (s *scheduler) get(ctx context.Context, name string) (*pb.CronSchedule, error) {
	recs, err := s.e.store.Schedules(ctx)
	if err != nil {
		return nil, err
	}
	for _, rec := range recs {
		if rec.Name == name {
			return rec, nil
		}
	}
	return nil, &ScheduleNotFoundError{Name: name}
}

// handledAt is the time up to which rec's firings are done: in this process, or as
// the record says (its last firing, its creation, its resumption). A record read while
// a firing was in flight may be ahead of this process's mark: the later one counts.
func (s *scheduler) handledAt(rec *pb.CronSchedule) time.Time {
	if h, ok := s.handled[rec.Name]; ok {
		return time.Unix(0, max(h.UnixNano(), rec.LastFiredAt))
	}
	return time.Unix(0, max(rec.LastFiredAt, rec.CreatedAt))
}

// pass fires what is due and returns the next firing.
func (s *scheduler) pass(ctx context.Context) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	recs, err := s.e.store.Schedules(ctx)
	if err != nil {
		s.e.log.Error("schedules: read", "err", err)
		return time.Now().Add(safetyTick)
	}
	// The records as read: an API change of one since (while a firing was in flight
	// without mu) makes it stale.
	read := maps.Clone(s.changes)
	var next time.Time
	soonest := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	changed := func(name string) bool { return s.changes[name] != read[name] }
	for _, rec := range recs {
		if changed(rec.Name) { // its record is stale: read again
			soonest(time.Now())
			continue
		}
		if rec.Paused || ctx.Err() != nil {
			continue
		}
		sp, err := s.spec(rec)
		if err != nil { // checked when it was stored: a record from a newer parser
			s.e.log.Error("schedules: cron", "schedule", rec.Name, "err", err)
			continue
		}
		now := time.Now()
		active := s.started
		if r := time.Unix(0, rec.ResumedAt); rec.ResumedAt != 0 && r.After(active) {
			active = r
		}
		fire, handled := cronspec.Due(sp, s.handledAt(rec), active, now, cronspec.CatchUp(rec.CatchUp), firingsPerPass)
		stale := false
		for _, at := range fire {
			s.e.hook("schedules", "fire")
			if stale = changed(rec.Name); stale { // paused, deleted or recreated during a firing
				break
			}
			if rec, err = s.fireUnlocked(ctx, rec, at); err != nil {
				break
			}
			s.handled[rec.Name] = at
		}
		if stale {
			soonest(now) // read again, as changed
			continue
		}
		if err != nil {
			if ctx.Err() == nil {
				s.e.log.Warn("schedules: fire, retrying in a second", "schedule", rec.Name, "err", err)
				soonest(now.Add(time.Second))
			}
			continue
		}
		s.handled[rec.Name] = handled
		if len(fire) == firingsPerPass {
			soonest(now)
		}
		soonest(sp.Next(handled))
	}
	return next
}

// fireUnlocked is fire with mu, which the caller holds, released meanwhile: rec's
// schedule is busy, so no API change of it comes in between.
func (s *scheduler) fireUnlocked(ctx context.Context, rec *pb.CronSchedule, at time.Time) (*pb.CronSchedule, error) {
	s.busy[rec.Name] = true
	s.mu.Unlock()
	defer func() { // also on a panic: the supervisor restarts the pass, mu must be held
		s.mu.Lock()
		delete(s.busy, rec.Name)
		s.idle.Broadcast()
	}()
	return s.fire(ctx, rec, at)
}

// scheduledID is the execution ID of rec's firing at t.
func scheduledID(rec *pb.CronSchedule, at time.Time) string {
	return derivedid.ExecutionID("obelisk-schedule", rec.Name, rec.Ffqn, string(rec.Params), rec.Component, strconv.FormatInt(at.UnixNano(), 10))
}

// fire submits rec's firing at t, with its record's new last firing in the same
// commit, and returns the new record. A function that is no longer deployed (or whose
// parameters no longer type-check) is a firing lost, logged and counted; it does not
// stop the schedule.
func (s *scheduler) fire(ctx context.Context, rec *pb.CronSchedule, at time.Time) (*pb.CronSchedule, error) {
	id := scheduledID(rec, at)
	upd := proto.CloneOf(rec)
	upd.LastFiredAt, upd.LastExecutionId = at.UnixNano(), id
	write := events.ScheduleWrite{Name: rec.Name, Schedule: upd}
	_, existed, err := s.e.Submit(ctx, id, rec.Ffqn, rec.Params, OfComponent(rec.Component), dueAt(at), withSchedules(write), pastMaxPending())
	var nf *FunctionNotFoundError
	var cnf *ComponentNotFoundError
	var ia *InvalidArgumentError
	var ex *ExistsError
	if errors.As(err, &nf) || errors.As(err, &cnf) || errors.As(err, &ia) || errors.As(err, &ex) {
		s.e.log.Error("schedules: firing failed, skipping it", "schedule", rec.Name, "at", at, "err", err)
		s.e.cfg.Metrics.ScheduleFired(rec.Name, "failed")
		upd.LastExecutionId = ""
		existed, err = true, nil // record the time, so the schedule goes on
	}
	if err != nil {
		return rec, err
	}
	if existed { // the execution was there already: its record was not written with it
		if _, err := s.e.store.Commit(ctx, &events.Tx{Schedules: []events.ScheduleWrite{write}}); err != nil {
			return rec, fmt.Errorf("record firing of %s: %w", clip.Quote(rec.Name), err)
		}
	}
	if upd.LastExecutionId != "" {
		s.e.cfg.Metrics.ScheduleFired(rec.Name, "submitted")
		s.e.log.Debug("schedules: fired", "schedule", rec.Name, "at", at, "execution", id)
	}
	return upd, nil
}

// withSchedules writes schedule records with the execution, if it is created.
func withSchedules(w ...events.ScheduleWrite) SubmitOption {
	return func(o *submitOptions) { o.schedules = append(o.schedules, w...) }
}
