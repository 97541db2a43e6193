package snapshot

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// MismatchError reports a stored state that differs from the refold of its logs.
type MismatchError struct {
	ExecutionID string
	// Field is the first field (in field-number order) that differs, e.g. "status" or
	// "join_sets[o:1-fibo]".
	Field string
	// Stored and Refolded are that field's values in the stored and the refolded state.
	Stored, Refolded string
}

// Error names the execution, the field and both values.
func (e *MismatchError) Error() string {
	return fmt.Sprintf("execution %s: stored state differs from the refold of its events and responses: %s: stored %s, refolded %s",
		e.ExecutionID, e.Field, e.Stored, e.Refolded)
}

// Verify refolds execution id from the store's events and responses and compares the
// result with the state the store keeps. It returns a *MismatchError naming the first
// differing field if they differ, and the refold's error if the logs do not fold. It is
// read-only and may run while the store is written to: the logs are read up to the
// version and cursor of the state read first.
func Verify(ctx context.Context, store events.Store, id string) error {
	st, err := store.State(ctx, id)
	if err != nil {
		return fmt.Errorf("verify %s: %w", id, err)
	}
	failure, err := check(ctx, store, st)
	if err != nil {
		return err
	}
	return named(id, failure)
}

// named makes a failure of check name its execution, as the *MismatchError does.
func named(id string, failure error) error {
	var me *MismatchError
	if failure == nil || errors.As(failure, &me) {
		return failure
	}
	return fmt.Errorf("verify %s: %w", id, failure)
}

// VerifyAll runs the check of [Verify] on every execution in the store, finished or not,
// against the states as persisted. It returns every failure found (joined), or nil.
func VerifyAll(ctx context.Context, store events.Store) error {
	var errs []error
	_, err := VerifyEach(ctx, store, func(id string, failure error) error {
		errs = append(errs, named(id, failure))
		return nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// VerifyEach runs the check of [Verify] on every execution in the store, finished or
// not, in execution ID order, against the states as persisted, and calls failed with
// each execution that does not pass it and why: a *MismatchError, or why its logs do
// not fold. It returns the number of executions checked. A failure to read the store,
// or an error from failed, ends it and is returned: a damaged execution is reported and
// the check goes on, a store that cannot be read is not.
func VerifyEach(ctx context.Context, store Reader, failed func(id string, failure error) error) (checked int, err error) {
	err = store.AllStates(ctx, func(st *pb.ExecutionState) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		checked++
		failure, err := check(ctx, store, st)
		if err != nil {
			return err
		}
		if failure != nil {
			return failed(st.ExecutionId, failure)
		}
		return nil
	})
	if err != nil {
		return checked, fmt.Errorf("verify the store: %w", err)
	}
	return checked, nil
}

// Reader is what a verification reads: an events.Store, or an events.View (the store
// as it was at one moment, for a store that is being written).
type Reader interface {
	AllStates(ctx context.Context, fn func(*pb.ExecutionState) error) error
	Events(ctx context.Context, id string, from uint32, limit int) ([]*pb.Event, error)
	Responses(ctx context.Context, id string, from uint32) ([]*pb.Response, error)
}

// Check compares a stored state, read from store, with the refold of its execution's
// logs there: the check of [VerifyEach] on one execution. failure says why they do not
// match (a *MismatchError, or why the logs do not fold, which need not name the
// execution); err is a failure to read the logs.
func Check(ctx context.Context, store Reader, st *pb.ExecutionState) (failure, err error) {
	return check(ctx, store, st)
}

func check(ctx context.Context, store Reader, st *pb.ExecutionState) (failure, err error) {
	id := st.ExecutionId
	evs, err := store.Events(ctx, id, 0, int(st.NextVersion))
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", id, err)
	}
	responses, err := store.Responses(ctx, id, 0)
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", id, err)
	}
	if len(evs) < int(st.NextVersion) || len(responses) < int(st.ResponseCount) {
		return fmt.Errorf("the state is at v%d/r%d but the store has %d events and %d responses",
			st.NextVersion, st.ResponseCount, len(evs), len(responses)), nil
	}
	refolded, err := Refold(id, evs, responses[:st.ResponseCount])
	if err != nil {
		return err, nil
	}
	return Compare(id, st, refolded), nil
}

