package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi/derivedid"
	"github.com/obelisk-go/obelisk/test/harness"
)

const scheduleFn = "testing:fibo/fibo.fibo"

// scheduleExecution is the execution of a schedule's firing at t, derived as the server
// derives it (actors/service_schedules.go).
func scheduleExecution(name, params string, t time.Time) string {
	return derivedid.ExecutionID("obelisk-schedule", name, scheduleFn, params, "", strconv.FormatInt(t.UnixNano(), 10))
}

type listedSchedule struct {
	Name            string `json:"name"`
	Cron            string `json:"cron"`
	FFQN            string `json:"ffqn"`
	Source          string `json:"source"`
	Paused          bool   `json:"paused"`
	NextFiring      string `json:"next_firing"`
	LastFiring      string `json:"last_firing"`
	LastExecutionID string `json:"last_execution_id"`
}

func listSchedules(t *testing.T, s *harness.Server) map[string]listedSchedule {
	t.Helper()
	out, errOut, code := s.CLI("schedule", "list", "--json")
	if code != 0 {
		t.Fatalf("schedule list: exit %d: %s", code, errOut)
	}
	var doc struct{ Schedules []listedSchedule }
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("schedule list --json: %v\n%s", err, out)
	}
	m := map[string]listedSchedule{}
	for _, sc := range doc.Schedules {
		m[sc.Name] = sc
	}
	return m
}

