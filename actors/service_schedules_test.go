package actors

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/events"
	"github.com/obelisk-go/obelisk/metrics"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// scheduleEngine starts an engine with schedules; closeEngine closes it (once).
func scheduleEngine(t *testing.T, dir string, schedules ...ScheduleConfig) (e *Engine, closeEngine func()) {
	t.Helper()
	ctx := context.Background()
	e, err := New(ctx, Config{DataDir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Schedules: schedules})
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	closeEngine = func() { once.Do(func() { e.Close(ctx) }) }
	t.Cleanup(closeEngine)
	return e, closeEngine
}

func scheduleByName(t *testing.T, e *Engine, name string) (ScheduleInfo, bool) {
	t.Helper()
	list, err := e.Schedules(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range list {
		if s.Record.Name == name {
			return s, true
		}
	}
	return ScheduleInfo{}, false
}

const kvGetFFQN = "obelisk:kv/store.get"

// TestScheduleFiresAndRecords: a config schedule fires every second; each firing is an
// execution whose ID is derived from the schedule and its time, and the record names
// the last one. A restart without it in the config deletes it; one created over the
// API stays.
func TestScheduleFiresAndRecords(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e, closeEngine := scheduleEngine(t, dir, ScheduleConfig{Name: "every-second", Cron: "* * * * * *", FFQN: kvGetFFQN, Params: []byte(`["b", "k"]`)})
	if _, err := e.CreateSchedule(ctx, ScheduleConfig{Name: "api", Cron: "0 0 1 1 *", FFQN: kvGetFFQN, Params: []byte(`["b","k"]`)}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	var info ScheduleInfo
	for {
		info, _ = scheduleByName(t, e, "every-second")
		if info.Record.GetLastExecutionId() != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no firing within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	rec := info.Record
	at := time.Unix(0, rec.LastFiredAt)
	if at.Nanosecond() != 0 || rec.LastExecutionId != scheduledID(rec, at) {
		t.Fatalf("last firing %v, execution %s: want a whole second and its derived ID", at, rec.LastExecutionId)
	}
	if !info.NextFiring.After(at) || info.NextFiring.Sub(at) > time.Second {
		t.Fatalf("next firing %v after the last %v", info.NextFiring, at)
	}
	evs, err := e.Store().Events(ctx, rec.LastExecutionId, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	if c := evs[0].GetCreated(); c.Ffqn != kvGetFFQN || string(c.Params) != `["b","k"]` || c.ScheduledAt != rec.LastFiredAt {
		t.Fatalf("created: %v", c)
	}
	closeEngine()
	e, _ = scheduleEngine(t, dir)
	if _, ok := scheduleByName(t, e, "every-second"); ok {
		t.Fatal("a config schedule removed from the config is still there")
	}
	if s, ok := scheduleByName(t, e, "api"); !ok || s.Record.Source != ScheduleFromAPI {
		t.Fatalf("the API's schedule after a restart: %v %v", s, ok)
	}
}

// TestScheduleErrors: bad definitions are refused, naming the schedule and what was
// wrong, and leave nothing stored.
func TestScheduleErrors(t *testing.T) {
	ctx := context.Background()
	e, _ := scheduleEngine(t, t.TempDir())
	ok := ScheduleConfig{Name: "s", Cron: "0 * * * *", FFQN: kvGetFFQN, Params: []byte(`["b","k"]`)}
	if _, err := e.CreateSchedule(ctx, ok); err != nil {
		t.Fatal(err)
	}
	with := func(f func(*ScheduleConfig)) ScheduleConfig { c := ok; c.Name = "t"; f(&c); return c }
	for _, c := range []struct {
		name string
		cfg  ScheduleConfig
		want string
	}{
		{"duplicate", ok, `schedule "s" already exists (source api)`},
		{"unknown ffqn", with(func(c *ScheduleConfig) { c.FFQN = "a:b/c.nope" }), `schedule "t": function "a:b/c.nope" not found`},
		{"bad cron", with(func(c *ScheduleConfig) { c.Cron = "* *" }), `schedule "t": cron "* *"`},
		{"bad zone", with(func(c *ScheduleConfig) { c.TimeZone = "Nowhere/Else" }), `schedule "t": time_zone "Nowhere/Else"`},
		{"bad params", with(func(c *ScheduleConfig) { c.Params = []byte(`[1, "k"]`) }), `schedule "t": obelisk:kv/store.get`},
		{"bad catch-up", with(func(c *ScheduleConfig) { c.CatchUp = "all" }), `schedule "t": catch_up "all"`},
		{"empty name", with(func(c *ScheduleConfig) { c.Name = "" }), `schedule name is empty`},
	} {
		_, err := e.CreateSchedule(ctx, c.cfg)
		var ia *InvalidArgumentError
		if !errors.As(err, &ia) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an invalid argument containing %q", c.name, err, c.want)
		}
	}
	if list, _ := e.Schedules(ctx); len(list) != 1 {
		t.Fatalf("stored: %d schedules, want 1", len(list))
	}
	if err := e.DeleteSchedule(ctx, "nope"); !errors.As(err, new(*ScheduleNotFoundError)) {
		t.Fatalf("delete unknown: %v", err)
	}
	if _, err := New(ctx, Config{DataDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Schedules: []ScheduleConfig{with(func(c *ScheduleConfig) { c.Name = "cfg"; c.Params = []byte(`[]`) })}}); err == nil ||
		!strings.Contains(err.Error(), `schedule "cfg": obelisk:kv/store.get`) {
		t.Fatalf("a config schedule with bad params: start error %v", err)
	}
}

// TestSchedulePauseResume: a paused schedule fires nothing and shows no next firing;
// a config schedule cannot be deleted over the API.
func TestSchedulePauseResume(t *testing.T) {
	ctx := context.Background()
	e, _ := scheduleEngine(t, t.TempDir(), ScheduleConfig{Name: "cfg", Cron: "* * * * * *", FFQN: kvGetFFQN, Params: []byte(`["b","k"]`), CatchUp: "skip"})
	if _, err := e.PauseSchedule(ctx, "cfg", true); err != nil {
		t.Fatal(err)
	}
	paused, _ := scheduleByName(t, e, "cfg")
	time.Sleep(2100 * time.Millisecond)
	s, _ := scheduleByName(t, e, "cfg")
	if !s.Record.Paused || !s.NextFiring.IsZero() || s.Record.LastFiredAt != paused.Record.LastFiredAt {
		t.Fatalf("paused: %v next %v (before: last %d)", s.Record, s.NextFiring, paused.Record.LastFiredAt)
	}
	if err := e.DeleteSchedule(ctx, "cfg"); !errors.As(err, new(*FailedPreconditionError)) {
		t.Fatalf("delete a config schedule: %v", err)
	}
	resumed, err := e.PauseSchedule(ctx, "cfg", false)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		s, _ = scheduleByName(t, e, "cfg")
		if s.Record.LastFiredAt != 0 && s.Record.LastFiredAt != paused.Record.LastFiredAt {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no firing within 30s of resuming")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// skip: nothing missed while paused fired.
	if s.Record.LastFiredAt < resumed.ResumedAt-int64(time.Nanosecond) {
		t.Fatalf("fired %v, before the resumption %v", time.Unix(0, s.Record.LastFiredAt), time.Unix(0, resumed.ResumedAt))
	}
}

// TestScheduleFireTwice: firing the same time twice (as a restarted process would,
// had the first firing's record been lost) names the same execution and creates it once;
// the record names it either way.
func TestScheduleFireTwice(t *testing.T) {
	ctx := context.Background()
	e, _ := scheduleEngine(t, t.TempDir())
	rec, err := e.CreateSchedule(ctx, ScheduleConfig{Name: "yearly", Cron: "0 0 1 1 *", FFQN: kvGetFFQN, Params: []byte(`["b", "k"]`)})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().Truncate(time.Second)
	s := e.schedules
	s.mu.Lock()
	first, err1 := s.fire(ctx, rec, at)
	again, err2 := s.fire(ctx, rec, at)
	s.mu.Unlock()
	if err1 != nil || err2 != nil {
		t.Fatalf("fire: %v, %v", err1, err2)
	}
	if first.LastExecutionId == "" || again.LastExecutionId != first.LastExecutionId {
		t.Fatalf("executions %q and %q, want one", first.LastExecutionId, again.LastExecutionId)
	}
	page, err := e.Store().List(ctx, events.ListFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(page.States); n != 1 {
		t.Fatalf("%d executions, want 1", n)
	}
	got, _ := scheduleByName(t, e, "yearly")
	if got.Record.LastFiredAt != at.UnixNano() || got.Record.LastExecutionId != first.LastExecutionId {
		t.Fatalf("record: %v", got.Record)
	}
}

// TestSchedulesRestartMidPass: a panic of the scheduler just before it fires restarts
// the service, which then makes that firing (its progress lives in the store and
// outside the service's actor).
func TestSchedulesRestartMidPass(t *testing.T) {
	ctx := context.Background()
	m := metrics.New()
	var panicked atomic.Bool
	e := newHookedEngine(t, m, func(service, step string) {
		if service == "schedules" && step == "fire" && panicked.CompareAndSwap(false, true) {
			panic("injected by the test")
		}
	})
	if _, err := e.CreateSchedule(ctx, ScheduleConfig{Name: "s", Cron: "* * * * * *", FFQN: kvGetFFQN, Params: []byte(`["b","k"]`)}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if s, _ := scheduleByName(t, e, "s"); s.Record.GetLastExecutionId() != "" {
			if !panicked.Load() {
				t.Fatal("fired without the injected panic")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no firing within 30s of the restart")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := restarts(t, m, "schedules"); n != 1 {
		t.Fatalf("%v restarts of schedules, want 1", n)
	}
}

// TestSchedulesListDuringFiring: a firing's synced submit is made without the
// scheduler's lock: while one is held up in the store, the schedules can be listed, and
// a pause of the firing schedule waits for it, then holds (the firing's record write does
// not undo it, and nothing fires after it).
func TestSchedulesListDuringFiring(t *testing.T) {
	ctx := context.Background()
	entered, release := make(chan struct{}), make(chan struct{})
	var armed atomic.Bool
	armed.Store(true)
	e, err := New(ctx, Config{DataDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		StoreBeforeCommit: func(states []*pb.ExecutionState) error {
			for _, st := range states {
				if st.Ffqn == kvGetFFQN && armed.CompareAndSwap(true, false) {
					close(entered)
					<-release // the firing's commit, held up
				}
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	if _, err := e.CreateSchedule(ctx, ScheduleConfig{Name: "s", Cron: "* * * * * *", FFQN: kvGetFFQN, Params: []byte(`["b","k"]`)}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		t.Fatal("no firing within 30 s")
	}
	listed := make(chan error, 1)
	go func() { _, err := e.Schedules(ctx); listed <- err }()
	select {
	case err := <-listed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("listing waited for the firing in flight")
	}
	paused := make(chan error, 1)
	go func() { _, err := e.PauseSchedule(ctx, "s", true); paused <- err }()
	select {
	case err := <-paused:
		close(release)
		t.Fatalf("the pause did not wait for the firing in flight: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if err := <-paused; err != nil {
		t.Fatal(err)
	}
	info, _ := scheduleByName(t, e, "s")
	if !info.Record.Paused || info.Record.LastExecutionId == "" {
		t.Fatalf("after the firing and the pause: %v", info.Record)
	}
	fired := info.Record.LastFiredAt
	time.Sleep(2500 * time.Millisecond) // two cron ticks
	if info, _ := scheduleByName(t, e, "s"); !info.Record.Paused || info.Record.LastFiredAt != fired {
		t.Fatalf("fired or resumed after the pause: %v", info.Record)
	}
}
