// Package obelisktrigger lets an Obelisk trigger be written in Go.
//
// A trigger is a component that exports no functions: the server runs one instance of
// it from its start, as the function [RunFFQN], for as long as that function runs.
// When it returns, returns an error or panics, the server runs it again in a fresh
// instance after a backoff (obelisk.toml, [[trigger]] backoff.first and backoff.max).
// At shutdown the instance is stopped wherever it is. Register the function from an
// init function:
//
//	func init() {
//		obelisktrigger.Main(func(ctx obelisk.Context) error {
//			resp, err := obeliskhttp.StreamingClient(ctx).Get("http://127.0.0.1:8000/events")
//			if err != nil {
//				return err
//			}
//			defer resp.Body.Close()
//			lines := bufio.NewScanner(resp.Body)
//			for lines.Scan() {
//				id := obelisktrigger.DerivedID("events", lines.Text())
//				if _, err := obelisk.ScheduleWithID(ctx, id, obelisk.Now(), "my:pkg/ifc.handle", lines.Text()); err != nil {
//					return err
//				}
//			}
//			return lines.Err()
//		})
//	}
//
//	func main() {}
//
// With ctx the trigger calls ([obelisk.CallWithID], [obelisk.Call]) the functions its
// world imports and schedules ([obelisk.ScheduleWithID], [obelisk.Schedule]) any
// deployed function, each a top-level execution; makes outgoing HTTP requests
// (package obeliskhttp, to its allowed_hosts), reading a body as it arrives with
// obeliskhttp.StreamingClient; reads the status of executions
// (obeliskwebhook.GetStatus); uses the key-value store (obeliskkv); and logs (to the
// server's log, with its name). A trigger is restarted from the start, so it must
// not submit twice what it had submitted before it stopped: an execution ID derived
// from what it acts on ([DerivedID]) makes a second submission find the
// first. [Run] says which run this is. Like an activity, a trigger has the real clock
// and randomness.
package obelisktrigger

import (
	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi/derivedid"
)

// RunFFQN is the function the host runs (docs/abi.md, "Triggers"):
// run: func() -> result<_, string>.
const RunFFQN = "obelisk:trigger/main.run"

// Main registers f as the trigger's function. Call it once, from an init function. A
// nil error returned by f ends the run as "returned", another as "err"; either way the
// server runs the trigger again after its backoff.
func Main(f func(ctx obelisk.Context) error) {
	obelisk.Export(RunFFQN, func(ctx obelisk.Context) error { return f(ctx) })
}

// Run returns the number of the current run of the trigger since the server started:
// 1 for the first, 2 after one restart, and so on.
func Run(ctx obelisk.Context) int { return ctx.Attempt() }

// DerivedID returns a top-level execution ID, E_<ULID>, that depends only on parts:
// the same parts give the same ID, in any run of any component. Its ULID is the first
// 128 bits of the SHA-256 of the parts (each preceded by its length); its time part is
// therefore no creation time. It is in this package, not in obelisk, so that other
// components do not link crypto/sha256.
func DerivedID(parts ...string) string { return derivedid.ExecutionID(parts...) }
