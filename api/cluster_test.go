package api

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/obelisk-go/obelisk/actors"
	"github.com/obelisk-go/obelisk/events"
	"github.com/obelisk-go/obelisk/events/replicated"
	"github.com/obelisk-go/obelisk/membership"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	apiv1 "github.com/obelisk-go/obelisk/proto/obelisk/v1"
	"github.com/obelisk-go/obelisk/proto/obelisk/v1/obeliskv1connect"
)

// lockBy locks a stub execution for executor, as that executor's Locked event would.
func lockBy(t *testing.T, e *actors.Engine, executor string) string {
	t.Helper()
	id := stubExecution(t, e)
	now := time.Now()
	locked := &pb.Event{CreatedAt: now.UnixNano(), Kind: &pb.Event_Locked{Locked: &pb.Locked{
		ExecutorId: executor, RunId: "Run_" + id, LockExpiresAt: now.Add(time.Hour).UnixNano(), ComponentId: e.Components()[0].ID}}}
	if _, err := e.Store().Commit(context.Background(), &events.Tx{Appends: []events.Append{{ExecutionID: id, ExpectedVersion: 1, Events: []*pb.Event{locked}}}}); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestClusterStatusSingleNode: a server without [cluster] answers with itself alone,
// healthy, and counts the executions locked by its executors and by external workers.
func TestClusterStatusSingleNode(t *testing.T) {
	e, _, url := serveWith(t, Options{})
	own := lockBy(t, e, events.NewExecutorID(time.Now()))
	lockBy(t, e, "worker:w1")
	stubExecution(t, e) // pending: nobody's
	c := obeliskv1connect.NewClusterServiceClient(http.DefaultClient, url)
	resp, err := c.GetClusterStatus(context.Background(), connect.NewRequest(&apiv1.GetClusterStatusRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	r := resp.Msg
	if r.Cluster != "" || r.Self != "" || len(r.Members) != 1 || r.WorkerLocked != 1 || len(r.Errors) != 0 {
		t.Fatalf("single node: %v", r)
	}
	m := r.Members[0]
	if !m.Self || !m.Healthy || m.Locked != 1 || !slices.Equal(m.LockedIds, []string{own}) {
		t.Fatalf("the node: %v", m)
	}
}

type fakeView struct{ st membership.Status }

func (f fakeView) Status(context.Context) (membership.Status, error) { return f.st, nil }

// TestClusterStatusMembers: a node of a cluster answers with the members its view sees,
// each with the locks its executors ("Exr_...@node") hold, how far behind the log's end
// it is, and a member the view does not know that holds locks is listed as such.
func TestClusterStatusMembers(t *testing.T) {
	seen := time.Now()
	view := fakeView{membership.Status{Cluster: "c", Self: "n1",
		Log: replicated.LogStatus{LastSeq: 10, Leader: "n2"}, Errors: []string{"heartbeats: slow"},
		Members: []membership.Member{
			{Name: "n1", Self: true, APIURL: "http://a", LastSeen: seen, Applied: 10, Healthy: true, Replica: &replicated.Replica{Name: "n1", Current: true}},
			{Name: "n2", APIURL: "http://b", LastSeen: seen, Applied: 7, Healthy: true, Replica: &replicated.Replica{Name: "n2", Current: true}},
		}}}
	e, _, url := serveWith(t, Options{Cluster: view})
	a := lockBy(t, e, events.NewExecutorID(time.Now())+"@n2")
	b := lockBy(t, e, events.NewExecutorID(time.Now())+"@n2")
	gone := lockBy(t, e, events.NewExecutorID(time.Now())+"@n9")
	c := obeliskv1connect.NewClusterServiceClient(http.DefaultClient, url)
	resp, err := c.GetClusterStatus(context.Background(), connect.NewRequest(&apiv1.GetClusterStatusRequest{MaxLockedIds: 1}))
	if err != nil {
		t.Fatal(err)
	}
	r := resp.Msg
	if r.Cluster != "c" || r.Self != "n1" || r.LogEnd != 10 || r.LogLeader != "n2" || len(r.Members) != 3 || !slices.Equal(r.Errors, []string{"heartbeats: slow"}) {
		t.Fatalf("status: %v", r)
	}
	n1, n2, n9 := r.Members[0], r.Members[1], r.Members[2]
	if n1.Name != "n1" || !n1.Self || n1.Locked != 0 || n1.Behind != 0 || !n1.LogReplica || n1.ApiUrl != "http://a" || n1.LastSeen == "" {
		t.Errorf("n1: %v", n1)
	}
	// The IDs are listed up to max_locked_ids, soonest expiry first; the count is whole.
	if n2.Name != "n2" || n2.Locked != 2 || n2.Behind != 3 || len(n2.LockedIds) != 1 || n2.LockedIds[0] != a && n2.LockedIds[0] != b {
		t.Errorf("n2: %v", n2)
	}
	if n9.Name != "n9" || n9.Healthy || n9.Problem == "" || n9.Locked != 1 || n9.LockedIds[0] != gone {
		t.Errorf("n9: %v", n9)
	}
}
