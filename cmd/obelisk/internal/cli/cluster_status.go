package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
	"github.com/obelisk-go/obelisk/proto/obelisk/v1/obeliskv1connect"
)

func (o *clientOpts) cluster() obeliskv1connect.ClusterServiceClient {
	return obeliskv1connect.NewClusterServiceClient(o.client(), o.apiURL)
}

func clusterCmd(o *clientOpts) *cobra.Command {
	cmd := &cobra.Command{Use: "cluster", Short: "Inspect the cluster the API's node is one of"}
	cmd.AddCommand(clusterStatusCmd(o))
	return cmd
}

// clusterMemberDoc is a member in the --json document of cluster status (contract).
type clusterMemberDoc struct {
	Name           string   `json:"name"`
	Self           bool     `json:"self"`
	Healthy        bool     `json:"healthy"`
	Problem        string   `json:"problem,omitempty"`
	APIURL         string   `json:"api_url,omitempty"`
	StartedAt      string   `json:"started_at,omitempty"`
	LastSeen       string   `json:"last_seen,omitempty"`
	Applied        uint64   `json:"applied"`
	Behind         uint64   `json:"behind"`
	LogReplica     bool     `json:"log_replica"`
	LogLeader      bool     `json:"log_leader"`
	ReplicaCurrent bool     `json:"replica_current"`
	ReplicaOffline bool     `json:"replica_offline"`
	ReplicaLag     uint64   `json:"replica_lag"`
	Locked         uint32   `json:"locked"`
	LockedIDs      []string `json:"locked_ids"`
}

// clusterStatusDoc is the --json document of cluster status (contract).
type clusterStatusDoc struct {
	// SingleNode: the API's server runs without [cluster]; Members is that node alone.
	SingleNode   bool               `json:"single_node"`
	Cluster      string             `json:"cluster"`
	Self         string             `json:"self"`
	LogEnd       uint64             `json:"log_end"`
	LogLeader    string             `json:"log_leader"`
	Members      []clusterMemberDoc `json:"members"`
	WorkerLocked uint32             `json:"worker_locked"`
	// Errors say what the node could not read; the members are what the rest says.
	Errors []string `json:"errors,omitempty"`
}

func clusterStatusCmd(o *clientOpts) *cobra.Command {
	var maxIDs uint32
	cmd := &cobra.Command{
		Use:   "status",
		Short: "List the cluster's members, their health and what each is running",
		Long: `List the members of the cluster the API's node is one of: every node with a recent
heartbeat or a replica of the replicated log. For each: whether it is healthy (a
heartbeat within the last seconds and its log replica online; else the problem), its API
address, when it was last seen, the last log entry it applied and how far that is behind
the log's end, its replica of the log (leader, current or lagging, offline), and how
many executions its executors hold locks on (--json lists their IDs).

The table's columns: NODE HEALTH LAST_SEEN APPLIED BEHIND REPLICA LOCKED API PROBLEM
(an empty value is "-"; the node that answered is marked "*"). A server without
[cluster] answers "single node, no cluster" and itself alone. What the node could not
read (the log's state, the heartbeats: while a Raft leader is elected after a node died)
is printed after the table ("not read: ..."). The exit status is 1 if a member is
unhealthy or something could not be read.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := o.cluster().GetClusterStatus(cmd.Context(), connect.NewRequest(&pb.GetClusterStatusRequest{MaxLockedIds: maxIDs}))
			if err != nil {
				return apiErr(err)
			}
			doc := clusterStatusDocOf(resp.Msg)
			out := cmd.OutOrStdout()
			if o.json {
				err = writeJSON(out, doc)
			} else {
				err = printClusterStatus(out, doc, time.Now())
			}
			if err != nil {
				return err
			}
			for _, m := range doc.Members {
				if !m.Healthy {
					return &ExitError{Code: 1}
				}
			}
			if len(doc.Errors) > 0 {
				return &ExitError{Code: 1}
			}
			return nil
		},
	}
	cmd.Flags().Uint32Var(&maxIDs, "max-locked-ids", 20, "list at most this many locked execution IDs per member (--json)")
	return cmd
}

func clusterStatusDocOf(r *pb.GetClusterStatusResponse) clusterStatusDoc {
	doc := clusterStatusDoc{SingleNode: r.Cluster == "", Cluster: r.Cluster, Self: r.Self, LogEnd: r.LogEnd,
		LogLeader: r.LogLeader, Members: []clusterMemberDoc{}, WorkerLocked: r.WorkerLocked, Errors: r.Errors}
	for _, m := range r.Members {
		ids := m.LockedIds
		if ids == nil {
			ids = []string{}
		}
		doc.Members = append(doc.Members, clusterMemberDoc{Name: m.Name, Self: m.Self, Healthy: m.Healthy, Problem: m.Problem,
			APIURL: m.ApiUrl, StartedAt: m.StartedAt, LastSeen: m.LastSeen, Applied: m.Applied, Behind: m.Behind,
			LogReplica: m.LogReplica, LogLeader: m.LogReplica && m.Name == r.LogLeader, ReplicaCurrent: m.ReplicaCurrent,
			ReplicaOffline: m.ReplicaOffline, ReplicaLag: m.ReplicaLag, Locked: m.Locked, LockedIDs: ids})
	}
	return doc
}

func printClusterStatus(w io.Writer, doc clusterStatusDoc, now time.Time) error {
	if doc.SingleNode {
		fmt.Fprintln(w, "single node, no cluster")
	} else {
		fmt.Fprintf(w, "cluster %s: %d members, log end %d (leader %s), answered by %s\n",
			doc.Cluster, len(doc.Members), doc.LogEnd, dash(doc.LogLeader), doc.Self)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tHEALTH\tLAST_SEEN\tAPPLIED\tBEHIND\tREPLICA\tLOCKED\tAPI\tPROBLEM")
	for _, m := range doc.Members {
		name := m.Name
		if doc.SingleNode {
			name = "self"
		}
		if m.Self {
			name += "*"
		}
		health := "healthy"
		if !m.Healthy {
			health = "unhealthy"
		}
		seen := "-"
		if t, err := time.Parse(time.RFC3339Nano, m.LastSeen); err == nil {
			seen = now.Sub(t).Round(100*time.Millisecond).String() + "_ago"
		}
		applied, behind := fmt.Sprint(m.Applied), fmt.Sprint(m.Behind)
		if doc.SingleNode {
			applied, behind = "-", "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", name, health, seen, applied, behind,
			replicaText(m), m.Locked, dash(m.APIURL), dash(m.Problem))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, e := range doc.Errors {
		fmt.Fprintf(w, "not read: %s\n", e)
	}
	if doc.WorkerLocked > 0 {
		fmt.Fprintf(w, "external workers hold %d locks\n", doc.WorkerLocked)
	}
	return nil
}

// replicaText is a member's log replica in one word: leader, current, lag=N, offline.
func replicaText(m clusterMemberDoc) string {
	switch {
	case !m.LogReplica:
		return "-"
	case m.LogLeader:
		return "leader"
	case m.ReplicaOffline:
		return "offline"
	case m.ReplicaCurrent:
		return "current"
	}
	return fmt.Sprintf("lag=%d", m.ReplicaLag)
}

func dash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}
