package config

import (
	"fmt"

	"github.com/obelisk-go/obelisk/actors"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
)

// Queue is one [[queue]]: the limit of an execution queue that components share
// (exec.queue), set in one place rather than repeated in each of them.
type Queue struct {
	Name           string `mapstructure:"name"`
	MaxConcurrency *int   `mapstructure:"max_concurrency"`
	// MaxPending bounds the executions waiting in the queue (0: no limit); beyond it
	// new submissions are refused with resource_exhausted (actors/admission.go).
	MaxPending *int `mapstructure:"max_pending"`
}

// queueMember is a component served from a queue, as the configuration wrote it.
type queueMember struct {
	section string // "activity_wasm" or "workflow"
	index   int    // in its section
	exec    Exec
	c       *actors.ComponentConfig
}

func (m queueMember) String() string {
	return fmt.Sprintf("[[%s]] #%d (name %q)", m.section, m.index+1, m.c.Name)
}

// resolveQueues checks exec.queue and [[queue]], and gives every component the limit of
// its queue: one executor serves a queue, within one max_concurrency. The limit is the
// queue's [[queue]] max_concurrency, else the exec.max_concurrency its components set
// (they must agree), else the largest default among them. comps starts with the
// activities, then the workflows, in the order of f.
func resolveQueues(f *File, comps []actors.ComponentConfig, path string) error {
	var order []string
	members := map[string][]queueMember{}
	add := func(section string, i int, e Exec, c *actors.ComponentConfig) error {
		if e.Queue != "" && !abi.ValidQueueName(e.Queue) {
			return fmt.Errorf("config %s: [[%s]] #%d (name %q): exec.queue = %q: want %s", displayPath(path), section, i+1, c.Name, e.Queue, abi.QueueNameRule)
		}
		q := c.QueueName()
		if members[q] == nil {
			order = append(order, q)
		}
		members[q] = append(members[q], queueMember{section, i, e, c})
		return nil
	}
	for i, a := range f.Activities {
		if err := add("activity_wasm", i, a.Exec.Exec, &comps[i]); err != nil {
			return err
		}
	}
	for i, w := range f.Workflow {
		if err := add("workflow", i, w.Exec, &comps[len(f.Activities)+i]); err != nil {
			return err
		}
	}
	tables := map[string]Queue{}
	for i, t := range f.Queues {
		fail := func(msg string, args ...any) error {
			return fmt.Errorf("config %s: [[queue]] #%d (name %q): %s", displayPath(path), i+1, t.Name, fmt.Sprintf(msg, args...))
		}
		switch _, dup := tables[t.Name]; {
		case !abi.ValidQueueName(t.Name):
			return fail("name: want %s", abi.QueueNameRule)
		case dup:
			return fail("a second [[queue]] of this name")
		case t.MaxConcurrency == nil && t.MaxPending == nil:
			return fail("max_concurrency or max_pending is required")
		case t.MaxConcurrency != nil && *t.MaxConcurrency == 0:
			return fail("max_concurrency = 0: must be at least 1")
		case members[t.Name] == nil:
			// A slip (a misspelt name) would otherwise leave the limit unused, silently.
			return fail("no [[activity_wasm]] or [[workflow]] is served from this queue (exec.queue, or its name when exec.queue is not set)")
		}
		tables[t.Name] = t
	}
	for _, q := range order {
		ms := members[q]
		t, hasTable := tables[q]
		limit, err := queueLimit(ms, q, "max_concurrency", t.MaxConcurrency, hasTable, func(e Exec) *int { return e.MaxConcurrency }, path)
		if err != nil {
			return err
		}
		if limit == 0 {
			for _, m := range ms {
				limit = max(limit, m.c.MaxConcurrency) // its type's default
			}
		}
		pending, err := queueLimit(ms, q, "max_pending", t.MaxPending, hasTable, func(e Exec) *int { return e.MaxPending }, path)
		if err != nil {
			return err
		}
		for _, m := range ms {
			m.c.MaxConcurrency = limit
			m.c.MaxPending = pending // 0: none
		}
	}
	return nil
}

// queueLimit resolves one limit (key) of queue q: its [[queue]] value (table), else the
// exec.<key> its components ms agree on, else 0.
func queueLimit(ms []queueMember, q, key string, table *int, hasTable bool, ofExec func(Exec) *int, path string) (int, error) {
	limit, from, set := 0, "", false
	if hasTable && table != nil {
		limit, from, set = *table, fmt.Sprintf("[[queue]] %q", q), true
	}
	for _, m := range ms {
		v := ofExec(m.exec)
		switch {
		case v == nil:
		case !set:
			limit, from, set = *v, m.String(), true
		case *v != limit:
			return 0, fmt.Errorf("config %s: %s: exec.%s = %d, but %s sets %s %d for queue %q: "+
				"the components of a queue share one limit; set it once, with [[queue]] name = %q, %s = N",
				displayPath(path), m, key, *v, from, key, limit, q, q, key)
		}
	}
	return limit, nil
}
