package replicated

import (
	"context"
	"fmt"
	"time"
)

// LogStatus is the replicated log as one node sees it: where it ends, how far this node
// applied it, and the servers that hold its replicas (the stream's Raft group).
type LogStatus struct {
	Stream string
	// LastSeq is the log's last entry, as its leader answered.
	LastSeq uint64
	// Applied is the last entry this node applied whole.
	Applied uint64
	// Leader is the server that leads the stream's Raft group ("" while none does).
	Leader string
	// Replicas are the servers holding a replica, the leader first.
	Replicas []Replica
}

// Replica is one server of the stream's Raft group, as its leader sees it.
type Replica struct {
	Name string
	// Current: it has every entry the leader has (the leader itself is current).
	Current bool
	// Offline: the leader has not heard from it for a while.
	Offline bool
	// Active is how long ago the leader last heard from it (0 for the leader).
	Active time.Duration
	// Lag is how many Raft entries it is behind the leader.
	Lag uint64
}

// Applied returns the last log entry this node applied whole.
func (s *Store) Applied() uint64 { return s.appliedSeq.Load() }

// LogStatus asks the stream's leader where the log ends and who holds its replicas.
func (s *Store) LogStatus(ctx context.Context) (LogStatus, error) {
	st, err := s.js.Stream(ctx, s.opts.Stream)
	if err != nil {
		return LogStatus{}, fmt.Errorf("log status of %s: %w", s.opts.Stream, err)
	}
	info := st.CachedInfo()
	ls := LogStatus{Stream: s.opts.Stream, LastSeq: info.State.LastSeq, Applied: s.Applied()}
	if c := info.Cluster; c != nil {
		ls.Leader = c.Leader
		if c.Leader != "" {
			ls.Replicas = append(ls.Replicas, Replica{Name: c.Leader, Current: true})
		}
		for _, p := range c.Replicas {
			ls.Replicas = append(ls.Replicas, Replica{Name: p.Name, Current: p.Current, Offline: p.Offline, Active: p.Active, Lag: p.Lag})
		}
	}
	return ls, nil
}

// LogEnd asks the stream's leader for the log's last entry: every commit acknowledged
// before the call, on any node, is at or before it.
func (s *Store) LogEnd(ctx context.Context) (uint64, error) {
	st, err := s.js.Stream(ctx, s.opts.Stream)
	if err != nil {
		return 0, fmt.Errorf("end of %s: %w", s.opts.Stream, err)
	}
	return st.CachedInfo().State.LastSeq, nil
}
