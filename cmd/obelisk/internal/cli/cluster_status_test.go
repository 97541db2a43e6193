package cli

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
	"github.com/obelisk-go/obelisk/proto/obelisk/v1/obeliskv1connect"
)

type fakeCluster struct {
	obeliskv1connect.UnimplementedClusterServiceHandler
	resp *pb.GetClusterStatusResponse
}

func (f *fakeCluster) GetClusterStatus(context.Context, *connect.Request[pb.GetClusterStatusRequest]) (*connect.Response[pb.GetClusterStatusResponse], error) {
	return connect.NewResponse(f.resp), nil
}

func fakeClusterAPI(t *testing.T, resp *pb.GetClusterStatusResponse) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(obeliskv1connect.NewClusterServiceHandler(&fakeCluster{resp: resp}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestClusterStatusSingleNode(t *testing.T) {
	url := fakeClusterAPI(t, &pb.GetClusterStatusResponse{Members: []*pb.ClusterMember{{Self: true, Healthy: true, Locked: 2}}})
	out, err := runCLI(t, "client", "--api-url", url, "cluster", "status")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || lines[0] != "single node, no cluster" || strings.Join(strings.Fields(lines[2]), " ") != "self* healthy - - - - 2 - -" {
		t.Fatalf("output:\n%s", out)
	}
	out, err = runCLI(t, "client", "--api-url", url, "--json", "cluster", "status")
	if err != nil {
		t.Fatal(err)
	}
	var doc clusterStatusDoc
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if !doc.SingleNode || len(doc.Members) != 1 || doc.Members[0].Locked != 2 || doc.Members[0].LockedIDs == nil {
		t.Fatalf("--json: %s", out)
	}
}

func TestClusterStatusTable(t *testing.T) {
	seen := time.Now().Add(-1500 * time.Millisecond).UTC().Format(time.RFC3339Nano)
	url := fakeClusterAPI(t, &pb.GetClusterStatusResponse{Cluster: "c", Self: "n1", LogEnd: 40, LogLeader: "n2", WorkerLocked: 1,
		Errors: []string{"heartbeats: timeout"},
		Members: []*pb.ClusterMember{
			{Name: "n1", Self: true, Healthy: true, ApiUrl: "http://a", LastSeen: seen, Applied: 40, LogReplica: true, ReplicaCurrent: true, Locked: 1, LockedIds: []string{"E_1"}},
			{Name: "n2", Healthy: true, ApiUrl: "http://b", LastSeen: seen, Applied: 38, Behind: 2, LogReplica: true, ReplicaCurrent: true},
			{Name: "n3", Problem: "no heartbeat for 9s", Applied: 20, Behind: 20, LogReplica: true, ReplicaOffline: true},
		}})
	out, err := runCLI(t, "client", "--api-url", url, "cluster", "status")
	if exitCode(err) != 1 {
		t.Fatalf("an unhealthy member: exit %d (%v), want 1", exitCode(err), err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := []string{
		"cluster c: 3 members, log end 40 (leader n2), answered by n1",
		"NODE HEALTH LAST_SEEN APPLIED BEHIND REPLICA LOCKED API PROBLEM",
		"n1* healthy AGO 40 0 current 1 http://a -",
		"n2 healthy AGO 38 2 leader 0 http://b -",
		"n3 unhealthy - 20 20 offline 0 - no heartbeat for 9s",
		"not read: heartbeats: timeout",
		"external workers hold 1 locks",
	}
	if len(lines) != len(want) {
		t.Fatalf("output:\n%s", out)
	}
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) > 2 && strings.HasPrefix(f[2], "1.") && strings.HasSuffix(f[2], "s_ago") { // about 1.5 s: the test's own pace
			f[2] = "AGO"
		}
		if got := strings.Join(f, " "); got != want[i] {
			t.Errorf("line %d: %q, want %q", i, got, want[i])
		}
	}
}
