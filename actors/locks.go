package actors

import (
	"strings"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// LockHolder says whose st's lock is (or last was): an external worker's, or a server
// executor's, of the cluster's node named node ("" for a single node's executors).
func LockHolder(st *pb.ExecutionState) (node string, worker bool) {
	if heldByWorker(st) {
		return "", true
	}
	_, node, _ = strings.Cut(st.ExecutorId, nodeSuffix(""))
	return node, false
}
