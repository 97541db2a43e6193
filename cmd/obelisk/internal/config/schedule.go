package config

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/obelisk-go/obelisk/actors"
	"github.com/obelisk-go/obelisk/actors/cronspec"
	"github.com/obelisk-go/obelisk/events"
)

// Schedule is one [[schedule]]: a function submitted at the times of a cron expression
// (actors/service_schedules.go). Its parameters are type-checked against the function's WIT
// when the engine starts.
type Schedule struct {
	Name string `mapstructure:"name"`
	// Cron has five fields, or six with seconds first ("*/2 * * * * *").
	Cron string `mapstructure:"cron"`
	// TimeZone is the IANA zone the cron is read in (default "UTC").
	TimeZone string `mapstructure:"time_zone"`
	FFQN     string `mapstructure:"ffqn"`
	// Params is a JSON array, as text ("[12]"); default "[]".
	Params string `mapstructure:"params"`
	// CatchUp is "skip" or "once" (default), for firings missed while the server was
	// down.
	CatchUp string `mapstructure:"catch_up"`
	// Component picks the exporter of FFQN when several components export it.
	Component string `mapstructure:"component"`
}

// resolveSchedules checks the schedules' syntax and adds them to the engine's config.
func resolveSchedules(f *File, s *Server, path string) error {
	seen := map[string]bool{}
	for i, sc := range f.Schedules {
		fail := func(msg string, args ...any) error {
			return fmt.Errorf("config %s: [[schedule]] #%d (name %q): %s", displayPath(path), i+1, sc.Name, fmt.Sprintf(msg, args...))
		}
		if err := events.CheckScheduleName(sc.Name); err != nil {
			return fail("name is required (1 to %d bytes)", events.MaxScheduleNameBytes)
		}
		if seen[sc.Name] {
			return fail("a schedule of that name is declared before")
		}
		seen[sc.Name] = true
		if _, err := cronspec.Parse(sc.Cron, sc.TimeZone); err != nil {
			return fail("%v", err)
		}
		if _, err := cronspec.ParseCatchUp(sc.CatchUp); err != nil {
			return fail("%v", err)
		}
		if _, _, err := events.SplitFFQN(sc.FFQN); err != nil {
			return fail("ffqn: %v", err)
		}
		params := strings.TrimSpace(sc.Params)
		if params == "" {
			params = "[]"
		}
		var arr []json.RawMessage
		if err := json.Unmarshal([]byte(params), &arr); err != nil {
			return fail("params = %q: want a JSON array as text, e.g. \"[12]\": %v", sc.Params, err)
		}
		s.Engine.Schedules = append(s.Engine.Schedules, actors.ScheduleConfig{
			Name: sc.Name, Cron: sc.Cron, TimeZone: sc.TimeZone, FFQN: sc.FFQN, Params: json.RawMessage(params),
			CatchUp: sc.CatchUp, Component: sc.Component,
		})
	}
	return nil
}
