package config

import (
	"strconv"
	"strings"
	"testing"
)

// TestQueues: exec.queue puts components on a shared queue, whose limit comes from
// [[queue]], else from the exec.max_concurrency its components agree on, else from the
// largest default among them; a component without exec.queue has its own queue.
func TestQueues(t *testing.T) {
	p := write(t, `
[[activity_wasm]]
name = "a"
location.path = "a.wasm"
exec.queue = "shared"
[[activity_wasm]]
name = "b"
location.path = "b.wasm"
exec.queue = "shared"
exec.max_concurrency = 3
[[activity_wasm]]
name = "c"
location.path = "c.wasm"
exec.queue = "narrow"
[[workflow]]
name = "w"
location.path = "w.wasm"
exec.queue = "mixed"
[[activity_wasm]]
name = "d"
location.path = "d.wasm"
exec.queue = "mixed"
[[activity_wasm]]
name = "own"
location.path = "own.wasm"
exec.max_concurrency = 7
[[queue]]
name = "narrow"
max_concurrency = 1
`)
	s, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range s.Engine.Components {
		got[c.Name] = c.QueueName() + "/" + strconv.Itoa(c.MaxConcurrency)
	}
	want := map[string]string{
		"a": "shared/3", "b": "shared/3", // b's limit is the queue's
		"c": "narrow/1",                                                                                          // [[queue]]
		"w": "mixed/" + strconv.Itoa(DefaultMaxConcurrency), "d": "mixed/" + strconv.Itoa(DefaultMaxConcurrency), // the larger default
		"own": "own/7",
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: queue/max_concurrency %s, want %s", name, got[name], w)
		}
	}
}

// TestQueueMaxPending: max_pending comes from [[queue]], else from the exec.max_pending
// a queue's components agree on, else there is none (0); server.max_pending is the
// server's. A [[queue]] may set max_pending alone.
func TestQueueMaxPending(t *testing.T) {
	p := write(t, `
[server]
max_pending = 1000
[[activity_wasm]]
name = "a"
location.path = "a.wasm"
exec.queue = "shared"
exec.max_pending = 50
[[activity_wasm]]
name = "b"
location.path = "b.wasm"
exec.queue = "shared"
[[activity_wasm]]
name = "c"
location.path = "c.wasm"
exec.max_concurrency = 2
[[activity_wasm]]
name = "free"
location.path = "free.wasm"
[[queue]]
name = "c"
max_pending = 5
`)
	s, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range s.Engine.Components {
		got[c.Name] = strconv.Itoa(c.MaxConcurrency) + "/" + strconv.Itoa(c.MaxPending)
	}
	want := map[string]string{"a": "100/50", "b": "100/50", "c": "2/5", "free": "100/0"}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: max_concurrency/max_pending %s, want %s", name, got[name], w)
		}
	}
	if s.Engine.MaxPending != 1000 {
		t.Errorf("server.max_pending %d, want 1000", s.Engine.MaxPending)
	}
}

func TestQueueErrors(t *testing.T) {
	const a = `
[[activity_wasm]]
name = "a"
location.path = "a.wasm"
exec.queue = "q"
exec.max_concurrency = 2
`
	for _, c := range []struct{ name, toml, want string }{
		{"invalid exec.queue", `
[[activity_wasm]]
name = "a"
location.path = "a.wasm"
exec.queue = "no spaces"`, `[[activity_wasm]] #1 (name "a"): exec.queue = "no spaces": want 1 to 255 ASCII letters`},
		{"limits that disagree", a + `
[[workflow]]
name = "w"
location.path = "w.wasm"
exec.queue = "q"
exec.max_concurrency = 5`, `[[workflow]] #1 (name "w"): exec.max_concurrency = 5, but [[activity_wasm]] #1 (name "a") sets max_concurrency 2 for queue "q": the components of a queue share one limit; set it once, with [[queue]] name = "q"`},
		{"a component against its [[queue]]", a + `
[[queue]]
name = "q"
max_concurrency = 4`, `[[activity_wasm]] #1 (name "a"): exec.max_concurrency = 2, but [[queue]] "q" sets max_concurrency 4 for queue "q"`},
		{"a queue no component serves", a + `
[[queue]]
name = "typo"
max_concurrency = 4`, `[[queue]] #1 (name "typo"): no [[activity_wasm]] or [[workflow]] is served from this queue`},
		{"a queue named twice", a + `
[[queue]]
name = "q"
max_concurrency = 2
[[queue]]
name = "q"
max_concurrency = 2`, `[[queue]] #2 (name "q"): a second [[queue]] of this name`},
		{"no limit", a + `
[[queue]]
name = "q"`, `[[queue]] #1 (name "q"): max_concurrency or max_pending is required`},
		{"max_pending that disagree", a + `
exec.max_pending = 10
[[workflow]]
name = "w"
location.path = "w.wasm"
exec.queue = "q"
exec.max_pending = 20`, `[[workflow]] #1 (name "w"): exec.max_pending = 20, but [[activity_wasm]] #1 (name "a") sets max_pending 10 for queue "q"`},
		{"a negative max_pending", a + `
[[queue]]
name = "q"
max_pending = -1`, `[[queue]] #1 (name "q"): max_pending = -1: must not be negative`},
		{"a negative server.max_pending", a + `
[server]
max_pending = -5`, `server.max_pending = -5: must not be negative`},
		{"a zero limit", a + `
[[queue]]
name = "q"
max_concurrency = 0`, `[[queue]] #1 (name "q"): max_concurrency = 0: must be at least 1`},
		{"an invalid queue name", a + `
[[queue]]
name = "a,b"
max_concurrency = 1`, `[[queue]] #1 (name "a,b"): name: want 1 to 255`},
		{"a negative limit", a + `
[[queue]]
name = "q"
max_concurrency = -1`, `[[queue]] #1 (name "q"): max_concurrency = -1: must not be negative`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(write(t, c.toml))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v\nwant it to contain %s", err, c.want)
			}
		})
	}
}
