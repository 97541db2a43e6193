package obelisk

import (
	"strconv"
	"time"
)

// ScheduleAt says when a scheduled execution or a delay is due: [Now], [At]
// or [In]. The zero ScheduleAt is Now.
type ScheduleAt struct {
	// raw is the JSON of the schedule_at member; empty for Now.
	raw string
}

// Now makes the scheduled execution or the delay due at once.
func Now() ScheduleAt { return ScheduleAt{} }

// At makes the scheduled execution or the delay due at t.
func At(t time.Time) ScheduleAt {
	b := append([]byte(`{"at":{"seconds":`), strconv.FormatInt(t.Unix(), 10)...)
	b = append(b, `,"nanoseconds":`...)
	b = strconv.AppendInt(b, int64(t.Nanosecond()), 10)
	return ScheduleAt{string(append(b, "}}"...))}
}

// In makes the scheduled execution or the delay due d after the workflow
// scheduled it (the time is fixed when the schedule is first recorded, not on
// replay). d is counted in whole milliseconds, rounded down.
func In(d time.Duration) ScheduleAt {
	return ScheduleAt{`{"in":{"milliseconds":` + strconv.FormatInt(d.Milliseconds(), 10) + "}}"}
}

// json returns the JSON of the schedule_at member of a request.
func (a ScheduleAt) json() []byte {
	if a.raw == "" {
		return []byte(`"now"`)
	}
	return []byte(a.raw)
}

// Schedule creates a new top-level execution of ffqn with params, due at the given time,
// and returns its ID. It does not wait for it. The schedule is recorded in the workflow's
// history: a replay returns the same ID and creates nothing.
func Schedule(ctx Context, at ScheduleAt, ffqn string, params ...any) (string, error) {
	return ScheduleWithID(ctx, "", at, ffqn, params...)
}
