package config

import (
	"strings"
	"testing"
)

func TestScheduleConfig(t *testing.T) {
	s, err := Load(write(t, `
[[schedule]]
name = "fibo-every-2s"
cron = "*/2 * * * * *"
ffqn = "testing:fibo/fibo.fibo"
params = "[12]"
catch_up = "skip"

[[schedule]]
name = "nightly"
cron = "0 3 * * *"
time_zone = "Europe/Prague"
ffqn = "testing:fibo/fibo.fibo"
component = "fibo"
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Engine.Schedules) != 2 {
		t.Fatalf("schedules: %+v", s.Engine.Schedules)
	}
	a, b := s.Engine.Schedules[0], s.Engine.Schedules[1]
	if a.Name != "fibo-every-2s" || a.Cron != "*/2 * * * * *" || a.FFQN != "testing:fibo/fibo.fibo" || string(a.Params) != "[12]" || a.CatchUp != "skip" || a.TimeZone != "" {
		t.Fatalf("first: %+v", a)
	}
	if b.TimeZone != "Europe/Prague" || b.Component != "fibo" || string(b.Params) != "[]" || b.CatchUp != "" {
		t.Fatalf("second: %+v", b)
	}
}

func TestScheduleConfigErrors(t *testing.T) {
	const ok = "name = \"s\"\ncron = \"* * * * *\"\nffqn = \"a:b/c.d\"\n"
	for _, c := range []struct{ toml, want string }{
		{"[[schedule]]\ncron = \"* * * * *\"\nffqn = \"a:b/c.d\"", `[[schedule]] #1 (name ""): name is required`},
		{"[[schedule]]\n" + ok + "[[schedule]]\n" + ok, `[[schedule]] #2 (name "s"): a schedule of that name is declared before`},
		{"[[schedule]]\nname = \"s\"\ncron = \"* * *\"\nffqn = \"a:b/c.d\"", `(name "s"): cron "* * *"`},
		{"[[schedule]]\nname = \"s\"\ncron = \"* * * * *\"\nffqn = \"a:b/c.d\"\ntime_zone = \"Mars\"", `time_zone "Mars"`},
		{"[[schedule]]\nname = \"s\"\ncron = \"* * * * *\"\nffqn = \"nope\"", `ffqn: function name "nope"`},
		{"[[schedule]]\n" + ok + "params = \"12\"", `params = "12": want a JSON array as text`},
		{"[[schedule]]\n" + ok + "params = [12]", `params`},
		{"[[schedule]]\n" + ok + "catch_up = \"all\"", `catch_up "all": want "skip" or "once"`},
		{"[[schedule]]\n" + ok + "paused = true", `paused`},
	} {
		_, err := Load(write(t, c.toml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s\n: got %v, want %q", c.toml, err, c.want)
		}
	}
}