// Compare returns nil if the stored and the refolded state are equal (proto.Equal), and
// otherwise a *MismatchError naming the first field that differs. The states' hash chain
// links (event_chain, response_chain) are no part of the fold and are not compared:
// events.View.CheckChains checks them.
func Compare(id string, stored, refolded *pb.ExecutionState) error {
	stored, refolded = unlinked(stored), unlinked(refolded)
	if proto.Equal(stored, refolded) {
		return nil
	}
	field, s, r := firstDifference(stored.ProtoReflect(), refolded.ProtoReflect())
	return &MismatchError{ExecutionID: id, Field: field, Stored: s, Refolded: r}
}

// unlinked returns st without its chain links.
func unlinked(st *pb.ExecutionState) *pb.ExecutionState {
	if len(st.EventChain) == 0 && len(st.ResponseChain) == 0 {
		return st
	}
	c := events.CloneState(st)
	c.EventChain, c.ResponseChain = nil, nil
	return c
}

// firstDifference finds the first field, in field-number order, whose values differ
// (presence included) and formats both values.
func firstDifference(a, b protoreflect.Message) (field, av, bv string) {
	fields := a.Descriptor().Fields()
	byNumber := make([]protoreflect.FieldDescriptor, fields.Len())
	for i := range byNumber {
		byNumber[i] = fields.Get(i)
	}
	sort.Slice(byNumber, func(i, j int) bool { return byNumber[i].Number() < byNumber[j].Number() })
	for _, fd := range byNumber {
		name := string(fd.Name())
		if fd.HasPresence() && a.Has(fd) != b.Has(fd) {
			return name, presence(a, fd), presence(b, fd)
		}
		va, vb := a.Get(fd), b.Get(fd)
		if fd.IsMap() {
			if k, x, y, ok := mapDifference(va.Map(), vb.Map()); ok {
				return fmt.Sprintf("%s[%s]", name, k), x, y
			}
			continue
		}
		if !va.Equal(vb) {
			return name, format(fd, va), format(fd, vb)
		}
	}
	return "(unknown fields)", "", ""
}

func presence(m protoreflect.Message, fd protoreflect.FieldDescriptor) string {
	if !m.Has(fd) {
		return "unset"
	}
	return format(fd, m.Get(fd))
}

func mapDifference(a, b protoreflect.Map) (key, av, bv string, ok bool) {
	keys := map[string]protoreflect.MapKey{}
	collect := func(k protoreflect.MapKey, _ protoreflect.Value) bool {
		keys[k.String()] = k
		return true
	}
	a.Range(collect)
	b.Range(collect)
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		k := keys[name]
		x, y := "absent", "absent"
		if a.Has(k) {
			x = valueString(a.Get(k))
		}
		if b.Has(k) {
			y = valueString(b.Get(k))
		}
		if a.Has(k) != b.Has(k) || !a.Get(k).Equal(b.Get(k)) {
			return name, x, y, true
		}
	}
	return "", "", "", false
}

func format(fd protoreflect.FieldDescriptor, v protoreflect.Value) string {
	switch fd.Kind() {
	case protoreflect.BytesKind:
		return fmt.Sprintf("%q", v.Bytes())
	case protoreflect.StringKind:
		return fmt.Sprintf("%q", v.String())
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return string(ev.Name())
		}
	}
	return valueString(v)
}

func valueString(v protoreflect.Value) string {
	if m, ok := v.Interface().(protoreflect.Message); ok {
		return fmt.Sprintf("{%v}", m.Interface())
	}
	return fmt.Sprint(v.Interface())
}
