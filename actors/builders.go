package actors

import (
	"time"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// Event builders. Every Created and Locked event the engine writes is made here, so that
// what a stream records about the component that runs it (its ID, type, queue, retry
// policy) is decided in one place, whichever path (submit, child, webhook request,
// executor lock, eager lock, keepalive, a workflow extending its own lock) writes it.

// createdEvent creates an execution of ffqn, exported by c, due now in c's queue (a
// submitter that names another queue sets Created.Queue afterwards). parent and joinSet
// are empty for a top-level execution.
func createdEvent(now time.Time, c *Component, ffqn string, params []byte, parent, joinSet string) *pb.Event {
	return &pb.Event{CreatedAt: now.UnixNano(), Kind: &pb.Event_Created{Created: &pb.Created{
		Ffqn: ffqn, Params: params, ParentId: parent, ParentJoinSetId: joinSet,
		ScheduledAt: now.UnixNano(), ComponentId: c.ID, ComponentType: c.Config.pbType(), Queue: c.Config.QueueName(),
	}}}
}

// lockedEvent gives an execution of c to run runID of executor until expires; retry is
// the policy the stream records for its failures (empty: never retried).
func lockedEvent(executor string, c *Component, runID string, now, expires time.Time, retry *pb.RetryConfig) *pb.Event {
	return &pb.Event{CreatedAt: now.UnixNano(), Kind: &pb.Event_Locked{Locked: &pb.Locked{
		ExecutorId: executor, RunId: runID, LockExpiresAt: expires.UnixNano(), ComponentId: c.ID, Retry: retry,
	}}}
}
