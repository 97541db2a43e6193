package replicated

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
)

// encodeTx returns what of tx is replicated: everything but Snapshots, which stay on the
// node that took them.
func encodeTx(tx *events.Tx) *pb.LogTx {
	m := &pb.LogTx{}
	for _, a := range tx.Appends {
		m.Appends = append(m.Appends, &pb.LogAppend{ExecutionId: a.ExecutionID, ExpectedVersion: a.ExpectedVersion, RunId: a.RunID, Events: a.Events, Responses: a.Responses})
	}
	for _, r := range tx.Responses {
		m.Responses = append(m.Responses, &pb.LogResponse{ExecutionId: r.ExecutionID, Response: r.Response})
	}
	for _, l := range tx.Logs {
		ll := &pb.LogLines{ExecutionId: l.ExecutionID}
		for _, line := range l.Lines {
			ll.Lines = append(ll.Lines, &pb.LogLine{Time: line.Time, Level: uint32(line.Level), Attempt: line.Attempt, RunId: line.RunID, Context: line.Context, Message: line.Message})
		}
		m.Logs = append(m.Logs, ll)
	}
	for _, c := range tx.KVChecks {
		m.KvChecks = append(m.KvChecks, &pb.LogKVCheck{Bucket: c.Bucket, Key: c.Key, ExpectedPresent: c.ExpectedPresent, Expected: c.Expected})
	}
	for _, w := range tx.KV {
		m.Kv = append(m.Kv, &pb.LogKVWrite{Bucket: w.Bucket, Key: w.Key, Value: w.Value, Delete: w.Delete, Check: w.Check, ExpectedPresent: w.ExpectedPresent, Expected: w.Expected})
	}
	for _, s := range tx.Schedules {
		m.Schedules = append(m.Schedules, &pb.LogScheduleWrite{Name: s.Name, Schedule: s.Schedule, Delete: s.Delete})
	}
	for _, c := range tx.Cache {
		m.Cache = append(m.Cache, &pb.LogCachePut{ComponentId: c.ComponentID, Ffqn: c.FFQN, Params: c.Params, ExecutionId: c.ExecutionID, ExpiresAt: c.ExpiresAt})
	}
	return m
}

// encodeBatch encodes txs as one log entry.
func encodeBatch(txs []*pb.LogTx) ([]byte, error) {
	b, err := proto.Marshal(&pb.LogEntry{Kind: &pb.LogEntry_Batch{Batch: &pb.LogBatch{Txs: txs}}})
	if err != nil {
		return nil, fmt.Errorf("encode %d transactions: %w", len(txs), err)
	}
	return b, nil
}

// decodeTx is the inverse of encodeTx.
func decodeTx(m *pb.LogTx) *events.Tx {
	tx := &events.Tx{}
	for _, a := range m.Appends {
		tx.Appends = append(tx.Appends, events.Append{ExecutionID: a.ExecutionId, ExpectedVersion: a.ExpectedVersion, RunID: a.RunId, Events: a.Events, Responses: a.Responses})
	}
	for _, r := range m.Responses {
		tx.Responses = append(tx.Responses, events.ResponseAppend{ExecutionID: r.ExecutionId, Response: r.Response})
	}
	for _, l := range m.Logs {
		la := events.LogAppend{ExecutionID: l.ExecutionId}
		for _, line := range l.Lines {
			la.Lines = append(la.Lines, events.LogLine{Time: line.Time, Level: abi.LogLevel(line.Level), Attempt: line.Attempt, RunID: line.RunId, Context: line.Context, Message: line.Message})
		}
		tx.Logs = append(tx.Logs, la)
	}
	for _, c := range m.KvChecks {
		tx.KVChecks = append(tx.KVChecks, events.KVCheck{Bucket: c.Bucket, Key: c.Key, ExpectedPresent: c.ExpectedPresent, Expected: c.Expected})
	}
	for _, w := range m.Kv {
		tx.KV = append(tx.KV, events.KVWrite{Bucket: w.Bucket, Key: w.Key, Value: w.Value, Delete: w.Delete, Check: w.Check, ExpectedPresent: w.ExpectedPresent, Expected: w.Expected})
	}
	for _, s := range m.Schedules {
		tx.Schedules = append(tx.Schedules, events.ScheduleWrite{Name: s.Name, Schedule: s.Schedule, Delete: s.Delete})
	}
	for _, c := range m.Cache {
		tx.Cache = append(tx.Cache, events.CachePut{ComponentID: c.ComponentId, FFQN: c.Ffqn, Params: c.Params, ExecutionID: c.ExecutionId, ExpiresAt: c.ExpiresAt})
	}
	return tx
}

func encodeDeleteTrees(roots []string) ([]byte, error) {
	b, err := proto.Marshal(&pb.LogEntry{Kind: &pb.LogEntry_DeleteTrees{DeleteTrees: &pb.LogDeleteTrees{Roots: roots}}})
	if err != nil {
		return nil, fmt.Errorf("encode delete trees: %w", err)
	}
	return b, nil
}

// replicatedPart reports whether tx holds anything besides snapshots.
func replicatedPart(tx *events.Tx) bool {
	return len(tx.Appends)+len(tx.Responses)+len(tx.Logs)+len(tx.KVChecks)+len(tx.KV)+len(tx.Schedules)+len(tx.Cache) > 0
}
