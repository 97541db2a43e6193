package cronspec

import (
	"strings"
	"testing"
	"time"
)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestParse(t *testing.T) {
	for _, c := range []struct{ expr, tz, err string }{
		{"*/2 * * * * *", "", ""},
		{"0 9 * * MON-FRI", "Europe/Prague", ""},
		{"@hourly", "", ""},
		{"", "", "cron is empty"},
		{"* * *", "", "want five fields"},
		{"61 * * * *", "", "want five fields"},
		{"* * * * *", "Mars/Olympus", `time_zone "Mars/Olympus"`},
		{"TZ=UTC * * * * *", "", "give the zone in time_zone"},
		{"0 0 30 2 *", "", "never fires"},
	} {
		_, err := Parse(c.expr, c.tz)
		if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("Parse(%q, %q) = %v, want error containing %q", c.expr, c.tz, err, c.err)
		}
	}
}

func TestNextInZone(t *testing.T) {
	s, err := Parse("0 9 * * *", "Europe/Prague")
	if err != nil {
		t.Fatal(err)
	}
	// 9:00 in Prague is 8:00 UTC in winter, 7:00 UTC in summer.
	if got := s.Next(at("2026-01-10T12:00:00Z")); !got.Equal(at("2026-01-11T08:00:00Z")) {
		t.Errorf("winter: %v", got)
	}
	if got := s.Next(at("2026-07-10T12:00:00Z")); !got.Equal(at("2026-07-11T07:00:00Z")) {
		t.Errorf("summer: %v", got)
	}
	sec, _ := Parse("*/2 * * * * *", "")
	if got := sec.Next(at("2026-01-01T00:00:01Z")); !got.Equal(at("2026-01-01T00:00:02Z")) {
		t.Errorf("seconds: %v", got)
	}
}

func TestDue(t *testing.T) {
	every10s, _ := Parse("*/10 * * * * *", "")
	daily, _ := Parse("0 0 * * *", "")
	for _, c := range []struct {
		name                 string
		spec                 *Spec
		handled, active, now string
		policy               CatchUp
		limit                int
		want                 []string
		wantHandled          string
	}{
		{"on time", every10s, "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", "2026-01-01T00:00:10Z", Skip, 10,
			[]string{"2026-01-01T00:00:10Z"}, "2026-01-01T00:00:10Z"},
		{"nothing due yet", every10s, "2026-01-01T00:00:10Z", "2026-01-01T00:00:00Z", "2026-01-01T00:00:19.999Z", Skip, 10,
			nil, "2026-01-01T00:00:10Z"},
		{"late while running: every one fires", every10s, "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", "2026-01-01T00:00:35Z", Skip, 10,
			[]string{"2026-01-01T00:00:10Z", "2026-01-01T00:00:20Z", "2026-01-01T00:00:30Z"}, "2026-01-01T00:00:30Z"},
		{"limit", every10s, "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", "2026-01-01T00:00:35Z", Skip, 2,
			[]string{"2026-01-01T00:00:10Z", "2026-01-01T00:00:20Z"}, "2026-01-01T00:00:20Z"},
		{"down 1 min, skip", every10s, "2026-01-01T00:00:00Z", "2026-01-01T00:01:05Z", "2026-01-01T00:01:05Z", Skip, 10,
			nil, "2026-01-01T00:01:04.999999999Z"},
		{"down 1 min, once", every10s, "2026-01-01T00:00:00Z", "2026-01-01T00:01:05Z", "2026-01-01T00:01:05Z", Once, 10,
			[]string{"2026-01-01T00:01:00Z"}, "2026-01-01T00:01:04.999999999Z"},
		{"down, once, then firings after the start", every10s, "2026-01-01T00:00:00Z", "2026-01-01T00:01:05Z", "2026-01-01T00:01:21Z", Once, 10,
			[]string{"2026-01-01T00:01:00Z", "2026-01-01T00:01:10Z", "2026-01-01T00:01:20Z"}, "2026-01-01T00:01:20Z"},
		{"a firing at the start is not missed", every10s, "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z", "2026-01-01T00:01:00Z", Skip, 10,
			[]string{"2026-01-01T00:01:00Z"}, "2026-01-01T00:01:00Z"},
		{"down, nothing missed", daily, "2026-01-01T00:00:00Z", "2026-01-01T05:00:00Z", "2026-01-01T05:00:00Z", Once, 10,
			nil, "2026-01-01T04:59:59.999999999Z"},
		{"down a year, once", every10s, "2025-01-01T00:00:00Z", "2026-01-01T00:00:05Z", "2026-01-01T00:00:05Z", Once, 10,
			[]string{"2026-01-01T00:00:00Z"}, "2026-01-01T00:00:04.999999999Z"},
		{"down 3 days, once, daily", daily, "2026-01-01T00:00:00Z", "2026-01-04T12:00:00Z", "2026-01-04T12:00:00Z", Once, 10,
			[]string{"2026-01-04T00:00:00Z"}, "2026-01-04T11:59:59.999999999Z"},
	} {
		fire, handled := Due(c.spec, at(c.handled), at(c.active), at(c.now), c.policy, c.limit)
		var got []string
		for _, f := range fire {
			got = append(got, f.Format(time.RFC3339Nano))
		}
		if strings.Join(got, ",") != strings.Join(c.want, ",") || !handled.Equal(at(c.wantHandled)) {
			t.Errorf("%s: fire %v handled %v, want %v handled %s", c.name, got, handled.Format(time.RFC3339Nano), c.want, c.wantHandled)
		}
	}
}

func TestParseCatchUp(t *testing.T) {
	if c, err := ParseCatchUp(""); err != nil || c != DefaultCatchUp {
		t.Errorf("default: %v %v", c, err)
	}
	if _, err := ParseCatchUp("all"); err == nil || !strings.Contains(err.Error(), `want "skip" or "once"`) {
		t.Errorf("all: %v", err)
	}
}