// waitFired waits until schedule name has fired at or after at, and returns its last firing.
func waitFired(t *testing.T, s *harness.Server, name string, at time.Time) time.Time {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if last := listSchedules(t, s)[name].LastFiring; last != "" {
			lt, err := time.Parse(time.RFC3339Nano, last)
			if err != nil {
				t.Fatal(err)
			}
			if !lt.Before(at) {
				return lt
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("schedule %s did not fire at or after %v within 60s\n%s", name, at, s.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// fired returns, for each whole second from..to, whether the schedule's firing then
// exists.
func fired(t *testing.T, s *harness.Server, name, params string, from, to time.Time) map[time.Time]bool {
	t.Helper()
	out := map[time.Time]bool{}
	for at := from; !at.After(to); at = at.Add(time.Second) {
		_, err := s.State(scheduleExecution(name, params, at))
		out[at] = err == nil
		if err != nil && !strings.Contains(err.Error(), "not_found") {
			t.Fatalf("state of %s's firing at %v: %v", name, at, err)
		}
	}
	return out
}

// TestSchedules drives cron schedules through the real server and CLI: a config
// schedule firing every second keeps every firing across a SIGKILL (catch_up once: the
// downtime's firings are one, the latest), schedules created over the API persist, and
// schedules whose every firing falls in a downtime fire once (catch_up once, at the
// latest) or not at all (skip).
func TestSchedules(t *testing.T) {
	t.Parallel()
	// Only fibo is deployed: a restart loads one module.
	config := filepath.Join(t.TempDir(), "obelisk.toml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf(`
[[activity_wasm]]
name = "fibo"
location.path = %q

[[schedule]]
name = "every-second"
cron = "* * * * * *"
ffqn = "testing:fibo/fibo.fibo"
params = "[10]"
catch_up = "once"
`, filepath.Join(harness.ComponentsDir(), "fibo.wasm"))), 0o644); err != nil {
		t.Fatal(err)
	}
	s := harness.StartConfig(t, config)
	// Errors: exit 2 with invalid_argument naming what was wrong; nothing is created.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--name", "every-second", "--cron", "* * * * *", "--ffqn", scheduleFn}, `invalid_argument: schedule "every-second" already exists (source config)`},
		{[]string{"--name", "x", "--cron", "* * * * *", "--ffqn", "testing:fibo/fibo.nope"}, `invalid_argument: schedule "x": function "testing:fibo/fibo.nope" not found`},
		{[]string{"--name", "x", "--cron", "* * *", "--ffqn", scheduleFn}, `invalid_argument: schedule "x": cron "* * *"`},
		{[]string{"--name", "x", "--cron", "* * * * *", "--ffqn", scheduleFn, "--params", `["ten"]`}, `invalid_argument: schedule "x": testing:fibo/fibo.fibo`},
		{[]string{"--name", "x", "--cron", "* * * * *", "--ffqn", scheduleFn, "--catch-up", "all"}, `invalid_argument: schedule "x": catch_up "all"`},
		{[]string{"--cron", "* * * * *", "--ffqn", scheduleFn}, `--name is required`},
	} {
		_, errOut, code := s.CLI(append([]string{"schedule", "create"}, c.args...)...)
		if code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("create %v: exit %d, %s; want exit 2 and %q", c.args, code, errOut, c.want)
		}
	}
	if _, errOut, code := s.CLI("schedule", "delete", "every-second"); code != 2 || !strings.Contains(errOut, "failed_precondition") {
		t.Errorf("delete a config schedule: exit %d, %s", code, errOut)
	}
	if _, errOut, code := s.CLI("schedule", "pause", "nope"); code != 2 || !strings.Contains(errOut, `not_found: schedule "nope" not found`) {
		t.Errorf("pause an unknown schedule: exit %d, %s", code, errOut)
	}

	first := waitFired(t, s, "every-second", time.Time{})
	beforeKill := waitFired(t, s, "every-second", first.Add(2*time.Second))
	// Two schedules whose firings (3 each, a second apart) all fall in the downtime below,
	// created over the API: they persist across the restart.
	downFrom := time.Now().UTC().Truncate(time.Second).Add(5 * time.Second)
	if downFrom.Second() > 57 {
		downFrom = downFrom.Add(time.Duration(60-downFrom.Second()) * time.Second)
	}
	downTo := downFrom.Add(2 * time.Second)
	cron := fmt.Sprintf("%d-%d %d %d %d %d *", downFrom.Second(), downTo.Second(), downFrom.Minute(), downFrom.Hour(), downFrom.Day(), int(downFrom.Month()))
	for _, policy := range []string{"once", "skip"} {
		out, errOut, code := s.CLI("schedule", "create", "--json", "--name", "down-"+policy, "--cron", cron, "--ffqn", scheduleFn, "--params", "[11]", "--catch-up", policy)
		var created struct{ Schedules []listedSchedule }
		if code != 0 || json.Unmarshal([]byte(out), &created) != nil || len(created.Schedules) != 1 {
			t.Fatalf("create down-%s: exit %d: %s%s", policy, code, out, errOut)
		}
		if c := created.Schedules[0]; c.Source != "api" || c.NextFiring != downFrom.Format(time.RFC3339Nano) {
			t.Errorf("down-%s as created: %+v, want source api and next firing %v", policy, c, downFrom)
		}
	}
	if !time.Now().Before(downFrom) {
		t.Fatalf("the server was too slow to be killed before %v (now %v)", downFrom, time.Now())
	}
	s.Kill()
	for time.Now().Before(downTo.Add(1500 * time.Millisecond)) {
		time.Sleep(100 * time.Millisecond)
	}
	s.Start()
	restarted := time.Now()
	last := waitFired(t, s, "every-second", restarted.Add(2*time.Second))
	out, _, code := s.CLI("schedule", "list")
	if code != 0 || !strings.Contains(out, "NAME") || !strings.Contains(out, "NEXT_FIRING") {
		t.Fatalf("schedule list: exit %d:\n%s", code, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "every-second" &&
			(f[len(f)-1] != "config" || f[len(f)-2] != "false" || !strings.HasPrefix(f[len(f)-3], "E_") || !strings.Contains(line, scheduleFn)) {
			t.Errorf("list line of every-second: %q", line)
		}
	}
	m := listSchedules(t, s)
	if want := scheduleExecution("every-second", "[10]", last); m["every-second"].LastExecutionID != want {
		// A later firing may have landed meanwhile; the record names the last one.
		if l2, _ := time.Parse(time.RFC3339Nano, m["every-second"].LastFiring); m["every-second"].LastExecutionID != scheduleExecution("every-second", "[10]", l2) {
			t.Errorf("last execution %s of every-second at %s: not derived from its firing", m["every-second"].LastExecutionID, m["every-second"].LastFiring)
		}
	}

	// every-second: every firing before the kill exists; then a gap of the downtime;
	// then one catch-up firing (the latest missed) and every firing after it.
	exists := fired(t, s, "every-second", "[10]", first, last)
	var gap []time.Time
	for at := first; !at.After(last); at = at.Add(time.Second) {
		if !exists[at] {
			gap = append(gap, at)
		}
	}
	if len(gap) == 0 {
		t.Fatalf("every-second: no firing missing between %v and %v across a downtime", first, last)
	}
	gapFrom, gapTo := gap[0], gap[len(gap)-1]
	if len(gap) != int(gapTo.Sub(gapFrom)/time.Second)+1 {
		t.Errorf("every-second: firings missing at %v: more than the one gap of the downtime (a firing lost while up)", gap)
	}
	if gapFrom.Before(beforeKill.Add(time.Second)) {
		t.Errorf("every-second: a firing before the kill (the last at %v) is missing: %v", beforeKill, gapFrom)
	}
	catchUp := gapTo.Add(time.Second)
	if !catchUp.Before(restarted) {
		t.Errorf("every-second: the first firing after the gap, %v, is not a missed one (restarted at %v): catch_up once fired nothing", catchUp, restarted)
	}

	// down-once fired once, the latest of its missed firings; down-skip none.
	for at, ok := range fired(t, s, "down-once", "[11]", downFrom, downTo) {
		if ok != at.Equal(downTo) {
			t.Errorf("down-once: firing at %v exists: %v (want only the latest, %v)", at, ok, downTo)
		}
	}
	for at, ok := range fired(t, s, "down-skip", "[11]", downFrom, downTo) {
		if ok {
			t.Errorf("down-skip: firing at %v exists, want none (catch_up skip)", at)
		}
	}
	if res := s.Result(scheduleExecution("down-once", "[11]", downTo), time.Minute); res != `{"ok":89}` {
		t.Errorf("down-once's execution: %s", res)
	}
	m = listSchedules(t, s)
	if m["down-once"].LastFiring != downTo.Format(time.RFC3339Nano) || m["down-skip"].LastFiring != "" {
		t.Errorf("after the restart: down-once last fired %q (want %v), down-skip %q (want none)", m["down-once"].LastFiring, downTo, m["down-skip"].LastFiring)
	}

	// Pause, delete; the metric counts firings.
	if out, errOut, code := s.CLI("schedule", "pause", "every-second"); code != 0 || !strings.Contains(out, "true") {
		t.Errorf("pause: exit %d: %s%s", code, out, errOut)
	}
	if m := listSchedules(t, s)["every-second"]; !m.Paused || m.NextFiring != "" {
		t.Errorf("paused: %+v", m)
	}
	if _, errOut, code := s.CLI("schedule", "delete", "down-skip"); code != 0 {
		t.Errorf("delete: exit %d: %s", code, errOut)
	}
	if _, ok := listSchedules(t, s)["down-skip"]; ok {
		t.Error("down-skip is listed after its deletion")
	}
	metric := s.Metrics()
	if v, ok := metric("obelisk_schedule_firings_total", map[string]string{"schedule": "every-second", "outcome": "submitted"}); !ok || v < 1 {
		t.Errorf("obelisk_schedule_firings_total of every-second since the restart: %v %v", v, ok)
	}
}
