// Package cronspec reads the cron expressions of periodic schedules and decides their
// firings: when the next one is, and which of those missed while the server was down
// (or the schedule paused) still fire. It keeps no state and reads no clock: the
// scheduler (actors/service_schedules.go) gives it the times, so that tests give fixed ones.
package cronspec

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Spec is a parsed cron expression read in a time zone.
type Spec struct {
	sched cron.Schedule
	loc   *time.Location
}

// parser reads five fields (minute, hour, day of month, month, day of week) or six with
// seconds first, and the descriptors (@daily, @every 1h, ...).
var parser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Parse parses expr, read in the IANA time zone timeZone ("" is UTC). An expression
// that names its own zone (TZ=... or CRON_TZ=...) is refused: time_zone is the one place
// for it. So is one that never fires (February 30th).
func Parse(expr, timeZone string) (*Spec, error) {
	expr = strings.TrimSpace(expr)
	if expr == "" {
		return nil, errors.New("cron is empty")
	}
	if strings.HasPrefix(expr, "TZ=") || strings.HasPrefix(expr, "CRON_TZ=") {
		return nil, fmt.Errorf("cron %q: give the zone in time_zone, not in the expression", expr)
	}
	loc, err := LoadZone(timeZone)
	if err != nil {
		return nil, err
	}
	sched, err := parser.Parse(expr)
	if err != nil {
		return nil, fmt.Errorf("cron %q: %w (want five fields, or six with seconds first, e.g. \"*/2 * * * * *\")", expr, err)
	}
	s := &Spec{sched: sched, loc: loc}
	if s.Next(time.Now()).IsZero() {
		return nil, fmt.Errorf("cron %q never fires", expr)
	}
	return s, nil
}

// LoadZone loads an IANA time zone; "" is UTC.
func LoadZone(name string) (*time.Location, error) {
	if name == "" {
		return time.UTC, nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("time_zone %q: %w (want an IANA name such as \"Europe/Prague\" or \"UTC\")", name, err)
	}
	return loc, nil
}

// Next returns the first firing strictly after t, or the zero time if there is none
// within five years.
func (s *Spec) Next(t time.Time) time.Time {
	n := s.sched.Next(t.In(s.loc))
	if n.IsZero() {
		return n
	}
	return n.UTC()
}

// CatchUp is what happens to the firings missed while the server was down or the
// schedule paused.
type CatchUp string

const (
	// Skip fires none of them: the schedule goes on with its next future firing.
	Skip CatchUp = "skip"
	// Once fires the latest of them, once.
	Once CatchUp = "once"
	// DefaultCatchUp is once: a restart that straddles a firing does not silently lose
	// it, and a long downtime still costs one execution only.
	DefaultCatchUp = Once
)

// ParseCatchUp reads a catch_up value; "" is DefaultCatchUp.
func ParseCatchUp(s string) (CatchUp, error) {
	switch CatchUp(s) {
	case "":
		return DefaultCatchUp, nil
	case Skip, Once:
		return CatchUp(s), nil
	}
	return "", fmt.Errorf("catch_up %q: want \"skip\" or \"once\"", s)
}

// Due decides the firings at now of a schedule whose firings up to handled are done
// (fired or skipped). Those before active (when the server started, or the schedule was
// resumed) were missed and obey policy; those from active to now fire, in order, at
// most limit of them. It returns the firings to make and the new handled time: the
// last firing considered, fired or skipped, or handled if none was.
func Due(s *Spec, handled, active, now time.Time, policy CatchUp, limit int) (fire []time.Time, newHandled time.Time) {
	newHandled = handled
	if active.After(now) {
		active = now
	}
	if handled.Before(active) {
		// The missed ones: in (handled, active).
		last, ok := latestBefore(s, handled, active)
		if ok {
			if policy == Once {
				fire = append(fire, last)
			}
			newHandled = last
		}
		// Nothing missed at or after active - 1ns: active itself is not missed.
		if p := active.Add(-time.Nanosecond); p.After(newHandled) {
			newHandled = p
		}
	}
	for len(fire) < limit {
		t := s.Next(newHandled)
		if t.IsZero() || t.After(now) {
			break
		}
		fire = append(fire, t)
		newHandled = t
	}
	return fire, newHandled
}

// latestBefore returns the last firing in (after, before), looking back from before in
// windows that double, so that a long downtime of a frequent schedule costs a few dozen
// steps rather than one per missed firing.
func latestBefore(s *Spec, after, before time.Time) (time.Time, bool) {
	for d := time.Second; ; d *= 2 {
		from := before.Add(-d)
		if !from.After(after) {
			from = after
		}
		t := s.Next(from)
		if !t.IsZero() && t.Before(before) {
			for {
				n := s.Next(t)
				if n.IsZero() || !n.Before(before) {
					return t, true
				}
				t = n
			}
		}
		if from.Equal(after) {
			return time.Time{}, false
		}
	}
}
