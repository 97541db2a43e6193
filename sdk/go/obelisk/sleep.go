package obelisk

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
)

// Sleep is a durable sleep: the workflow waits until the given time and
// returns the time it woke. Unlike time.Sleep, which returns at once in a
// workflow, the wait is recorded in the history: a workflow that crashes
// or is unloaded while it sleeps is woken up, on the same or another server,
// at the due time, and a replay returns at once.
//
// When the delay is cancelled (`obelisk client execution cancel DELAY_ID`,
// or the workflow's cancellation) the error is a [*HostError] of kind
// [KindCancelled]. Only workflows can sleep.
func Sleep(ctx Context, at ScheduleAt) (time.Time, error) {
	sa := at.json()
	req := append(appendRawMember(newRequest(abi.OpSleep, 16+len(sa)), "schedule_at", sa), '}')
	raw, err := send(ctx.host(), abi.OpSleep, req)
	if err != nil {
		return time.Time{}, err
	}
	t, ok := parseTime(raw)
	if !ok {
		var v abi.Woke
		if err := json.Unmarshal(raw, &v); err != nil {
			panic(fmt.Sprintf("obelisk: sleep: malformed response %q: %v", raw, err))
		}
		t = time.Unix(v.Seconds, v.Nanoseconds)
	}
	return t, nil
}

// SleepFor is a durable sleep of d (in whole milliseconds): Sleep(ctx, In(d)).
func SleepFor(ctx Context, d time.Duration) error {
	_, err := Sleep(ctx, In(d))
	return err
}

// parseTime is the fast path of decoding {"seconds": S, "nanoseconds": N}.
func parseTime(raw []byte) (time.Time, bool) {
	s, ok := newObjectScanner(raw)
	if !ok {
		return time.Time{}, false
	}
	var sec, nsec int64
	i := 0
	for {
		key, v, done, ok := s.next(i)
		if !ok {
			return time.Time{}, false
		}
		if done {
			return time.Unix(sec, nsec), true
		}
		end, integer, ok := scanNumber(raw, v)
		if !ok || !integer {
			return time.Time{}, false
		}
		n, err := strconv.ParseInt(string(raw[v:end]), 10, 64)
		if err != nil {
			return time.Time{}, false
		}
		switch string(key) {
		case "seconds":
			sec = n
		case "nanoseconds":
			nsec = n
		default:
			return time.Time{}, false
		}
		i = end
	}
}
