package events

import (
	"crypto/rand"
	"fmt"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/obelisk-go/obelisk/internal/clip"
)

// TopLevelPrefix starts every top-level execution ID.
const TopLevelPrefix = "E_"

// NewExecutionID returns a fresh top-level execution ID, E_<ULID>.
func NewExecutionID(now time.Time) string {
	return TopLevelPrefix + ulid.MustNew(ulid.Timestamp(now), rand.Reader).String()
}

// NewRunID returns a fresh ID for one run of an executor.
func NewRunID(now time.Time) string {
	return "Run_" + ulid.MustNew(ulid.Timestamp(now), rand.Reader).String()
}

// RunIDTime is when run ID runID was made (NewRunID), to the millisecond; ok is false
// for an ID NewRunID did not make.
func RunIDTime(runID string) (t time.Time, ok bool) {
	rest, found := strings.CutPrefix(runID, "Run_")
	if !found {
		return time.Time{}, false
	}
	u, err := ulid.ParseStrict(rest)
	if err != nil {
		return time.Time{}, false
	}
	return ulid.Time(u.Time()), true
}

// NewExecutorID returns a fresh executor ID.
func NewExecutorID(now time.Time) string {
	return "Exr_" + ulid.MustNew(ulid.Timestamp(now), rand.Reader).String()
}

// ULIDs are Crockford base32, in which case does not matter: E_01m95gyswgb1ngvqypff0a1aaa
// and E_01M95GYSWGB1NGVQYPFF0A1AAA are one execution. Every ID that comes from outside
// (the API, a webhook's schedule) is brought to the canonical form, upper case, before it
// is looked up or stored, so that a second spelling can neither create a second
// execution nor miss the first.

// CanonicalTopLevelID is CanonicalID for the ID of a top-level execution: E_ followed by
// a ULID, nothing after it.
func CanonicalTopLevelID(id string) (string, error) {
	if !strings.HasPrefix(id, TopLevelPrefix) {
		return "", fmt.Errorf("execution ID %s: must start with %q", clip.Quote(id), TopLevelPrefix)
	}
	c, err := CanonicalID(id)
	if err != nil {
		return "", err
	}
	if !IsTopLevel(c) {
		return "", fmt.Errorf("execution ID %s: want E_<ULID>, the ID of a top-level execution, not of a child", clip.Quote(id))
	}
	return c, nil
}

// CanonicalID checks the root of an execution ID (E_<ULID>, a child's
// E_<ULID>.<join-set>_<n>...) or of a delay ID (Delay_<ULID>...) and returns the ID with
// that ULID in upper case; the rest (join set names) is kept as it is.
func CanonicalID(id string) (string, error) {
	prefix := TopLevelPrefix
	if IsDelayID(id) {
		prefix = DelayPrefix
	}
	rest, ok := strings.CutPrefix(id, prefix)
	if !ok {
		return "", fmt.Errorf("execution ID %s: must start with %q (or %q for a delay)", clip.Quote(id), TopLevelPrefix, DelayPrefix)
	}
	root, children, child := strings.Cut(rest, ".")
	u, err := ulid.ParseStrict(root)
	if err != nil {
		return "", fmt.Errorf("execution ID %s: want %s<ULID>[.<join-set>_<n>...]: %w", clip.Quote(id), prefix, err)
	}
	if child {
		return prefix + u.String() + "." + children, nil
	}
	return prefix + u.String(), nil
}

// CanonicalIDPrefix is CanonicalID for the start of an ID (a filter): the part of the
// root ULID it holds goes to upper case. A prefix that cannot start an ID is returned as
// it is (it matches nothing).
func CanonicalIDPrefix(prefix string) string {
	for _, p := range []string{TopLevelPrefix, DelayPrefix} {
		if rest, ok := strings.CutPrefix(prefix, p); ok {
			root, children, dot := strings.Cut(rest, ".")
			if dot {
				children = "." + children
			}
			return p + strings.ToUpper(root) + children
		}
	}
	return prefix
}

// ChildExecutionID derives the ID of the index-th (1-based) child submitted into a join
// set: <parent>.<join-set-id>_<index>. The same inputs give the same ID on replay.
func ChildExecutionID(parent, joinSetID string, index int) string {
	return fmt.Sprintf("%s.%s_%d", parent, joinSetID, index)
}

// OneOffJoinSetID names the one-off join set of the n-th (1-based) direct call or sleep
// of a workflow: o:<n>-<suffix>, suffix being the called function's name or "sleep".
func OneOffJoinSetID(n int, suffix string) string {
	return fmt.Sprintf("o:%d-%s", n, suffix)
}

// IsTopLevel reports whether id names a top-level execution (no parent).
func IsTopLevel(id string) bool { return !strings.Contains(id, ".") }

// SplitFFQN splits namespace:package/interface[@version].function at the last '.' and
// checks both parts.
func SplitFFQN(ffqn string) (ifc, fn string, err error) {
	i := strings.LastIndexByte(ffqn, '.')
	if i <= 0 || i == len(ffqn)-1 {
		return "", "", fmt.Errorf("function name %s: want namespace:package/interface.function", clip.Quote(ffqn))
	}
	ifc, fn = ffqn[:i], ffqn[i+1:]
	colon, slash := strings.IndexByte(ifc, ':'), strings.IndexByte(ifc, '/')
	if colon <= 0 || slash <= colon+1 || slash == len(ifc)-1 {
		return "", "", fmt.Errorf("function name %s: interface %s is not namespace:package/interface", clip.Quote(ffqn), clip.Quote(ifc))
	}
	return ifc, fn, nil
}

// DelayPrefix starts every delay ID.
const DelayPrefix = "Delay_"

// DelayID derives the ID of a delay requested as the index-th (1-based) request of a
// join set: Delay_ followed by the child ID that request would have, without its E_.
// The parent and the join set can be read back from it (SplitDelayID).
func DelayID(parent, joinSetID string, index int) string {
	return DelayPrefix + strings.TrimPrefix(ChildExecutionID(parent, joinSetID, index), TopLevelPrefix)
}

// SplitDelayID returns the workflow execution and the join set a delay belongs to.
func SplitDelayID(id string) (parent, joinSetID string, err error) {
	rest, ok := strings.CutPrefix(id, DelayPrefix)
	dot := strings.LastIndexByte(rest, '.')
	if !ok || dot <= 0 {
		return "", "", fmt.Errorf("delay ID %s: want Delay_<ULID>[.<join-set>_<n>...].<join-set>_<n>", clip.Quote(id))
	}
	last := rest[dot+1:]
	us := strings.LastIndexByte(last, '_')
	if us <= 0 {
		return "", "", fmt.Errorf("delay ID %s: its last part %s is not <join-set>_<n>", clip.Quote(id), clip.Quote(last))
	}
	return TopLevelPrefix + rest[:dot], last[:us], nil
}

// IsDelayID reports whether id names a delay rather than an execution.
func IsDelayID(id string) bool { return strings.HasPrefix(id, DelayPrefix) }
