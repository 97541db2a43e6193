package config

import (
	"fmt"
	"time"

	"github.com/obelisk-go/obelisk/actors"
	"github.com/obelisk-go/obelisk/wasmhost"
)

// MinTriggerBackoff is the least backoff.first of a trigger: below it a trigger that
// fails at once would spin.
const MinTriggerBackoff = 10 * time.Millisecond

// Trigger is one [[trigger]]: a module that runs for as long as it likes, started with
// the server and restarted after a backoff when it ends (actors/trigger.go).
type Trigger struct {
	Name         string   `mapstructure:"name"`
	Location     Location `mapstructure:"location"`
	AllowedHosts []string `mapstructure:"allowed_hosts"`
	DeniedHosts  []string `mapstructure:"denied_hosts"`
	MemoryLimit  string   `mapstructure:"memory_limit"`
	// Backoff is the delay before a restart: First, doubled after every run in a row
	// that ended before lasting Max, up to Max.
	Backoff struct {
		First *time.Duration `mapstructure:"first"`
		Max   *time.Duration `mapstructure:"max"`
	} `mapstructure:"backoff"`
	Output `mapstructure:",squash"`
	// Requires routes the trigger's imports, as a workflow's (parseRequires).
	Requires any `mapstructure:"requires"`
}

// resolveTriggers adds the triggers to the engine's components.
func resolveTriggers(f *File, s *Server, rel func(string) string, path string) error {
	fail := func(i int, name, msg string, args ...any) error {
		return fmt.Errorf("config %s: [[trigger]] #%d (name %q): %s", displayPath(path), i+1, name, fmt.Sprintf(msg, args...))
	}
	for i, t := range f.Triggers {
		c := actors.ComponentConfig{
			Name: t.Name, Type: actors.Trigger, Path: rel(t.Location.Path), AllowedHosts: t.AllowedHosts, DeniedHosts: t.DeniedHosts,
			RestartBackoff: actors.DefaultTriggerBackoff, RestartBackoffMax: actors.DefaultTriggerBackoffMax,
		}
		if err := checkName(t.Name); err != nil {
			return fail(i, t.Name, "%v", err)
		}
		// Components check their names among themselves; function endpoints are no
		// components, and share their name space (webhook.go).
		for _, ep := range s.Webhooks.Endpoints {
			if ep.Function != "" && ep.Name == t.Name {
				return fail(i, t.Name, "the name is also that of a webhook endpoint")
			}
		}
		if err := s.location(t.Name, t.Location); err != nil {
			return fail(i, t.Name, "%v", err)
		}
		if err := (&wasmhost.HTTPPolicy{AllowedHosts: t.AllowedHosts, DeniedHosts: t.DeniedHosts}).Validate(); err != nil {
			return fail(i, t.Name, "%v", err)
		}
		var err error
		if c.MemoryLimit, err = parseMemoryLimit(t.MemoryLimit); err != nil {
			return fail(i, t.Name, "%v", err)
		}
		if err := t.Output.apply(&c); err != nil {
			return fail(i, t.Name, "%v", err)
		}
		if c.Requires, err = parseRequires(t.Requires); err != nil {
			return fail(i, t.Name, "%v", err)
		}
		if t.Backoff.First != nil {
			c.RestartBackoff = *t.Backoff.First
		}
		if t.Backoff.Max != nil {
			c.RestartBackoffMax = *t.Backoff.Max
		}
		if err := atLeast("backoff.first", c.RestartBackoff, MinTriggerBackoff); err != nil {
			return fail(i, t.Name, "%v", err)
		}
		if c.RestartBackoffMax < c.RestartBackoff {
			return fail(i, t.Name, "backoff.max = %q is less than backoff.first = %q", c.RestartBackoffMax.String(), c.RestartBackoff.String())
		}
		s.Engine.Components = append(s.Engine.Components, c)
	}
	return nil
}
