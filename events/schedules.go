package events

import (
	"context"
	"fmt"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/obelisk-go/obelisk/internal/clip"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// The records of periodic schedules (actors/service_schedules.go). A schedule is one key:
//
//	j\0<name>  -> its CronSchedule
//
// Like KV entries, records belong to no execution: retention does not delete them and
// they add nothing to the global event log. They are written through Commit
// (Tx.Schedules), so that a firing's execution and the record saying it was fired are
// stored together or not at all: a crash between the two cannot fire twice.

// MaxScheduleNameBytes bounds a schedule's name.
const MaxScheduleNameBytes = 255

// ScheduleWrite sets (Schedule) or deletes (Delete) the record of schedule Name.
type ScheduleWrite struct {
	Name     string
	Schedule *pb.CronSchedule
	Delete   bool
}

func scheduleKey(name string) []byte { return key(tagSchedule, []byte(name)) }

// CheckScheduleName refuses a name that cannot be a schedule's key.
func CheckScheduleName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("schedule name is empty: %w", ErrInvalidArgument)
	case len(name) > MaxScheduleNameBytes:
		return fmt.Errorf("schedule name %s is %d bytes, more than the limit of %d: %w", clip.Quote(name), len(name), MaxScheduleNameBytes, ErrInvalidArgument)
	case strings.IndexByte(name, 0) >= 0:
		return fmt.Errorf("schedule name %s contains a NUL byte: %w", clip.Quote(name), ErrInvalidArgument)
	}
	return nil
}

// scheduleOps returns the writes of tx's schedule records.
func scheduleOps(tx *Tx) ([]kv, error) {
	if len(tx.Schedules) == 0 {
		return nil, nil // every commit passes here: no allocation
	}
	ops := make([]kv, 0, len(tx.Schedules))
	for _, w := range tx.Schedules {
		if err := CheckScheduleName(w.Name); err != nil {
			return nil, err
		}
		if w.Delete {
			ops = append(ops, kv{k: scheduleKey(w.Name), del: true})
			continue
		}
		if w.Schedule == nil || w.Schedule.Name != w.Name {
			return nil, fmt.Errorf("schedule %s: the record must carry its name: %w", clip.Quote(w.Name), ErrInvalidArgument)
		}
		b, err := proto.Marshal(w.Schedule)
		if err != nil {
			return nil, fmt.Errorf("schedule %s: marshal: %w", clip.Quote(w.Name), err)
		}
		ops = append(ops, kv{k: scheduleKey(w.Name), v: b})
	}
	return ops, nil
}

// Schedules returns every schedule's record, by name.
func (s *PebbleStore) Schedules(ctx context.Context) ([]*pb.CronSchedule, error) {
	if err := s.Err(); err != nil {
		return nil, err
	}
	prefix := key(tagSchedule, nil)
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, fmt.Errorf("list schedules: %w", err)
	}
	defer it.Close()
	var out []*pb.CronSchedule
	for ok := it.First(); ok; ok = it.Next() {
		sc := &pb.CronSchedule{}
		if err := proto.Unmarshal(it.Value(), sc); err != nil {
			return nil, fmt.Errorf("list schedules: %s: %w", clip.Quote(string(it.Key()[len(prefix):])), err)
		}
		out = append(out, sc)
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("list schedules: %w", err)
	}
	return out, nil
}
