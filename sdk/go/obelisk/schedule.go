package obelisk

import "time"

// ScheduleAt says when a scheduled execution is due: [Now], [At] or [In].
type ScheduleAt struct{ v any }

// Now makes the scheduled execution due at once.
func Now() ScheduleAt { return ScheduleAt{"now"} }

// At makes the scheduled execution due at t.
func At(t time.Time) ScheduleAt {
	type datetime struct {
		Seconds     int64 `json:"seconds"`
		Nanoseconds int64 `json:"nanoseconds"`
	}
	return ScheduleAt{map[string]datetime{"at": {t.Unix(), int64(t.Nanosecond())}}}
}

// In makes the scheduled execution due d after the workflow scheduled it (the time is
// fixed when the schedule is first recorded, not on replay).
func In(d time.Duration) ScheduleAt {
	return ScheduleAt{map[string]map[string]int64{"in": {"milliseconds": d.Milliseconds()}}}
}

// Schedule creates a new top-level execution of ffqn with params, due at the given time,
// and returns its ID. It does not wait for it. The schedule is recorded in the workflow's
// history: a replay returns the same ID and creates nothing.
func Schedule(ctx Context, at ScheduleAt, ffqn string, params ...any) (string, error) {
	if params == nil {
		params = []any{}
	}
	var id string
	err := ctx.HostCall("schedule", struct {
		FFQN       string `json:"ffqn"`
		Params     []any  `json:"params"`
		ScheduleAt any    `json:"schedule_at"`
	}{ffqn, params, at.v}, &id)
	return id, err
}
