package api

import (
	"context"
	"fmt"
	"math"
	"time"

	"connectrpc.com/connect"

	"github.com/obelisk-go/obelisk/actors"
	"github.com/obelisk-go/obelisk/membership"
	apiv1 "github.com/obelisk-go/obelisk/proto/obelisk/v1"
	"github.com/obelisk-go/obelisk/proto/obelisk/v1/obeliskv1connect"
)

// ClusterView is what the API asks of the cluster a node is one of (membership.Heart).
type ClusterView interface {
	Status(ctx context.Context) (membership.Status, error)
}

// maxLocksScanned bounds the locked executions GetClusterStatus reads: the counts of a
// larger cluster are a lower bound.
const maxLocksScanned = 100_000

type cluster struct {
	e    *actors.Engine
	view ClusterView // nil: a single node
}

// GetClusterStatus joins the members the ClusterView sees with the locks this node's
// store holds, which are the same on every node (the log's projection).
func (h *cluster) GetClusterStatus(ctx context.Context, req *connect.Request[apiv1.GetClusterStatusRequest]) (*connect.Response[apiv1.GetClusterStatusResponse], error) {
	maxIDs := int(req.Msg.MaxLockedIds)
	if maxIDs == 0 {
		maxIDs = 20
	}
	resp := &apiv1.GetClusterStatusResponse{}
	if h.view == nil {
		resp.Members = []*apiv1.ClusterMember{{Self: true, Healthy: true}}
	} else {
		st, err := h.view.Status(ctx)
		if err != nil {
			return nil, connect.NewError(connect.CodeUnavailable, err)
		}
		resp.Cluster, resp.Self, resp.LogEnd, resp.LogLeader, resp.Errors = st.Cluster, st.Self, st.Log.LastSeq, st.Log.Leader, st.Errors
		for _, m := range st.Members {
			cm := &apiv1.ClusterMember{Name: m.Name, Self: m.Self, ApiUrl: m.APIURL, StartedAt: rfc3339Time(m.StartedAt),
				LastSeen: rfc3339Time(m.LastSeen), Healthy: m.Healthy, Problem: m.Problem, Applied: m.Applied}
			if st.Log.LastSeq > m.Applied { // 0 when the log's end is unknown
				cm.Behind = st.Log.LastSeq - m.Applied
			}
			if r := m.Replica; r != nil {
				cm.LogReplica, cm.ReplicaCurrent, cm.ReplicaOffline, cm.ReplicaLag = true, r.Current, r.Offline, r.Lag
			}
			resp.Members = append(resp.Members, cm)
		}
	}
	if err := h.locks(ctx, resp, maxIDs); err != nil {
		return nil, apiError(err)
	}
	return connect.NewResponse(resp), nil
}

// locks counts the executions locked now by each member's executors (executor ID
// "Exr_<ULID>@<node>"; on a single node every server executor's) and by external
// workers, soonest expiry first.
func (h *cluster) locks(ctx context.Context, resp *apiv1.GetClusterStatusResponse, maxIDs int) error {
	byNode := map[string]*apiv1.ClusterMember{}
	for _, m := range resp.Members {
		byNode[m.Name] = m
	}
	ids, _, err := h.e.Store().ExpiredLocks(ctx, time.Unix(0, math.MaxInt64), maxLocksScanned)
	if err != nil {
		return fmt.Errorf("list locks: %w", err)
	}
	for _, id := range ids {
		st, err := h.e.State(ctx, id)
		if err != nil {
			continue // finished and deleted since the scan
		}
		node, worker := actors.LockHolder(st)
		if worker {
			resp.WorkerLocked++
			continue
		}
		m := byNode[node]
		if m == nil {
			// A node with neither a heartbeat nor a replica: listed for its locks.
			m = &apiv1.ClusterMember{Name: node, Problem: "no heartbeat"}
			byNode[node] = m
			resp.Members = append(resp.Members, m)
		}
		m.Locked++
		if len(m.LockedIds) < maxIDs {
			m.LockedIds = append(m.LockedIds, id)
		}
	}
	return nil
}

func rfc3339Time(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return rfc3339(t.UnixNano())
}

// syncReads has the calls of the services it intercepts (executions, schedules) see
// every commit acknowledged before them on any node of a cluster
// (actors.Engine.SyncReads): a status asked of node B right after a submission to node A
// finds the execution, a schedule created on A is listed on B. On a single node it costs
// nothing (SyncReads returns at once).
type syncReads struct{ e *actors.Engine }

// synced says whether syncReads waits for the call procedure: every call but Submit (its
// commit is decided in the log), WatchEvents (it waits for what comes anyway) and Verify
// (a whole-store pass), so that a call added later reads fresh by default.
func synced(procedure string) bool {
	switch procedure {
	case obeliskv1connect.ExecutionServiceSubmitProcedure,
		obeliskv1connect.ExecutionServiceWatchEventsProcedure,
		obeliskv1connect.ExecutionServiceVerifyProcedure:
		return false
	}
	return true
}

func (s syncReads) sync(ctx context.Context, procedure string) error {
	if !synced(procedure) {
		return nil
	}
	if err := s.e.SyncReads(ctx); err != nil {
		// A node cut off from the log's leader (a minority) answers nothing rather than
		// something stale.
		return connect.NewError(connect.CodeUnavailable, fmt.Errorf("this node cannot catch up with the cluster's log: %w", err))
	}
	return nil
}

func (s syncReads) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if err := s.sync(ctx, req.Spec().Procedure); err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

func (s syncReads) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (s syncReads) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		if err := s.sync(ctx, conn.Spec().Procedure); err != nil {
			return err
		}
		return next(ctx, conn)
	}
}
