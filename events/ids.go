package events

import (
	"crypto/rand"
	"fmt"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
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

// NewExecutorID returns a fresh executor ID.
func NewExecutorID(now time.Time) string {
	return "Exr_" + ulid.MustNew(ulid.Timestamp(now), rand.Reader).String()
}

// ValidateTopLevelID checks that id is E_ followed by a valid ULID.
func ValidateTopLevelID(id string) error {
	rest, ok := strings.CutPrefix(id, TopLevelPrefix)
	if !ok {
		return fmt.Errorf("execution ID %q: must start with %q", id, TopLevelPrefix)
	}
	if _, err := ulid.ParseStrict(rest); err != nil {
		return fmt.Errorf("execution ID %q: %w", id, err)
	}
	return nil
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
		return "", "", fmt.Errorf("function name %q: want namespace:package/interface.function", ffqn)
	}
	ifc, fn = ffqn[:i], ffqn[i+1:]
	colon, slash := strings.IndexByte(ifc, ':'), strings.IndexByte(ifc, '/')
	if colon <= 0 || slash <= colon+1 || slash == len(ifc)-1 {
		return "", "", fmt.Errorf("function name %q: interface %q is not namespace:package/interface", ffqn, ifc)
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
		return "", "", fmt.Errorf("delay ID %q: want Delay_<ULID>[.<join-set>_<n>...].<join-set>_<n>", id)
	}
	last := rest[dot+1:]
	us := strings.LastIndexByte(last, '_')
	if us <= 0 {
		return "", "", fmt.Errorf("delay ID %q: its last part %q is not <join-set>_<n>", id, last)
	}
	return TopLevelPrefix + rest[:dot], last[:us], nil
}

// IsDelayID reports whether id names a delay rather than an execution.
func IsDelayID(id string) bool { return strings.HasPrefix(id, DelayPrefix) }
