package events

import (
	"context"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// ForgeStateForTest stores st as the state of execution st.ExecutionId as it is: nothing
// is folded, checked or indexed, so the stored state no longer equals the fold of the
// execution's events and responses. It breaks the store's central invariant on purpose,
// for tests that check that verifiers (snapshot.Verify, `obelisk server verify`) catch a
// damaged store; nothing else may call it. The execution must exist.
func (s *PebbleStore) ForgeStateForTest(ctx context.Context, st *pb.ExecutionState) error {
	id := st.GetExecutionId()
	if _, err := s.loadState(id); err != nil {
		return fmt.Errorf("forge the state of %s: %w", id, err)
	}
	b, err := proto.Marshal(st)
	if err != nil {
		return fmt.Errorf("forge the state of %s: %w", id, err)
	}
	forged := CloneState(st)
	return s.runStep(ctx, true, func(batch *pebble.Batch) (func(), error) {
		if err := batch.Set(stateKey(id), b, nil); err != nil {
			return nil, err
		}
		return func() {
			// The writer owns the cache of live states: a live execution's forged state is
			// what reads see from now on, as if it had been persisted by a commit.
			s.mu.Lock()
			if _, ok := s.cache[id]; ok {
				s.cache[id] = forged
			}
			s.mu.Unlock()
		}, nil
	})
}
